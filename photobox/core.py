"""The photobox instance: settings, data folder, database and scheduler, shared by the web
app and the CLI so both behave the same against one data folder."""

from __future__ import annotations

import asyncio
import importlib
import logging
import secrets
import time
from pathlib import Path

from photobox.library.storage import clean_temp, recover_placements
from photobox.db import Database
from photobox.db.sql import meta_value
from photobox.jobs import REGISTRY, JobRegistry, Scheduler
from photobox.settings import Settings

__all__ = ["Photobox"]

log = logging.getLogger(__name__)

DATA_SUBDIRS = ("library", "cache/thumbs", "cache/previews", "cache/video", "cache/motion", "backups", "models", "tmp")


#: Built-in features register their job kinds through the same seam as plugins
#: (Datasette's DEFAULT_PLUGINS).
DEFAULT_PLUGINS = ("photobox.library.ingest", "photobox.library.libraries", "photobox.search.indexing",
                   "photobox.people.faces_job", "photobox.places.jobs", "photobox.duplicates.job",
                   "photobox.safety.backups", "photobox.safety.integrity")


def load_plugins(names: str) -> None:
    """Import the built-in modules and each one named in the ``plugins`` setting."""
    for name in (*DEFAULT_PLUGINS, *filter(None, (n.strip() for n in names.split(",")))):
        importlib.import_module(name)


class Photobox:
    """Everything one running photobox owns. ``open()`` before use, ``close()`` after."""

    def __init__(self, settings: Settings, registry: JobRegistry = REGISTRY, clock=time.time) -> None:
        self.settings = settings
        load_plugins(settings.plugins)
        self.data_dir = settings.data_dir.resolve()
        from photobox.places import gazetteer

        #: The places (GeoNames) file: reference data, ATTACHed to every connection, not backed up.
        self.places_path = settings.db_path.with_name(gazetteer.FILE_NAME)
        self.db = Database(settings.db_path, busy_timeout_ms=settings.db_busy_timeout_ms,
                           readers=settings.read_connections, attach={gazetteer.ALIAS: self.places_path})
        self.clock = clock
        self.scheduler = Scheduler(
            self.db, registry, context=self, cpu_workers=settings.cpu_workers,
            poll_seconds=settings.job_poll_seconds, backoff_seconds=settings.job_backoff_seconds,
            max_attempts=settings.job_max_attempts, clock=clock,
        )
        self.secret_key = b""
        from photobox.media.sandbox import DecoderPool

        # isolate: decoders run in child processes, started on first use (photobox.media.sandbox).
        self.decoders = DecoderPool(settings.cpu_workers, memory_mb=settings.decoder_memory_mb,
                                    timeout=settings.decoder_timeout_s, enabled=settings.isolate_decoders)
        self.scheduler.every(60, lambda: asyncio.to_thread(self.decoders.reap_idle), "decoders-reap")
        from photobox.library.actions import empty_expired_trash
        from photobox.library.libraries import queue_due_scans
        from photobox.ml.clip import ModelManager
        from photobox.search.indexing import queue_indexing

        # Models load lazily on first use and are unloaded when idle (rclip does the same).
        self.models = ModelManager(self.path("models"), threads=settings.ml_threads or settings.cpu_workers,
                                   idle_seconds=settings.ml_idle_seconds)
        self.scheduler.every(60, lambda: queue_due_scans(self), "library-scans")
        self.scheduler.every(3600, lambda: empty_expired_trash(self), "empty-trash")
        self.scheduler.every(60, lambda: asyncio.to_thread(self.models.unload_idle), "ml-unload")
        self.scheduler.every(300, lambda: queue_indexing(self), "search-indexing")
        from photobox.library.upload_cleanup import expire_uploads

        self.scheduler.every(3600, lambda: expire_uploads(self), "expire-uploads")
        from photobox.ml.faces import FaceModels
        from photobox.people.faces_job import queue_face_scans, queue_recluster_when_idle

        self.face_models = FaceModels(self.path("models"), threads=settings.ml_threads or settings.cpu_workers,
                                      idle_seconds=settings.ml_idle_seconds)
        self.scheduler.every(60, lambda: asyncio.to_thread(self.face_models.unload_idle), "faces-unload")
        self.scheduler.every(300, lambda: queue_face_scans(self), "face-scans")
        self.scheduler.every(300, lambda: queue_recluster_when_idle(self), "people-recluster")
        from photobox.places.jobs import queue_geocoding

        self.scheduler.every(300, lambda: queue_geocoding(self), "places-geocoding")
        from photobox.duplicates.job import queue_dupes
        from photobox.duplicates.memories import refresh_memories

        self.scheduler.every(60, lambda: queue_dupes(self), "duplicates")
        self.scheduler.every(3600, lambda: refresh_memories(self), "memories")
        # backup: scheduled backups, integrity slices and the storage check (photobox.safety).
        from photobox.safety import backups, integrity, mounts

        #: True in the web server (it holds the data folder's server lock; see safety.restore).
        self.serving = False
        #: ``photobox rebuild`` sets this to make a new database where one is missing.
        self.allow_new_database = False
        #: Human-readable storage problems (missing external library folders), for the banner.
        self.storage_problems: list[str] = []
        self._server_lock = None
        self.scheduler.every(600, lambda: backups.queue_backup_if_due(self), "backup-schedule")
        self.scheduler.every(3600, lambda: integrity.queue_slice_if_due(self), "integrity-schedule")
        self.scheduler.every(60, lambda: mounts.refresh_problems(self), "storage-check")

    def path(self, *parts: str) -> Path:
        """A path inside the data folder."""
        return self.data_dir.joinpath(*parts)

    def open(self) -> Photobox:
        """Create the data folder layout, open and migrate the database, load the secret key.

        Refuses (:class:`photobox.safety.mounts.StorageMissingError`) a data folder that is
        missing rather than new, and applies a staged restore when no server holds the folder.
        """
        from photobox.safety import backups, mounts, restore

        if not self.allow_new_database:
            mounts.check_data_dir(self.data_dir, require_existing=self.settings.require_existing_data)
        for sub in DATA_SUBDIRS:
            self.path(sub).mkdir(parents=True, exist_ok=True)
        removed = clean_temp(self.path("tmp"))
        if removed:
            log.warning("removed %d partial upload(s) left by an interrupted run", removed)
        if backups.clean_partials(self.path("backups")):  # a backup still being written is left alone
            log.warning("removed partial backup file(s) left by an interrupted backup")
        lock = restore.ServerLock(self.data_dir)
        if lock.acquire():  # no server runs on this folder: safe to swap the database file
            restore.apply_staged_restore(self.data_dir, now=self.clock())
            if self.serving:
                self._server_lock = lock
            else:
                lock.release()
        elif self.serving and lock.held_by_parent():  # granian's worker under `photobox serve`'s lock
            restore.apply_staged_restore(self.data_dir, now=self.clock())
        elif self.serving:
            log.error("another photobox server is already using %s", self.data_dir)
        self.db.open(before_upgrade=self._backup_before_upgrade)
        self._recover_placements()
        with self.db.transaction() as conn:
            self.secret_key = bytes.fromhex(meta_value(conn, "secret_key", lambda: secrets.token_hex(32)))
        mounts.ensure_marker(self)
        # storage_problems is filled by the "storage-check" periodic task, off the start path:
        # a hung network mount must not stop photobox from starting.
        return self

    def close(self) -> None:
        self.decoders.close()
        self.db.close()
        if self._server_lock is not None:
            self._server_lock.release()
            self._server_lock = None

    def _recover_placements(self) -> None:
        """Remove library files a crash left between placing them and committing their row."""
        def committed(rel: str) -> bool:
            with self.db.reader() as conn:
                return conn.execute("SELECT 1 FROM assets WHERE library_id = 1 AND rel_path = ?",
                                    (rel,)).fetchone() is not None

        removed = recover_placements(self.path("tmp"), self.path("library"), committed)
        if removed:
            log.warning("removed %d library file(s) whose upload was interrupted before it was recorded", removed)

    def _backup_before_upgrade(self, conn, current: int, target: int) -> None:
        """Copy the database (verified, like every backup) before a migration changes it.

        beets takes a backup before data migrations; a schema change is the riskiest moment,
        so when the copy fails (a damaged database, a full disk) nothing is migrated.
        """
        from photobox.safety.backups import BackupError, copy_database

        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path("backups", f"pre-upgrade-v{current}-to-v{target}-{stamp}.db")
        log.warning("upgrading the database from schema %d to %d; backup first: %s", current, target, dest)
        try:
            copy_database(self.db.path, dest)
        except BackupError as exc:
            raise BackupError(f"the database was not upgraded from schema {current} to {target}: the backup "
                              f"before the upgrade failed: {exc}") from None
