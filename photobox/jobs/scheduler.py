"""The in-process scheduler: durable jobs in SQLite, run by asyncio with bounded threads.

Delivery guarantee: **at least once**. A job is claimed (state ``running``, attempt counted)
in one transaction and marked done in another after its handler returns; if the process
dies in between (kill -9, power cut) the job is queued again at the next start (its owner
``host:pid`` is gone) or when its lease runs out. So every handler MUST be idempotent:
running it twice for the same target must leave the same result (write derived files to a
temp name and rename; upsert rows; check before inserting). A job that was running during
three crashes is failed instead of retried, so a file that crashes a decoder cannot crash
photobox in a loop. When the end of a job cannot be recorded (the disk is full, so SQLite
cannot write), the job stays claimed by this process and is handed back to the queue at the
next dispatch that can write: it runs again once space returns, and is never lost.

Ordering: within a kind, higher priority first, then the earliest due, then the oldest.
Kinds run side by side, each bounded by its ``concurrency``; synchronous handlers share one
CPU thread pool (``cpu_workers`` threads), so the event loop never runs their work.
Failures are retried with exponential backoff (``backoff_seconds`` × 2ⁿ, at most an hour)
up to ``max_attempts``; :class:`PermanentError` fails at once (e.g. a corrupt file). The
error text is recorded on the row for the jobs page.

Time comes from ``clock`` so tests can move a frozen clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import apsw

from photobox.db import Database
from photobox.jobs import store
from photobox.jobs.registry import JobRegistry, JobSpec
from photobox.procs import process_alive

__all__ = ["Job", "PermanentError", "Scheduler", "Stopping"]

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600.0
CRASH_LIMIT = 3

#: SQLite errors that mean "the database cannot be written now" (a full disk, a disk gone
#: read-only or away), not a bug: logged in one line, and the work is handed back later.
STORAGE_ERRORS = (apsw.FullError, apsw.IOError, apsw.ReadOnlyError, apsw.CantOpenError, apsw.BusyError)


class PermanentError(Exception):
    """Raise from a handler when retrying cannot help; the message is shown to the user."""


class Stopping(Exception):
    """Raise from a handler (after checking :meth:`Job.should_stop`) to hand the job back."""


@dataclass(slots=True)
class Job:
    """What a handler receives: the row's fields plus the scheduler's context."""

    id: int
    kind: str
    target: str
    args: dict[str, Any]
    attempt: int
    context: Any
    _scheduler: Scheduler = field(repr=False)

    def should_stop(self) -> bool:
        """True once shutdown began; long handlers check it and raise :class:`Stopping`."""
        return self._scheduler.stopping

    def enqueue(self, kind: str, target: str = "", args: dict[str, Any] | None = None, **kw: Any) -> int:
        """Queue a follow-up job from inside a handler thread (see :meth:`Scheduler.enqueue_sync`)."""
        return self._scheduler.enqueue_sync(kind, target, args, **kw)


class Scheduler:
    """Runs the jobs of ``registry`` found in ``db``. See the module docstring for guarantees."""

    def __init__(
        self,
        db: Database,
        registry: JobRegistry,
        *,
        context: Any = None,
        cpu_workers: int = 2,
        poll_seconds: float = 5.0,
        backoff_seconds: float = 30.0,
        max_attempts: int = 5,
        lease_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.registry = registry
        self.context = context
        self.poll_seconds = poll_seconds
        self.backoff_seconds = backoff_seconds
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.clock = clock
        self.host = socket.gethostname()
        self.owner = owner or f"{self.host}:{os.getpid()}"
        self.stopping = False
        self.cpu_workers = max(1, cpu_workers)
        self._cpu_pool = ThreadPoolExecutor(max_workers=self.cpu_workers, thread_name_prefix="job-cpu")
        self._running: dict[int, asyncio.Task] = {}
        self._per_kind: dict[str, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._main: asyncio.Task | None = None
        self._beat: asyncio.Task | None = None
        self._periodic: list[tuple[float, Callable[[], Awaitable[object]], str]] = []
        self._periodic_tasks: list[asyncio.Task] = []
        self._unsettled: set[int] = set()  # ended, but the end could not be written (see _settle)
        self._finished = 0  # jobs ended so far; run_until_idle compares it across a round
        self._storage_trouble = False

    # -- enqueueing ------------------------------------------------------------------

    def _enqueue_args(self, kind: str, priority: int | None, max_attempts: int | None) -> tuple[int, int]:
        spec = self.registry.get(kind)
        if spec is None:
            raise KeyError(f"unknown job kind {kind!r}")
        return (
            spec.priority if priority is None else priority,
            max_attempts or spec.max_attempts or self.max_attempts,
        )

    def enqueue_sync(
        self,
        kind: str,
        target: str = "",
        args: dict[str, Any] | None = None,
        *,
        priority: int | None = None,
        max_attempts: int | None = None,
        force: bool = False,
    ) -> int:
        """Queue a job from any thread (idempotent by (kind, target)) and wake the scheduler."""
        prio, attempts = self._enqueue_args(kind, priority, max_attempts)
        with self.db.transaction() as conn:
            job_id = store.enqueue(conn, kind, str(target), args, now=self.clock(), priority=prio,
                                   max_attempts=attempts, force=force)
        self.notify()
        return job_id

    async def enqueue(self, kind: str, target: str = "", args: dict[str, Any] | None = None, **kw: Any) -> int:
        """Async form of :meth:`enqueue_sync` for web handlers."""
        prio, attempts = self._enqueue_args(kind, kw.pop("priority", None), kw.pop("max_attempts", None))
        force = kw.pop("force", False)
        now = self.clock()
        job_id = await self.db.write(
            lambda conn: store.enqueue(conn, kind, str(target), args, now=now, priority=prio,
                                       max_attempts=attempts, force=force)
        )
        self.notify()
        return job_id

    def notify(self) -> None:
        """Wake the dispatch loop (safe from any thread)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # loop closed between the check and the call
            pass

    def every(self, seconds: float, fn: Callable[[], Awaitable[object]], name: str) -> None:
        """Run ``await fn()`` every ``seconds`` while the scheduler runs (e.g. "queue due scans").

        Periodic work should only *enqueue* jobs, so that the work itself is durable.
        """
        self._periodic.append((seconds, fn, name))

    async def _periodic_loop(self, seconds: float, fn: Callable[[], Awaitable[object]], name: str) -> None:
        while not self.stopping:
            try:
                await fn()
            except STORAGE_ERRORS as exc:
                log.warning("periodic task %s could not write to the database: %s", name, exc)
            except Exception:
                log.exception("periodic task %s failed", name)
            await asyncio.sleep(seconds)

    # -- lifecycle -------------------------------------------------------------------

    def recover(self) -> tuple[int, int]:
        """Requeue jobs left running by a dead process on this host or with an expired lease."""
        with self.db.reader() as conn:
            owners = {o for (o,) in conn.execute(
                "SELECT DISTINCT owner FROM jobs WHERE state = 'running' AND owner IS NOT NULL")}
        dead = set()
        for owner in owners:
            host, _, pid = owner.rpartition(":")
            if host == self.host and pid.isdigit() and (int(pid) == os.getpid() or not process_alive(int(pid))):
                # Our own pid can only be in the table from an earlier process that had it.
                dead.add(owner)
        with self.db.transaction() as conn:
            requeued, failed = store.requeue_orphans(conn, now=self.clock(), dead_owners=dead, crash_limit=CRASH_LIMIT)
        if requeued or failed:
            log.warning("resumed %d interrupted job(s); %d failed after repeated crashes", requeued, failed)
        return requeued, failed

    async def start(self) -> None:
        """Recover interrupted jobs and start dispatching in the background."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self.stopping = False
        await self._loop.run_in_executor(None, self.recover)
        self._main = asyncio.create_task(self._dispatch_loop(), name="photobox-scheduler")
        self._beat = asyncio.create_task(self._heartbeat_loop(), name="photobox-heartbeat")
        self._periodic_tasks = [asyncio.create_task(self._periodic_loop(*p), name=f"periodic-{p[2]}")
                                for p in self._periodic]

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, let running jobs finish for ``timeout`` s, hand back the rest."""
        self.stopping = True
        background = [self._main, self._beat, *self._periodic_tasks]
        for task in background:
            if task is not None:
                task.cancel()
        for task in background:
            if task is not None:
                try:
                    await task
                except (asyncio.CancelledError, Exception):
                    pass
        if self._running:
            done, pending = await asyncio.wait(list(self._running.values()), timeout=timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=2)
        # Threads cannot be killed: wait for them, then release anything still marked ours.
        await asyncio.get_running_loop().run_in_executor(None, self._cpu_pool.shutdown, True)
        try:
            with self.db.transaction() as conn:
                running: list[Any] = conn.execute(
                    "SELECT id FROM jobs WHERE state = 'running' AND owner = ?", (self.owner,)).fetchall()
                for (job_id,) in running:
                    store.release(conn, job_id, now=self.clock())
            self._unsettled.clear()
        except STORAGE_ERRORS as exc:  # the next start takes them back (their owner is gone by then)
            log.warning("could not hand back unfinished jobs (%s); the next start will", exc)
        self._main = self._beat = None

    # -- dispatching -----------------------------------------------------------------

    async def _dispatch_loop(self) -> None:
        assert self._wake is not None
        while not self.stopping:
            self._wake.clear()
            try:
                await self.run_pending()
                self._storage_trouble = False
            except STORAGE_ERRORS as exc:  # e.g. a full disk: say it once, try again next round
                if not self._storage_trouble:
                    log.warning("the scheduler cannot write to the database (%s); it keeps trying", exc)
                self._storage_trouble = True
            except Exception:  # a broken DB moment must not kill the scheduler
                log.exception("scheduler dispatch failed")
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            except TimeoutError:
                pass

    async def _heartbeat_loop(self) -> None:
        while not self.stopping:
            await asyncio.sleep(self.lease_seconds / 3)
            if self._running or self._unsettled:
                until = self.clock() + self.lease_seconds
                try:
                    await self.db.write(lambda conn, until=until: store.heartbeat(conn, self.owner, lease_until=until))
                except STORAGE_ERRORS as exc:
                    log.warning("could not extend the jobs' lease: %s", exc)

    async def run_pending(self) -> int:
        """Claim due jobs up to each kind's free slots and start them; return how many."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
        if self._unsettled:
            await self._hand_back_unsettled()
        started = 0
        for spec in self.registry:
            limit = spec.concurrency if spec.concurrency is not None else self.cpu_workers
            free = limit - self._per_kind.get(spec.kind, 0)
            if free <= 0 or self.stopping:
                continue
            now = self.clock()
            jobs = await self.db.write(
                lambda conn, kind=spec.kind, n=free, now=now: store.claim(
                    conn, kind, n, owner=self.owner, now=now, lease_seconds=self.lease_seconds)
            )
            for row in jobs:
                job = Job(row.id, row.kind, row.target, row.args, row.attempts, self.context, self)
                self._per_kind[spec.kind] = self._per_kind.get(spec.kind, 0) + 1
                task = asyncio.create_task(self._run(spec, job, row.max_attempts), name=f"job-{row.id}")
                self._running[row.id] = task
                started += 1
        return started

    async def run_until_idle(self, max_rounds: int = 10_000) -> None:
        """Run jobs until none is due at ``clock()`` and none is running (tests, CLI)."""
        for _ in range(max_rounds):
            finished_before = self._finished
            started = await self.run_pending()
            if self._running:
                await asyncio.wait(list(self._running.values()), return_when=asyncio.FIRST_COMPLETED)
            elif not started and self._finished == finished_before:
                # Idle only if no job ended while this round claimed: one that did may have freed
                # a slot of a kind the round had already passed over, or queued a follow-up.
                return
        raise RuntimeError("run_until_idle: jobs keep coming")

    async def _run(self, spec: JobSpec, job: Job, max_attempts: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            if spec.is_async:
                await spec.handler(job)
            else:
                await loop.run_in_executor(self._cpu_pool, spec.handler, job)
        except (Stopping, asyncio.CancelledError):
            await self._settle(job, lambda conn: store.release(conn, job.id, now=self.clock()))
        except PermanentError as exc:
            await self._record_failure(job, str(exc) or type(exc).__name__, retry=False)
        except Exception as exc:
            log.warning("job %s %s:%s failed (attempt %d/%d): %s", job.id, job.kind, job.target,
                        job.attempt, max_attempts, exc)
            text = f"{type(exc).__name__}: {exc}\n" + "".join(traceback.format_tb(exc.__traceback__)[-3:])
            await self._record_failure(job, text, retry=job.attempt < max_attempts)
        else:
            await self._settle(job, lambda conn: store.complete(conn, job.id, now=self.clock()))
        finally:
            self._running.pop(job.id, None)
            self._finished += 1
            self._per_kind[spec.kind] -= 1
            self.notify()

    async def _record_failure(self, job: Job, text: str, *, retry: bool) -> None:
        now = self.clock()
        retry_at = None
        if retry:
            retry_at = now + min(self.backoff_seconds * 2 ** (job.attempt - 1), MAX_BACKOFF_SECONDS)
        await self._settle(job, lambda conn: store.fail(conn, job.id, text, now=now, retry_at=retry_at))

    async def _settle(self, job: Job, record: Callable[[apsw.Connection], None]) -> None:
        """Write how ``job`` ended; when the database cannot take it, keep the job for a hand-back."""
        try:
            await self.db.write(record)
        except STORAGE_ERRORS as exc:
            log.warning("job %s %s:%s ended, but that could not be recorded (%s); it is handed back to the queue "
                        "once the database can be written again", job.id, job.kind, job.target, exc)
            self._unsettled.add(job.id)

    async def _hand_back_unsettled(self) -> None:
        """Queue again, without counting the attempt, the jobs whose end could not be recorded."""
        ids = sorted(self._unsettled)
        now = self.clock()

        def release(conn: apsw.Connection) -> None:
            for job_id in ids:
                store.release(conn, job_id, now=now)

        try:
            await self.db.write(release)
        except STORAGE_ERRORS:  # still full: keep them, try again next round
            return
        self._unsettled.difference_update(ids)
        log.info("handed %d job(s) back to the queue after the database could be written again", len(ids))
