"""`extract` must survive hostile files: no exception, no hang, no memory blow-up.

Each file is processed in a forked child with a time budget, so a hang or a
native crash shows up as a test failure instead of taking pytest down.
"""

from __future__ import annotations

import multiprocessing
import random
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from photobox.media import _xmp
from photobox.media.metadata import extract

# Pillow's notes about damaged EXIF are the point of these files.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin")

CORPUS_HOSTILE = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus" / "hostile"
BUDGET_S = 10.0
MEMORY_LIMIT = 1024 * 1024 * 1024     # the child may not grow past 1 GiB of address space


def _child(path: str, conn: Any) -> None:
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        usage = _vm_size()
        if usage is not None:
            resource.setrlimit(resource.RLIMIT_AS, (usage + MEMORY_LIMIT, hard))
        start = time.monotonic()
        md = extract(Path(path))
        conn.send(("ok", md.to_dict(), time.monotonic() - start))
    except BaseException as exc:  # report anything, including MemoryError
        conn.send(("raised", f"{type(exc).__name__}: {exc}", 0.0))
    finally:
        conn.close()


def _vm_size() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            import os
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        return None


def run_guarded(path: Path) -> dict[str, Any]:
    """Run extract(path) in a forked child; fail on exception, crash or timeout."""
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(str(path), child))
    proc.start()
    child.close()
    if not parent.poll(BUDGET_S):
        proc.kill()
        proc.join()
        pytest.fail(f"{path.name}: extract did not finish within {BUDGET_S} s")
    status, payload, elapsed = parent.recv()
    proc.join(5)
    assert status == "ok", f"{path.name}: extract raised {payload}"
    return payload


def assert_sensible(name: str, md: dict[str, Any]) -> None:
    """Either a clear error, or a media kind with plausible numbers."""
    if md["error"] is not None:
        assert isinstance(md["error"], str) and 3 < len(md["error"]) < 200, md["error"]
        return
    assert md["kind"] in ("image", "video"), f"{name}: no error but kind={md['kind']}"
    assert md["mime"], name
    for key in ("width", "height"):
        assert md[key] is None or (isinstance(md[key], int) and md[key] > 0), (name, md[key])
    assert len(md["warnings"]) <= 20


# --------------------------------------------------------------------------
# The corpus's hostile folder


def _hostile_files() -> list[Path]:
    if not CORPUS_HOSTILE.is_dir():
        return []
    return sorted(p for p in CORPUS_HOSTILE.iterdir() if p.is_file())


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS_HOSTILE.is_dir(),
                    reason=f"hostile corpus not found at {CORPUS_HOSTILE} (kept outside the repo)")
@pytest.mark.parametrize("path", _hostile_files(), ids=lambda p: p.name)
def test_corpus_hostile_file(path: Path) -> None:
    md = run_guarded(path)
    assert_sensible(path.name, md)


EXPECTED_ERRORS = {
    "zero-byte__derived__empty.heic": "zero-byte",
    "wrong-ext__et__HTML.jpg": "not a media file (HTML)",
    "truncated__pil__truncated_jpeg.jpg": "truncated JPEG",
    "truncated__pil__truncated_image.png": "truncated PNG",
    "truncated__derived__IMG_5195_first300k.HEIC": "truncated HEIF",
    "truncated__derived__with-gps_no-moov.mov": "truncated video",
    "bomb__pil__reallybig.bmp": "decompression bomb",
}


@pytest.mark.corpus
@pytest.mark.skipif(not CORPUS_HOSTILE.is_dir(), reason="hostile corpus not found")
@pytest.mark.parametrize("name, message", sorted(EXPECTED_ERRORS.items()))
def test_corpus_hostile_errors_are_specific(name: str, message: str) -> None:
    md = extract(CORPUS_HOSTILE / name)
    assert md.error is not None and message in md.error, md.error


# --------------------------------------------------------------------------
# Generated hostile files


def _jpeg_with_sof(width: int, height: int, md_build) -> bytes:
    data = bytearray(md_build.jpeg((8, 8)))
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _box(kind: bytes, payload: bytes = b"", size: int | None = None) -> bytes:
    return struct.pack(">I", 8 + len(payload) if size is None else size) + kind + payload


def _png(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = b"\x89PNG\r\n\x1a\n"
    for kind, data in chunks:
        out += struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return out


BILLION_LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(f'<!ENTITY lol{i} "{("&lol%s;" % (i - 1 if i > 1 else "")) * 10}">' for i in range(1, 10))
    + ']><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
    'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
    'xmlns:exif="http://ns.adobe.com/exif/1.0/" exif:DateTimeOriginal="&lol9;"/>'
    "</rdf:RDF></x:xmpmeta>"
)


def generated_cases(md_build) -> dict[str, tuple[bytes, str | None]]:
    """name -> (content, substring expected in error or None for no error)."""
    jpeg = md_build.jpeg((64, 48), quality=95)
    ftyp = _box(b"ftyp", b"isom\x00\x00\x02\x00isomiso2mp41")
    nested = b"".join(_box(b"free") for _ in range(50_000))
    return {
        "zero.jpg": (b"", "zero-byte"),
        "truncated.jpg": (jpeg[: len(jpeg) * 6 // 10], "truncated JPEG"),
        "random.jpg": (random.Random(1).randbytes(50_000), "unrecognised"),
        "page.heic": (b"<!DOCTYPE html><html><body>hi</body></html>", "not a media file (HTML)"),
        "huge.jpg": (_jpeg_with_sof(65535, 65535, md_build), "decompression bomb"),
        "huge.png": (_png([(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)),
                           (b"IEND", b"")]), "decompression bomb"),
        "laughs.jpg": (md_build.jpeg(segments=md_build.xmp_segment(BILLION_LAUGHS)), None),
        "deflate-bomb.png": (_png([(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)),
                                   (b"iTXt", b"XML:com.adobe.xmp\x00\x01\x00\x00\x00"
                                    + zlib.compress(b" " * 200_000_000, 9)),
                                   (b"IEND", b"")]), None),
        "moov-too-big.mp4": (ftyp + _box(b"moov", _box(b"mvhd", b"\x00" * 100), size=0x7FFFFFFF),
                             "moov"),
        "largesize.mp4": (ftyp + struct.pack(">I", 1) + b"mdat" + struct.pack(">Q", 2**63)
                          + b"\x00" * 64, "moov"),
        "tiny-box.mp4": (ftyp + struct.pack(">I", 3) + b"moov" + b"\x00" * 64, "moov"),
        "many-boxes.mp4": (ftyp + _box(b"moov", nested), None),
        "heic-junk-meta.heic": (_box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic")
                                + _box(b"meta", b"\x00" * 4 + _box(b"iloc", b"\x01\x00\x00\x00\x44\x00\xff\xff"
                                                                   + b"\xff" * 4000)
                                       + _box(b"ipma", b"\x00\x00\x00\x00\xff\xff\xff\xff" + b"\x7f" * 4000)),
                                "HEIF"),
        "ifd-loop.tif": (b"II*\x00\x08\x00\x00\x00" + struct.pack("<H", 2)
                         + struct.pack("<HHII", 256, 4, 0x3FFFFFFF, 8)
                         + struct.pack("<HHII", 0x8769, 4, 1, 8) + struct.pack("<I", 8), None),
        "ff-fill.jpg": (b"\xff\xd8" + b"\xff" * 1_000_000, "truncated JPEG"),
        "gif-stub.gif": (b"GIF89a", "truncated GIF"),
    }


CASE_NAMES = ["zero.jpg", "truncated.jpg", "random.jpg", "page.heic", "huge.jpg", "huge.png",
              "laughs.jpg", "deflate-bomb.png", "moov-too-big.mp4", "largesize.mp4",
              "tiny-box.mp4", "many-boxes.mp4", "heic-junk-meta.heic", "ifd-loop.tif",
              "ff-fill.jpg", "gif-stub.gif"]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_generated_hostile_file(md_build, name: str) -> None:
    content, expected_error = generated_cases(md_build)[name]
    path = md_build.write(name, content)
    md = run_guarded(path)
    assert_sensible(name, md)
    if expected_error is None:
        return
    assert md["error"] is not None and expected_error in md["error"], md["error"]


def test_generated_specifics(md_build) -> None:
    cases = generated_cases(md_build)
    md = extract(md_build.write("random.jpg", cases["random.jpg"][0]))
    assert md.ext_mismatch and md.kind is None
    md = extract(md_build.write("page.heic", cases["page.heic"][0]))
    assert (md.mime, md.kind, md.ext_mismatch) == ("text/html", None, True)
    md = extract(md_build.write("truncated.jpg", cases["truncated.jpg"][0]))
    assert (md.width, md.height) == (64, 48)          # header survived the cut
    md = extract(md_build.write("huge.jpg", cases["huge.jpg"][0]))
    assert (md.width, md.height) == (65535, 65535)
    md = extract(md_build.write("laughs.jpg", cases["laughs.jpg"][0]))
    assert md.error is None and md.taken_at is None
    assert any("DOCTYPE" in w for w in md.warnings)


def test_xmp_parser_refuses_entities() -> None:
    assert _xmp.parse(BILLION_LAUGHS.encode()).dangerous
    external = ('<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
                '<x:xmpmeta xmlns:x="adobe:ns:meta/">&e;</x:xmpmeta>')
    result = _xmp.parse(external.encode())
    assert result.dangerous and not result.props


def test_fuzzed_files_never_raise(md_build, tmp_path: Path) -> None:
    """Flip random bytes in valid JPEG/PNG/MP4/HEIC files; extract must cope."""
    import io

    from PIL import Image
    seeds = {"a.jpg": md_build.jpeg((64, 48), exif=md_build.exif(
                 make="X", taken="2020:01:01 00:00:00", gps=(1.5, 2.5, 3.0))),
             "a.mp4": md_build.mp4(frames=5)}
    buf = io.BytesIO()
    Image.new("RGB", (20, 10)).save(buf, "PNG", exif=md_build.exif(orientation=6))
    seeds["a.png"] = buf.getvalue()
    try:
        import pillow_heif
        pillow_heif.register_heif_opener()
        buf = io.BytesIO()
        Image.new("RGB", (32, 32)).save(buf, "HEIF", exif=md_build.exif(orientation=3))
        seeds["a.heic"] = buf.getvalue()
    except ImportError:
        pass
    rng = random.Random(1234)
    variants = []
    for name, data in seeds.items():
        head = min(len(data), 2048)      # mutate where the metadata lives
        for i in range(15):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 12)):
                mutated[rng.randrange(head)] = rng.randrange(256)
            if i % 5 == 0:
                mutated = mutated[: rng.randrange(len(mutated))]
            path = tmp_path / f"fuzz{len(variants)}_{name}"
            path.write_bytes(bytes(mutated))
            variants.append(path)
    start = time.monotonic()
    for path in variants:
        md = extract(path)
        assert_sensible(path.name, md.to_dict())
    assert time.monotonic() - start < BUDGET_S * 3
