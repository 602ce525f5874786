"""The photobox command, run as a real subprocess against a data folder."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from photobox import auth
from photobox.core import Photobox

ROOT = Path(__file__).resolve().parents[1]


def run(*args, env=None, input=None):
    import os

    return subprocess.run([sys.executable, "-m", "photobox", *args], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, input=input, timeout=120)


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("photobox ")
    r = run("--help")
    assert "serve" in r.stdout and "doctor" in r.stdout


def test_user_set_password_creates_and_resets(tmp_path, settings):
    data = str(settings.data_dir)
    r = run("user", "set-password", "--username", "carol", "--password-from-env", "--data-dir", data,
            env={"PHOTOBOX_NEW_PASSWORD": "a long password"})
    assert r.returncode == 0, r.stderr
    box = Photobox(settings).open()
    with box.db.reader() as conn:
        assert auth.authenticate(conn, "carol", "a long password")
    box.close()
    r = run("--data-dir", data, "user", "set-password", "--password-from-env", env={"PHOTOBOX_NEW_PASSWORD": "short"})
    assert r.returncode == 2 and "at least 8" in r.stderr


def test_doctor(tmp_path, settings):
    Photobox(settings).open().close()
    r = run("doctor", "--data-dir", str(settings.data_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "integrity ok" in r.stdout and "schema" in r.stdout
    assert "no models" in r.stdout  # ML shown as unavailable, not an error


def test_doctor_fails_on_newer_schema(settings):
    Photobox(settings).open().close()
    from photobox.db import connect

    conn = connect(settings.db_path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    r = run("doctor", "--data-dir", str(settings.data_dir))
    assert r.returncode == 1 and "newer than this photobox" in r.stdout


def test_bad_setting_is_a_clear_error(tmp_path):
    r = run("doctor", "--port", "eighty", "--data-dir", str(tmp_path))
    assert r.returncode == 2 and "port" in r.stderr and "Traceback" not in r.stderr


def test_jobs_command(settings):
    Photobox(settings).open().close()
    r = run("jobs", "--data-dir", str(settings.data_dir))
    assert r.returncode == 0 and "no jobs" in r.stdout


def test_systemd_unit_verifies(tmp_path):
    unit = (ROOT / "systemd" / "photobox.service").read_text()
    for needed in ("User=photobox", "ReadWritePaths=/var/lib/photobox", "ProtectSystem=strict", "NoNewPrivileges=yes",
                   "PrivateTmp=yes", "Restart=on-failure", "PHOTOBOX_DATA_DIR=/var/lib/photobox"):
        assert needed in unit, needed
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at this machine's photobox entry point.
    exe = shutil.which("photobox") or str(Path(sys.executable).with_name("photobox"))
    if not Path(exe).exists():
        pytest.skip("the photobox entry point is not installed")
    local = tmp_path / "photobox.service"
    local.write_text(unit.replace("/opt/photobox/venv/bin/photobox", exe))
    r = subprocess.run([tool, "verify", str(local)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (r.stdout + r.stderr).splitlines() if "photobox.service" in line]
    assert r.returncode == 0 and not problems, r.stdout + r.stderr
