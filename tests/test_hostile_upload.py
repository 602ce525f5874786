"""Every file of the corpus's ``hostile/`` folder through the front door: uploaded over HTTP to
the real app, each one is refused with a clear 4xx message (nothing kept) or kept as an asset
whose jobs all finish (done, or failed with a one-line reason, never a traceback); the Motion
Photo scanner gives a sane answer or none; the server keeps answering. Complements
``tests/media/test_hostile_*.py`` (parsers alone) and ``tests/test_corpus_ingest.py`` (the
ingest function). Skipped when the corpus is absent (test data, not shipped)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from photobox.settings import load_settings
from photobox.web.app import create_app
from tests.fuzz import check_motion
from tests.resil import api_key_for, check_data_folder, find_corpus

CORPUS = find_corpus()
HOSTILE = sorted((CORPUS / "hostile").iterdir()) if CORPUS and (CORPUS / "hostile").is_dir() else []

pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not HOSTILE, reason="shared/corpus/hostile is absent (test data, not shipped)"),
              pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile") / "data"
    key = api_key_for(data)
    settings = load_settings({"data_dir": data, "workers": 2, "job_poll_seconds": 0.1, "job_max_attempts": 1}, env={})
    with TestClient(app=create_app(settings), raise_server_exceptions=False) as client:
        client.headers["x-api-key"] = key
        yield client, data


def _jobs_of(box, asset_id: int) -> list[tuple[str, str, str | None]]:
    with box.db.reader() as conn:
        return conn.execute("SELECT kind, state, error FROM jobs WHERE target = ?", (str(asset_id),)).fetchall()


def _wait_jobs(box, asset_id: int, timeout: float = 60) -> list[tuple[str, str, str | None]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = _jobs_of(box, asset_id)
        if not any(state in ("queued", "running") for _, state, _ in jobs):
            return jobs
        time.sleep(0.05)
    raise AssertionError(f"jobs of asset {asset_id} did not finish in {timeout} s: {_jobs_of(box, asset_id)}")


@pytest.mark.parametrize("path", HOSTILE, ids=lambda p: p.name)
def test_hostile_upload_is_refused_clearly_or_kept_safely(app_client, path: Path, tmp_path):
    client, data = app_client
    body = path.read_bytes()
    r = client.post("/api/assets", files={"file": (path.name, body, "application/octet-stream")})
    assert r.status_code in (200, 201, 400, 415), (r.status_code, r.text)
    if r.status_code >= 400:
        detail = r.json()["detail"]
        assert detail and "Traceback" not in detail and len(detail) < 300, detail
        assert not list((data / "tmp").glob("*.part")), "a refused upload left its temp file"
    else:
        asset_id = r.json()["id"]
        box = client.app.state.photobox
        for kind, state, error in _wait_jobs(box, asset_id):
            assert state == "done" or (state == "failed" and error and "Traceback" not in error
                                       and len(error.splitlines()) == 1), (kind, state, error)
        info = client.get(f"/api/assets/{asset_id}").json()
        assert info["checksum"] == hashlib.sha1(body).hexdigest()
        original = client.get(f"/api/assets/{asset_id}/original")
        assert original.status_code == 200 and original.content == body, "the original is kept byte for byte"
    # The Motion Photo scanner: no exception, and an answer that fits inside the file.
    out = tmp_path / "motion"
    out.mkdir()
    assert check_motion(path, out) == []
    assert client.get("/healthz").status_code == 200


def test_after_all_hostile_uploads_the_data_folder_is_consistent(app_client):
    client, data = app_client
    if not client.get("/api/assets/1").status_code == 200:
        pytest.skip("run with the hostile upload tests")
    report = check_data_folder(data, expect_tmp_empty=False)
    report.assert_ok()
