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


def test_import_scan_and_library_commands(tmp_path, settings):
    from tests.gen import jpeg_bytes, png_bytes

    src = tmp_path / "card"
    (src / "DCIM").mkdir(parents=True)
    (src / "DCIM" / "IMG_0001.JPG").write_bytes(jpeg_bytes(seed=1))
    (src / "DCIM" / "IMG_0002.JPG").write_bytes(jpeg_bytes(seed=2))
    (src / "DCIM" / "copy.jpg").write_bytes(jpeg_bytes(seed=1))
    (src / "DCIM" / "broken.jpg").write_bytes(b"\xff\xd8garbage")
    data = str(settings.data_dir)
    (src / "DCIM" / "IMG_0003").write_bytes(jpeg_bytes(seed=3))  # no extension: sniffed, imported
    (src / "DCIM" / "notes.txt").write_text("roll 12, summer")
    (src / "DCIM" / "Thumbs.db").write_bytes(b"\x00" * 64)
    (src / ".thumbnails").mkdir()
    r = run("import", str(src), "--data-dir", data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "imported 3, duplicates 1, refused 1, skipped 3" in r.stdout
    assert "broken.jpg" in r.stderr
    skipped = [line for line in r.stdout.splitlines() if line.startswith("skipped ")]
    assert skipped == [
        f"skipped   {src / '.thumbnails'}: folder left out: hidden, recycle bin or NAS thumbnails",
        f"skipped   {src / 'DCIM' / 'Thumbs.db'}: left out: a hidden, system or temporary file",
        f"skipped   {src / 'DCIM' / 'notes.txt'}: not a photo or video: its extension .txt is not a photo or "
        "video one, and it holds content photobox does not recognise",
    ]
    # Re-importing is harmless.
    r = run("import", str(src), "--data-dir", data)
    assert "imported 0, duplicates 4" in r.stdout
    r = run("jobs", "--data-dir", data)
    assert "thumbs" in r.stdout and "done=3" in r.stdout
    # External library: add, scan, list.
    share = tmp_path / "share"
    share.mkdir()
    (share / "p.png").write_bytes(png_bytes())
    (share / "scan.iiq").write_bytes(png_bytes(color=(1, 2, 3)))  # unknown extension, photo content
    (share / "list.csv").write_text("a,b\n")
    r = run("library", "add", str(share), "--name", "NAS", "--data-dir", data)
    assert r.returncode == 0 and "library 2 added" in r.stdout, r.stderr
    r = run("scan", "--data-dir", data)
    assert r.returncode == 0 and "'new': 2" in r.stdout and "'skipped': 1" in r.stdout, r.stdout + r.stderr
    assert (f"skipped   {share / 'list.csv'}: not a photo or video: its extension .csv is not a photo or video "
            "one, and it holds content photobox does not recognise") in r.stdout
    r = run("library", "list", "--data-dir", data)
    assert "NAS" in r.stdout and "new=2" in r.stdout and "skipped=1" in r.stdout
    assert run("library", "add", str(tmp_path / "nope"), "--data-dir", data).returncode == 2
