"""Share links: an album or a selection behind an unguessable, revocable link (see ``store``)."""
