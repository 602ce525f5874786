"""Durable jobs: a SQLite-backed queue (``store``) and the asyncio scheduler that runs it."""

from photobox.jobs.registry import JobRegistry, JobSpec
from photobox.jobs.scheduler import Job, PermanentError, Scheduler, Stopping

__all__ = ["Job", "JobRegistry", "JobSpec", "PermanentError", "Scheduler", "Stopping"]
