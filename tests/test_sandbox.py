"""Decoders in child processes (photobox.media.sandbox): a native crash, a memory bomb or a
hang in a decoder fails that one call with a clear error, the child is replaced, and the
caller (the server) lives on; normal results are the same bytes as the in-thread path.

The crashing functions live in a test plugin (tests/plugins/crashy_decoders.py), never in
production code.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

import tests.plugins.crashy_decoders  # noqa: F401  (registers the test.* decoder functions)
from photobox.jobs import Stopping
from photobox.media.decode import DecodeError
from photobox.media.sandbox import DecoderCrashed, DecoderOutOfMemory, DecoderPool, DecoderTimeout, register
from photobox.media.thumbs import make_thumbnails
from photobox.procs import process_alive
from tests.gen import jpeg_bytes, mp4_file
from tests.server import ROOT


@pytest.fixture
def pool():
    p = DecoderPool(2, memory_mb=512, timeout=30)
    yield p
    p.close()


def test_segfault_fails_the_call_and_the_next_call_gets_a_new_child(pool):
    first = pool.call("test.pid")
    with pytest.raises(DecoderCrashed, match="SIGSEGV"):
        pool.call("test.segfault")
    assert not process_alive(first) or first not in pool.pids()
    second = pool.call("test.pid")
    assert second != first and second != os.getpid()


def test_abort_is_reported(pool):
    with pytest.raises(DecoderCrashed, match="SIGABRT"):
        pool.call("test.abort")
    assert pool.call("test.pid") > 0


def test_memory_bomb_hits_the_cap_and_is_reported(pool):
    pid = pool.call("test.pid")
    with pytest.raises(DecoderOutOfMemory, match="512 MB"):
        pool.call("test.memory_bomb", 2048)
    assert pool.call("test.pid") != pid  # a heap that hit the cap is not reused
    with pytest.raises(DecoderOutOfMemory):
        pool.call("test.native_memory_bomb", 2048)
    assert pool.call("test.memory_bomb", 16) == 16 * 1024 * 1024  # under the cap: fine


def test_hang_hits_the_timeout_and_the_child_is_killed(pool):
    pid = pool.call("test.pid")
    t0 = time.monotonic()
    with pytest.raises(DecoderTimeout, match="longer than 1 s"):
        pool.call("test.hang", 60, limit=1)
    assert time.monotonic() - t0 < 5
    deadline = time.monotonic() + 5
    while process_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(pid)
    assert pool.call("test.pid") != pid


def test_kill_when_stops_a_long_call(pool):
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    t0 = time.monotonic()
    with pytest.raises(Stopping):
        pool.call("test.hang", 60, limit=None, kill_when=stop.is_set)
    assert time.monotonic() - t0 < 5


def test_decoder_exceptions_come_back_as_they_are(pool, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"nonsense" * 10)
    with pytest.raises(DecodeError):
        pool.call("thumbs", bad, tmp_path / "t.webp", tmp_path / "p.jpg")
    pid = pool.call("test.pid")
    with pytest.raises(DecodeError):
        pool.call("thumbs", bad, tmp_path / "t.webp", tmp_path / "p.jpg")
    assert pool.call("test.pid") == pid  # an ordinary exception keeps the (sound) child
    with pytest.raises(RuntimeError, match="Unpicklable: x/y"):
        pool.call("test.raise_unpicklable")
    with pytest.raises(ValueError, match="no decoder function"):
        pool.call("os.system", "true")


def test_children_are_reused_then_recycled():
    pool = DecoderPool(1, max_calls=3)
    try:
        pids = [pool.call("test.pid") for _ in range(7)]
    finally:
        pool.close()
    assert pids[0] == pids[1] == pids[2] != pids[3] == pids[4] == pids[5] != pids[6]
    assert pool.started == 3


def test_concurrent_calls_use_at_most_size_children():
    pool = DecoderPool(2)
    try:
        threads = [threading.Thread(target=pool.call, args=("test.hang", 0.3)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert pool.started == 2 and len(pool.pids()) == 2
    finally:
        pool.close()
    assert pool.pids() == []


def test_disabled_pool_runs_in_the_calling_thread():
    pool = DecoderPool(2, enabled=False)
    assert pool.call("test.pid") == os.getpid()
    assert pool.started == 0


def test_close_stops_children(pool):
    pids = [pool.call("test.pid")]
    pool.close()
    deadline = time.monotonic() + 5
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(process_alive(p) for p in pids)
    assert pool.call("test.pid") not in pids  # a closed pool starts afresh when used again


def test_a_killed_server_leaves_no_orphan_child(tmp_path):
    """SIGKILL the process that owns the pool in the middle of a call: the child goes too."""
    script = textwrap.dedent("""
        import sys, threading
        import tests.plugins.crashy_decoders
        from photobox.media.sandbox import DecoderPool
        pool = DecoderPool(1)
        print(pool.call("test.pid"), flush=True)
        pool.call("test.hang", 600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    child = int(proc.stdout.readline())
    assert process_alive(child)
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(child), "the decoder child outlived the server"


def _same_outputs(pool, tmp_path: Path, src: Path, kind: str, preview_suffix: str = ".jpg") -> None:
    a, b = tmp_path / "inthread", tmp_path / "child"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    ra = make_thumbnails(src, a / "t.webp", a / f"p{preview_suffix}", kind=kind)
    rb = pool.call("thumbs", src, b / "t.webp", b / f"p{preview_suffix}", kind=kind)
    assert ra == rb
    assert (a / "t.webp").read_bytes() == (b / "t.webp").read_bytes()
    assert (a / f"p{preview_suffix}").read_bytes() == (b / f"p{preview_suffix}").read_bytes()


def test_thumbnails_are_byte_identical_to_the_in_thread_path(pool, tmp_path):
    jpg = tmp_path / "a.jpg"
    jpg.write_bytes(jpeg_bytes(size=(1600, 1200)))
    _same_outputs(pool, tmp_path / "jpg", jpg, "image")
    png = tmp_path / "a.png"
    Image.new("RGBA", (800, 600), (10, 200, 30, 128)).save(png)
    _same_outputs(pool, tmp_path / "png", png, "image", ".webp")
    from pillow_heif import from_pillow

    heic = tmp_path / "a.heic"
    from_pillow(Image.new("RGB", (640, 480), (200, 10, 30))).save(heic, quality=80)
    _same_outputs(pool, tmp_path / "heic", heic, "image")
    mp4 = mp4_file(tmp_path / "a.mp4", size=(320, 240))
    _same_outputs(pool, tmp_path / "mp4", mp4, "video")


def test_truncated_jpeg_is_shown_and_marked_in_a_child_as_in_a_thread(pool, tmp_path):
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(jpeg_bytes(size=(1600, 1200))[:-33])
    _same_outputs(pool, tmp_path / "cut", cut, "image")
    assert pool.call("thumbs", cut, tmp_path / "t.webp", tmp_path / "p.jpg").truncated
    header_only = tmp_path / "header.jpg"
    header_only.write_bytes(jpeg_bytes()[:400])
    with pytest.raises(DecodeError, match="truncated JPEG"):
        pool.call("thumbs", header_only, tmp_path / "t.webp", tmp_path / "p.jpg")


def test_metadata_and_probe_match_the_in_thread_path(pool, tmp_path):
    from photobox.media import video
    from photobox.media.metadata import extract

    jpg = tmp_path / "a.jpg"
    jpg.write_bytes(jpeg_bytes(gps=(48.8584, 2.2945)))
    assert pool.call("metadata", jpg, mtime=1.0) == extract(jpg, mtime=1.0)
    mp4 = mp4_file(tmp_path / "a.mp4")
    assert pool.call("metadata", mp4, mtime=1.0) == extract(mp4, mtime=1.0)
    assert pool.call("video.probe", mp4) == video.probe(mp4)


def test_register_refuses_a_bad_target():
    with pytest.raises(ValueError):
        register("test.bad", "os.system")


def test_idle_children_are_reaped():
    pool = DecoderPool(2)
    try:
        pid = pool.call("test.pid")
        assert pool.reap_idle(60) == 0 and pool.pids() == [pid]
        assert pool.reap_idle(0) == 1 and pool.pids() == []
        assert pool.call("test.pid") != pid
    finally:
        pool.close()


def test_video_transcode_runs_in_a_child_under_the_memory_cap(tmp_path):
    from photobox.media import video

    src = mp4_file(tmp_path / "a.mp4", size=(1280, 720), codec="mpeg4")
    assert not video.browser_playable(video.probe(src))
    pool = DecoderPool(1, memory_mb=1024)
    try:
        pool.call("video.transcode", src, tmp_path / "out.mp4", max_height=480, threads=2, limit=None,
                  kill_when=lambda: False)
    finally:
        pool.close()
    assert video.browser_playable(video.probe(tmp_path / "out.mp4"))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads RSS from /proc (Linux)")
def test_a_big_decode_gives_its_buffers_back(tmp_path):
    """A 12 MP decode must not leave its buffers in the child's RSS: glibc's dynamic mmap
    threshold kept ~18 MiB after the first big photo (and ~30 MiB after a HEIC); the
    children now start with a fixed threshold (sandbox.CHILD_ENV). scripts/bench decoders
    measures real 12 MP JPEG/HEIC and 1080p video."""
    import numpy as np

    small, big = tmp_path / "small.png", tmp_path / "big.png"
    Image.new("RGB", (64, 48), (9, 99, 200)).save(small)
    y, x = np.mgrid[0:3000, 0:4000]
    arr = np.stack([x * 255 // 4000, y * 255 // 3000, (x + y) % 256], -1).astype(np.uint8)
    Image.fromarray(arr).save(big, compress_level=1)  # 12 MP, no DCT scaling: full-size buffers
    del arr, x, y
    pool = DecoderPool(1, memory_mb=1024, timeout=120)
    try:
        pool.call("thumbs", small, tmp_path / "t.webp", tmp_path / "p.webp", kind="image")  # libraries loaded
        pid = pool.pids()[0]
        before = _rss_mib(pid)
        pool.call("thumbs", big, tmp_path / "t.webp", tmp_path / "p.webp", kind="image")
        assert pool.pids() == [pid]
        grown = _rss_mib(pid) - before
        assert grown < 6, f"the child kept {grown:.1f} MiB after a 12 MP decode"
    finally:
        pool.close()
