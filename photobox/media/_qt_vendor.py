"""Camera makers' own QuickTime user-data atoms: the make and model of their movies.

Compact cameras (Pentax Optio, Nikon Coolpix, Olympus, Fujifilm, Kodak,
Samsung, Sanyo, Minolta) write no ``©mak``/``©mod``; they put a binary
``TAGS`` atom in ``udta`` that starts with ``<MAKER> DIGITAL CAMERA\\0``
(Kodak: ``EASTMAN KODAK COMPANY``) with the make as a fixed-size string at 0
and, for most, the model at 0x18.  The Pentax WG/Optio GPS models write a
``PENT`` atom instead: make at 0, model at 0x1A.  Offsets and lengths follow
exiftool's tables (Pentax::MOV, Pentax::PENT, Nikon::MOV, Olympus::MOV1/2,
FujiFilm::MOV, Kodak::MOV, Samsung::MP4, Sanyo::MOV, Minolta::MOV1/2).
"""

from __future__ import annotations

# Atoms `_quicktime` keeps for this module, with how many bytes it needs.
ATOMS = {b"TAGS": 128, b"PENT": 64}

# TAGS signature -> (make length, model offset, model length); no model: None.
_TAGS = (
    (b"PENTAX DIGITAL CAMERA\x00", 24, None, 0),
    (b"NIKON DIGITAL CAMERA\x00", 24, 0x18, 8),
    (b"OLYMPUS DIGITAL CAMERA", 24, 0x18, 24),
    (b"FUJIFILM DIGITAL CAMERA\x00", 24, 0x18, 16),
    (b"SAMSUNG DIGITAL CAMERA\x00", 24, 0x18, 16),
    (b"SANYO DIGITAL CAMERA\x00", 24, 0x18, 8),
    (b"EASTMAN KODAK COMPANY", 21, 0x16, 42),
    (b"KONICA MINOLTA DIGITAL CAMERA", 32, None, 0),
    (b"MINOLTA DIGITAL CAMERA", 32, None, 0),
)


def make_model(atoms: dict[bytes, bytes]) -> tuple[str | None, str | None]:
    """Make and model from the vendor atoms found in ``udta`` (None when absent)."""
    pent = atoms.get(b"PENT")
    if pent:
        return _string(pent, 0, 24), _string(pent, 0x1A, 24)
    tags = atoms.get(b"TAGS")
    if not tags:
        return None, None
    for signature, make_len, model_at, model_len in _TAGS:
        if tags.startswith(signature):
            if signature.startswith(b"OLYMPUS") and tags[32:34] == b"\x01\x00":
                model_len = 8       # the older layout (exiftool's Olympus::MOV1)
            model = _string(tags, model_at, model_len) if model_at is not None else None
            return _string(tags, 0, make_len), model
    return None, None


def _string(data: bytes, start: int, length: int) -> str | None:
    text = data[start:start + length].split(b"\x00", 1)[0]
    value = text.decode("latin-1").strip()
    return value if value and value.isprintable() else None
