"""``photobox jobs``: job counts by kind, the failed jobs with their file and reason, and
``--retry`` (everything failed, one kind, or one job)."""

from __future__ import annotations

import argparse
from typing import TextIO

from photobox.settings import Settings

__all__ = ["add_commands", "cmd_jobs", "parse_retry"]


def parse_retry(value: str | None) -> tuple[str, int | str | None] | None:
    """``--retry`` → None (not asked), ``("all", None)``, ``("job", 12)`` or ``("kind", "thumbs")``."""
    if value is None:
        return None
    if value == "all":
        return "all", None
    if value.isdigit():
        return "job", int(value)
    return "kind", value


def _retry(box, what: tuple[str, int | str | None], out: TextIO) -> int:
    from photobox.jobs import store

    how, value = what
    with box.db.transaction() as conn:
        if how == "job" and isinstance(value, int):
            job = store.get(conn, value)
            if job is None or job.state != "failed":
                out.write(f"photobox: job {value} is not a failed job (see the list from `photobox jobs`)\n")
                return 2
            n = store.retry(conn, now=box.clock(), job_id=value)
        elif how == "kind" and isinstance(value, str):
            known = set(box.scheduler.registry.titles()) | {k for (k,) in conn.execute("SELECT DISTINCT kind FROM jobs")}
            if value not in known:
                out.write(f"photobox: no job kind {value!r}; kinds: {', '.join(sorted(known))}\n")
                return 2
            n = store.retry(conn, now=box.clock(), kind=value)
        else:
            n = store.retry(conn, now=box.clock())
    out.write(f"queued {n} failed job(s) again; a running photobox server does them (else its next start)\n")
    return 0


def cmd_jobs(settings: Settings, out: TextIO, *, retry: str | None = None, limit: int = 50) -> int:
    """Print counts by kind and state, then the failed jobs (at most ``limit``; 0 = all)."""
    from photobox.core import Photobox
    from photobox.jobs import store
    from photobox.jobs.failures import list_failures

    box = Photobox(settings).open()
    try:
        what = parse_retry(retry)
        if what is not None and (status := _retry(box, what, out)):
            return status
        names = box.scheduler.registry.titles()
        with box.db.reader() as conn:
            counts = store.counts(conn)
        width = max((len(k) for k in counts), default=0)
        for kind, states in sorted(counts.items()):
            out.write(f"{kind:{width}}  {names.get(kind, kind):22} "
                      + "  ".join(f"{state}={n}" for state, n in sorted(states.items())) + "\n")
        if not counts:
            out.write("no jobs\n")
        failed_total = sum(states.get("failed", 0) for states in counts.values())
        if failed_total:
            out.write(f"\nfailed ({failed_total}):\n")
            after, shown = 0, 0
            while limit <= 0 or shown < limit:
                page = min(200, limit - shown) if limit > 0 else 200
                with box.db.reader() as conn:
                    failures = list_failures(conn, box.pipeline.asset_kinds(), after_id=after, limit=page)
                for f in failures:
                    about = (f"asset {f.asset_id} {f.file_name}" if f.asset_id is not None
                             else f.file_name or f.target or "-")
                    out.write(f"  job {f.job_id}  {f.kind}  {about}: {f.first_line}\n")
                shown += len(failures)
                if len(failures) < page:
                    break
                after = failures[-1].job_id
            if shown < failed_total:
                out.write(f"  … and {failed_total - shown} more (--limit 0 lists them all)\n")
            from photobox.hints import command

            out.write(f"Retry with `{command(settings.data_dir, 'jobs', '--retry')}` (all), or "
                      "with `--retry KIND` (e.g. thumbs) or `--retry JOB` instead of `--retry`.\n")
    finally:
        box.close()
    return 0


def add_commands(commands) -> None:
    """``photobox jobs`` (``commands`` is a :class:`photobox.cli.common.Commands`)."""
    import sys

    from photobox.cli.common import settings_from

    jobs = commands.add("jobs", "show job counts by kind and state, and the failed jobs with their reasons",
                        lambda a: cmd_jobs(settings_from(a), sys.stdout, retry=a.retry, limit=a.limit))
    jobs.add_argument("--retry", nargs="?", const="all", default=None, metavar="KIND|JOB",
                      help="queue failed jobs again first: all of them, one kind (e.g. thumbs) or one job id")
    jobs.add_argument("--limit", type=_count, default=50, help="list at most this many failed jobs (0 = all)")


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
