"""Per-format metadata readers feeding a `Work` collector (used by `metadata.extract`).

This module sniffs the file and dispatches; it reads the common formats
(JPEG, HEIF, PNG/WebP/GIF/BMP, videos).  TIFF and the camera RAWs are read by
`_raw_readers`; the collector and the EXIF/XMP appliers live in `_collect`.
Every reader runs under `metadata.extract`'s catch-all, but also guards its
own optional steps so one bad block (say, a corrupt XMP) does not cost the
rest.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from . import _avprobe, _dates, _exif, _flir, _heif, _maker_facts, _qt_vendor, _quicktime, _sniff, _stills, _xmp, motion
from ._collect import Work, apply_exif, apply_xmp, iso6709, scan_xmp
from ._quicktime import Reader
from ._raw_readers import TIFF_MIMES, read_cr3, read_crw, read_mrw, read_raf, read_tiff, read_x3f

__all__ = ["Work", "read", "iso6709", "BMFF_VIDEOS", "HEIF_MIMES"]

BMFF_VIDEOS = {"video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2"}
HEIF_MIMES = {"image/heic", "image/heif", "image/avif"}


# --------------------------------------------------------------------------
# Dispatch


def read(path: Path, f: BinaryIO, size: int, work: Work) -> None:
    """Sniff ``f`` and run the matching reader."""
    r = Reader(f, size)
    head = r.read(0, _sniff.HEAD_SIZE)
    mime, kind, label = _sniff.sniff(head)
    md = work.md
    md.mime, md.kind = mime, kind
    if mime is None:
        work.fail("unrecognised file format")
        return
    if kind is None:
        work.fail(f"not a media file ({label})")
        if label == "XMP sidecar":
            apply_xmp(work, _xmp.parse(r.read(0, _xmp.MAX_PACKET)))
        return
    if mime == "image/jpeg":
        read_jpeg(r, work)
    elif mime in HEIF_MIMES:
        read_heif(r, work)
    elif mime == "image/png":
        read_simple(r, work, _stills.read_png(r), "PNG")
    elif mime == "image/webp":
        read_simple(r, work, _stills.read_webp(r), "WebP")
    elif mime == "image/gif":
        gif = _stills.read_gif(r)
        gif.xmp = scan_xmp(r)     # GIF keeps XMP in an application extension
        read_simple(r, work, gif, "GIF")
    elif mime == "image/bmp":
        read_simple(r, work, _stills.read_bmp(r), "BMP")
    elif mime in TIFF_MIMES:
        read_tiff(f, r, work, path.suffix[1:])
    elif mime == "image/x-fuji-raf":
        read_raf(r, work)
    elif mime == "image/x-canon-crw":
        read_crw(r, work)
    elif mime == "image/x-sigma-x3f":
        read_x3f(r, work)
    elif mime == "image/x-canon-cr3":
        read_cr3(r, work)
    elif mime == "image/x-minolta-mrw":
        read_mrw(f, r, work, path.suffix[1:])
    elif kind == _sniff.VIDEO:
        read_video(path, r, work)


# --------------------------------------------------------------------------
# Still images


def read_jpeg(r: Reader, work: Work) -> None:
    """JPEG: size from SOF, EXIF/XMP/IPTC from APP segments, motion video."""
    still = _stills.read_jpeg(r)
    work.put("width", still.width)
    work.put("height", still.height)
    if still.flir:
        # exiftool reads the FLIR record after the EXIF and lets its
        # DateTimeOriginal (with milliseconds and zone) and LensModel win.
        with work.guard("FLIR record"):
            _flir.apply(work, r, still.flir)
    with work.guard("EXIF"):
        apply_exif(work, _exif.from_blob(still.exif))
    with work.guard("MakerNote"):
        _maker_facts.apply_blob(work, still.exif)
    xmp = None
    with work.guard("XMP"):
        xmp = _xmp.parse(still.xmp)
        if xmp is not None and still.xmp_ext:
            guid = xmp.get(_xmp.NS_NOTE, "HasExtendedXMP")
            extended = _xmp.parse(_xmp.join_extended(still.xmp_ext, guid))
            if extended is not None and not extended.dangerous:
                xmp.merge(extended)
        apply_xmp(work, xmp)
    with work.guard("IPTC"):
        work.date("iptc", _stills.iptc_date(still.iptc))
    for problem in still.problems:
        work.warn(problem)
    found = motion.Motion()
    with work.guard("motion photo"):
        found = motion.locate(r, xmp, still.data_start or 0)
        _apply_motion(work, found)
    # A JPEG ends with FFD9; look for it before any trailer we know about
    # (the motion video, even a cut one), else near EOF (cameras pad or
    # append maker data).
    end = found.start if found.start is not None else r.size
    if still.truncated or still.data_start is None:
        work.fail("truncated JPEG: no image data follows its header (the file was cut off or is damaged)")
    elif not _stills.jpeg_has_end(r, end):
        work.fail("truncated JPEG: the file ends before its image data does (it was cut off, "
                  "e.g. by an interrupted copy)")


def _apply_motion(work: Work, found: motion.Motion) -> None:
    if found.offset is not None:
        work.md.motion_video_offset = found.offset
        work.md.motion_video_length = found.length
    elif found.problem:
        work.warn(found.problem)


def read_heif(r: Reader, work: Work) -> None:
    """HEIF/AVIF: our own box parse for sizes/items, no libheif involved.

    pillow-heif would read the whole file into memory and run libheif on it;
    the primary item's properties and its Exif/XMP items are all we need.
    The displayed size is libheif's: clean aperture and irot applied, EXIF
    orientation ignored (the HEIF spec says irot/imir are authoritative).
    """
    heif = _heif.read_heif(r)
    if not heif.has_meta:
        work.fail("corrupt HEIF (no readable 'meta' box)")
        return
    work.put("width", heif.width)
    work.put("height", heif.height)
    work.display = heif.display
    with work.guard("EXIF"):
        blob = _heif.read_extents(r, heif.exif, 4 * 1024 * 1024) if heif.exif else b""
        if len(blob) >= 4:
            # The Exif item starts with a u32 offset to the TIFF header.
            skip = int.from_bytes(blob[:4], "big")
            tiff = blob[4 + skip:] if skip < len(blob) else blob[4:]
            apply_exif(work, _exif.from_blob(tiff))
            _maker_facts.apply_blob(work, tiff)
    xmp = None
    with work.guard("XMP"):
        if heif.xmp:
            xmp = _xmp.parse(_heif.read_extents(r, heif.xmp, _xmp.MAX_PACKET))
        apply_xmp(work, xmp)
    with work.guard("motion photo"):
        _apply_motion(work, motion.locate(r, xmp, 0, heif.mpvd))
    # libheif happily decodes a HEIF whose image data was cut off (the
    # missing tiles come out grey), so check the structure ourselves.
    if heif.truncated or (heif.data_end is not None and heif.data_end > r.size):
        work.fail("truncated HEIF")
    if heif.width is None:
        work.fail("corrupt HEIF (no primary image size)")


def read_simple(r: Reader, work: Work, still: _stills.Still, name: str) -> None:
    """PNG, WebP, GIF, BMP: size plus optional EXIF/XMP chunks."""
    work.put("width", still.width)
    work.put("height", still.height)
    with work.guard("EXIF"):
        apply_exif(work, _exif.from_blob(still.exif))
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(still.xmp))
    if still.truncated:
        work.fail(f"truncated {name}")
    elif still.width is None:
        work.fail(f"corrupt {name} (no image size)")


# --------------------------------------------------------------------------
# Videos


def read_video(path: Path, r: Reader, work: Work) -> None:
    """Videos: our box parser for QuickTime/MP4 facts, PyAV for the rest."""
    md = work.md
    movie = None
    if md.mime in BMFF_VIDEOS:
        with work.guard("QuickTime metadata"):
            movie = _quicktime.read_movie(r)
            _apply_movie(work, movie)
        if movie is not None and not movie.has_moov:
            # Without a complete moov there is no sample table: unplayable,
            # typically a copy interrupted before the camera wrote it.
            work.fail("truncated video (no complete 'moov' box)" if movie.truncated
                      else "not a playable video (no 'moov' box)")
    av = _avprobe.probe(path, read_mdpm=md.mime == "video/mp2t")
    if av.error:
        work.fail(f"unreadable video ({av.error.split(':')[0]})")
        return
    work.put("video_codec", av.video_codec)
    work.put("audio_codec", av.audio_codec)
    work.put("fps", av.fps)
    work.put("duration", round(av.duration, 3) if av.duration else None)
    work.put("width", av.width)
    work.put("height", av.height)
    mdpm = av.mdpm
    work.date("video", mdpm.get("taken"))
    work.put("make", mdpm.get("make") or av.tags.get("make"))
    work.put("model", mdpm.get("model") or av.tags.get("model"))
    work.put("exposure_time", mdpm.get("exposure_time"))
    work.put("f_number", mdpm.get("f_number"))
    if movie is None:
        # For BMFF files ffmpeg's creation_time is the mvhd value already read.
        work.date("video", _dates.parse_datetime(av.tags.get("creation_time")))
        work.gps.append(("container", *iso6709(av.tags.get("location"))))
    if md.width is None:
        work.fail("video without a picture stream")


def _apply_movie(work: Work, movie: _quicktime.Movie) -> None:
    md = work.md
    keys = movie.keys
    # Apple's keyed creationdate is the local wall clock with its offset;
    # mvhd is UTC by spec, so it only ranks below.
    work.date("qt_keys", _dates.parse_datetime(keys.get("com.apple.quicktime.creationdate")))
    work.date("qt_keys", _dates.parse_datetime(movie.udta.get("\xa9day")))
    work.date("qt_keys", _dates.parse_datetime(movie.udta.get("date")))
    if movie.creation is not None:
        work.date("qt_mvhd", _dates.from_utc(movie.creation))
    work.gps.append(("QuickTime", *iso6709(keys.get("com.apple.quicktime.location.ISO6709"))))
    work.gps.append(("QuickTime", *iso6709(movie.udta.get("\xa9xyz"))))
    if movie.loci is not None:
        work.gps.append(("3GPP", *movie.loci))
    for field, key, udta in (("make", "com.apple.quicktime.make", "\xa9mak"),
                             ("model", "com.apple.quicktime.model", "\xa9mod")):
        value = keys.get(key) or movie.udta.get(udta)
        work.put(field, value.strip() if isinstance(value, str) and value.strip() else None)
    # Compact cameras write their own binary atom instead (Pentax, Nikon...).
    vendor_make, vendor_model = _qt_vendor.make_model(movie.vendor)
    work.put("make", vendor_make)
    work.put("model", vendor_model)
    ident = keys.get("com.apple.quicktime.content.identifier")
    work.put("live_photo_id", ident if isinstance(ident, str) and ident else None)
    apply_xmp(work, _xmp.parse(movie.xmp))
    work.put("duration", round(movie.duration, 3) if movie.duration else None)
    track = movie.video_track()
    if track is not None:
        if track.width and track.height:
            work.put("width", int(round(track.width)))
            work.put("height", int(round(track.height)))
        work.put("width", track.sample_width or None)
        work.put("height", track.sample_height or None)
    md.video_rotation = movie.rotation()
    if "mdat" in movie.truncated:
        work.warn("video data ('mdat') runs past the end of the file: truncated copy?")
