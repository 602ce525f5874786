"""The job kinds a scheduler knows: :class:`JobSpec` by kind.

Features declare their kinds through :class:`photobox.plugins.Feature` (built-ins and plugins
alike); the core builds one :class:`JobRegistry` from the features it loaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["JobRegistry", "JobSpec"]


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
        title: what people see for this kind on the Processing page ("Thumbnails").
    """

    kind: str
    handler: Callable[..., Any]
    concurrency: int | None = 1
    priority: int = 0
    max_attempts: int | None = None
    title: str = ""

    @property
    def label(self) -> str:
        """The title, or the kind itself when none was given."""
        return self.title or self.kind

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
            self.add(JobSpec(kind, fn, concurrency, priority, max_attempts))
            return fn

        return decorate

    def add(self, spec: JobSpec) -> None:
        """Add one kind; the same kind twice is refused (two features would fight over it)."""
        if spec.kind in self._specs:
            raise ValueError(f"job kind {spec.kind!r} is registered twice")
        self._specs[spec.kind] = spec

    def titles(self) -> dict[str, str]:
        """``{kind: title}`` in registration order (the pipeline's order for built-in kinds)."""
        return {spec.kind: spec.label for spec in self._specs.values()}

    def get(self, kind: str) -> JobSpec | None:
        return self._specs.get(kind)

    def __iter__(self):
        return iter(self._specs.values())

    def __contains__(self, kind: str) -> bool:
        return kind in self._specs
