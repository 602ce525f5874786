"""The durable scheduler, on a real DB file and a frozen clock (no sleeps)."""

import asyncio
import os
import threading
import time

import pytest

from photobox.db import Database
from photobox.jobs import JobRegistry, PermanentError, Scheduler, Stopping, store


@pytest.fixture
def db(tmp_path):
    database = Database(tmp_path / "jobs.db").open()
    yield database
    database.close()


def make(db, clock, registry, **kw):
    return Scheduler(db, registry, clock=clock, cpu_workers=2, backoff_seconds=10, max_attempts=3, **kw)


def states(db):
    with db.reader() as conn:
        return {(k, t): s for k, t, s in conn.execute("SELECT kind, target, state FROM jobs")}


def test_enqueue_is_idempotent_and_runs_once(db, clock):
    reg = JobRegistry()
    seen = []
    reg.register("thumbs")(lambda job: seen.append(job.target))
    sched = make(db, clock, reg)
    ids = {sched.enqueue_sync("thumbs", "a1") for _ in range(3)}
    assert len(ids) == 1
    asyncio.run(sched.run_until_idle())
    assert seen == ["a1"]
    # Enqueueing done work again is a no-op unless forced.
    sched.enqueue_sync("thumbs", "a1")
    asyncio.run(sched.run_until_idle())
    assert seen == ["a1"]
    sched.enqueue_sync("thumbs", "a1", force=True)
    asyncio.run(sched.run_until_idle())
    assert seen == ["a1", "a1"]


def test_priority_order_and_per_kind_concurrency(db, clock):
    reg = JobRegistry()
    order = []
    active = {"n": 0, "max": 0}
    lock = threading.Lock()

    def work(job):
        with lock:
            active["n"] += 1
            active["max"] = max(active["max"], active["n"])
        order.append(job.target)
        time.sleep(0.01)
        with lock:
            active["n"] -= 1

    reg.register("ml", concurrency=1)(work)
    sched = make(db, clock, reg)
    for i in range(5):
        sched.enqueue_sync("ml", f"low{i}", priority=0)
    sched.enqueue_sync("ml", "urgent", priority=10)
    asyncio.run(sched.run_until_idle())
    assert order[0] == "urgent"
    assert order[1:] == [f"low{i}" for i in range(5)]
    assert active["max"] == 1


def test_kinds_run_side_by_side_bounded_by_cpu_pool(db, clock):
    reg = JobRegistry()
    barrier = threading.Barrier(2, timeout=5)
    reg.register("a")(lambda job: barrier.wait())
    reg.register("b")(lambda job: barrier.wait())
    sched = make(db, clock, reg)
    sched.enqueue_sync("a", "1")
    sched.enqueue_sync("b", "1")
    asyncio.run(sched.run_until_idle())  # would time out (BrokenBarrierError) if serial
    assert set(states(db).values()) == {"done"}


def test_retry_with_backoff_then_failed_with_error_text(db, clock):
    reg = JobRegistry()
    calls = []

    def flaky(job):
        calls.append(clock())
        raise OSError("disk hiccup")

    reg.register("flaky")(flaky)
    sched = make(db, clock, reg)
    job_id = sched.enqueue_sync("flaky", "x")
    asyncio.run(sched.run_until_idle())
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert (row.state, row.attempts) == ("queued", 1)
    assert "OSError: disk hiccup" in row.error
    assert row.run_after == clock() + 10
    # Not due yet: nothing runs without moving the clock.
    asyncio.run(sched.run_until_idle())
    assert len(calls) == 1
    clock.advance(10)
    asyncio.run(sched.run_until_idle())
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert row.run_after == clock() + 20  # doubled
    clock.advance(20)
    asyncio.run(sched.run_until_idle())
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert (row.state, row.attempts, len(calls)) == ("failed", 3, 3)
    # A retry from the jobs page queues it again with fresh attempts.
    with db.transaction() as conn:
        assert store.retry(conn, now=clock(), kind="flaky") == 1
    reg._specs["flaky"] = reg._specs["flaky"].__class__("flaky", lambda job: None)
    asyncio.run(sched.run_until_idle())
    assert states(db)[("flaky", "x")] == "done"


def test_permanent_error_fails_at_once(db, clock):
    reg = JobRegistry()

    def corrupt(job):
        raise PermanentError("not an image: truncated JPEG")

    reg.register("thumbs")(corrupt)
    sched = make(db, clock, reg)
    job_id = sched.enqueue_sync("thumbs", "bad")
    asyncio.run(sched.run_until_idle())
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert (row.state, row.attempts, row.error) == ("failed", 1, "not an image: truncated JPEG")


def test_handler_can_enqueue_follow_ups_and_async_handlers(db, clock):
    reg = JobRegistry()
    done = []
    reg.register("register", priority=5)(lambda job: job.enqueue("thumbs", job.target))

    async def thumbs(job):
        await asyncio.sleep(0)
        done.append(job.target)

    reg.register("thumbs")(thumbs)
    sched = make(db, clock, reg)
    for i in range(3):
        sched.enqueue_sync("register", str(i))
    asyncio.run(sched.run_until_idle())
    assert sorted(done) == ["0", "1", "2"]


def test_cpu_work_leaves_event_loop_responsive(db, clock):
    reg = JobRegistry()

    def busy(job):
        time.sleep(0.3)  # stands in for decoding; sleep and Pillow both release the GIL

    reg.register("busy", concurrency=2)(busy)
    sched = make(db, clock, reg)
    sched.enqueue_sync("busy", "1")
    sched.enqueue_sync("busy", "2")

    async def main():
        runner = asyncio.create_task(sched.run_until_idle())
        ticks = 0
        while not runner.done():
            await asyncio.sleep(0.01)
            ticks += 1
        await runner
        return ticks

    assert asyncio.run(main()) >= 10


def test_resumes_jobs_of_a_killed_process(db, clock):
    """A job left 'running' by a dead pid is queued again at the next start."""
    reg = JobRegistry()
    seen = []
    reg.register("thumbs")(lambda job: seen.append(job.target))
    sched = make(db, clock, reg)
    sched.enqueue_sync("thumbs", "a")
    dead_pid = 2**22 + 12345  # above pid_max on most systems: certainly not running
    while True:
        try:
            os.kill(dead_pid, 0)
            dead_pid += 1
        except ProcessLookupError:
            break
    with db.transaction() as conn:
        store.claim(conn, "thumbs", 1, owner=f"{sched.host}:{dead_pid}", now=clock(), lease_seconds=3600)
    assert states(db)[("thumbs", "a")] == "running"
    assert sched.recover() == (1, 0)
    asyncio.run(sched.run_until_idle())
    assert seen == ["a"]


def test_expired_lease_from_another_host_is_resumed(db, clock):
    reg = JobRegistry()
    reg.register("clip")(lambda job: None)
    sched = make(db, clock, reg)
    sched.enqueue_sync("clip", "a")
    with db.transaction() as conn:
        store.claim(conn, "clip", 1, owner="other-box:99", now=clock(), lease_seconds=60)
    assert sched.recover() == (0, 0)  # lease still valid: the other worker may be alive
    clock.advance(61)
    assert sched.recover() == (1, 0)


def test_job_that_keeps_crashing_the_process_is_failed(db, clock):
    reg = JobRegistry()
    reg.register("thumbs")(lambda job: None)
    sched = make(db, clock, reg)
    job_id = sched.enqueue_sync("thumbs", "evil")
    for _ in range(3):
        with db.transaction() as conn:
            store.claim(conn, "thumbs", 1, owner=f"{sched.host}:{os.getpid()}", now=clock(), lease_seconds=60)
        sched.recover()
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert row.state == "failed" and "stopped while running" in row.error


def test_graceful_stop_hands_back_unfinished_work(db, clock):
    reg = JobRegistry()
    started = threading.Event()

    def long(job):
        started.set()
        while not job.should_stop():
            time.sleep(0.01)
        raise Stopping()

    reg.register("video")(long)
    sched = make(db, clock, reg, poll_seconds=0.05)
    job_id = sched.enqueue_sync("video", "v")

    async def main():
        await sched.start()
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        await sched.stop(timeout=5)

    asyncio.run(main())
    with db.reader() as conn:
        row = store.get(conn, job_id)
    assert (row.state, row.attempts) == ("queued", 0)


def test_background_loop_picks_up_jobs_from_other_connections(db, clock):
    """The CLI queues jobs through its own connection; the server notices by polling."""
    reg = JobRegistry()
    done = threading.Event()
    reg.register("scan")(lambda job: done.set())
    sched = make(db, clock, reg, poll_seconds=0.05)

    async def main():
        await sched.start()
        with db.transaction() as conn:  # not through the scheduler: no wake-up call
            store.enqueue(conn, "scan", "lib1", now=clock())
        ok = await asyncio.get_running_loop().run_in_executor(None, done.wait, 5)
        await sched.stop()
        return ok

    assert asyncio.run(main())


def test_forced_enqueue_of_a_running_job_runs_it_again_after(db, clock):
    reg = JobRegistry()
    runs = []
    sched = make(db, clock, reg)

    def batch(job):
        runs.append(len(runs))
        if len(runs) == 1:
            sched.enqueue_sync("batch", "", force=True)  # new work arrived while running

    reg.register("batch")(batch)
    sched.enqueue_sync("batch", "")
    asyncio.run(sched.run_until_idle())
    assert runs == [0, 1]
    assert states(db)[("batch", "")] == "done"


def test_a_job_whose_end_cannot_be_recorded_on_a_full_disk_is_handed_back_not_lost(db, clock, monkeypatch, caplog):
    """The disk fills while a thumbnail job runs: recording its failure itself hits SQLITE_FULL.
    The job must stay claimed (not lost, not a traceback), then run again once space returns."""
    import apsw

    reg = JobRegistry()
    calls = []
    disk = {"full": False}

    def thumbs(job):
        calls.append(job.attempt)
        if len(calls) == 1:
            disk["full"] = True
            raise OSError(28, "No space left on device")

    reg.register("thumbs")(thumbs)

    def full_when_full(real):
        def write(conn, *a, **kw):
            if disk["full"]:
                raise apsw.FullError("database or disk is full")
            return real(conn, *a, **kw)
        return write

    for name in ("fail", "complete", "release", "claim", "heartbeat"):  # every write of the scheduler
        monkeypatch.setattr(store, name, full_when_full(getattr(store, name)))
    sched = make(db, clock, reg)
    sched.enqueue_sync("thumbs", "a1")
    with caplog.at_level("INFO"):
        for _ in range(2):  # the disk stays full: nothing more runs, nothing is lost
            with pytest.raises(apsw.FullError):
                asyncio.run(sched.run_until_idle())
            assert calls == [1] and states(db) == {("thumbs", "a1"): "running"}  # still ours
        disk["full"] = False
        asyncio.run(sched.run_until_idle())
    assert calls == [1, 1]  # handed back without counting the attempt that could not be recorded
    assert states(db) == {("thumbs", "a1"): "done"}
    assert not [r for r in caplog.records if r.exc_info], "a full disk must not log a traceback"
    assert any("could not be recorded" in r.getMessage() for r in caplog.records)


def test_a_full_disk_during_dispatch_is_one_line_not_a_traceback(db, clock, monkeypatch, caplog):
    import apsw

    reg = JobRegistry()
    reg.register("thumbs")(lambda job: None)
    sched = make(db, clock, reg, poll_seconds=0.01)

    def claim(*a, **kw):
        raise apsw.FullError("database or disk is full")

    monkeypatch.setattr(store, "claim", claim)

    async def main():
        await sched.start()
        await asyncio.sleep(0.2)
        await sched.stop()

    with caplog.at_level("WARNING"):
        asyncio.run(main())
    warnings = [r for r in caplog.records if "cannot write to the database" in r.getMessage()]
    assert len(warnings) == 1 and not [r for r in caplog.records if r.exc_info]
