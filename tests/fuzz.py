"""Fuzzing harness shared by ``scripts/bench fuzz`` (long, bounded by time) and
``tests/test_fuzz.py`` (a few hypothesis examples): seeds, mutations and one check per parser.

Targets:
* ``metadata`` — :func:`photobox.media.metadata.extract` on a mutated file.
* ``motion`` — the Motion Photo scanner (``motion._probe``, whose errors the public
  :func:`find_motion_video` turns into "no motion part") and :func:`extract_motion_video`.
* ``multipart`` — ``POST /api/assets`` with a mutated multipart body through the real app.

A *finding* is what must never happen: an exception escaping a function documented not to
raise, an internal error type (IndexError, KeyError, TypeError…) absorbed by a last line of
defence (a parser bug hidden as "unreadable"), an HTTP 5xx, a temp file left behind, a
motion extraction that writes something other than what it announced. ValueError,
``struct.error``, EOFError and UnicodeDecodeError are how the parsers say "malformed".
"""

from __future__ import annotations

import io
import re
import struct
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from hypothesis import strategies as st

__all__ = ["BUG_TYPES", "Finding", "MultipartTarget", "check_metadata", "check_motion", "mutate", "mutations",
           "seed_files", "multipart_body"]

#: Exception types that mean a parser bug rather than malformed input.
BUG_TYPES = ("IndexError", "KeyError", "TypeError", "AttributeError", "ZeroDivisionError", "OverflowError",
             "RecursionError", "UnboundLocalError", "NameError", "AssertionError", "MemoryError",
             "NotImplementedError", "SystemError")
_BUG_RE = re.compile(r"\b(" + "|".join(BUG_TYPES) + r")\b")


@dataclass
class Finding:
    target: str
    kind: str          # raised | absorbed | http5xx | leftover | wrong-output | hang | crash
    detail: str
    data: bytes = b""

    def key(self) -> tuple[str, str, str]:
        return self.target, self.kind, re.sub(r"\d+", "N", self.detail)[:160]


# -- seeds ------------------------------------------------------------------------------

def _xmp_segment(xmp: str) -> bytes:
    payload = b"http://ns.adobe.com/xap/1.0/\0" + xmp.encode()
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def _motion_xmp(video_len: int) -> str:
    return ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            '<rdf:Description rdf:about="" xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" '
            'xmlns:Container="http://ns.google.com/photos/1.0/container/" '
            'xmlns:Item="http://ns.google.com/photos/1.0/container/item/" '
            'GCamera:MotionPhoto="1" GCamera:MotionPhotoVersion="1" GCamera:MicroVideoOffset="%d">'
            '<Container:Directory><rdf:Seq>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="image/jpeg" Item:Semantic="Primary" '
            'Item:Length="0" Item:Padding="0"/></rdf:li>'
            '<rdf:li rdf:parseType="Resource"><Container:Item Item:Mime="video/mp4" Item:Semantic="MotionPhoto" '
            'Item:Length="%d" Item:Padding="0"/></rdf:li>'
            '</rdf:Seq></Container:Directory></rdf:Description></rdf:RDF></x:xmpmeta>') % (video_len, video_len)


def _sef_trailer(video: bytes) -> bytes:
    name = b"MotionPhoto_Data"
    blob = struct.pack("<HHI", 0, 0x0A30, len(name)) + name + video
    directory = b"SEFH" + struct.pack("<II", 0x6B, 1) + struct.pack("<HHII", 0, 0x0A30, len(blob), len(blob))
    return blob + directory + struct.pack("<I", len(directory)) + b"SEFT"


def seed_files(corpus: Path | None = None, *, max_corpus_bytes: int = 600_000) -> dict[str, bytes]:
    """Small valid files of every kind the parsers read (generated), plus the corpus files
    under ``max_corpus_bytes`` when the corpus folder is given and present."""
    from PIL import Image

    from tests.gen import jpeg_bytes, mp4_file, png_bytes

    seeds: dict[str, bytes] = {}
    jpeg = jpeg_bytes(seed=3, size=(96, 64), gps=(48.8584, 2.2945))
    seeds["photo.jpg"] = jpeg
    seeds["photo.png"] = png_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        clip = mp4_file(Path(tmp) / "c.mp4", seconds=0.3, size=(64, 48)).read_bytes()
    seeds["clip.mp4"] = clip
    still = jpeg[:2] + _xmp_segment(_motion_xmp(len(clip))) + jpeg[2:]
    seeds["PXL_motion.MP.jpg"] = still + clip
    seeds["samsung_motion.jpg"] = jpeg + _sef_trailer(clip)
    try:
        import pillow_heif

        pillow_heif.register_heif_opener()
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 30, 30)).save(buf, "HEIF", quality=50)
        heic = buf.getvalue()
        seeds["photo.heic"] = heic
        seeds["motion.heic"] = heic + struct.pack(">I", 8 + len(clip)) + b"mpvd" + clip
    except ImportError:
        pass
    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (1, 2, 3)).save(buf, "WEBP")
    seeds["photo.webp"] = buf.getvalue()
    buf = io.BytesIO()
    Image.new("RGB", (40, 30)).save(buf, "TIFF")
    seeds["photo.tif"] = buf.getvalue()
    seeds.update(_raw_seeds())
    if corpus is not None and corpus.is_dir():
        for path in sorted(corpus.rglob("*")):
            if path.is_file() and path.suffix not in (".md", ".json") and 0 < path.stat().st_size <= max_corpus_bytes:
                seeds[f"corpus/{path.relative_to(corpus)}"] = path.read_bytes()
    return seeds


def _raw_seeds() -> dict[str, bytes]:
    """Camera RAWs and maker records built from their published layouts (tests/media/_raw_gen)."""
    from tests.media import _raw_gen as gen

    w = gen.TiffWriter("<")
    mn = gen.olympus_makernote(gen.jpeg((64, 48)), "OLYMPUS M.17mm F1.8")
    exif = gen.exif_ifd(w, "2020:01:02 03:04:05", gen.U(mn))
    orf = w.finish(w.ifd({0x10F: gen.A("OLYMPUS CORPORATION"), 0x106: gen.S(32803),
                          0x100: gen.L(64), 0x101: gen.L(48), 0x8769: gen.L(exif)}))
    return {
        "raw.mrw": gen.minolta_mrw(preview=(64, 48)),
        "raw.x3f": gen.sigma_x3f(props={"CAMMANUF": "SIGMA", "TIME": "978309395"}, rgb=(8, 6)),
        "raw.iiq": gen.phase_one_iiq(),
        "raw.orf": orf,
        "raw.nef": gen.tiff_raw(make="NIKON", model="D1", raw_size=(64, 48), preview=(64, 48)),
        "flir.jpg": gen.flir_jpeg(unix_time=1328969828, millis=1, minutes_west=-60),
    }


# -- mutations --------------------------------------------------------------------------

_INTERESTING = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00",
                b"\x00\x00\x00\x01", b"\xff\xfe", b"\x00\x00\x00\x08", b"\xff\xd8\xff\xe1", b"ftyp", b"moov",
                b"mdat", b"Exif\x00\x00", b"MM\x00*", b"II*\x00", b"<x:xmpmeta", b"&e;", b"\x00" * 64]

#: One mutation: (operation, position as a fraction of the file, a byte value, a length).
mutations = st.lists(st.tuples(st.sampled_from(["flip", "set", "insert", "delete", "truncate", "dup", "magic"]),
                               st.floats(0, 1, allow_nan=False), st.integers(0, 255), st.integers(1, 4096)),
                     min_size=1, max_size=8)


def mutate(data: bytes, ops: list[tuple[str, float, int, int]], *, head_bias: bool = True) -> bytes:
    """Apply ``ops`` to ``data``. Positions lean towards the first 4 KiB, where headers and
    metadata live, when ``head_bias`` (every other op)."""
    out = bytearray(data)
    for i, (op, frac, value, length) in enumerate(ops):
        if not out:
            out = bytearray(b"\x00")
        span = min(len(out), 4096) if head_bias and i % 2 == 0 else len(out)
        pos = min(int(frac * span), len(out) - 1)
        if op == "flip":
            out[pos] ^= 1 << (value % 8)
        elif op == "set":
            out[pos] = value
        elif op == "insert":
            out[pos:pos] = bytes([value]) * min(length, 256)
        elif op == "delete":
            del out[pos:pos + length]
        elif op == "truncate":
            del out[max(1, pos):]
        elif op == "dup":
            out[pos:pos] = out[pos:pos + length]
        elif op == "magic":
            magic = _INTERESTING[value % len(_INTERESTING)]
            out[pos:pos + len(magic)] = magic
    return bytes(out)


# -- targets ----------------------------------------------------------------------------

#: Messages that wrap an exception raised inside Pillow's TIFF/EXIF directory parser on a
#: malformed directory (e.g. ``KeyError: 262``): photobox reports the file as a corrupt TIFF,
#: which is the right outcome; the exception type is Pillow's, not a photobox bug.
_THIRD_PARTY = ("EXIF: TIFF: ", "EXIF: Pillow EXIF: ")


def _absorbed(target: str, texts: list[str]) -> list[Finding]:
    return [Finding(target, "absorbed", t) for t in texts
            if t and _BUG_RE.search(t) and not t.startswith(_THIRD_PARTY)]


def check_metadata(path: Path) -> list[Finding]:
    from photobox.media.metadata import extract

    try:
        md = extract(path, mtime=0.0)
        md.to_dict()
    except Exception as exc:  # extract is documented never to raise
        return [Finding("metadata", "raised", _where(exc))]
    return _absorbed("metadata", [md.error or "", *md.warnings])


def check_motion(path: Path, out_dir: Path) -> list[Finding]:
    from photobox.media import motion

    findings = []
    try:
        motion._probe(path)
    except Exception as exc:
        name = type(exc).__name__
        if name in BUG_TYPES:
            findings.append(Finding("motion", "absorbed", _where(exc)))
    dst = out_dir / "motion.mp4"
    try:
        found = motion.find_motion_video(path)
        wrote = motion.extract_motion_video(path, dst)
    except Exception as exc:  # documented: "unreadable file: simply not a motion photo"
        return findings + [Finding("motion", "raised", _where(exc))]
    if wrote != (found is not None):
        findings.append(Finding("motion", "wrong-output", f"extract returned {wrote}, find said {found}"))
    if wrote and dst.stat().st_size != found[1]:
        findings.append(Finding("motion", "wrong-output", f"wrote {dst.stat().st_size} bytes, announced {found[1]}"))
    if list(out_dir.glob("*.part")):
        findings.append(Finding("motion", "leftover", "a .part file was left by extract_motion_video"))
    dst.unlink(missing_ok=True)
    return findings


def _where(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    last = next((f for f in reversed(frames) if "photobox" in f.filename), frames[-1] if frames else None)
    at = f" at {Path(last.filename).name}:{last.lineno} in {last.name}" if last else ""
    return f"{type(exc).__name__}: {str(exc)[:120]}{at}"


# -- multipart --------------------------------------------------------------------------

def multipart_body(name: str, data: bytes, boundary: str = "fuzzB0undary", extra_fields: dict | None = None) -> bytes:
    parts = []
    for key, value in (extra_fields or {"mtime": "1600000000000"}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                 f"Content-Type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts)


class MultipartTarget:
    """The real app in-process (Litestar's TestClient) on a throw-away data folder, with an
    API key; ``check(body, content_type)`` posts a body and reports 5xx answers and temp files
    left behind."""

    def __init__(self, data_dir: Path) -> None:
        from litestar.testing import TestClient

        from photobox.settings import load_settings
        from photobox.web.app import create_app
        from tests.resil import api_key_for

        self.data_dir = data_dir
        self.key = api_key_for(data_dir)
        self.client = TestClient(app=create_app(load_settings({"data_dir": data_dir, "workers": 1,
                                                               "job_poll_seconds": 3600.0}, env={})),
                                 raise_server_exceptions=False)
        self.client.__enter__()
        self.statuses: dict[int, int] = {}

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def check(self, body: bytes, content_type: str, *, headers: dict | None = None) -> list[Finding]:
        hdrs = {"x-api-key": self.key, "content-type": content_type, **(headers or {})}
        try:
            r = self.client.post("/api/assets", content=body, headers=hdrs)
        except Exception as exc:
            return [Finding("multipart", "raised", _where(exc), body)]
        self.statuses[r.status_code] = self.statuses.get(r.status_code, 0) + 1
        findings = []
        if r.status_code >= 500:
            findings.append(Finding("multipart", "http5xx", f"{r.status_code}: {r.text[:200]}", body))
        elif r.status_code >= 400 and "detail" not in r.text:
            findings.append(Finding("multipart", "unclear", f"{r.status_code} without a message: {r.text[:100]}", body))
        left = [p.name for p in (self.data_dir / "tmp").glob("*") if p.is_file() and not p.name.startswith("owner-")]
        if left:
            findings.append(Finding("multipart", "leftover", f"left in tmp/: {left[:3]}", body))
            for name in left:
                (self.data_dir / "tmp" / name).unlink(missing_ok=True)
        return findings

