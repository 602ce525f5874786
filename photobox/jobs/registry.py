"""Job kinds register here, built-in ingest steps and later features alike (Datasette's
``DEFAULT_PLUGINS`` idea: the built-ins use the same seam as any extra)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["REGISTRY", "JobRegistry", "JobSpec"]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """How to run one kind of job.

    Attributes:
        kind: the name stored in ``jobs.kind``.
        handler: ``fn(job)``; a plain function runs in the CPU thread pool, a coroutine
            function on the event loop (it must offload heavy work itself).
        concurrency: at most this many jobs of this kind run at once; ``None``: one per CPU
            worker thread (the ``workers`` setting), for CPU-bound stages such as thumbnails.
        priority: default priority when enqueued (higher first). Thumbnails outrank ML
            so the timeline fills first.
        max_attempts: attempts before the job stays failed (``None``: the setting).
    """

    kind: str
    handler: Callable[..., Any]
    concurrency: int | None = 1
    priority: int = 0
    max_attempts: int | None = None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)


class JobRegistry:
    """A set of :class:`JobSpec` by kind."""

    def __init__(self) -> None:
        self._specs: dict[str, JobSpec] = {}

    def register(
        self, kind: str, *, concurrency: int | None = 1, priority: int = 0, max_attempts: int | None = None
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator: ``@registry.register("thumbs", concurrency=2)`` on a handler."""

        def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
            if kind in self._specs:
                raise ValueError(f"job kind {kind!r} is registered twice")
            self._specs[kind] = JobSpec(kind, fn, concurrency, priority, max_attempts)
            return fn

        return decorate

    def get(self, kind: str) -> JobSpec | None:
        return self._specs.get(kind)

    def __iter__(self):
        return iter(self._specs.values())

    def __contains__(self, kind: str) -> bool:
        return kind in self._specs


#: The registry the app uses; feature modules register their job kinds on import.
REGISTRY = JobRegistry()
