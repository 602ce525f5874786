"""The Library page: on a phone the bottom tab bar has room for four tabs (Photos, Search,
Albums, Library), like Google Photos; every other destination (People, Places, Favourites,
Archive, Trash, Duplicates, Upload, Processing, Shared links, Settings, Log out) is listed
here as large tap targets. Plain links and one form: it works without JavaScript."""

from __future__ import annotations

from litestar import Request, get
from litestar.response import Response

from photobox.web.render import page

#: (href, label, icon, hint) of every destination not in the tab bar, in the order shown.
DESTINATIONS = [
    ("/people", "People", "people", "Faces found in your photos"),
    ("/places", "Places", "place", "Photos on a map"),
    ("/favorites", "Favourites", "heart", "Photos you marked with a heart"),
    ("/upload", "Upload", "upload", "Add photos and videos from this device"),
    ("/archive", "Archive", "archive", "Hidden from the timeline"),
    ("/trash", "Trash", "trash", "Deleted items, restorable for a while"),
    ("/duplicates", "Duplicates", "duplicates", "Near-identical photos to review"),
    ("/shares", "Shared links", "link", "Links you gave to others"),
    ("/jobs", "Processing", "jobs", "Thumbnails, faces and other background work"),
    ("/settings", "Settings", "settings", "Library folders, accounts, backups"),
]

#: Paths whose pages count as "inside Library", so its tab is highlighted there.
LIBRARY_PREFIXES = ("/library",) + tuple(href for href, *_ in DESTINATIONS)


@get("/library", include_in_schema=False)
async def library_page(request: Request) -> Response:
    return page(request, "library.html", destinations=DESTINATIONS)


ROUTES = [library_page]
