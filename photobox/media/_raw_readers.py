"""Metadata readers for TIFF files and camera RAWs (used by `_readers.read`).

TIFF-based RAWs (DNG, CR2, NEF/NRW, ARW, PEF, SRW, ORF, RW2, 3FR, ERF, DCR,
KDC, MEF, MOS, IIQ) share `read_tiff`: Pillow reads the tag values, the
structure walker (`_raw_tiff`) names the RAW by its content and gives
exiftool's image size and orientation.  MRW wraps a TIFF in its own blocks;
X3F, RAF, CRW and CR3 have containers of their own.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, BinaryIO

from . import _dates, _exif, _maker_facts, _quicktime, _raw_ciff, _raw_formats, _raw_tiff, _sniff, _stills, _xmp
from ._collect import Work, apply_exif, apply_xmp, scan_xmp
from ._quicktime import Reader

TIFF_MIMES = {"image/tiff", "image/x-canon-cr2", "image/x-panasonic-rw2",
              "image/x-olympus-orf"}


def read_tiff(f: BinaryIO, r: Reader, work: Work, ext: str, base: int = 0,
              seed: tuple[int | None, int | None] = (None, None)) -> None:
    """TIFF and TIFF-based RAWs.

    ``base`` is where the TIFF header starts and ``seed`` a size its container
    gave first (MRW).
    """
    md = work.md
    layout = None
    with work.guard("TIFF structure"):
        layout = _raw_tiff.read_layout(r, base)
    if layout is not None and layout.orientation is not None and work.orientation_raw is None:
        work.orientation_raw = layout.orientation
    tags = _exif.from_tiff_file(f, r.size, base)
    summary = apply_exif(work, tags)
    ifd0 = tags.ifd0 if tags else {}
    if md.mime in TIFF_MIMES:
        md.mime = _sniff.refine_tiff_mime(md.mime, ext, summary and summary["make"],
                                          bool(summary and summary["dng"]),
                                          content=layout.raw_mime if layout else None)
    if layout is not None:
        with work.guard("MakerNote"):
            _maker_facts.apply(work, layout)
    if md.mime == "image/x-panasonic-rw2":
        work.put("iso", _int(ifd0.get(0x17)))   # Panasonic keeps ISO in IFD0
    width, height = _tiff_size(md.mime, ifd0, layout, seed)
    work.put("width", width)
    work.put("height", height)
    xmp_blob = ifd0.get(700)      # XMLPacket tag
    if isinstance(xmp_blob, (bytes, str)):
        with work.guard("XMP"):
            apply_xmp(work, _xmp.parse(xmp_blob))
    if not ifd0:
        work.fail("corrupt TIFF (no readable IFD)")
    elif md.width is None:
        work.fail("corrupt TIFF (no image size)")


def _tiff_size(mime: str | None, ifd0: dict[int, Any], layout: _raw_tiff.Layout | None,
               seed: tuple[int | None, int | None]) -> tuple[int | None, int | None]:
    # exiftool's ImageSize: RW2 keeps the sensor's crop as borders; other
    # TIFFs follow the full-resolution directory (see `_raw_tiff`).
    if mime == "image/x-panasonic-rw2":
        top, left, bottom, right = (_int(ifd0.get(t)) for t in (4, 5, 6, 7))
        if None not in (top, left, bottom, right) and right > left and bottom > top:
            return right - left, bottom - top
    if layout is not None:
        width, height = layout.image_size(mime, seed)
        if width and height:
            return width, height
    if seed[0] and seed[1]:
        return seed
    return _int(ifd0.get(256)), _int(ifd0.get(257))


def _int(value: Any) -> int | None:
    if isinstance(value, tuple):
        value = value[0] if value else None
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def read_mrw(f: BinaryIO, r: Reader, work: Work, ext: str) -> None:
    """Minolta MRW: PRD gives the size, the TTW block is a TIFF with the EXIF."""
    mrw = _raw_formats.read_mrw(r)
    for problem in mrw.problems:
        work.warn(problem)
    if mrw.tiff_base is None:
        work.put("width", mrw.width or None)
        work.put("height", mrw.height or None)
        work.fail("corrupt MRW (no TIFF block)")
        return
    # exiftool reads PRD's ImageWidth first, with normal priority: it stands
    # unless the TIFF flags a full-resolution directory of its own.
    read_tiff(f, r, work, ext, mrw.tiff_base, (mrw.width or None, mrw.height or None))


def read_x3f(r: Reader, work: Work) -> None:
    """Sigma/Foveon X3F: EXIF in the embedded JPEG, else the property list."""
    x3f = _raw_formats.read_x3f(r)
    for problem in x3f.problems:
        work.warn(problem)
    width, height = x3f.width or None, x3f.height or None
    for image in x3f.jpegs():
        if r.read(image.offset, 4) != b"\xff\xd8\xff\xe1":
            continue      # a plain preview: exiftool does not read into it
        # exiftool treats this JpgFromRaw as a JPEG: its EXIF, and its SOF
        # size as the image size (the same as the header's in real files).
        jpeg = _stills.read_jpeg(r, image.offset, image.offset + image.length)
        with work.guard("EXIF"):
            apply_exif(work, _exif.from_blob(jpeg.exif))
        if jpeg.width and jpeg.height:
            width, height = jpeg.width, jpeg.height
        break
    _apply_x3f_props(work, x3f.props)
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(scan_xmp(r)))
    work.put("width", width)
    work.put("height", height)
    if work.md.width is None and not x3f.props:
        work.fail("corrupt X3F")


def _apply_x3f_props(work: Work, props: dict[str, str]) -> None:
    # SD9/SD10 files have no EXIF at all: these properties are all there is
    # (exiftool gives them lower priority than EXIF, as `put` does here).
    work.put("make", props.get("CAMMANUF") or None)
    work.put("model", props.get("CAMMODEL") or None)
    for field, key in (("exposure_time", "SHUTTER"), ("f_number", "APERTURE"),
                       ("focal_length", "FLENGTH"), ("focal_length_35mm", "FLEQ35MM")):
        value = _exif.number(props.get(key))
        work.put(field, value if value and value > 0 else None)
    iso = _exif.number(props.get("ISO"))
    work.put("iso", int(iso) if iso and iso > 0 else None)
    seconds = _exif.number(props.get("TIME"))
    if seconds and 0 < seconds < 2 ** 32:
        # Unix time of the camera's clock, printed as UTC like exiftool does.
        when = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=int(seconds))
        work.date("exif_makernote", _dates.Stamp(when, None, True))


def read_raf(r: Reader, work: Work) -> None:
    """Fuji RAF: EXIF lives in the embedded preview JPEG."""
    raf = _raw_ciff.read_raf(r)
    if raf.jpeg is not None:
        start, length = raf.jpeg
        preview = _stills.read_jpeg(r, start, start + length)
        with work.guard("EXIF"):
            apply_exif(work, _exif.from_blob(preview.exif))
        with work.guard("MakerNote"):
            _maker_facts.apply_blob(work, preview.exif)
        with work.guard("XMP"):
            apply_xmp(work, _xmp.parse(preview.xmp))
    work.put("width", raf.width)
    work.put("height", raf.height)
    if work.md.width is None and not work.dates:
        work.fail("corrupt RAF")


def read_crw(r: Reader, work: Work) -> None:
    """Canon CRW (CIFF heap format)."""
    crw = _raw_ciff.read_crw(r)
    for field in ("make", "model", "width", "height"):
        work.put(field, getattr(crw, field))
    # CRW stores a rotation angle, not an EXIF orientation: only a real
    # rotation becomes one (exiftool reports no Orientation for CRW).
    if crw.orientation not in (None, 1):
        work.orientation_raw = crw.orientation
    work.date("exif_original", crw.taken)
    with work.guard("MakerNote"):
        _maker_facts.apply_canon_records(work, crw.records)
    with work.guard("XMP"):
        apply_xmp(work, _xmp.parse(scan_xmp(r)))
    if crw.make is None and crw.width is None:
        work.fail("corrupt CRW")


def read_cr3(r: Reader, work: Work) -> None:
    """Canon CR3: ISO-BMFF whose moov/uuid holds TIFF blocks CMT1..CMT4."""
    movie = _quicktime.read_movie(r)
    blocks = {name: _exif.from_blob(data) for name, data in movie.cr3.items() if data}
    ifd0 = blocks.get("CMT1")
    exif = blocks.get("CMT2")
    gps = blocks.get("CMT4")
    tags = _exif.Tags(ifd0.ifd0 if ifd0 else {}, exif.ifd0 if exif else {},
                      gps.ifd0 if gps else {})
    with work.guard("EXIF"):
        apply_exif(work, tags)
    with work.guard("MakerNote"):
        _maker_facts.apply_canon_block(work, movie.cr3.get("CMT3"))
    width, height = _int(tags.exif.get(0xA002)), _int(tags.exif.get(0xA003))
    if not width:
        width, height = _int(tags.ifd0.get(256)), _int(tags.ifd0.get(257))
    work.put("width", width)
    work.put("height", height)
    if not movie.cr3:
        work.fail("corrupt CR3 (no metadata blocks)")
