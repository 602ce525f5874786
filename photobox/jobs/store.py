"""SQL for the ``jobs`` table. Every function takes an ``apsw.Connection`` and the time.

The write functions expect to run inside a write transaction (``Database.transaction``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import apsw

__all__ = [
    "JobRow", "claim", "complete", "counts", "enqueue", "fail", "get", "heartbeat",
    "list_jobs", "release", "requeue_orphans", "retry",
]

_COLUMNS = "id, kind, target, args, priority, state, attempts, max_attempts, run_after, owner, error, updated_at"


@dataclass(frozen=True, slots=True)
class JobRow:
    id: int
    kind: str
    target: str
    args: dict[str, Any]
    priority: int
    state: str
    attempts: int
    max_attempts: int
    run_after: float
    owner: str | None
    error: str | None
    updated_at: float


def _row(values: tuple[Any, ...]) -> JobRow:
    fields = list(values)
    fields[3] = json.loads(fields[3])
    return JobRow(*fields)


def enqueue(
    conn: apsw.Connection,
    kind: str,
    target: str = "",
    args: dict[str, Any] | None = None,
    *,
    now: float,
    priority: int = 0,
    max_attempts: int = 5,
    force: bool = False,
) -> int:
    """Queue ``kind`` for ``target`` once; return the job id.

    Idempotent: a job already queued or running for the same (kind, target) is left alone
    (its priority is raised if the new one is higher). A done or failed job is queued again
    only with ``force`` (e.g. "retry", or "re-run thumbnails"), with fresh attempts; a running
    one asked for with ``force`` runs once more after it finishes (see :func:`complete`).
    """
    args_json = json.dumps(args or {}, separators=(",", ":"), sort_keys=True)
    row = conn.execute(
        """
        INSERT INTO jobs (kind, target, args, priority, max_attempts, created_at, updated_at)
        VALUES (:kind, :target, :args, :priority, :max_attempts, :now, :now)
        ON CONFLICT (kind, target) DO UPDATE SET
            priority = max(priority, excluded.priority),
            args = CASE WHEN :force AND state IN ('done', 'failed') THEN excluded.args ELSE args END,
            attempts = CASE WHEN :force AND state IN ('done', 'failed') THEN 0 ELSE attempts END,
            error = CASE WHEN :force AND state IN ('done', 'failed') THEN NULL ELSE error END,
            run_after = CASE WHEN :force AND state IN ('done', 'failed') THEN 0 ELSE run_after END,
            state = CASE WHEN :force AND state IN ('done', 'failed') THEN 'queued' ELSE state END,
            rerun = CASE WHEN :force AND state = 'running' THEN 1 ELSE rerun END,
            updated_at = excluded.updated_at
        RETURNING id
        """,
        {"kind": kind, "target": target, "args": args_json, "priority": priority,
         "max_attempts": max_attempts, "now": now, "force": 1 if force else 0},
    ).fetchone()
    assert row is not None  # RETURNING of an upsert always yields the row
    return int(row[0])


def claim(
    conn: apsw.Connection, kind: str, limit: int, *, owner: str, now: float, lease_seconds: float
) -> list[JobRow]:
    """Mark up to ``limit`` due jobs of ``kind`` running for ``owner`` and return them.

    The order is priority, then due time, then age; the ``jobs_ready`` index serves it.
    """
    if limit <= 0:
        return []
    rows = conn.execute(
        f"""
        UPDATE jobs SET state = 'running', owner = ?, lease_until = ?, started_at = ?,
                        updated_at = ?, attempts = attempts + 1
        WHERE id IN (
            SELECT id FROM jobs
            WHERE kind = ? AND state = 'queued' AND run_after <= ?
            ORDER BY priority DESC, run_after, id
            LIMIT ?
        )
        RETURNING {_COLUMNS}
        """,
        (owner, now + lease_seconds, now, now, kind, now, limit),
    ).fetchall()
    return sorted((_row(r) for r in rows), key=lambda j: (-j.priority, j.run_after, j.id))


def complete(conn: apsw.Connection, job_id: int, *, now: float) -> None:
    """Record success; a job asked for again while it ran is queued once more."""
    conn.execute(
        "UPDATE jobs SET state = CASE WHEN rerun THEN 'queued' ELSE 'done' END, "
        "attempts = CASE WHEN rerun THEN 0 ELSE attempts END, rerun = 0, owner = NULL, lease_until = NULL, "
        "error = NULL, finished_at = ?, updated_at = ? WHERE id = ?",
        (now, now, job_id),
    )


def fail(conn: apsw.Connection, job_id: int, error: str, *, now: float, retry_at: float | None) -> None:
    """Record a failure: queued again at ``retry_at``, or failed for good when it is ``None``."""
    conn.execute(
        "UPDATE jobs SET state = ?, run_after = coalesce(?, run_after), owner = NULL, lease_until = NULL, "
        "error = ?, finished_at = ?, updated_at = ? WHERE id = ?",
        ("queued" if retry_at is not None else "failed", retry_at, error[:4000], now, now, job_id),
    )


def release(conn: apsw.Connection, job_id: int, *, now: float) -> None:
    """Give a running job back to the queue without counting the attempt (clean shutdown)."""
    conn.execute(
        "UPDATE jobs SET state = 'queued', attempts = max(attempts - 1, 0), owner = NULL, "
        "lease_until = NULL, updated_at = ? WHERE id = ? AND state = 'running'",
        (now, job_id),
    )


def heartbeat(conn: apsw.Connection, owner: str, *, lease_until: float) -> None:
    """Extend the lease of every job ``owner`` is running."""
    conn.execute(
        "UPDATE jobs SET lease_until = ? WHERE state = 'running' AND owner = ?", (lease_until, owner)
    )


def requeue_orphans(
    conn: apsw.Connection, *, now: float, dead_owners: set[str], crash_limit: int
) -> tuple[int, int]:
    """Take back running jobs whose process died (``dead_owners``) or whose lease ran out.

    A job that was running when its process died ``crash_limit`` times is failed instead of
    retried, so one file that crashes a decoder cannot put photobox into a crash loop.
    Returns (requeued, failed).
    """
    requeued = failed = 0
    rows: list[Any] = conn.execute(
        "SELECT id, owner, attempts, max_attempts, lease_until FROM jobs WHERE state = 'running'"
    ).fetchall()
    for job_id, owner, attempts, max_attempts, lease_until in rows:
        if owner not in dead_owners and (lease_until is None or lease_until >= now):
            continue
        if attempts >= min(crash_limit, max_attempts):
            fail(conn, job_id, f"photobox stopped while running this job ({attempts} times); not retried "
                 "automatically in case the job itself crashes it", now=now, retry_at=None)
            failed += 1
        else:
            conn.execute(
                "UPDATE jobs SET state = 'queued', owner = NULL, lease_until = NULL, updated_at = ?, "
                "error = 'interrupted: photobox stopped while this job ran' WHERE id = ?",
                (now, job_id),
            )
            requeued += 1
    return requeued, failed


def retry(conn: apsw.Connection, *, now: float, job_id: int | None = None, kind: str | None = None) -> int:
    """Queue failed jobs again (one by id, all of a kind, or all); return how many."""
    conn.execute(
        "UPDATE jobs SET state = 'queued', attempts = 0, run_after = 0, updated_at = :now "
        "WHERE state = 'failed' AND (:id IS NULL OR id = :id) AND (:kind IS NULL OR kind = :kind)",
        {"now": now, "id": job_id, "kind": kind},
    )
    return conn.changes()


def get(conn: apsw.Connection, job_id: int) -> JobRow | None:
    """One job by id."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return _row(row) if row else None


def counts(conn: apsw.Connection) -> dict[str, dict[str, int]]:
    """``{kind: {state: n}}`` for the jobs page."""
    result: dict[str, dict[str, int]] = {}
    for kind, state, n in conn.execute("SELECT kind, state, count(*) FROM jobs GROUP BY kind, state"):
        result.setdefault(kind, {})[state] = n
    return result


def list_jobs(
    conn: apsw.Connection, *, state: str, kind: str | None = None, after_id: int = 0, limit: int = 50
) -> list[JobRow]:
    """Jobs in ``state`` (optionally of ``kind``), keyset-paginated by id."""
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM jobs WHERE state = ? AND (? IS NULL OR kind = ?) AND id > ? "
        "ORDER BY id LIMIT ?",
        (state, kind, kind, after_id, limit),
    ).fetchall()
    return [_row(r) for r in rows]
