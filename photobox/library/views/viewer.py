"""The viewer: one photo or video full screen, previous/next within the list it was opened
from, details, and the actions of a single photo."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from litestar import Request, get
from litestar.exceptions import NotFoundException
from litestar.params import FromPath
from litestar.response import Response

from photobox.jobs.failures import asset_failure
from photobox.library import albums as album_store
from photobox.library import assets, timeline
from photobox.library.assets import date_basis
from photobox.library.timeline import Scope
from photobox.media.camera import camera_name
from photobox.web.deps import Box, Read
from photobox.web.render import page


def _exposure(seconds: float | None) -> str | None:
    if not seconds:
        return None
    return f"1/{round(1 / seconds)} s" if seconds < 0.5 else f"{seconds:g} s"


def _offset(minutes: int | None) -> str:
    if minutes is None:
        return ""
    sign = "+" if minutes >= 0 else "-"
    return f"UTC{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


#: Where a capture time was read, when it is not the camera's own EXIF record.
_SOURCES = {"xmp": "XMP", "iptc": "IPTC", "quicktime": "the video's metadata", "video": "the video's metadata",
            "filename": "the file name", "gps": "gps"}


def date_fact(asset: dict) -> tuple[str, str]:
    """("Taken", …) for a date the file records; ("Date", … "a guess" …) when the timeline
    places it by the file's modification time or by when it was added (``assets.date_basis``)."""
    basis = date_basis(asset["taken_at"], asset["taken_at_source"], asset["mtime"], asset["created_at"])
    if basis == "file":
        source = _SOURCES.get(asset["taken_at_source"] or "exif")
        return ("Taken", f"{asset['taken_at'].replace('T', ' ')} {_offset(asset['tz_offset_min'])}".strip()
                + (f" (from {source})" if source else ""))
    shown = datetime.fromtimestamp(asset["sort_ts"], timezone.utc).strftime("%Y-%m-%d %H:%M")  # wall clock
    why = "the file's modification time" if basis == "mtime" else "when it was added to photobox"
    return "Date", f"{shown}, a guess: the file has no date of its own, so this is {why}"


@get("/photos/{asset_id:int}", include_in_schema=False)
async def viewer(request: Request, box: Box, read: Read, asset_id: FromPath[int]) -> Response:
    scope = Scope.parse(request.query_params.get("in"))

    def load(conn):
        asset = assets.details(conn, asset_id)
        if asset is None:
            return None
        view_scope = scope
        if asset["trashed_at"] is not None and scope.name != "trash":
            view_scope = Scope("trash")
        newer, older = timeline.neighbors(conn, view_scope, asset_id)
        albums = album_store.albums_of(conn, asset_id)
        album_name = None
        if view_scope.name == "album":
            r = album_store.get_album(conn, view_scope.album_id)
            album_name = r[1] if r else None
        asset.update(faces=[], place=None)
        for feature in box.features:  # people, places… say what they know of this photo
            for details in feature.asset_details:
                asset.update(details(conn, asset_id))
        asset["failure"] = asset_failure(conn, asset_id) if not asset["thumb_version"] else None
        return asset, view_scope, newer, older, albums, album_name

    loaded = await read(load)
    if loaded is None:
        raise NotFoundException("no such photo")
    asset, view_scope, newer, older, albums, album_name = loaded
    back = None
    opened_in = request.query_params.get("in") or ""
    provider = next((f.viewer_scopes[opened_in] for f in box.features if opened_in in f.viewer_scopes), None)
    if provider is not None and asset["trashed_at"] is None:
        # Opened from a feature's own results (search): that feature says how to move within them.
        view_scope, newer, older, back = await provider(request, box, asset_id)
    meta = json.loads(asset.pop("metadata") or "{}")
    back = back or {"timeline": "/", "favorites": "/favorites", "archive": "/archive", "trash": "/trash"}.get(
        view_scope.name) or (f"/places/town/{view_scope.place_id}" if view_scope.name == "place"
                             else f"/places/{view_scope.country}/photos" if view_scope.name == "country"
                             else f"/people/{view_scope.person_id}" if view_scope.name == "person"
                             else f"/albums/{view_scope.album_id}")
    facts = [date_fact(asset)]
    camera = camera_name(asset["make"], asset["model"])
    if camera:
        facts.append(("Camera", camera))
    if asset["lens"]:
        facts.append(("Lens", asset["lens"]))
    exposure = " · ".join(x for x in (
        f"ƒ/{asset['f_number']:g}" if asset["f_number"] else None, _exposure(asset["exposure_time"]),
        f"{asset['focal_length']:g} mm" if asset["focal_length"] else None,
        f"ISO {asset['iso']}" if asset["iso"] else None) if x)
    if exposure:
        facts.append(("Exposure", exposure))
    w, h = asset["display_width"] or asset["width"], asset["display_height"] or asset["height"]
    dims = f"{w} × {h}" + (f" ({w * h / 1e6:.1f} MP)" if w and h and asset["kind"] == "image" else "") if w and h else ""
    facts.append(("File", f"{asset['original_name']} · {_size(asset['size'])}" + (f" · {dims}" if dims else "")))
    if asset["duration"]:
        facts.append(("Length", f"{int(asset['duration']) // 60}:{int(asset['duration']) % 60:02d}"))
    if asset["latitude"] is not None and asset["longitude"] is not None:
        place = meta.get("place") or (asset["place"].label if asset["place"] else None)
        facts.append(("Location", (place + " · " if place else "") + f"{asset['latitude']:.5f}, {asset['longitude']:.5f}"))
    return page(request, "viewer.html", asset=asset, scope=view_scope, newer=newer, older=older, back=back,
                albums=albums, album_name=album_name, facts=facts)


ROUTES = [viewer]
