"""A file photobox cannot show: the timeline tile, the viewer (reason, Retry, Download
original), the Processing page and ``photobox jobs`` say what happened; and where an
undated file lands on the timeline."""

from __future__ import annotations

import calendar
import re
import time
from datetime import datetime

import pytest
from bs4 import BeautifulSoup

from photobox.jobs import store
from photobox.jobs.failures import list_failures, reason
from photobox.library import assets
from tests.conftest import csrf_from
from tests.gen import jpeg_bytes
from tests.test_cli import run
from tests.test_ingest import api_key, wait_idle

JUNE_2019 = 1_560_000_000.0  # 2019-06-08 13:20 UTC


def heic_bytes(seed: int = 0) -> bytes:
    """A small HEIC without a date (pillow-heif)."""
    import io

    import pillow_heif
    from PIL import Image

    buf = io.BytesIO()
    pillow_heif.from_pillow(Image.open(io.BytesIO(jpeg_bytes(taken=None, seed=seed, size=(640, 480))))).save(
        buf, quality=50)
    return buf.getvalue()


def truncated_heic(seed: int = 0) -> bytes:
    """A HEIC cut off by an interrupted copy: its metadata reads, its picture cannot be made
    (a truncated HEIF is refused rather than shown with grey tiles)."""
    data = heic_bytes(seed)
    return data[: len(data) * 2 // 3]


def upload(client, data: bytes, name: str, **fields) -> int:
    r = client.post("/api/assets", files={"file": (name, data, "application/octet-stream")}, data=fields,
                    headers=api_key(client))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def soup(response):
    assert response.status_code in (200, 286), response.text[:500]
    return BeautifulSoup(response.text, "html.parser")


def thumbs_job(box, asset_id: int):
    with box.db.reader() as conn:
        row = conn.execute("SELECT id FROM jobs WHERE kind = 'thumbs' AND target = ?", (str(asset_id),)).fetchone()
        return store.get(conn, row[0])


def test_a_file_that_cannot_be_read_says_so_and_can_be_retried(owner_client):
    c = owner_client
    box = c.app.state.photobox
    good = upload(c, jpeg_bytes(taken="2019:06:08 10:00:00", seed=1), "good.jpg")
    bad = upload(c, truncated_heic(), "broken.heic", mtime=str(JUNE_2019))
    wait_idle(box)
    assert thumbs_job(box, bad).state == "failed"

    # The tile: "Could not read" and its name, not "Processing…" forever; filed under its file time.
    page = soup(c.get("/"))
    tile = page.select_one(f'a.tile[data-id="{bad}"]')
    assert "failed" in tile["class"] and "Could not read" in tile.text and "broken.heic" in tile.text
    assert "Processing" not in tile.text
    assert tile.find_parent("section")["data-day"] == "2019-06-08"
    assert page.select_one(f'a.tile[data-id="{good}"] img')

    # The viewer: the reason in words, Retry and Download original; no broken image.
    viewer = soup(c.get(f"/photos/{bad}?in=timeline"))
    panel = viewer.find(id="unreadable")
    assert re.fullmatch(r"Could not read this file: truncated HEI[CF]", panel.find(class_="unreadable-title").text)
    assert viewer.find(id="media") is None
    download = viewer.find(id="download-original")
    assert download["href"] == f"/api/assets/{bad}/original?download=1"
    assert c.get(download["href"]).content == truncated_heic()
    form = panel.find("form")
    assert form["action"] == "/jobs/retry" and form.find("input", attrs={"name": "csrf_token"})["value"]
    facts = dict(zip([dt.text for dt in viewer.select("dl.facts dt")], [dd.text for dd in viewer.select("dl.facts dd")]))
    assert "Taken" not in facts
    assert facts["Date"].startswith("2019-06-08 ") and "a guess" in facts["Date"] \
        and "modification time" in facts["Date"]

    # Retry without the CSRF token is refused; with it, the job runs again.
    fields = {i["name"]: i["value"] for i in form.find_all("input")}
    assert c.post("/jobs/retry", data={k: v for k, v in fields.items() if k != "csrf_token"},
                  follow_redirects=False).status_code == 403
    # Pretend a newer decoder can read it now: the retry makes its thumbnail and clears the error.
    from photobox.library.paths import original_path

    with box.db.reader() as conn:
        a = assets.get_asset(conn, bad)
        path = original_path(box, conn, a.library_id, a.rel_path)
    path.write_bytes(heic_bytes(seed=0))
    r = c.post("/jobs/retry", data=fields, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/photos/{bad}?in=timeline"
    wait_idle(box)
    assert thumbs_job(box, bad).state == "done"
    viewer = soup(c.get(f"/photos/{bad}?in=timeline"))
    assert viewer.find(id="unreadable") is None and viewer.find("img", id="media")
    assert not viewer.select("aside.details p.error")


def test_undated_upload_without_a_file_time_is_placed_at_its_import_and_called_a_guess(owner_client):
    c = owner_client
    box = c.app.state.photobox
    before = time.time()
    asset_id = upload(c, truncated_heic(seed=3), "nodate.heic")
    wait_idle(box)
    with box.db.reader() as conn:
        a = assets.get_asset(conn, asset_id)
    local = datetime.fromtimestamp(before)
    assert a.local_date == local.date().isoformat()
    assert abs(a.sort_ts - calendar.timegm(local.timetuple())) < 120  # the local wall clock of the import
    facts = soup(c.get(f"/photos/{asset_id}")).select("dl.facts dd")
    assert "a guess" in facts[0].text and "when it was added to photobox" in facts[0].text


def test_a_file_time_that_cannot_be_right_is_not_used(owner_client):
    """An mtime of 0 (a tool that lost it) or weeks ahead must not pin a file to 1970 or the top."""
    c = owner_client
    box = c.app.state.photobox
    future = upload(c, truncated_heic(seed=4), "future.heic", mtime=str(time.time() + 40 * 86400))
    epoch = upload(c, truncated_heic(seed=5), "epoch.heic", mtime="0.5")
    wait_idle(box)
    today = datetime.fromtimestamp(time.time()).date().isoformat()
    with box.db.reader() as conn:
        for asset_id in (future, epoch):
            a = assets.get_asset(conn, asset_id)
            assert a.local_date == today, (a.original_name, a.local_date)
            assert assets.date_basis(a.taken_at, a.taken_at_source, a.mtime,
                                     conn.execute("SELECT created_at FROM assets WHERE id = ?",
                                                  (asset_id,)).fetchone()[0]) == "added"


def test_undated_files_use_the_local_wall_clock(monkeypatch):
    """The metadata reader turns an mtime into local wall-clock time; the fallback must too,
    or an undated file lands hours (and, near midnight, a day) away from its neighbours."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        stamp = calendar.timegm((2021, 7, 15, 2, 30, 0))  # 22:30 on 14 July in New York
        sort_ts, day = assets.sort_key(None, stamp, stamp + 5)
        assert day == "2021-07-14"
        assert sort_ts == calendar.timegm((2021, 7, 14, 22, 30, 0))
        assert assets.sort_key("2021-07-14T22:30:00", stamp) == (sort_ts, day)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_every_job_kind_has_a_name(box):
    """Every kind photobox registers (the box fixture opens one, importing every feature) is named;
    a plugin's kinds (tests/plugins registers some) show as they are."""
    registry = box.scheduler.registry
    kinds = {spec.kind for spec in registry if spec.handler.__module__.startswith("photobox.")}
    assert {"thumbs", "clip", "faces", "places", "places.all", "dupes"} <= kinds
    assert sorted(spec.kind for spec in registry if not spec.title) == []  # each declared with its title
    names = registry.titles()
    assert names["dupes"] == "Duplicates" and names["places.all"] == "Places (catching up)"
    assert names.get("a.plugin.kind", "a.plugin.kind") == "a.plugin.kind"


@pytest.mark.parametrize("error, mime, expected", [
    ("cannot make a thumbnail: truncated image", "image/jpeg", "truncated JPEG"),
    ("cannot make a thumbnail: truncated image", "image/heic", "truncated HEIC"),
    ("cut.heic: cannot make a thumbnail: truncated HEIF: the file ends before its image data does", "image/heic",
     "truncated HEIF"),
    ("cannot make a thumbnail: corrupt image (decoder error -2)", "image/tiff", "damaged TIFF data"),
    ("cannot make a thumbnail: not a readable video ([Errno 1094995529] Invalid data)", "video/mp4",
     "not a readable video (damaged, or not a video)"),
    ("DecoderCrashed: the decoder crashed with SIGSEGV (a bug in a native decoder…)\n  File x", "image/heic",
     "the decoder crashed on this file"),
    ("DecoderTimeout: the decoder took longer than 120 s on this file (thumbs) and was stopped", None,
     "the decoder took longer than 120 s on this file (thumbs) and was stopped"),
    ("the original is missing: /data/library/x.jpg", None, "the original file is missing"),
    ("cannot make a thumbnail: image too large: 6,000,000 MP (limit 100 MP)", "image/bmp",
     "image too large: 6,000,000 MP (limit 100 MP)"),
    ("OSError: [Errno 5] Input/output error\nTraceback…", None, "OSError: [Errno 5] Input/output error"),
    ("", None, "unknown error"),
])
def test_reasons_in_words(error, mime, expected):
    assert reason(error, mime) == expected


def test_processing_page_lists_failed_files_with_names_and_retry(owner_client):
    c = owner_client
    box = c.app.state.photobox
    bad = upload(c, truncated_heic(seed=6), "IMG_0007.HEIC")
    wait_idle(box)
    with box.db.transaction() as conn:
        for kind in ("dupes", "places.all", "clip"):
            job = store.enqueue(conn, kind, "", now=box.clock())
            store.claim(conn, kind, 1, owner="x:1", now=box.clock(), lease_seconds=600)
            store.fail(conn, job, f"RuntimeError: {kind} broke\n  File \"x.py\"", now=box.clock(), retry_at=None)
    page = soup(c.get("/jobs"))
    names = [th.text for th in page.select("table.jobs tbody th")]
    assert "Duplicates" in names and "Places (catching up)" in names and "Search index" in names
    assert not {"dupes", "places.all", "clip"} & set(names)
    items = page.select("ul.failures li[data-job]")
    thumbs = next(li for li in items if "Thumbnails" in li.strong.text)
    assert thumbs.find("a", href=f"/photos/{bad}").text == "IMG_0007.HEIC"
    assert re.fullmatch(r"Truncated HEI[CF]", thumbs.find(class_="reason").text)
    assert thumbs.find("button").text == "Retry"
    dupes = next(li for li in items if li.strong.text == "Duplicates")
    assert dupes.find(class_="reason").text == "RuntimeError: dupes broke"
    job_id = int(thumbs["data-job"])
    r = c.post("/jobs/retry", data={"job_id": job_id, "csrf_token": csrf_from(c.get("/jobs").text)},
               headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.text.lstrip().startswith('<div id="jobs-progress"')
    with box.db.reader() as conn:
        assert store.get(conn, job_id).state in ("queued", "running", "failed")
        assert store.get(conn, job_id).attempts <= 1


def test_jobs_command_lists_failures_and_retries_by_kind_or_id(tmp_path, settings):
    card = tmp_path / "card"
    card.mkdir()
    (card / "ok.jpg").write_bytes(jpeg_bytes(seed=1))
    (card / "half.heic").write_bytes(truncated_heic(seed=7))
    data = str(settings.data_dir)
    r = run("import", str(card), "--data-dir", data)
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("jobs", "--data-dir", data)
    assert r.returncode == 0, r.stderr
    assert "Thumbnails" in r.stdout and "failed=1" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("job ") and "half.heic" in x)
    job_id = int(line.split()[1])
    assert line.strip().startswith(f"job {job_id}  thumbs  asset ") and "half.heic" in line \
        and "cannot make a thumbnail: truncated" in line
    assert "--retry KIND" in r.stdout

    r = run("jobs", "--retry", "thumb", "--data-dir", data)
    assert r.returncode == 2 and "no job kind 'thumb'" in r.stdout and "thumbs" in r.stdout
    r = run("jobs", "--retry", "99999", "--data-dir", data)
    assert r.returncode == 2 and "not a failed job" in r.stdout
    r = run("jobs", "--retry", "thumbs", "--data-dir", data)
    assert r.returncode == 0 and "queued 1 failed job(s) again" in r.stdout
    assert "queued=1" in r.stdout
    from photobox.core import Photobox

    box = Photobox(settings).open()
    try:
        with box.db.transaction() as conn:
            store.claim(conn, "thumbs", 1, owner="x:1", now=box.clock(), lease_seconds=600)
            store.fail(conn, job_id, "cannot make a thumbnail: truncated image", now=box.clock(), retry_at=None)
            assert [f.job_id for f in list_failures(conn, box.pipeline.asset_kinds())] == [job_id]
    finally:
        box.close()
    r = run("jobs", "--retry", str(job_id), "--data-dir", data)
    assert r.returncode == 0 and "queued 1 failed job(s) again" in r.stdout
    r = run("jobs", "--retry", "--data-dir", data)
    assert r.returncode == 0 and "queued 0 failed job(s) again" in r.stdout
