"""Where photobox's non-Python files are: ``templates/``, ``static/`` and ``models/``.

In a source checkout (and an editable install) they sit at the repository root, as the
design card lays out; a wheel carries them inside the package (see pyproject's
``force-include``), so both places are tried.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["MODELS_DIR", "STATIC_DIR", "TEMPLATES_DIR"]

_PACKAGE = Path(__file__).resolve().parent


def _find(name: str) -> Path:
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"photobox is installed without its {name}/ folder")


TEMPLATES_DIR = _find("templates")
STATIC_DIR = _find("static")
MODELS_DIR = _find("models")
