"""Near-duplicates: hashes, the pair rule, grouping, the dupes job, and the review page's
actions (keep one → the others in the trash with albums/favourite/description merged into
the keeper; "not duplicates" remembered across a re-run)."""

from __future__ import annotations

import asyncio
import io
import time
from datetime import datetime

import numpy as np
import pytest
from bs4 import BeautifulSoup
from PIL import Image

from photobox.duplicates import detect, hashing, store
from photobox.duplicates.job import queue_dupes, run_dupes
from photobox.library.ingest import hash_file, ingest_temp_file
from tests.conftest import csrf_from
from tests.gen_dupes import _exif, _jpeg, frame, scene_canvas
from tests.test_ingest import api_key, wait_idle

# -- hashing and the rule (pure) ---------------------------------------------------------

def _scene(seed: int, size=(600, 450)) -> Image.Image:
    canvas, shapes = scene_canvas(seed, size=(size[0] + 100, size[1] + 75))
    return frame(canvas, shapes, seed, 0, frame_size=size)


def test_phash_is_stable_under_resize_and_recompression_and_far_for_other_photos():
    im = _scene(1)
    h = hashing.hash_image(im)
    small = hashing.hash_image(im.resize((300, 225)))
    again = hashing.hash_image(Image.open(io.BytesIO(_jpeg(im, quality=25))))
    other = hashing.hash_image(_scene(2))
    assert hashing.hamming(h.phash, small.phash) <= 4 and hashing.hamming(h.phash, again.phash) <= 4
    assert hashing.hamming(h.phash, other.phash) > 16
    # Signed 64-bit (SQLite INTEGER) and deterministic.
    assert -(1 << 63) <= h.phash < (1 << 63) and hashing.hash_image(im) == h


def test_hash_of_transparent_and_tiny_images():
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))
    assert hashing.hash_image(rgba) == hashing.hash_image(Image.new("RGB", (40, 30), "white"))
    hashing.hash_image(Image.new("L", (5, 5)))  # smaller than the hash grid: no error


def test_hamming_vectorised():
    a = np.array([0, -1, 5], dtype=np.int64)
    assert hashing.hamming(a, 0).tolist() == [0, 64, 2]
    assert int(hashing.hamming(hashing.to_signed(1 << 63), 0)) == 1


def P(i, ts=None, src="exif", taken=None, p=0, d=0):
    taken = taken or (datetime.utcfromtimestamp(ts).isoformat() if ts is not None else None)
    return detect.Photo(i, p, d, ts, taken, src if taken else None)


def test_rule_bursts_copies_and_unknown_moments():
    t = 1_600_000_000.0
    # Same camera time: a crop-sized distance is still a copy.
    assert detect.is_duplicate(P(1, t), P(2, t), 14, 12)
    # Seconds apart from the camera: never, however close the pixels.
    assert not detect.is_duplicate(P(1, t), P(2, t + 2), 0, 0)
    # Sub-seconds that differ (a fast burst within one second) are different moments too.
    a = detect.Photo(1, 0, 0, t + 0.1, "2020-09-13T12:26:40.100", "exif")
    b = detect.Photo(2, 0, 0, t + 0.3, "2020-09-13T12:26:40.300", "exif")
    assert detect.different_moments(a, b)
    # A copy that lost its sub-seconds is still the same moment.
    c = detect.Photo(3, 0, 0, t, "2020-09-13T12:26:40", "exif")
    assert not detect.different_moments(a, c)
    # No camera time on one side (messaging copy; mtime does not count): strict thresholds.
    assert detect.is_duplicate(P(1, t), P(2, t + 99, src="mtime"), 6, 8)
    assert not detect.is_duplicate(P(1, t), P(2, None), 14, 12)


def test_grouping_closest_first_with_cannot_links():
    # 1 and 2 are burst frames (cannot), 3 is a copy of 1 that also looks like 2.
    cannot = lambda x, y: {x, y} == {1, 2}  # noqa: E731
    groups = detect.group_pairs([(1, 2, 3), (2, 3, 6), (1, 3, 2)], cannot)
    assert groups == [[1, 3]]
    assert detect.group_pairs([(4, 5, 1), (5, 6, 1), (7, 8, 0)], lambda x, y: False) == [[4, 5, 6], [7, 8]]


def test_candidate_pairs_matches_brute_force():
    rng = np.random.default_rng(3)
    base = rng.integers(-(1 << 62), 1 << 62, 50, dtype=np.int64)
    flips = np.array([1 << int(b) for b in rng.integers(0, 62, 50)], dtype=np.int64)
    p = np.concatenate([base, base ^ flips])
    d = np.concatenate([base, base])
    ids = np.arange(100, dtype=np.int64)
    found = detect.candidate_pairs(ids[:10], p[:10], d[:10], ids, p, d, block=3)
    expect = sorted((min(i, j), max(i, j), int(hashing.hamming(p[i], p[j])), int(hashing.hamming(d[i], d[j])))
                    for i in range(10) for j in range(100) if i != j and hashing.hamming(p[i], p[j]) <= detect.MAX_PHASH
                    and hashing.hamming(p[i], p[j]) + hashing.hamming(d[i], d[j]) <= 32)
    assert found == sorted(set(expect)) and any(b == a + 50 for a, b, _, _ in found)


def test_keeper_prefers_pixels_then_camera_original_then_metadata():
    base = {"width": 1000, "height": 800, "taken_at_source": "exif", "make": "X", "mime": "image/jpeg",
            "latitude": None, "description": None, "favorite": 0, "size": 500, "mtime": 10.0, "created_at": 1.0}
    rows = [{**base, "id": 1, "width": 500, "height": 400, "size": 900},
            {**base, "id": 2, "make": None, "taken_at_source": "mtime", "mime": "image/png", "size": 3000},
            {**base, "id": 3},
            {**base, "id": 4, "latitude": 1.0, "created_at": 5.0}]
    assert store.suggest_keeper(rows) == 4
    assert store.suggest_keeper(rows[:3]) == 3
    # The HEIC a phone wrote over the JPEG exported from it; the older file of two equals.
    assert store.suggest_keeper([{**base, "id": 5, "size": 900}, {**base, "id": 6, "mime": "image/heic"}]) == 6
    assert store.suggest_keeper([{**base, "id": 7, "size": 900, "mtime": 20.0}, {**base, "id": 8}]) == 8


# -- through the database -------------------------------------------------------------------

def add(box, name: str, data: bytes, mtime: float = 1_650_000_000.0) -> int:
    tmp = box.path("tmp", name)
    tmp.write_bytes(data)
    checksum, size = hash_file(tmp)
    return ingest_temp_file(box, tmp, checksum, size, original_name=name, mtime=mtime).asset_id


def run_jobs(box):
    asyncio.run(box.scheduler.run_until_idle())


@pytest.fixture
def library(box):
    """A photo with two copies, a three-frame burst, and an unrelated photo."""
    im = _scene(11, size=(800, 600))
    taken = datetime(2020, 5, 4, 12, 0, 0)
    ids = {"orig": add(box, "orig.jpg", _jpeg(im, 92, _exif(taken))),
           "small": add(box, "small.jpg", _jpeg(im.resize((400, 300)), 85, _exif(taken))),
           "chat": add(box, "IMG-chat.jpg", _jpeg(im.resize((640, 480)), 70))}
    canvas, shapes = scene_canvas(12, size=(900, 675))
    for t in range(3):
        ids[f"f{t}"] = add(box, f"burst{t}.jpg",
                           _jpeg(frame(canvas, shapes, 12, t, frame_size=(800, 600)), 92,
                                 _exif(datetime(2020, 5, 4, 13, 0, t * 2))))
    ids["other"] = add(box, "other.jpg", _jpeg(_scene(13, size=(800, 600)), 90, _exif(taken)))
    run_jobs(box)
    return ids


def groups_of(box):
    with box.db.reader() as conn:
        return [sorted(m.id for m in g.members) for g in store.list_groups(conn, limit=100)]


def test_job_groups_copies_not_bursts_and_is_idempotent(box, library):
    asyncio.run(queue_dupes(box))
    run_jobs(box)
    expected = [sorted([library["orig"], library["small"], library["chat"]])]
    assert groups_of(box) == expected
    with box.db.reader() as conn:
        keeper = conn.execute("SELECT keeper_id FROM dupe_groups").fetchone()[0]
        hashed = conn.execute("SELECT count(*) FROM dupe_hashes").fetchone()[0]
    assert keeper == library["orig"] and hashed == 7
    assert run_dupes(box)["hashed"] == 0 and groups_of(box) == expected
    # Nothing left to do: the periodic task does not queue the job again.
    asyncio.run(queue_dupes(box))
    with box.db.reader() as conn:
        assert conn.execute("SELECT state FROM jobs WHERE kind = 'dupes'").fetchone() == ("done",)


def test_trashed_photo_leaves_its_group_and_purged_rows_cascade(box, library):
    from photobox.library import actions, assets

    run_dupes(box)
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [library["chat"]], now=time.time())
    assert groups_of(box) == [sorted([library["orig"], library["small"]])]  # hidden at once
    run_dupes(box)
    actions.purge(box, [library["chat"]])
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM dupe_hashes WHERE asset_id = ?", (library["chat"],)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dupe_links WHERE ? IN (a, b)", (library["chat"],)).fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM dupe_nearest WHERE ? IN (asset_id, neighbour_id)",
                            (library["chat"],)).fetchone() == (0,)


# -- the review page -------------------------------------------------------------------------

def upload(c, key, name, data):
    r = c.post("/api/assets", files={"file": (name, data, "image/jpeg")}, headers=key)
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def web_dupes(owner_client):
    c = owner_client
    key = api_key(c)
    im = _scene(21, size=(800, 600))
    taken = datetime(2021, 8, 1, 9, 30, 0)
    ids = [upload(c, key, "big.jpg", _jpeg(im, 92, _exif(taken))),
           upload(c, key, "half.jpg", _jpeg(im.resize((400, 300)), 85, _exif(taken))),
           upload(c, key, "chat.jpg", _jpeg(im.resize((640, 480)), 70))]
    other = _scene(22, size=(800, 600))
    ids2 = [upload(c, key, "x.jpg", _jpeg(other, 92, _exif(taken))),
            upload(c, key, "y.jpg", _jpeg(other, 40, _exif(taken)))]
    box = c.app.state.photobox
    wait_idle(box)
    run_dupes(box)
    return ids, ids2


def test_review_page_shows_groups_with_facts_and_keeper(owner_client, web_dupes):
    ids, ids2 = web_dupes
    html = owner_client.get("/duplicates").text
    s = BeautifulSoup(html, "html.parser")
    groups = s.select("section.dupe-group")
    assert len(groups) == 2
    cards = groups[0].select("figure.dupe-card")
    assert [int(f["data-id"]) for f in cards][0] == ids[0] and "keeper" in cards[0]["class"]
    text = groups[0].get_text(" ")
    assert "800 × 600" in text and "400 × 300" in text and "big.jpg" in text and "2021-08-01 09:30:00" in text
    assert "KB" in text and "no date in the file" in text
    assert s.select_one('a[href="/duplicates"]')  # in the More menu


def test_keep_one_trashes_others_and_merges_albums_favourite_description(owner_client, web_dupes):
    c = owner_client
    ids, _ = web_dupes
    box = c.app.state.photobox
    now = time.time()
    with box.db.transaction() as conn:
        from photobox.library import albums

        album = albums.create_album(conn, "Trip", now=now)
        albums.add_to_album(conn, album, [ids[1]], now=now)
        conn.execute("UPDATE assets SET favorite = 1, description = 'sunset at the lake' WHERE id = ?", (ids[2],))
        conn.execute("UPDATE assets SET description = 'Lake' WHERE id = ?", (ids[0],))
    token = csrf_from(c.get("/duplicates").text)
    # A photo that is not in the group is refused, and nothing changes.
    bad = c.post(f"/duplicates/{ids[0]}/keep", data={"keeper": str(web_dupes[1][0]), "csrf_token": token},
                 follow_redirects=False)
    assert bad.status_code == 400
    r = c.post(f"/duplicates/{ids[0]}/keep", data={"keeper": str(ids[0]), "csrf_token": token},
               headers={"HX-Request": "true"})
    assert r.status_code == 200 and r.text == ""
    with box.db.reader() as conn:
        rows = {i: (t is not None, f, d) for i, t, f, d in conn.execute(
            "SELECT id, trashed_at, favorite, description FROM assets WHERE id IN (?, ?, ?)", ids)}
        in_album = {i for (i,) in conn.execute("SELECT asset_id FROM album_assets WHERE album_id = ?", (album,))}
    assert rows[ids[0]] == (False, 1, "Lake\n\nsunset at the lake")
    assert rows[ids[1]][0] and rows[ids[2]][0]
    assert ids[0] in in_album
    # The originals are untouched: only in the trash.
    assert c.get(f"/api/assets/{ids[1]}/original").status_code == 200
    s = BeautifulSoup(c.get("/duplicates").text, "html.parser")
    assert len(s.select("section.dupe-group")) == 1
    run_dupes(box)
    assert len(BeautifulSoup(c.get("/duplicates").text, "html.parser").select("section.dupe-group")) == 1


def test_not_duplicates_is_remembered_across_a_rerun(owner_client, web_dupes):
    c = owner_client
    _, ids2 = web_dupes
    box = c.app.state.photobox
    token = csrf_from(c.get("/duplicates").text)
    r = c.post(f"/duplicates/{ids2[0]}/dismiss", data={"csrf_token": token}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/duplicates"
    assert f"dupe-{ids2[0]}" not in c.get("/duplicates").text
    # Hash everything again from scratch (new thumbnails): the pair is found again and still kept apart.
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM dupe_hashes")
        conn.execute("DELETE FROM dupe_links")
        conn.execute("DELETE FROM dupe_nearest")
        conn.execute("UPDATE assets SET thumb_version = thumb_version + 1")
    assert run_dupes(box)["hashed"] == 5
    assert f"dupe-{ids2[0]}" not in c.get("/duplicates").text
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(DISTINCT set_id), count(*) FROM dupe_dismissals").fetchone() == (1, 2)
    assert c.post(f"/duplicates/{ids2[0]}/dismiss", data={"csrf_token": token}).status_code == 404


def test_review_actions_need_csrf(owner_client, web_dupes):
    ids, _ = web_dupes
    r = owner_client.post(f"/duplicates/{ids[0]}/keep", data={"keeper": str(ids[0])}, follow_redirects=False)
    assert r.status_code == 403


def test_review_page_keyset_pagination(owner_client, web_dupes, monkeypatch):
    from photobox.duplicates import views as view

    monkeypatch.setattr(view, "PAGE_SIZE", 1)
    ids, ids2 = web_dupes
    s = BeautifulSoup(owner_client.get("/duplicates").text, "html.parser")
    assert [g["id"] for g in s.select("section.dupe-group")] == [f"dupe-{ids[0]}"]
    more = s.select_one(".more")["hx-get"]
    part = owner_client.get(more, headers={"HX-Request": "true"}).text
    assert f'id="dupe-{ids2[0]}"' in part and "<html" not in part


def test_scheduler_runs_duplicates_and_memories(box):
    names = [name for _, _, name in box.scheduler._periodic]
    assert "duplicates" in names and "memories" in names
    assert "dupes" in box.scheduler.registry
