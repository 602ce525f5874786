"""The photobox instance: settings, data folder, database, scheduler and the loaded features,
shared by the web app and the CLI so both behave the same against one data folder.

The core imports no feature: it loads them by name (:data:`photobox.pipeline.BUILTIN_FEATURES`
and the ``plugins`` setting) and iterates what they declare (:mod:`photobox.plugins`): job
kinds, pipeline stages, periodic sweeps, reference databases and startup work.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import secrets
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import apsw

from photobox import datadir
from photobox.datadir.copy import BackupError, copy_database
from photobox.datadir.restore import ServerLock, apply_staged_restore
from photobox.datadir.storage import clean_temp, recover_placements
from photobox.db import Database
from photobox.db.sql import meta_value
from photobox.jobs import Scheduler
from photobox.pipeline import Pipeline, feature_names
from photobox.plugins import Feature, Periodic, job_registry, load_features
from photobox.settings import Settings

__all__ = ["Photobox"]

log = logging.getLogger(__name__)


class Photobox:
    """Everything one running photobox owns. ``open()`` before use, ``close()`` after.

    ``features`` defaults to the built-in ones plus the ``plugins`` setting.
    """

    def __init__(self, settings: Settings, features: Sequence[Feature] | None = None, clock=time.time) -> None:
        self.settings = settings
        self.features = list(features) if features is not None else load_features(feature_names(settings.plugins))
        self.data_dir = settings.data_dir.resolve()
        self.clock = clock
        #: Reference databases the features declare (e.g. places), ATTACHed to every connection.
        self.attached = {alias: settings.db_path.with_name(name)
                         for feature in self.features for alias, name in feature.databases.items()}
        self.db = Database(settings.db_path, busy_timeout_ms=settings.db_busy_timeout_ms,
                           readers=settings.read_connections, attach=self.attached)
        self.scheduler = Scheduler(
            self.db, job_registry(self.features), context=self, cpu_workers=settings.cpu_workers,
            poll_seconds=settings.job_poll_seconds, backoff_seconds=settings.job_backoff_seconds,
            max_attempts=settings.job_max_attempts, clock=clock,
        )
        self.pipeline = Pipeline(self.features)
        self.secret_key = b""
        from photobox.media.sandbox import DecoderPool
        from photobox.ml.clip import ModelManager
        from photobox.ml.faces import FaceModels

        # isolate: decoders run in child processes, started on first use (photobox.media.sandbox).
        self.decoders = DecoderPool(settings.cpu_workers, memory_mb=settings.decoder_memory_mb,
                                    timeout=settings.decoder_timeout_s, enabled=settings.isolate_decoders)
        # Models load lazily on first use and are unloaded when idle (rclip does the same).
        threads = settings.ml_threads or settings.cpu_workers
        self.models = ModelManager(self.path("models"), threads=threads, idle_seconds=settings.ml_idle_seconds)
        self.face_models = FaceModels(self.path("models"), threads=threads, idle_seconds=settings.ml_idle_seconds)
        for seconds, name, unload in ((60, "decoders-reap", self.decoders.reap_idle),
                                      (60, "ml-unload", self.models.unload_idle),
                                      (60, "faces-unload", self.face_models.unload_idle)):
            self.scheduler.every(seconds, functools.partial(asyncio.to_thread, unload), name)
        for feature in self.features:
            for periodic in feature.periodic:
                self.scheduler.every(periodic.seconds, self._periodic_call(periodic), periodic.name)

        #: True in the web server (it holds the data folder's server lock; see datadir.restore).
        self.serving = False
        #: ``photobox rebuild`` sets this to make a new database where one is missing.
        self.allow_new_database = False
        #: Human-readable storage problems (missing external library folders), for the banner.
        self.storage_problems: list[str] = []
        self._server_lock: ServerLock | None = None

    def _periodic_call(self, periodic: Periodic):
        """``await fn(box)``, or ``fn(box)`` in a thread when it is a plain function."""
        if inspect.iscoroutinefunction(periodic.fn):
            return lambda: periodic.fn(self)
        return lambda: asyncio.to_thread(periodic.fn, self)

    def path(self, *parts: str) -> Path:
        """A path inside the data folder."""
        return self.data_dir.joinpath(*parts)

    def attached_path(self, alias: str) -> Path:
        """The file of an attached reference database (see :meth:`photobox.plugins.Feature.attach`)."""
        return self.attached[alias]

    def queue_after(self, conn: apsw.Connection, done: str, asset_id: int, kind: str, facts: Any) -> list[str]:
        """Queue, in the caller's transaction, the pipeline stages after ``done`` for one asset."""
        return self.pipeline.queue_after(self, conn, done, asset_id, kind, facts)

    def open(self) -> Photobox:
        """Create the data folder layout, open and migrate the database, load the secret key.

        Refuses (:class:`photobox.datadir.StorageMissingError`) a data folder that is
        missing rather than new, and applies a staged restore when no server holds the folder.
        """
        if not self.allow_new_database:
            datadir.check_data_dir(self.data_dir, require_existing=self.settings.require_existing_data)
        for sub in datadir.SUBDIRS:
            self.path(sub).mkdir(parents=True, exist_ok=True)
        removed = clean_temp(self.path("tmp"))
        if removed:
            log.warning("removed %d partial upload(s) left by an interrupted run", removed)
        lock = ServerLock(self.data_dir)
        if lock.acquire():  # no server runs on this folder: safe to swap the database file
            apply_staged_restore(self.data_dir, now=self.clock())
            if self.serving:
                self._server_lock = lock
            else:
                lock.release()
        elif self.serving and lock.held_by_parent():  # granian's worker under `photobox serve`'s lock
            apply_staged_restore(self.data_dir, now=self.clock())
        elif self.serving:
            log.error("another photobox server is already using %s", self.data_dir)
        self.db.open(before_upgrade=self._backup_before_upgrade)
        self._recover_placements()
        with self.db.transaction() as conn:
            self.secret_key = bytes.fromhex(meta_value(conn, "secret_key", lambda: secrets.token_hex(32)))
        datadir.ensure_marker(self.data_dir, self.db, now=self.clock())
        for feature in self.features:
            for opener in feature.openers:
                opener(self)
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
        stamp = time.strftime("%Y%m%d-%H%M%S")
        dest = self.path("backups", f"pre-upgrade-v{current}-to-v{target}-{stamp}.db")
        log.warning("upgrading the database from schema %d to %d; backup first: %s", current, target, dest)
        try:
            copy_database(self.db.path, dest)
        except BackupError as exc:
            raise BackupError(f"the database was not upgraded from schema {current} to {target}: the backup "
                              f"before the upgrade failed: {exc}") from None
