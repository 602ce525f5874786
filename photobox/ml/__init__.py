"""Machine-learning models: the registry of model manifests, fetching, and CLIP embeddings.

* :mod:`photobox.ml.registry`: ``models/*.json`` manifests and ``<data>/models/installed.json``.
* :mod:`photobox.ml.fetch`: download, verify (sha256), quantize to int8 and install a model.
* :mod:`photobox.ml.quantize`: the int8 recipe (onnxruntime dynamic quantization) and its check.
* :mod:`photobox.ml.clip`: :class:`ClipModel` (image/text embeddings) and :class:`ModelManager`
  (lazy loading, idle unloading, text-embedding cache, status for the UI).
* :mod:`photobox.ml.commands`: ``photobox models list|fetch``.

Nothing here is imported by the app unless search or people need it, and every entry
point works without any model installed: :meth:`ModelManager.clip` then returns ``None``
and :meth:`ModelManager.status` says what to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["fetch_command"]


def fetch_command(data_dir: Path | None, names: Sequence[str] = (), *, manifests_dir: Path | None = None,
                  from_dir: bool = False) -> str:
    """What the user runs to get models (shown by the UI, ``photobox doctor`` and errors), as a
    command that works as typed here (:func:`photobox.hints.command`).

    It carries ``--trust-on-first-use`` while one of the models (the default ones when none
    is named) has a file without a sha256 pin, since ``fetch`` refuses those without it,
    and ``--from DIR`` for an offline install when ``from_dir``.
    """
    from photobox.hints import command
    from photobox.ml.registry import list_manifests

    manifests = list_manifests(manifests_dir)
    wanted = [m for m in manifests if m.name in names] if names else [m for m in manifests if m.default]
    args = ["models", "fetch", *names]
    if from_dir:
        args += ["--from", "DIR"]
    if any(m.unpinned for m in wanted):
        args.append("--trust-on-first-use")
    return command(data_dir, *args)
