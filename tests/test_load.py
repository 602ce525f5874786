"""A few seconds of ``scripts/bench load`` as a smoke test: browsing, searching and uploading
against the real server while its jobs run, from this (second) process. No request fails, no
"database is locked" anywhere, and every upload answered 2xx is an asset with the right SHA-1.
The numbers are for ``scripts/bench load`` (30 s, 300 assets); here only correctness counts."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.server import ROOT

pytestmark = pytest.mark.e2e


def _bench():
    spec = importlib.util.spec_from_file_location("bench_load", ROOT / "scripts" / "bench_load.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_load"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_short_load_has_no_errors_and_loses_no_upload(tmp_path):
    summary = _bench().run(3, 16, browsers=2, uploaders=1, image_size=(640, 480), baseline=False, work=tmp_path)
    assert summary["pending_before"] > 0, "the load should meet running jobs"
    assert summary["errors"] == 0, summary["load"]
    assert summary["locked"] == 0 and summary["log_locked"] == 0
    assert summary["log_tracebacks"] == 0
    assert summary["uploads"] > 0 and summary["upload_problems"] == []
    assert summary["folder_problems"] == []
    assert {"timeline", "viewer", "thumbnail", "upload", "pages"} <= set(summary["load"])
