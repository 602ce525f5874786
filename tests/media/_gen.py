"""Generators for test media (no binary fixtures in the repo).

Everything here builds files from scratch with Pillow, piexif, numpy and PyAV,
deterministically, so tests can assert on pixel positions and colours.
"""

from __future__ import annotations

import io
import struct
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

MARKER = (255, 0, 0)
BACKGROUND = (0, 0, 255)


def marker_image(width: int = 60, height: int = 40) -> Image.Image:
    """Blue image with a red block in the stored top-left corner."""
    im = Image.new("RGB", (width, height), BACKGROUND)
    im.paste(Image.new("RGB", (width // 3, height // 3), MARKER), (0, 0))
    return im


def exif_bytes(orientation: int | None = None, **ifd0) -> bytes:
    """Minimal EXIF blob (via piexif) with an Orientation tag."""
    import piexif

    zeroth = {}
    if orientation is not None:
        zeroth[piexif.ImageIFD.Orientation] = orientation
    zeroth.update(ifd0)
    return piexif.dump({"0th": zeroth, "Exif": {}, "GPS": {}, "1st": {}, "thumbnail": None})


def jpeg_with_orientation(path: Path, orientation: int, size=(60, 40)) -> Path:
    marker_image(*size).save(path, "JPEG", quality=95, exif=exif_bytes(orientation))
    return path


def noisy_photo(width: int, height: int, seed: int = 1) -> Image.Image:
    """Photo-like content: smooth colour blobs + sensor-like noise + edges.

    Pure noise compresses unrealistically badly, flat colour unrealistically
    well; this lands near a real 12 MP phone JPEG (~4 MB at q90).
    """
    rng = np.random.default_rng(seed)
    base = Image.fromarray(
        rng.integers(0, 256, (max(2, height // 50), max(2, width // 50), 3), dtype=np.uint8)
    ).resize((width, height), Image.Resampling.BICUBIC)
    arr = np.asarray(base).astype(np.int16)
    arr += rng.normal(0, 10, (height, width, 3)).astype(np.int16)
    arr[::200, :, :] = 255
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


# --------------------------------------------------------------------------- ICC

_D50 = np.array([0.9642, 1.0, 0.8249])


def _xy_to_xyz(x: float, y: float) -> np.ndarray:
    return np.array([x / y, 1.0, (1 - x - y) / y])


def rgb_to_xyz_matrix(primaries, white=(0.3127, 0.3290)) -> np.ndarray:
    """Linear RGB -> XYZ matrix for given xy primaries and white point."""
    m = np.stack([_xy_to_xyz(*p) for p in primaries], axis=1)
    s = np.linalg.solve(m, _xy_to_xyz(*white))
    return m * s


def _bradford_d65_to_d50() -> np.ndarray:
    b = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])
    src = b @ _xy_to_xyz(0.3127, 0.3290)
    dst = b @ _D50
    return np.linalg.inv(b) @ np.diag(dst / src) @ b


def _s15f16(v: float) -> bytes:
    return struct.pack(">i", int(round(v * 65536)))


def matrix_trc_icc(primaries, gamma: float, description: str) -> bytes:
    """Build a minimal ICC v2 RGB display profile (matrix + gamma curves).

    Enough for LittleCMS; lets tests use Adobe RGB without shipping a profile.
    """
    m = _bradford_d65_to_d50() @ rgb_to_xyz_matrix(primaries)

    def xyz_tag(v) -> bytes:
        return b"XYZ " + b"\0" * 4 + b"".join(_s15f16(c) for c in v)

    desc_ascii = description.encode("ascii") + b"\0"
    desc = (
        b"desc" + b"\0" * 4 + struct.pack(">I", len(desc_ascii)) + desc_ascii
        + b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    )
    curv = b"curv" + b"\0" * 4 + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"
    text = b"text" + b"\0" * 4 + b"no copyright, test profile\0"
    tags = [
        (b"desc", desc),
        (b"cprt", text),
        (b"wtpt", xyz_tag(_D50)),
        (b"rXYZ", xyz_tag(m[:, 0])),
        (b"gXYZ", xyz_tag(m[:, 1])),
        (b"bXYZ", xyz_tag(m[:, 2])),
        (b"rTRC", curv),
        (b"gTRC", curv),
        (b"bTRC", curv),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table = struct.pack(">I", len(tags))
    data = b""
    for sig, body in tags:
        while len(body) % 4:
            body += b"\0"
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    size = offset + len(data)
    header = (
        struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000) + b"mntr"
        + b"RGB " + b"XYZ " + b"\0" * 12 + b"acsp" + b"APPL" + b"\0" * 4
        + b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + b"\0" * 4
        + _s15f16(0.9642) + _s15f16(1.0) + _s15f16(0.8249) + b"\0" * 4 + b"\0" * 16 + b"\0" * 28
    )
    assert len(header) == 128, len(header)
    return header + table + data


ADOBE_RGB_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
ADOBE_RGB_GAMMA = 563 / 256


def adobe_rgb_icc() -> bytes:
    return matrix_trc_icc(ADOBE_RGB_PRIMARIES, ADOBE_RGB_GAMMA, "Adobe RGB (1998) test")


def adobe_to_srgb(rgb: tuple[int, int, int]) -> np.ndarray:
    """Reference conversion Adobe RGB -> sRGB (8-bit in, float 0..255 out, clipped)."""
    lin = (np.array(rgb) / 255.0) ** ADOBE_RGB_GAMMA
    xyz = rgb_to_xyz_matrix(ADOBE_RGB_PRIMARIES) @ lin
    srgb_m = rgb_to_xyz_matrix(((0.64, 0.33), (0.30, 0.60), (0.15, 0.06)))
    out = np.clip(np.linalg.solve(srgb_m, xyz), 0, 1)
    enc = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)
    return enc * 255


# --------------------------------------------------------------------------- PNG


def png_16bit(path: Path, arr: np.ndarray) -> Path:
    """Write a 16-bit PNG (grey (h, w) or RGB (h, w, 3) uint16) by hand.

    Pillow cannot write 16-bit RGB PNGs, so build the chunks ourselves.
    """
    arr = np.asarray(arr, dtype=">u2")
    h, w = arr.shape[:2]
    color_type = 2 if arr.ndim == 3 else 0
    raw = b"".join(b"\0" + arr[y].tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(raw))
    data += chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def png_header_bomb(path: Path, width: int, height: int) -> Path:
    """A valid-looking PNG whose IHDR declares a huge size (tiny file)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    data = b"\x89PNG\r\n\x1a\n"
    data += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    data += chunk(b"IDAT", zlib.compress(b"\0" * 1024))
    data += chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def gif_header_bomb(path: Path, width: int, height: int) -> Path:
    """GIF whose logical screen and image descriptor declare width x height."""
    data = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0)
    data += b"\0\0\0\xff\xff\xff"  # 2-entry palette
    data += b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    data += b"\x02\x02\x44\x01\x00;"
    path.write_bytes(data)
    return path


# --------------------------------------------------------------------------- video


def make_video(
    path: Path,
    *,
    codec: str = "libx264",
    width: int = 160,
    height: int = 96,
    seconds: float = 2.0,
    fps: int = 25,
    rotation_exif: int = 0,
    audio: str | None = "aac",
    container: str | None = None,
    black_first: bool = True,
    pix_fmt: str = "yuv420p",
    options: dict | None = None,
) -> Path:
    """Write a synthetic clip with PyAV.

    Frames show a red block in the stored top-left corner on a blue background
    (so rotation can be checked by where the block ends up), with the first
    frame black (so poster-frame seeking can be checked). ``rotation_exif`` is
    in exiftool's convention (clockwise); PyAV's display rotation is the
    opposite sign.
    """
    import av

    n = max(1, int(round(seconds * fps)))
    with av.open(str(path), "w", format=container) as out:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = width, height, pix_fmt
        if options:
            vs.codec_context.options = options
        if rotation_exif:
            vs.set_display_rotation(-rotation_exif)
        astream = None
        if audio:
            astream = out.add_stream(audio, rate=44100)
            astream.layout = "mono" if audio != "aac" else "stereo"
        block = np.zeros((height, width, 3), np.uint8)
        block[...] = BACKGROUND
        block[: height // 3, : width // 3] = MARKER
        for i in range(n):
            arr = np.zeros_like(block) if (black_first and i == 0) else block
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            for pkt in vs.encode(frame):
                out.mux(pkt)
        for pkt in vs.encode():
            out.mux(pkt)
        if astream is not None:
            cc = astream.codec_context
            size = cc.frame_size or 1024
            layout = astream.layout.name
            channels = 2 if layout == "stereo" else 1
            fmt = cc.format.name
            total = int(seconds * 44100)
            t = 0
            while t < total:
                k = min(size, total - t)
                samples = (0.2 * np.sin(2 * np.pi * 440 * (np.arange(t, t + k) / 44100))).astype(np.float32)
                planar = fmt.endswith("p")
                if fmt.startswith("s16"):
                    samples = (samples * 32767).astype(np.int16)
                elif fmt.startswith("s32"):
                    samples = (samples * 2_147_483_647).astype(np.int32)
                elif fmt.startswith("dbl"):
                    samples = samples.astype(np.float64)
                data = np.tile(samples, (channels, 1)) if planar else np.repeat(samples, channels)[None, :]
                af = av.AudioFrame.from_ndarray(data, format=fmt, layout=layout)
                af.sample_rate = 44100
                af.pts = t
                for pkt in astream.encode(af):
                    out.mux(pkt)
                t += k
            for pkt in astream.encode():
                out.mux(pkt)
    return path


# --------------------------------------------------------------------------- RAW


def _tiff_ifd(entries: list[tuple[int, int, int, bytes]], next_ifd: int = 0) -> bytes:
    """Little-endian IFD; entries are (tag, type, count, 4-byte value field)."""
    body = struct.pack("<H", len(entries))
    for tag, typ, count, value in sorted(entries):
        body += struct.pack("<HHI", tag, typ, count) + value.ljust(4, b"\0")
    return body + struct.pack("<I", next_ifd)


def dng_like(path: Path, preview_jpeg: bytes, orientation: int = 1) -> Path:
    """TIFF/DNG-shaped RAW: tiny RGB thumbnail in IFD0 (with Orientation) and a
    baseline JPEG preview in a SubIFD (Compression 7), as cameras write them."""
    thumb = bytes([40, 40, 40]) * 4  # 2x2 RGB
    ifd0_off = 8
    n0, n1 = 12, 6
    ifd0_size = 2 + 12 * n0 + 4
    sub_off = ifd0_off + ifd0_size
    sub_size = 2 + 12 * n1 + 4
    thumb_off = sub_off + sub_size
    jpeg_off = thumb_off + len(thumb)
    L = lambda v: struct.pack("<I", v)  # noqa: E731
    S = lambda v: struct.pack("<H", v)  # noqa: E731
    with Image.open(io.BytesIO(preview_jpeg)) as p:
        pw, ph = p.size
    ifd0 = _tiff_ifd(
        [
            (0x00FE, 4, 1, L(1)),  # NewSubfileType: reduced-resolution
            (0x0100, 3, 1, S(2)),
            (0x0101, 3, 1, S(2)),
            (0x0102, 3, 1, S(8)),  # count 1 for brevity (applies to all samples)
            (0x0103, 3, 1, S(1)),
            (0x0106, 3, 1, S(2)),
            (0x0111, 4, 1, L(thumb_off)),
            (0x0112, 3, 1, S(orientation)),
            (0x0115, 3, 1, S(3)),
            (0x0116, 3, 1, S(2)),
            (0x0117, 4, 1, L(len(thumb))),
            (0x014A, 4, 1, L(sub_off)),
        ]
    )
    sub = _tiff_ifd(
        [
            (0x00FE, 4, 1, L(1)),
            (0x0100, 4, 1, L(pw)),
            (0x0101, 4, 1, L(ph)),
            (0x0103, 3, 1, S(7)),
            (0x0111, 4, 1, L(jpeg_off)),
            (0x0117, 4, 1, L(len(preview_jpeg))),
        ]
    )
    assert len(ifd0) == ifd0_size and len(sub) == sub_size
    path.write_bytes(b"II*\0" + L(ifd0_off) + ifd0 + sub + thumb + preview_jpeg + b"\0" * 64)
    return path


def raf_like(path: Path, preview_jpeg: bytes) -> Path:
    """Fujifilm RAF header pointing (big-endian offset/length at 84) to a JPEG."""
    header = b"FUJIFILMCCD-RAW 0201FF393101TEST-CAM".ljust(84, b"\0")
    offset = 160
    header += struct.pack(">II", offset, len(preview_jpeg))
    path.write_bytes(header.ljust(offset, b"\0") + preview_jpeg + b"\0" * 256)
    return path


def jpeg_bytes(im: Image.Image, **params) -> bytes:
    buf = io.BytesIO()
    im.save(buf, "JPEG", **params)
    return buf.getvalue()
