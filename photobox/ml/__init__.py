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

__all__ = ["FETCH_COMMAND"]

#: What the user runs to get models; shown by the UI and ``photobox doctor`` when none is installed.
FETCH_COMMAND = "photobox models fetch"
