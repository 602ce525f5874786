"""A test plugin: a job kind that takes a while and leaves a marker file per target.

The kill -9 test queues these, kills the server mid-run and checks every job finishes
after a restart. The handler is idempotent like every real one: write a temp file, rename.
"""

import os
import time
from pathlib import Path

from photobox.plugins import Feature

feature = Feature("test.slow")


@feature.job("test.slow", title="Slow test jobs", concurrency=2)
def slow(job) -> None:
    out = Path(job.args["dir"]) / f"{job.target}.done"
    time.sleep(float(job.args.get("seconds", 0.2)))
    tmp = out.with_suffix(".tmp")
    tmp.write_text(job.target)
    os.replace(tmp, out)
