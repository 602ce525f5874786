"""int8 vector index in RAM, for exact nearest-neighbour search over vectors kept in SQLite.

Used by CLIP search (:mod:`photobox.search.vectors`) and by the faces (:mod:`photobox.people.knn`),
which keep the float32 vectors in their own tables; this package holds no SQL. A feature keeps
a :class:`~photobox.vectors.mirror.Mirror` of its vectors as int8 codes with one scale a row
(:mod:`~photobox.vectors.quantize`), scans it with the faster of two kernels on this CPU
(:mod:`~photobox.vectors.kernels`), keeps every row whose exact score could still be in the top
``k`` given the quantization error, and re-ranks those with its float32 vectors. Mirrors are
registered in one process-wide registry under one memory budget (:mod:`~photobox.vectors.registry`).
"""

from photobox.vectors.kernels import get_kernel, set_kernel
from photobox.vectors.mirror import Mirror, RWLock
from photobox.vectors.quantize import pick_candidates, quantize, quantize_query
from photobox.vectors.registry import clear_mirrors, memory_limit, mirror_stats, ram_share, set_memory_limit

__all__ = ["Mirror", "RWLock", "clear_mirrors", "get_kernel", "memory_limit", "mirror_stats", "pick_candidates",
           "quantize", "quantize_query", "ram_share", "set_kernel", "set_memory_limit"]
