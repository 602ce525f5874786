"""Commands photobox tells a person to run (on a page, from ``doctor``, in an error),
written so that they work as typed on this box.

A hint has to name the program the way this box runs it and the data folder this process
uses: on a box set up by ``scripts/install`` (the Raspberry Pi image, NAS / Debian) that is
``sudo photobox …``, whose wrapper runs as the service user with the service's data folder;
anywhere else it is the ``photobox`` of this virtualenv (by its full path when that is not
the one on ``PATH``) with ``--data-dir`` of this process, so the command works from any
folder. tests/test_hints.py parses every hint with the real CLI parser.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from functools import lru_cache
from pathlib import Path

__all__ = ["WRAPPER_MARK", "command", "program"]

#: A line of the CLI wrapper ``scripts/install`` writes to /usr/local/bin/photobox.
WRAPPER_MARK = "written by scripts/install"


@lru_cache(maxsize=8)
def _program(path_env: str | None, executable: str) -> tuple[str, bool]:
    found = shutil.which("photobox", path=path_env)
    if found:
        try:
            with open(found, "rb") as f:
                head = f.read(512)
        except OSError:
            head = b""
        if WRAPPER_MARK.encode() in head:
            return "sudo photobox", True
    ours = Path(executable).with_name("photobox")
    if found and ours.exists() and Path(found).resolve() == ours.resolve():
        return "photobox", False
    if ours.exists():
        return shlex.quote(str(ours)), False
    return f"{shlex.quote(executable)} -m photobox", False


def program() -> tuple[str, bool]:
    """``(how to run photobox here, whether that is the installed service's wrapper)``."""
    import os

    return _program(os.environ.get("PATH"), sys.executable)


def command(data_dir: Path | None, *args: str, public: bool = False) -> str:
    """The command line for ``photobox ARGS`` against ``data_dir`` (``None``: the default
    data folder), e.g. ``photobox models fetch --data-dir /srv/photos``. Arguments are
    quoted for a POSIX shell, except placeholders in capitals (``FILE``, ``DIR``).

    ``public``: for a page anyone may see (the login page), without this box's paths (they
    name its users); then it is exact only on a box set up by ``scripts/install``.
    """
    prog, wrapper = program()
    if public and not wrapper:
        prog, data_dir = "photobox", None
    words = [prog] + [a if a.isupper() else shlex.quote(a) for a in args]
    if data_dir is not None and not wrapper:
        # Last, so the command reads first; settings flags work after any command.
        words += ["--data-dir", shlex.quote(str(Path(data_dir).resolve()))]
    return " ".join(words)
