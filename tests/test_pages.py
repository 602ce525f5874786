"""The HTML pages, checked with a parser."""

from __future__ import annotations

from bs4 import BeautifulSoup

from photobox.jobs import store
from tests.conftest import csrf_from


def soup(response):
    assert response.status_code in (200, 286), response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def test_nav_and_landmarks(owner_client):
    s = soup(owner_client.get("/"))
    nav = s.find("nav", attrs={"aria-label": "Main"})
    assert [a["href"] for a in nav.find_all("a")] == ["/", "/search", "/albums", "/people", "/places", "/favorites", "/upload", "/settings",
                                                     "/archive", "/trash", "/duplicates", "/jobs", "/shares"]
    assert nav.find("a", attrs={"aria-current": "page"})["href"] == "/"
    assert s.find("main", id="main") and s.find("a", class_="skip")
    assert s.find("meta", attrs={"name": "viewport"})
    assert s.html["lang"] == "en"


def test_upload_page(owner_client):
    s = soup(owner_client.get("/upload"))
    files = s.find("input", id="pick-files")
    assert files.has_attr("multiple") and ".heic" in files["accept"]
    assert s.find("input", id="pick-folder").has_attr("webkitdirectory")
    assert s.find("script", src=lambda v: v and v.startswith("/static/js/upload.js"))
    assert owner_client.get("/static/js/upload.js").status_code == 200


def test_jobs_page_polls_while_busy_and_stops_when_idle(owner_client):
    box = owner_client.app.state.photobox
    s = soup(owner_client.get("/jobs"))
    assert "Nothing to do yet" in s.text
    with box.db.transaction() as conn:
        store.enqueue(conn, "nonexistent.kind", "1", now=box.clock())  # stays queued: no handler
        job_id = store.enqueue(conn, "thumbs", "999", now=box.clock())
        store.claim(conn, "thumbs", 1, owner="x:1", now=box.clock(), lease_seconds=600)
        store.fail(conn, job_id, "DecodeError: truncated image", now=box.clock(), retry_at=None)
    s = soup(owner_client.get("/jobs"))
    block = s.find(id="jobs-progress")
    assert block["hx-trigger"] == "every 2s"
    row = next(tr for tr in s.select("table.jobs tbody tr") if tr.th.text == "Thumbnails")
    assert [td.text for td in row.select("td.num")] == ["0", "0", "0", "1"]
    assert "truncated image" in s.find("pre", class_="error-text").text
    # Partial for HTMX: just the block.
    r = owner_client.get("/jobs", headers={"HX-Request": "true"})
    assert r.text.lstrip().startswith('<div id="jobs-progress"')
    # Retry from the page.
    r = owner_client.post("/jobs/retry", data={"job_id": job_id, "csrf_token": csrf_from(owner_client.get("/jobs").text)},
                          headers={"HX-Request": "true"})
    assert r.status_code == 200
    with box.db.reader() as conn:
        assert store.get(conn, job_id).state in ("queued", "running", "failed", "done")
        assert store.get(conn, job_id).attempts <= 1
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM jobs")
    r = owner_client.get("/jobs", headers={"HX-Request": "true"})
    assert r.status_code == 286 and "hx-trigger" not in r.text


def test_settings_page(owner_client):
    s = soup(owner_client.get("/settings"))
    assert s.find("h2", string="API keys") and s.find("h2", string="Account")


def test_libraries_in_settings(owner_client, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    from tests.gen import png_bytes

    (share / "x.png").write_bytes(png_bytes())
    token = csrf_from(owner_client.get("/settings").text)
    r = owner_client.post("/settings/libraries", data={"path": str(share), "name": "NAS", "exclusions": "*/tmp/*",
                                                        "scan_minutes": "0", "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 200 and "NAS" in r.text and "first scan" in r.text
    r = owner_client.post("/settings/libraries", data={"path": str(tmp_path / "missing"), "csrf_token": token},
                          headers={"HX-Request": "true"})
    assert r.status_code == 400 and "not a folder" in r.text
    s = soup(owner_client.get("/settings"))
    assert s.find(id="storage") and "Free space" in s.find(id="storage").text
