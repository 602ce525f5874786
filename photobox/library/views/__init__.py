"""The library's pages: timeline, viewer, albums, upload, the phone share target and the Library menu."""
