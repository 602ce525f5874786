"""Near-duplicates at scale: thousands of look-alikes store O(n) rows, not a row per pair;
adding one photo costs the same in a small and a ten times bigger library (a maintained
index, not a read of every hash); the index finds exactly what a full scan finds; the
queue follows trash, restore, capture-time edits and deletions; the migration from the
pair table keeps the user's "not duplicates"."""

from __future__ import annotations

import shutil
import time
from datetime import datetime

import apsw
import numpy as np
import pytest

from photobox.core import Photobox
from photobox.db import connect, migrate
from photobox.db.migrate import available
from photobox.duplicates import detect, hashing, links, store
from photobox.duplicates.index import Finder
from photobox.duplicates.job import queue_dupes, run_dupes
from photobox.library import actions, assets
from photobox.library.paths import derived_path
from tests.gen_dupes import insert_photos, lookalikes, scene_canvas


def _thumb(box, asset_id, image) -> None:
    path = derived_path(box, "thumb", asset_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _db_rows(conn) -> dict[str, int]:
    tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'dupe%'")]
    return {t: conn.execute(f"SELECT count(*) FROM \"{t}\"").fetchone()[0] for t in tables}  # names from sqlite_master


def _groups(box) -> list[list[int]]:
    with box.db.reader() as conn:
        return [sorted(m.id for m in g.members) for g in store.list_groups(conn, limit=1000)]


def test_thousands_of_lookalikes_store_linear_rows_in_one_group(box):
    n = 2000
    with box.db.transaction() as conn:
        ids = insert_photos(conn, [{} for _ in range(n)])
        before = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    for asset_id, image in zip(ids, lookalikes(n, seed=3)):
        _thumb(box, asset_id, image)
    t0 = time.perf_counter()
    stats = run_dupes(box)
    elapsed = time.perf_counter() - t0
    with box.db.reader() as conn:
        rows = _db_rows(conn)
        after = conn.execute("PRAGMA page_count").fetchone()[0] * conn.execute("PRAGMA page_size").fetchone()[0]
    print(f"{n} look-alikes: {elapsed:.1f} s, rows {rows}, +{(after - before) / 1e6:.1f} MB")
    assert stats["hashed"] == n
    # Every table of the feature together: a few rows per photo (the pair table had n²/2 = 2,000,000).
    assert sum(rows.values()) <= 15 * n, rows
    assert after - before < 1500 * n  # bytes; the pairs took ~46,000 a photo
    assert _groups(box) == [sorted(ids)]  # all of them, found through their nearest look-alikes
    # "Not duplicates" on the whole group: one row per photo, and a re-run keeps them apart.
    with box.db.transaction() as conn:
        store.dismiss_group(conn, ids[0], now=1.0)
        assert conn.execute("SELECT count(*) FROM dupe_dismissals").fetchone() == (n,)
        conn.execute("UPDATE assets SET thumb_version = 2 WHERE id = ?", (ids[5],))
    run_dupes(box)
    assert _groups(box) == []


def _seed_hashes(box, n: int, rng: np.random.Generator) -> None:
    """A library of ``n`` hashed photos (85 % with a camera time over ten years), made as a
    finished earlier run left it."""
    ts = rng.uniform(1.3e9, 1.3e9 + 10 * 365 * 86400, n)
    timed = rng.random(n) < 0.85
    photos = [{"sort_ts": float(t), "taken_at": datetime.utcfromtimestamp(t).isoformat() if x else None,
               "taken_at_source": "exif" if x else "mtime"} for t, x in zip(ts, timed)]
    with box.db.transaction() as conn:
        ids = insert_photos(conn, photos, thumb_version=0)
        p = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64).tolist()
        d = rng.integers(-(1 << 63), (1 << 63) - 1, n, dtype=np.int64).tolist()
        store.save_hashes(conn, [(i, a, b, 0) for i, a, b in zip(ids, p, d)], now=0.0)


def _cost_of_one_new_photo(settings, n: int) -> dict[str, int]:
    """SQLite's own work counters (VM steps, full-scan steps) while the job takes in one new
    photo on a library of ``n`` hashed photos."""
    counts = {"vm": 0, "fullscan": 0, "on": False}

    def profile(event):
        if counts["on"]:
            counts["vm"] += event["stmt_status"]["SQLITE_STMTSTATUS_VM_STEP"]
            counts["fullscan"] += event["stmt_status"]["SQLITE_STMTSTATUS_FULLSCAN_STEP"]

    def hook(conn):
        conn.trace_v2(apsw.SQLITE_TRACE_PROFILE, profile)

    apsw.connection_hooks.append(hook)
    try:
        box = Photobox(settings).open()
        try:
            _seed_hashes(box, n, np.random.default_rng(n))
            run_dupes(box)
            with box.db.transaction() as conn:
                new, = insert_photos(conn, [{"sort_ts": 1.5e9, "taken_at": "2017-07-14T02:40:00", "taken_at_source": "exif"}],
                                     thumb_version=0)
            _thumb(box, new, scene_canvas(7, size=(64, 48))[0])
            with box.db.transaction() as conn:
                conn.execute("UPDATE assets SET thumb_version = 1, updated_at = 1 WHERE id = ?", (new,))
            counts["on"] = True
            assert run_dupes(box)["hashed"] == 1
            counts["on"] = False
        finally:
            box.close()
    finally:
        apsw.connection_hooks.remove(hook)
    return counts


def test_adding_one_photo_costs_the_same_in_a_ten_times_bigger_library(tmp_path):
    from photobox.settings import load_settings

    small = _cost_of_one_new_photo(load_settings({"data_dir": tmp_path / "small"}, env={}), 2_000)
    big = _cost_of_one_new_photo(load_settings({"data_dir": tmp_path / "big"}, env={}), 20_000)
    print(small, big)
    # A read of every hash (or every asset) would make the big library's cost ~10 times the small one's.
    assert big["vm"] < 1.5 * small["vm"], (small, big)
    assert big["fullscan"] < 1.5 * small["fullscan"] + 100, (small, big)


def _random_library(box, rng, n=600):
    """Hashes with near copies at every distance up to 12 bits, a third without camera time,
    timed ones often sharing a moment (so the looser same-moment thresholds are used)."""
    base = rng.integers(-(1 << 63), (1 << 63) - 1, n // 2, dtype=np.int64)
    flips = []
    for _ in range(n // 2):
        mask = 0
        for b in rng.choice(64, int(rng.integers(0, 13)), replace=False):
            mask |= 1 << int(b)
        flips.append(hashing.to_signed(mask))
    p = np.concatenate([base, base ^ np.array(flips, dtype=np.int64)])
    d = np.concatenate([base, base ^ np.roll(np.array(flips, dtype=np.int64), 1)])
    moments = 1.6e9 + rng.integers(0, 40, n) * 1.0
    photos = []
    for m in moments:
        timed = rng.random() < 0.66
        photos.append({"sort_ts": float(m) if timed else float(m) + 0.5,
                       "taken_at": datetime.utcfromtimestamp(m).isoformat() if timed else None,
                       "taken_at_source": "exif" if timed else "mtime"})
    with box.db.transaction() as conn:
        ids = insert_photos(conn, photos, thumb_version=0)
        store.save_hashes(conn, [(i, int(a), int(b), 0) for i, a, b in zip(ids, p, d)], now=0.0)
    return np.array(ids, dtype=np.int64), p, d


def test_index_lookup_finds_exactly_what_a_full_scan_accepts(box):
    ids, p, d = _random_library(box, np.random.default_rng(4))
    with box.db.reader() as conn:
        finder = Finder(conn)
        photos = finder.photos(ids.tolist())
        brute = {(a, b) for a, b, x, y in detect.candidate_pairs(ids, p, d, ids, p, d)
                 if detect.is_duplicate(photos[a], photos[b], x, y)}
        found = {(min(i, j), max(i, j)) for i in ids.tolist() for j in finder.matches(photos[i])[0].tolist()}
    assert found == brute and len(brute) > 100


def test_lookups_are_served_by_indexes(box):
    from photobox.duplicates import index

    with box.db.reader() as conn:
        bands = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + index._BANDS, ["[]"] * 4))
        window = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + index._WINDOW, (0.0, 1.0)))
    for band in range(4):
        assert f"SEARCH dupe_hashes USING COVERING INDEX dupe_hashes_band{band}" in bands
    assert "SCAN dupe_hashes" not in bands
    assert "USING INDEX assets_timeline" in window and "USING INDEX assets_archive" in window
    assert "SCAN a" not in window


def test_probes_cover_every_hash_within_the_strict_distance():
    from photobox.duplicates.index import probes

    rng = np.random.default_rng(1)
    for _ in range(200):
        h = int(rng.integers(-(1 << 63), (1 << 63) - 1, dtype=np.int64))
        other = h ^ sum(1 << int(b) for b in rng.choice(64, detect.UNKNOWN_MOMENT[0], replace=False))
        other = hashing.to_signed(other & ((1 << 64) - 1))
        per_band = probes(h)
        assert any(((other >> (16 * b)) & 65535) in per_band[b] for b in range(4))


def _forest(box) -> list[tuple[int, int, int]]:
    with box.db.reader() as conn:
        return conn.execute("SELECT a, b, distance FROM dupe_links").fetchall()


def _is_forest(edges) -> bool:
    parent: dict[int, int] = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for a, b, _ in edges:
        if find(a) == find(b):
            return False
        parent[find(a)] = find(b)
    return True


def test_links_form_a_forest_that_follows_removals(box):
    n = 60
    with box.db.transaction() as conn:
        ids = insert_photos(conn, [{} for _ in range(n)])
    for asset_id, image in zip(ids, lookalikes(n, seed=8)):
        _thumb(box, asset_id, image)
    run_dupes(box)
    edges = _forest(box)
    assert len(edges) == n - 1 and _is_forest(edges) and _groups(box) == [sorted(ids)]
    # Trash the best-linked photo: the pieces it held together are searched and joined again.
    hub = max(ids, key=lambda i: sum(i in (a, b) for a, b, _ in edges))
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [hub], now=5.0)
    run_dupes(box)
    edges = _forest(box)
    assert len(edges) == n - 2 and _is_forest(edges) and all(hub not in (a, b) for a, b, _ in edges)
    assert _groups(box) == [sorted(set(ids) - {hub})]


def test_two_clusters_of_identical_copies_stay_one_group(box):
    """More than ``NEAREST`` photos with one hash, and as many with a hash a bit away: the
    nearest matches of each are all in its own cluster, yet the clusters are linked."""
    canvas = scene_canvas(5, size=(96, 72))[0]
    other = canvas.copy()
    other.paste((255, 255, 255), (0, 0, 10, 8))  # a small mark: a few bits of hash away
    ha, hb = hashing.hash_image(canvas), hashing.hash_image(other)
    assert ha != hb and detect.is_duplicate(detect.Photo(1, *ha), detect.Photo(2, *hb),
                                            int(hashing.hamming(ha.phash, hb.phash)),
                                            int(hashing.hamming(ha.dhash, hb.dhash)))
    n = 2 * (links.NEAREST + 5)
    with box.db.transaction() as conn:
        ids = insert_photos(conn, [{} for _ in range(n)])
    for k, asset_id in enumerate(ids):
        _thumb(box, asset_id, canvas if k % 2 else other)
    run_dupes(box)
    assert _groups(box) == [sorted(ids)]
    assert len(_forest(box)) == n - 1


def test_grouping_matches_every_pair_where_a_tree_alone_would_split_copies(box):
    """Burst frames f0, f1 with a copy c1 of f1 (same moment) and a messaging copy m of f0
    (no camera time) that is also close to f1 and c1. The forest links m-f0, m-f1, m-c1 (the
    nearest) and not f1-c1; grouping must still put c1 with f1, as grouping every pair does."""
    bits = lambda *b: sum(1 << i for i in b)  # noqa: E731
    base = 0x1234_5678_9ABC
    hashes = {"m": base, "f0": base ^ bits(0), "f1": base ^ bits(1, 2, 3, 4), "c1": base ^ bits(5, 6, 7, 8, 9)}
    t0 = 1_600_000_000.0
    rows = {"m": {"sort_ts": t0 + 50},
            "f0": {"sort_ts": t0, "taken_at": "2020-09-13T12:26:40", "taken_at_source": "exif"},
            "f1": {"sort_ts": t0 + 2, "taken_at": "2020-09-13T12:26:42", "taken_at_source": "exif"},
            "c1": {"sort_ts": t0 + 2, "taken_at": "2020-09-13T12:26:42", "taken_at_source": "exif"}}
    with box.db.transaction() as conn:
        ids = dict(zip(rows, insert_photos(conn, list(rows.values()))))
        store.save_hashes(conn, [(ids[k], h, 0, 1) for k, h in hashes.items()], now=0.0)
    run_dupes(box)  # hashes stored for this thumb_version: searched, not hashed
    links_made = {(a, b) for a, b, _ in _forest(box)}
    assert (min(ids["f1"], ids["c1"]), max(ids["f1"], ids["c1"])) not in links_made
    with box.db.reader() as conn:
        photos = Finder(conn).photos(list(ids.values()))
    every_pair = [(a, b, int(hashing.hamming(photos[a].phash, photos[b].phash)))
                  for a in ids.values() for b in ids.values() if a < b
                  and detect.is_duplicate(photos[a], photos[b], int(hashing.hamming(photos[a].phash, photos[b].phash)), 0)]
    reference = detect.group_pairs(every_pair, lambda x, y: detect.different_moments(photos[x], photos[y]))
    assert _groups(box) == reference == sorted([sorted([ids["f0"], ids["m"]]), sorted([ids["f1"], ids["c1"]])])


@pytest.fixture
def copies(box):
    """An original with two copies (one without camera time), as real thumbnails."""
    canvas = scene_canvas(31, size=(96, 72))[0]
    taken = "2021-03-04T10:00:00"
    with box.db.transaction() as conn:
        ids = insert_photos(conn, [{"sort_ts": 1_614_852_000.0, "taken_at": taken, "taken_at_source": "exif"},
                                   {"sort_ts": 1_614_852_000.0, "taken_at": taken, "taken_at_source": "exif"},
                                   {"sort_ts": 1_700_000_000.0}])
    for asset_id, im in zip(ids, (canvas, canvas.resize((48, 36)), canvas.resize((80, 60)))):
        _thumb(box, asset_id, im)
    run_dupes(box)
    assert _groups(box) == [ids]
    return ids


def test_trash_restore_and_date_edit_follow_through_the_queue(box, copies):
    a, b, c = copies
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [b], now=5.0)
    asyncio_run_queue(box)
    assert _groups(box) == [[a, c]]
    with box.db.transaction() as conn:
        assets.apply_action(conn, "restore", [b], now=6.0)
    asyncio_run_queue(box)
    assert _groups(box) == [[a, b, c]]
    # The camera time of b corrected to an hour later: a different moment from a, so apart;
    # c (no camera time) stays with the closer one.
    with box.db.transaction() as conn:
        conn.execute("UPDATE assets SET sort_ts = sort_ts + 3600, taken_at = '2021-03-04T11:00:00' WHERE id = ?", (b,))
    asyncio_run_queue(box)
    groups = _groups(box)
    assert groups in ([[a, c]], [[b, c]]), groups
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM dupe_dirty").fetchone() == (0,)


def asyncio_run_queue(box) -> None:
    """What the scheduler does every minute: queue the job when the queue has work, run it."""
    import asyncio

    asyncio.run(queue_dupes(box))
    asyncio.run(box.scheduler.run_until_idle())


def test_purged_photo_stays_queued_and_its_group_goes_at_once(box, copies):
    a, b, c = copies
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [a], now=5.0)
    actions.purge(box, [a])  # before the job saw the trash
    with box.db.reader() as conn:
        queued = {i for (i,) in conn.execute("SELECT asset_id FROM dupe_dirty")}
        assert conn.execute("SELECT count(*) FROM dupe_groups WHERE id = ?", (a,)).fetchone() == (0,)
    assert a in queued  # its links stay until the job has searched what they held together
    asyncio_run_queue(box)
    assert _groups(box) == [[b, c]]
    assert all(a not in link[:2] for link in _forest(box))


# -- migration from the pair table ------------------------------------------------------------

def _old_schema_db(tmp_path, path):
    """A database made by the migrations before this one (the pair shape)."""
    older = tmp_path / "migrations_before_links"
    older.mkdir()
    links_version = next(m.version for m in available() if m.name == "dupe_links")
    for m in available():
        if m.version < links_version:
            shutil.copy(m.path, older / m.path.name)
    conn = connect(path)
    migrate(conn, older)
    return conn


def test_migration_from_pairs_keeps_dismissals_and_links_the_pairs_again(tmp_path):
    from photobox.settings import load_settings

    settings = load_settings({"data_dir": tmp_path / "data"}, env={})
    settings.db_path.parent.mkdir(parents=True, exist_ok=True)
    conn = _old_schema_db(tmp_path, settings.db_path)
    with conn:
        ids = insert_photos(conn, [{} for _ in range(17)])
        conn.executemany("INSERT INTO dupe_hashes (asset_id, phash, dhash, thumb_version, hashed_at) VALUES (?, 0, 0, 1, 0)",
                         [(i,) for i in ids[:15]])  # 16 is not hashed yet; 17 has no look-alike
        conn.execute("INSERT INTO dupe_hashes (asset_id, phash, dhash, thumb_version, hashed_at) VALUES (?, -1, -1, 1, 0)",
                     (ids[16],))
        # The first 15 look alike: every pair was stored.
        conn.executemany("INSERT INTO dupe_pairs (a, b, distance) VALUES (?, ?, 0)",
                         [(a, b) for n, a in enumerate(ids[:15]) for b in ids[n + 1:15]])
        # "Not duplicates" on a group of three (3 pairs, one time), and a lone pair.
        conn.executemany("INSERT INTO dupe_dismissed (a, b, created_at) VALUES (?, ?, ?)",
                         [(ids[1], ids[2], 7.0), (ids[1], ids[3], 7.0), (ids[2], ids[3], 7.0), (ids[4], ids[5], 8.0),
                          (ids[6], ids[7], 9.0), (ids[7], ids[8], 9.0)])  # the last two: not all pairs of 6, 7, 8
        conn.execute("INSERT INTO dupe_groups (id, keeper_id, size) VALUES (?, ?, 15)", (ids[0], ids[0]))
        conn.executemany("INSERT INTO dupe_members (asset_id, group_id) VALUES (?, ?)", [(i, ids[0]) for i in ids[:15]])
        conn.execute("UPDATE assets SET trashed_at = 1 WHERE id = ?", (ids[9],))
        conn.execute("INSERT INTO meta (key, value) VALUES ('dupes_grouped_at', '1.0')")
    conn.close()

    box = Photobox(settings).open()
    try:
        with box.db.reader() as conn:
            names = {n for (n,) in conn.execute("SELECT name FROM sqlite_master")}
            assert "dupe_pairs" not in names and "dupe_dismissed" not in names and "dupe_links" in names
            assert {f"dupe_hashes_band{b}" for b in range(4)} <= names
            sets: dict[int, set[int]] = {}
            for set_id, asset_id in conn.execute("SELECT set_id, asset_id FROM dupe_dismissals"):
                sets.setdefault(set_id, set()).add(asset_id)
            assert sorted(map(sorted, sets.values())) == sorted([ids[1:4], ids[4:6], ids[6:8], ids[7:9]])
            queued = {i for (i,) in conn.execute("SELECT asset_id FROM dupe_dirty")}
            assert queued == set(ids[:16])  # the pairs' photos, and the one not hashed yet
            assert conn.execute("SELECT count(*) FROM meta WHERE key = 'dupes_grouped_at'").fetchone() == (0,)
        run_dupes(box)  # no thumbnails here: nothing to hash; the stored hashes are searched
        edges = _forest(box)
        kept = set(ids[:15]) - {ids[9]}
        assert _is_forest(edges) and len(edges) == len(kept) - 1 and {x for a, b, _ in edges for x in (a, b)} == kept
        groups = _groups(box)
        assert ids[9] not in {i for g in groups for i in g}
        for members in sets.values():  # never two photos the user said are not duplicates
            assert all(len(members & set(g)) <= 1 for g in groups)
        assert sum(len(g) for g in groups) >= len(kept) - 3
    finally:
        box.close()
