"""Identify a file's format from its first bytes (never from its name).

Only the magic numbers are looked at here; formats that share a container
(TIFF-based RAWs, ISO-BMFF images and videos) are refined by the readers that
parse the container, see `refine_tiff_mime`.
"""

from __future__ import annotations

import re

# How many leading bytes `sniff` wants to see.
HEAD_SIZE = 4096

IMAGE = "image"
VIDEO = "video"

_BMFF_IMAGE_BRANDS = {
    b"heic": "image/heic", b"heix": "image/heic", b"heim": "image/heic",
    b"heis": "image/heic", b"hevc": "image/heic", b"hevx": "image/heic",
    b"mif1": "image/heif", b"msf1": "image/heif", b"mif2": "image/heif",
    b"heif": "image/heif",
    b"avif": "image/avif", b"avis": "image/avif",
    b"crx ": "image/x-canon-cr3",
}
_BMFF_VIDEO_BRANDS = {
    b"qt  ": "video/quicktime",
    b"3gp4": "video/3gpp", b"3gp5": "video/3gpp", b"3gp6": "video/3gpp",
    b"3gp7": "video/3gpp", b"3gp8": "video/3gpp", b"3gp9": "video/3gpp",
    b"3ge6": "video/3gpp", b"3ge7": "video/3gpp", b"3gg6": "video/3gpp",
    b"3g2a": "video/3gpp2", b"3g2b": "video/3gpp2", b"3g2c": "video/3gpp2",
}
# Audio-only MP4 flavours: valid files, but not photos or videos.
_BMFF_AUDIO_BRANDS = {b"M4A ", b"M4B ", b"M4P ", b"F4A ", b"F4B "}
# Boxes that may open a QuickTime file written before `ftyp` existed.
_OLD_QT_BOXES = {b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot", b"PICT"}

# Extension -> mimes that are a fair match for it.  Only used for ext_mismatch;
# ISO-BMFF videos are interchangeable because players do not care.
_BMFF_VIDEOS = {"video/mp4", "video/quicktime", "video/3gpp", "video/3gpp2"}
_NIKON = {"image/x-nikon-nef", "image/x-nikon-nrw"}
_KODAK = {"image/x-kodak-dcr", "image/x-kodak-kdc"}
_EXT_MIMES: dict[str, set[str]] = {
    "jpg": {"image/jpeg"}, "jpeg": {"image/jpeg"}, "jpe": {"image/jpeg"},
    "jfif": {"image/jpeg"},
    "heic": {"image/heic", "image/heif"}, "heif": {"image/heic", "image/heif"},
    "hif": {"image/heic", "image/heif"}, "avif": {"image/avif"},
    "png": {"image/png"}, "gif": {"image/gif"}, "bmp": {"image/bmp"},
    "webp": {"image/webp"}, "tif": {"image/tiff"}, "tiff": {"image/tiff"},
    "dng": {"image/x-adobe-dng"}, "cr2": {"image/x-canon-cr2"},
    "cr3": {"image/x-canon-cr3"}, "crw": {"image/x-canon-crw"},
    "nef": _NIKON, "nrw": _NIKON,
    "arw": {"image/x-sony-arw"}, "srf": {"image/x-sony-arw"},
    "sr2": {"image/x-sony-arw"}, "raf": {"image/x-fuji-raf"},
    "rw2": {"image/x-panasonic-rw2"}, "rwl": {"image/x-panasonic-rw2"},
    "orf": {"image/x-olympus-orf"}, "ori": {"image/x-olympus-orf"},
    "pef": {"image/x-pentax-pef"}, "srw": {"image/x-samsung-srw"},
    "x3f": {"image/x-sigma-x3f"}, "mrw": {"image/x-minolta-mrw"},
    "iiq": {"image/x-phaseone-iiq"}, "3fr": {"image/x-hasselblad-3fr"},
    "fff": {"image/x-hasselblad-3fr"}, "erf": {"image/x-epson-erf"},
    "kdc": _KODAK, "dcr": _KODAK, "mef": {"image/x-mamiya-mef"},
    "mos": {"image/x-leaf-mos"},
    "mp4": _BMFF_VIDEOS, "m4v": _BMFF_VIDEOS, "mov": _BMFF_VIDEOS,
    "qt": _BMFF_VIDEOS, "3gp": _BMFF_VIDEOS, "3g2": _BMFF_VIDEOS,
    "mts": {"video/mp2t"}, "m2ts": {"video/mp2t"}, "m2t": {"video/mp2t"},
    "ts": {"video/mp2t"}, "mkv": {"video/x-matroska"}, "webm": {"video/webm"},
    "avi": {"video/x-msvideo"}, "mpg": {"video/mpeg"}, "mpeg": {"video/mpeg"},
    "wmv": {"video/x-ms-asf"}, "asf": {"video/x-ms-asf"},
}
# When the content does not show which RAW a TIFF is (no sensor data: the
# metadata-only RAWs that tools strip down), its name still may: exiftool
# decides by name alone.
_TIFF_RAW_EXT = {
    "nef": "image/x-nikon-nef", "nrw": "image/x-nikon-nrw",
    "arw": "image/x-sony-arw", "srf": "image/x-sony-arw", "sr2": "image/x-sony-arw",
    "pef": "image/x-pentax-pef", "srw": "image/x-samsung-srw",
    "dng": "image/x-adobe-dng", "cr2": "image/x-canon-cr2",
    "iiq": "image/x-phaseone-iiq", "3fr": "image/x-hasselblad-3fr",
    "erf": "image/x-epson-erf", "kdc": "image/x-kodak-kdc", "dcr": "image/x-kodak-dcr",
    "mef": "image/x-mamiya-mef", "mos": "image/x-leaf-mos",
}
# Make prefix -> RAW mime, for TIFF RAWs whose extension was lost.
_TIFF_RAW_MAKE = {"NIKON": "image/x-nikon-nef", "SONY": "image/x-sony-arw",
                  "PENTAX": "image/x-pentax-pef"}

RAW_MIMES = {
    "image/x-adobe-dng", "image/x-canon-cr2", "image/x-canon-cr3",
    "image/x-canon-crw", "image/x-nikon-nef", "image/x-nikon-nrw", "image/x-sony-arw",
    "image/x-fuji-raf", "image/x-panasonic-rw2", "image/x-olympus-orf",
    "image/x-pentax-pef", "image/x-samsung-srw", "image/x-sigma-x3f",
    "image/x-minolta-mrw", "image/x-phaseone-iiq", "image/x-hasselblad-3fr",
    "image/x-epson-erf", "image/x-kodak-kdc", "image/x-kodak-dcr",
    "image/x-mamiya-mef", "image/x-leaf-mos",
}

_HTML_RE = re.compile(rb"<(!doctype\s+html|html|head|body)\b", re.IGNORECASE)


def sniff(head: bytes) -> tuple[str | None, str | None, str | None]:
    """Identify a file from its leading bytes.

    Args:
        head: The first bytes of the file (`HEAD_SIZE` is plenty).

    Returns:
        ``(mime, kind, label)``. ``kind`` is ``"image"``/``"video"`` for media
        photobox handles and None otherwise; ``label`` names non-media formats
        for error messages (e.g. ``"HTML"``), else None.
    """
    if not head:
        return None, None, None
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg", IMAGE, None
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png", IMAGE, None
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif", IMAGE, None
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp", IMAGE, None
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video/x-msvideo", VIDEO, None
    if _is_bmp(head):
        return "image/bmp", IMAGE, None
    if head.startswith(b"FUJIFILMCCD-RAW "):
        return "image/x-fuji-raf", IMAGE, None
    if head[:2] == b"II" and head[6:14] == b"HEAPCCDR":
        return "image/x-canon-crw", IMAGE, None
    if head.startswith(b"FOVb"):
        return "image/x-sigma-x3f", IMAGE, None
    if head[:4] in (b"\x00MRM", b"\x00MRI"):
        return "image/x-minolta-mrw", IMAGE, None
    if head[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "image/x-olympus-orf", IMAGE, None
    if head[:4] == b"IIU\x00":
        return "image/x-panasonic-rw2", IMAGE, None
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        if head[8:10] == b"CR" and head[:2] == b"II":
            return "image/x-canon-cr2", IMAGE, None
        return "image/tiff", IMAGE, None
    bmff = _sniff_bmff(head)
    if bmff is not None:
        return bmff
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        # The EBML header names the DocType within its first few dozen bytes.
        if b"webm" in head[:64]:
            return "video/webm", VIDEO, None
        return "video/x-matroska", VIDEO, None
    if _is_mpeg_ts(head):
        return "video/mp2t", VIDEO, None
    if head.startswith(b"\x00\x00\x01\xba"):
        return "video/mpeg", VIDEO, None
    if head.startswith(b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"):
        return "video/x-ms-asf", VIDEO, None
    return _sniff_other(head)


def _is_bmp(head: bytes) -> bool:
    # "BM" alone is too weak (plain text can start with it): also require a
    # known DIB header size.
    if head[:2] != b"BM" or len(head) < 18:
        return False
    return int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124)


def _is_mpeg_ts(head: bytes) -> bool:
    # Plain TS has a 0x47 sync byte every 188 bytes; M2TS (AVCHD .mts) puts a
    # 4-byte timestamp before each packet, so sync bytes sit every 192 bytes.
    for start, step in ((0, 188), (4, 192)):
        positions = [start + i * step for i in range(3)]
        if positions[-1] < len(head) and all(head[p] == 0x47 for p in positions):
            return True
    return False


def _sniff_bmff(head: bytes) -> tuple[str | None, str | None, str | None] | None:
    if head[4:8] != b"ftyp":
        if head[4:8] in _OLD_QT_BOXES:
            return "video/quicktime", VIDEO, None
        return None
    size = int.from_bytes(head[:4], "big")
    major = head[8:12]
    brands = [major]
    end = min(size, len(head)) if size >= 16 else min(len(head), 64)
    brands += [head[i:i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:  # major brand first, then compatible ones
        if brand in _BMFF_IMAGE_BRANDS:
            return _BMFF_IMAGE_BRANDS[brand], IMAGE, None
        if brand in _BMFF_VIDEO_BRANDS:
            return _BMFF_VIDEO_BRANDS[brand], VIDEO, None
    if major in _BMFF_AUDIO_BRANDS:
        return "audio/mp4", None, "MP4 audio"
    return "video/mp4", VIDEO, None


def _sniff_other(head: bytes) -> tuple[str | None, str | None, str | None]:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if _HTML_RE.search(head[:2048]):
        return "text/html", None, "HTML"
    if text.startswith((b"<?xpacket", b"<x:xmpmeta")) or (
        text.startswith(b"<?xml") and b"<x:xmpmeta" in head):
        return "application/rdf+xml", None, "XMP sidecar"
    if text.startswith(b"<?xml") or text.startswith(b"<svg"):
        if b"<svg" in head:
            return "image/svg+xml", None, "SVG"
        return "application/xml", None, "XML"
    if head.startswith(b"%PDF"):
        return "application/pdf", None, "PDF"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip", None, "ZIP"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return "audio/mpeg", None, "MP3 audio"
    return None, None, None


def ext_mismatch(ext: str, mime: str | None) -> bool:
    """Tell whether a known extension disagrees with the sniffed mime.

    Args:
        ext: File extension without the dot, any case.
        mime: Sniffed mime, or None when the content was not recognised.

    Returns:
        True when the extension is one photobox knows and the content is
        something else (including unrecognisable content).
    """
    allowed = _EXT_MIMES.get(ext.lower())
    if allowed is None:
        return False
    return mime not in allowed


def refine_tiff_mime(mime: str, ext: str, make: str | None, dng: bool,
                     content: str | None = None) -> str:
    """Name the RAW flavour of a TIFF-structured file.

    Args:
        mime: Mime from `sniff` (``image/tiff`` or already specific).
        ext: File extension without the dot.
        make: EXIF Make of IFD0, if any.
        dng: Whether IFD0 carries a DNGVersion tag.
        content: The RAW the file's structure shows it is (`_raw_tiff`), which
            wins over the name.

    Returns:
        The refined mime.
    """
    if mime != "image/tiff":
        return mime
    if content:
        return content
    if dng:
        return "image/x-adobe-dng"
    by_ext = _TIFF_RAW_EXT.get(ext.lower())
    if by_ext:
        return by_ext
    if make and ext.lower() not in ("tif", "tiff"):
        for prefix, raw in _TIFF_RAW_MAKE.items():
            if make.upper().startswith(prefix):
                return raw
    return mime
