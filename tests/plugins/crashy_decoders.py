"""A test plugin: decoder functions that crash, blow up memory or hang, in the decoder child.

Registered only here (never in production). ``PHOTOBOX_PLUGINS=tests.plugins.crashy_decoders``
also makes the ``thumbs`` stage crash (SIGSEGV) on any original whose name contains
``CRASH`` and otherwise run the real thumbnailer, so the real server and the real job prove
that a native crash fails one job and nothing else.
"""

from __future__ import annotations

import ctypes
import os
import time
from pathlib import Path

from photobox.media import sandbox


def segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV in native code, like a libheif bug


def abort() -> None:
    os.abort()


def memory_bomb(mb: int) -> int:
    block = bytearray(mb * 1024 * 1024)  # more than decoder_memory_mb
    return len(block)


def native_memory_bomb(mb: int) -> int:
    import numpy as np

    return int(np.ones(mb * 1024 * 1024, dtype=np.uint8).sum())


def hang(seconds: float) -> None:
    time.sleep(seconds)


def pid() -> int:
    return os.getpid()


class Unpicklable(Exception):
    def __init__(self, a, b):  # pickling re-creates with one argument: fails
        super().__init__(f"{a}/{b}")


def raise_unpicklable() -> None:
    raise Unpicklable("x", "y")


def thumbs_or_crash(src: Path, *args, **kwargs):
    if "CRASH" in Path(src).name:
        segfault()
    from photobox.media.thumbs import make_thumbnails

    return make_thumbnails(src, *args, **kwargs)


for _name in ("segfault", "abort", "memory_bomb", "native_memory_bomb", "hang", "pid", "raise_unpicklable"):
    sandbox.register(f"test.{_name}", f"tests.plugins.crashy_decoders:{_name}")

if os.environ.get("PHOTOBOX_CRASHY_THUMBS"):
    sandbox.register("thumbs", "tests.plugins.crashy_decoders:thumbs_or_crash")
