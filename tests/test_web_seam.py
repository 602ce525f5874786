"""The web seam (photobox.web): every read a request makes runs under the web query time limit
(a caller may lower it, never raise it) and a timeout is a clear 503; every way a file comes in
streams through one intake that keeps the disk reserve and keeps nothing of a refused body;
no module imports another package's private names."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path

import pytest
from litestar.testing import TestClient

from photobox.db import Database, LimitedReader, QueryTimeout
from photobox.settings import load_settings
from photobox.web.app import create_app
from tests.conftest import csrf_from, do_setup
from tests.gen import jpeg_bytes
from tests.test_ingest import api_key

ROOT = Path(__file__).resolve().parents[1]
SLOW = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


def _stopped_after(reader: LimitedReader, **kw) -> float:
    started = time.monotonic()
    with pytest.raises(QueryTimeout):
        with reader.connection(**kw) as conn:
            conn.execute(SLOW).fetchone()
    return time.monotonic() - started


def test_a_caller_may_lower_the_time_limit_but_never_raise_it(tmp_path):
    db = Database(tmp_path / "x.db").open()
    try:
        assert _stopped_after(LimitedReader(db, 100), limit_ms=60_000) < 10  # asking for more gets the limit
        assert _stopped_after(LimitedReader(db, 60_000), limit_ms=50) < 10  # asking for less gets less

        async def slow(reader: LimitedReader) -> None:
            await reader(lambda c: c.execute(SLOW).fetchone(), limit_ms=60_000)

        with pytest.raises(QueryTimeout):
            asyncio.run(asyncio.wait_for(slow(LimitedReader(db, 100)), timeout=10))
    finally:
        db.close()


@pytest.fixture
def impatient(tmp_path):
    """An owner's client of an app whose web query time limit is 0 ms: any read longer than a
    few hundred rows is stopped. Albums, people and jobs have a few thousand rows each."""
    settings = load_settings({"data_dir": tmp_path / "data", "web_query_time_limit_ms": 0}, env={})
    with TestClient(app=create_app(settings)) as client:
        assert do_setup(client).status_code == 303
        box = client.app.state.photobox
        with box.db.transaction() as conn:
            for table in ("albums", "people"):
                conn.execute(f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                             f"INSERT INTO {table} (name, created_at, updated_at) SELECT 'x' || i, 0, 0 FROM n")
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                         "INSERT INTO jobs (kind, target, state, created_at, updated_at) "
                         "SELECT 'test.none', i, 'done', 0, 0 FROM n")
        yield client


@pytest.mark.parametrize("path", ["/albums", "/albums/choices", "/people", "/jobs", "/shares", "/search"])
def test_every_page_reads_under_the_time_limit_and_says_to_narrow_it(impatient, path):
    """Albums, people, jobs, shares and the search menus read without a limit before: a slow
    library held a reader thread for as long as the query took."""
    r = impatient.get(path, headers={"accept": "text/html"})
    assert r.status_code == 503, (path, r.status_code, r.text[:300])
    assert "this took too long; try a narrower view" in r.text and "<html" in r.text


def test_an_api_timeout_is_a_503_in_json(impatient):
    r = impatient.get("/api/jobs", headers=api_key(impatient))
    assert r.status_code == 503
    assert r.json() == {"status_code": 503, "detail": "this took too long; try a narrower view"}


def test_a_timeout_on_a_page_that_had_a_limit_is_no_longer_a_500(tmp_path):
    """The timeline always had the limit, and its timeout was a 500 "something went wrong"."""
    settings = load_settings({"data_dir": tmp_path / "data", "web_query_time_limit_ms": 0}, env={})
    with TestClient(app=create_app(settings)) as client:
        do_setup(client)
        with client.app.state.photobox.db.transaction() as conn:  # many photos make the month index slow
            conn.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000) "
                         "INSERT INTO assets (library_id, rel_path, original_name, checksum, size, mtime, kind, "
                         "sort_ts, local_date, created_at, updated_at) "
                         "SELECT 1, 'x/' || i, 'x.jpg', randomblob(20), 1, 0, 'image', i, '2020-01-01', 0, 0 FROM n")
        r = client.get("/", headers={"accept": "text/html"})
        assert r.status_code == 503 and "try a narrower view" in r.text


def _multipart(*parts: tuple[str, str, bytes]) -> tuple[bytes, str]:
    boundary = "seamB0undary"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{file}"\r\n'
                    f"Content-Type: image/jpeg\r\n\r\n".encode() + data + b"\r\n" for name, file, data in parts)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def _temp_files(box) -> list[Path]:
    """What is in tmp/ besides this process's owner lock (photobox.datadir.storage)."""
    return [p for p in box.path("tmp").rglob("*") if p.is_file() and not p.name.startswith("owner-")]


def test_an_upload_with_two_files_is_refused_not_joined(owner_client):
    """``POST /api/assets`` takes one file: a second part in ``file`` used to be appended to the
    first, and the two photos were stored as one damaged file."""
    c = owner_client
    body, ctype = _multipart(("file", "a.jpg", jpeg_bytes(seed=1)), ("file", "b.jpg", jpeg_bytes(seed=2)))
    r = c.post("/api/assets", content=body, headers={"content-type": ctype, **api_key(c)})
    assert r.status_code == 400 and "at most 1 file" in r.text, r.text
    box = c.app.state.photobox
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM assets").fetchone()[0] == 0
    assert not _temp_files(box)


@pytest.mark.parametrize("chunked", [False, True])
def test_a_backup_upload_keeps_the_disk_reserve(tmp_path, chunked):
    """The backup upload was the one way in without the disk reserve: a large database file
    could fill the disk the database itself needs."""
    settings = load_settings({"data_dir": tmp_path / "data", "disk_reserve_mb": 10 ** 9}, env={})
    with TestClient(app=create_app(settings)) as client:
        do_setup(client)
        token = csrf_from(client.get("/settings/backups").text)
        body, ctype = _multipart(("file", "kept.db", b"\0" * (2 << 20)))
        content = body if not chunked else iter([body[i:i + 65536] for i in range(0, len(body), 65536)])
        r = client.post("/settings/backups/upload", content=content,
                        headers={"content-type": ctype, "x-csrf-token": token})
        assert r.status_code == 507, r.text
        assert "kept in reserve" in r.text
        assert not _temp_files(client.app.state.photobox)


def _private_imports_across_packages() -> list[str]:
    found = []
    for path in (ROOT / "photobox").rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        own = module.split(".")[:2]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("photobox") \
                    and node.level == 0:
                target = node.module.split(".")
                private = [a.name for a in node.names if a.name.startswith("_") and not a.name.endswith("__")]
                private_module = any(part.startswith("_") and not part.endswith("__") for part in target[2:])
                if target[:2] != own and (private or private_module):
                    found.append(f"{path.relative_to(ROOT)}: from {node.module} import {', '.join(private) or '…'}")
    return found


def test_no_module_imports_another_packages_private_names():
    """``_name`` is its package's own (Litestar's convention): sharing once took the web's
    ``_parse_range`` to serve ranges itself; ``photobox.web.files.serve_file`` serves them for all."""
    assert _private_imports_across_packages() == []
