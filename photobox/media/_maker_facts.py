"""Facts kept only in maker records: Canon and Olympus MakerNotes, Phase One, CRW.

Everything here ranks below standard EXIF (`Work.put` keeps the first value),
as exiftool gives these tags priority 0 or composes them only when EXIF has
none:

* Canon: LensModel (0x0095); ISO composed from CameraSettings (CameraISO) or
  ShotInfo (BaseISO x AutoISO / 100); for CRW, which has no EXIF,
  exposure time, f-number (ShotInfo) and focal length (FocalLength array).
* Olympus: LensModel in the Equipment sub-IFD (0x2010 -> 0x0203).
* Phase One (IIQ): LensModel, ISO and the capture time of its directory.

Conversions follow exiftool's Canon.pm (CanonEv, CameraISO...).
"""

from __future__ import annotations

import io
import math
import struct

from . import _dates, _makernotes, _raw_tiff
from ._collect import Work
from ._quicktime import Reader
from ._tiff_walk import Dir, Tiff

CANON_LENS_MODEL = 0x0095
CANON_CAMERA_SETTINGS, CANON_FOCAL_LENGTH, CANON_SHOT_INFO = 0x0001, 0x0002, 0x0004
OLYMPUS_EQUIPMENT, OLYMPUS_LENS_MODEL = 0x2010, 0x0203
_CAMERA_ISO = {16: 50, 17: 100, 18: 200, 19: 400, 20: 800}


# Makers whose MakerNote holds facts photobox reads (Make prefixes, upper case).
MAKERS = ("CANON", "OLYMPUS", "OM DIGITAL")


def apply(work: Work, layout: _raw_tiff.Layout) -> None:
    """Apply the maker facts of a walked TIFF structure."""
    if layout.phase_one is not None:
        p1 = layout.phase_one
        work.put("lens", p1.lens)
        if p1.iso:
            # exiftool reads the directory after the Exif ISO, and lets it win.
            work.md.iso = p1.iso
        if p1.taken is not None:
            work.date("exif_makernote", _dates.Stamp(p1.taken, None, True))
    mn = layout.makernote
    if mn is None:
        return
    make = (layout.make or "").upper()
    if make.startswith("CANON"):
        _canon(work, mn.tiff, mn.root, crw=False, model=work.md.model)
    elif mn.signature.startswith((b"OLYMP", b"OM SYSTEM")):
        _olympus(work, mn)


def apply_blob(work: Work, blob: bytes | None) -> None:
    """Apply the maker facts of an EXIF blob (JPEG APP1, HEIF Exif item...).

    Only for makers with facts to read: walking every photo's MakerNote
    would cost a phone library time for nothing.
    """
    if not blob or len(blob) < 8 or not (work.md.make or "").upper().startswith(MAKERS):
        return
    layout = _raw_tiff.read_layout(Reader(io.BytesIO(blob), len(blob)))
    if layout is not None:
        apply(work, layout)


def apply_canon_block(work: Work, block: bytes | None) -> None:
    """Canon CR3: the CMT3 box is a TIFF whose IFD0 is the Canon MakerNote."""
    if not block:
        return
    opened = Tiff.open(Reader(io.BytesIO(block), len(block)))
    if opened is None:
        return
    t, pos = opened
    root = t.read_dir(pos, "MakerNote")
    if root is not None:
        _canon(work, t, root, crw=False, model=work.md.model)


def apply_canon_records(work: Work, records: dict[int, bytes]) -> None:
    """Canon CRW: CIFF records carrying the MakerNote's arrays (little-endian)."""
    settings = _words(records.get(0x102D), signed=True)
    shot = _words(records.get(0x102A), signed=True)
    focal = _words(records.get(0x1029), signed=False)
    _canon_arrays(work, settings, shot, focal, crw=True, model=work.md.model)


# --------------------------------------------------------------------------
# Canon


def _canon(work: Work, t: Tiff, root: Dir, *, crw: bool, model: str | None) -> None:
    lens = t.text(root, CANON_LENS_MODEL, 128)
    work.put("lens", lens)
    settings = _array(t, root, CANON_CAMERA_SETTINGS, signed=True)
    shot = _array(t, root, CANON_SHOT_INFO, signed=True)
    focal = _array(t, root, CANON_FOCAL_LENGTH, signed=False)
    _canon_arrays(work, settings, shot, focal, crw=crw, model=model)


def _array(t: Tiff, d: Dir, tag: int, *, signed: bool) -> list[int]:
    entry = d.entries.get(tag)
    if entry is None or entry.type not in (3, 8):
        return []
    data = t.data(entry, 512)
    n = len(data) // 2
    return list(struct.unpack(f"{t.order}{n}{'h' if signed else 'H'}", data[:n * 2]))


def _words(data: bytes | None, *, signed: bool) -> list[int]:
    if not data:
        return []
    n = min(len(data), 512) // 2
    return list(struct.unpack(f"<{n}{'h' if signed else 'H'}", data[:n * 2]))


def _at(values: list[int], index: int) -> int | None:
    return values[index] if 0 <= index < len(values) else None


def _canon_arrays(work: Work, settings: list[int], shot: list[int], focal: list[int], *,
                  crw: bool, model: str | None) -> None:
    work.put("iso", canon_iso(_at(settings, 16), _at(shot, 2), _at(shot, 1)))
    if not crw:
        return   # EXIF carries the exposure in every other Canon format
    f_code, t_code = _at(shot, 21), _at(shot, 22)
    if f_code:
        work.put("f_number", _finite(math.exp(canon_ev(f_code) * math.log(2) / 2)))
    if t_code is not None:
        seconds = math.exp(-canon_ev(t_code) * math.log(2))
        if model and any(m in model for m in ("20D", "350D", "REBEL XT", "Kiss Digital N")):
            seconds = seconds * 1000 / 32      # these models encode it differently
        work.put("exposure_time", _finite(seconds))
    length, units = _at(focal, 1), _at(settings, 25)
    if length:
        work.put("focal_length", length / (units or 1))


def canon_iso(camera_iso: int | None, base: int | None, auto: int | None) -> int | None:
    """exiftool's Composite:ISO for Canon: CameraISO when numeric, else Base x Auto."""
    if camera_iso is not None and camera_iso != 0x7FFF:
        numeric = camera_iso & 0x3FFF if camera_iso & 0x4000 else _CAMERA_ISO.get(camera_iso)
        if numeric:
            return numeric
    if not base or auto is None:
        return None
    base_iso = math.exp(base / 32 * math.log(2)) * 100 / 32
    auto_iso = math.exp(auto / 32 * math.log(2)) * 100
    value = base_iso * auto_iso / 100
    return int(round(value)) if math.isfinite(value) and 0 < value < 10 ** 7 else None


def canon_ev(value: int) -> float:
    """Canon's EV code (1/32 EV steps, with 0x0C/0x14 meaning 1/3 and 2/3)."""
    sign = -1 if value < 0 else 1
    value = abs(value)
    frac = value & 0x1F
    value -= frac
    if frac == 0x0C:
        frac = 0x20 / 3
    elif frac == 0x14:
        frac = 0x40 / 3
    return sign * (value + frac) / 0x20


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and value > 0 else None


# --------------------------------------------------------------------------
# Olympus


def _olympus(work: Work, mn: _makernotes.MakerNote) -> None:
    equipment = _makernotes.sub_dir(mn, OLYMPUS_EQUIPMENT)
    if equipment is not None:
        work.put("lens", mn.tiff.text(equipment, OLYMPUS_LENS_MODEL, 64))
