"""End-to-end: the real granian server on 127.0.0.1, driven over HTTP."""

from __future__ import annotations

import re
import time

import httpx
import pytest

from photobox.db import connect
from photobox.jobs import store
from tests.conftest import PASSWORD
from tests.server import Server

pytestmark = pytest.mark.e2e


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def test_first_run_login_home_and_stop(tmp_path):
    server = Server(tmp_path / "data").start()
    try:
        with httpx.Client(base_url=server.url, follow_redirects=True) as c:
            r = c.get("/", headers={"accept": "text/html"})
            assert r.url.path == "/setup" and "Create account" in r.text
            r = c.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD,
                                       "csrf_token": _csrf(r.text)})
            assert r.status_code == 200 and r.url.path == "/"
            assert "No photos yet" in r.text
            r = c.post("/logout", data={"csrf_token": _csrf(r.text)})
            assert r.url.path == "/login"
            r = c.post("/login", data={"username": "alice", "password": PASSWORD, "next": "/settings",
                                       "csrf_token": _csrf(r.text)})
            assert r.url.path == "/settings" and "API keys" in r.text
            assert c.get("/api/server").json()["schema"] >= 1
            # The OpenAPI schema is served, and static files (htmx) come from photobox itself.
            assert c.get("/api/schema").json()["openapi"].startswith("3.")
            assert c.get("/static/vendor/htmx.min.js").status_code == 200
        assert len(server.pids()) == 2, "granian main process + exactly one worker"
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.log.read_text()


def _job_states(db_path):
    conn = connect(db_path, readonly=True)
    try:
        return {t: s for t, s in conn.execute("SELECT target, state FROM jobs WHERE kind = 'test.slow'")}
    finally:
        conn.close()


def test_sigkill_mid_job_and_restart_loses_no_committed_job(tmp_path):
    data = tmp_path / "data"
    out = tmp_path / "out"
    out.mkdir()
    env = {"PHOTOBOX_PLUGINS": "tests.plugins.slow_jobs"}
    server = Server(data, env=env).start()
    targets = [f"a{i:02d}" for i in range(12)]
    try:
        # Queue through a second connection, as the CLI would; the server polls for it.
        conn = connect(data / "photobox.db")
        with conn:
            for t in targets:
                store.enqueue(conn, "test.slow", t, {"dir": str(out), "seconds": 0.3}, now=time.time())
        conn.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = _job_states(data / "photobox.db")
            if "running" in states.values() and "done" in states.values():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"jobs never started: {states}")
    finally:
        server.kill()
    before = _job_states(data / "photobox.db")
    assert set(before) == set(targets), "a committed job disappeared"
    assert "running" in before.values() and "queued" in before.values()

    server = Server(data, env=env, port=server.port).start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            after = _job_states(data / "photobox.db")
            if set(after.values()) == {"done"}:
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"jobs did not all finish after restart: {after}")
    finally:
        server.stop()
    assert sorted(p.stem for p in out.glob("*.done")) == targets
    assert not list(out.glob("*.tmp"))
