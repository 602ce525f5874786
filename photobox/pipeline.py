"""What runs, in which order: the built-in features, and the pipeline of each new file.

Every way in (upload, WebDAV, import, external library scan) registers an asset and reads its
metadata; each stage then queues, in its own transaction, the stages declared to run after
it (``@feature.job(..., after="thumbs")``). So the order of the pipeline is this table plus
the ``after`` of plugins' stages, and :func:`order` prints it::

    metadata → thumbs, motion, video, places
    thumbs   → clip, faces

(Duplicates follow a queue that database triggers fill when a thumbnail, a date or the trash
state changes, so they need no stage.) Thumbnails come before ML so the timeline fills first (the scheduler runs higher priorities
first). A new stage after thumbnails is one module with
``@feature.job("ocr", title="Text in photos", after="thumbs")`` plus one line in
:data:`BUILTIN_FEATURES` (or the ``plugins`` setting).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from photobox.jobs import store as job_store
from photobox.plugins import Feature, Stage, iter_stages

if TYPE_CHECKING:
    import apsw

    from photobox.core import Photobox

__all__ = ["BUILTIN_FEATURES", "Pipeline", "feature_names", "order"]

#: The built-in features, loaded by name (the core imports none of them), in pipeline order.
#: Plugins named in the ``plugins`` setting are loaded after these, through the same seam.
BUILTIN_FEATURES: tuple[str, ...] = (
    "photobox.library.stages",       # ingest.file, metadata → thumbs, motion, video; trash, uploads
    "photobox.search.indexing",      # clip: image embeddings for search (after thumbs, batched)
    "photobox.people.faces_job",     # faces (after thumbs, photos), people.recluster
    "photobox.places.jobs",          # places (after metadata, photos with a position), places.all
    "photobox.duplicates.job",       # dupes (a queue fed by triggers), memories
    "photobox.library.libraries",    # scan: external libraries indexed in place
    "photobox.sharing.feature",      # share links
    "photobox.dav.feature",          # WebDAV for phone backup apps
    "photobox.safety.backups",       # backup, restore, sidecar, rebuild, verify
    "photobox.safety.integrity",     # integrity: originals re-hashed in slices
)


def feature_names(plugins: str = "") -> list[str]:
    """The built-in features, then the modules the ``plugins`` setting names (comma-separated)."""
    return [*BUILTIN_FEATURES, *(n.strip() for n in plugins.split(",") if n.strip())]


#: The first stage of every asset; everything else follows from it.
ROOT = "metadata"


class Pipeline:
    """The stages of the loaded features, keyed by the stage that queues them."""

    def __init__(self, features: Iterable[Feature]) -> None:
        self._after: dict[str, list[tuple[str, Stage]]] = {}
        for kind, stage in iter_stages(features):
            self._after.setdefault(stage.after, []).append((kind, stage))

    def next_stages(self, done: str) -> list[tuple[str, Stage]]:
        """The stages that ``done`` queues, in declaration order."""
        return list(self._after.get(done, ()))

    def queue_after(self, box: Photobox, conn: apsw.Connection, done: str, asset_id: int, kind: str,
                    facts: Any) -> list[str]:
        """Queue, inside the caller's transaction, every stage after ``done`` that this asset wants.

        Returns the kinds queued. A batch stage is queued once for all assets (target ``""``).
        """
        queued = []
        registry = box.scheduler.registry
        for stage_kind, stage in self.next_stages(done):
            spec = registry.get(stage_kind)
            if spec is None or not stage.wanted(kind, facts) or not stage.ready(box):
                continue
            job_store.enqueue(conn, stage_kind, "" if stage.batch else str(asset_id), now=box.clock(),
                              priority=spec.priority, max_attempts=spec.max_attempts or box.settings.job_max_attempts,
                              force=True)
            queued.append(stage_kind)
        return queued

    def asset_kinds(self) -> list[str]:
        """The job kinds whose target is an asset id: the root stage and every per-asset stage."""
        return [ROOT, *(kind for stages in self._after.values() for kind, stage in stages if not stage.batch)]

    def order(self) -> list[tuple[str, list[str]]]:
        """``[(stage, [stages it queues]), ...]`` from :data:`ROOT`, breadth first."""
        rows, seen, todo = [], {ROOT}, [ROOT]
        while todo:
            done = todo.pop(0)
            after = [kind for kind, _ in self.next_stages(done)]
            if after:
                rows.append((done, after))
            for kind in after:
                if kind not in seen:
                    seen.add(kind)
                    todo.append(kind)
        return rows


def order(features: Sequence[Feature]) -> str:
    """The pipeline as text, one line per stage that queues others (``photobox jobs --pipeline``)."""
    rows = Pipeline(features).order()
    width = max((len(done) for done, _ in rows), default=0)
    return "\n".join(f"{done:<{width}} → {', '.join(after)}" for done, after in rows)


if __name__ == "__main__":  # python -m photobox.pipeline: the pipeline as photobox would load it
    from photobox.plugins import load_features
    from photobox.settings import load_settings

    print(order(load_features(feature_names(load_settings().plugins))))
