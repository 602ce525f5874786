"""Start-up recovery, deterministically: the states a crash can leave (a placed original whose
row never committed, a journal still held by a live process, abandoned or orphan resumable
uploads) are built by hand, then a start (``Photobox.open`` / the sweep) must put things right.
``tests/test_crash.py`` produces the same states with real SIGKILLs."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from photobox.core import Photobox
from photobox.datadir.storage import PlacementJournal, place_original, recover_placements
from photobox.library.ingest import ingest_temp_file
from photobox.library.uploads import ORPHAN_GRACE_SECONDS, UPLOAD_EXPIRY_SECONDS, sweep_uploads
from tests.gen import jpeg_bytes, sha1
from tests.resil import check_data_folder
from tests.server import ROOT


def _crash_after_placing(box: Photobox, name: str, data: bytes) -> str:
    """What a SIGKILL between ``place_original`` and the commit leaves: the file in library/,
    no row, and the journal (its lock dies with the process; here we just close it)."""
    tmp = box.path("tmp", "x.part")
    tmp.write_bytes(data)
    journal = PlacementJournal(box.path("tmp"), box.path("library"))
    rel = place_original(tmp, box.path("library"), name, "2021:07:14 15:30:00", journal)
    os.close(journal._fd)  # the process "dies": the lock goes, the journal file stays
    return rel


def test_start_up_removes_a_placed_file_whose_row_never_committed(settings):
    box = Photobox(settings).open()
    try:
        kept = box.path("tmp", "k.part")
        body = jpeg_bytes(seed=1)
        kept.write_bytes(body)
        ok = ingest_temp_file(box, kept, bytes.fromhex(sha1(body)), len(body), original_name="kept.jpg")
        rel = _crash_after_placing(box, "lost.jpg", jpeg_bytes(seed=2))
        assert box.path("library", rel).exists() and list(box.path("tmp").glob("*.placing"))
    finally:
        box.close()
    box = Photobox(settings).open()  # restart
    try:
        assert not box.path("library", rel).exists(), "the orphan original was not removed"
        assert not list(box.path("tmp").glob("*.placing"))
        with box.db.reader() as conn:
            kept_rel = conn.execute("SELECT rel_path FROM assets WHERE id = ?", (ok.asset_id,)).fetchone()[0]
        assert box.path("library", kept_rel).read_bytes() == body
    finally:
        box.close()
    check_data_folder(settings.data_dir).assert_ok()


def test_a_committed_placement_survives_its_leftover_journal(settings, box):
    body = jpeg_bytes(seed=3)
    tmp = box.path("tmp", "c.part")
    tmp.write_bytes(body)
    res = ingest_temp_file(box, tmp, bytes.fromhex(sha1(body)), len(body), original_name="c.jpg")
    with box.db.reader() as conn:
        rel = conn.execute("SELECT rel_path FROM assets WHERE id = ?", (res.asset_id,)).fetchone()[0]
    # A crash after the commit but before the journal was deleted.
    box.path("tmp", "late.placing").write_text(rel)
    committed = lambda r: r == rel  # noqa: E731
    assert recover_placements(box.path("tmp"), box.path("library"), committed) == 0
    assert box.path("library", rel).read_bytes() == body
    assert not box.path("tmp", "late.placing").exists()


def test_a_journal_held_by_a_live_process_is_left_alone(settings, box, tmp_path):
    """The CLI opening the data folder while the server places a file must not undo it."""
    rel = "2021/07/busy.jpg"
    box.path("library", "2021", "07").mkdir(parents=True, exist_ok=True)
    box.path("library", rel).write_bytes(b"in flight")
    note = box.path("tmp", "busy.placing")
    note.write_text(rel)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(note)!r}, os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('locked', flush=True); time.sleep(30)\n")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert recover_placements(box.path("tmp"), box.path("library"), lambda r: False) == 0
        assert box.path("library", rel).exists() and note.exists()
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone (crashed), the placement is recovered.
    assert recover_placements(box.path("tmp"), box.path("library"), lambda r: False) == 1
    assert not box.path("library", rel).exists() and not note.exists()


def test_a_failed_commit_removes_the_placed_file(settings, box, monkeypatch):
    """Not only crashes: an exception between placing and committing keeps nothing either."""
    import pytest

    from photobox.library import assets

    def boom(*a, **k):
        raise RuntimeError("database trouble")

    monkeypatch.setattr(assets, "insert_asset", boom)
    body = jpeg_bytes(seed=4)
    tmp = box.path("tmp", "f.part")
    tmp.write_bytes(body)
    with pytest.raises(RuntimeError):
        ingest_temp_file(box, tmp, bytes.fromhex(sha1(body)), len(body), original_name="f.jpg")
    assert not [p for p in box.path("library").rglob("*") if p.is_file()]
    assert not [p for p in box.path("tmp").iterdir() if not p.name.startswith("owner-")]


def test_sweep_removes_abandoned_and_orphan_resumable_uploads(box):
    folder = box.path("tmp", "resumable")
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    with box.db.transaction() as conn:
        for upload_id, updated in (("fresh", now - 60), ("stale", now - UPLOAD_EXPIRY_SECONDS - 1)):
            conn.execute("INSERT INTO uploads (id, file_name, size, received, created_at, updated_at) "
                         "VALUES (?, 'a.jpg', 10, 3, ?, ?)", (upload_id, updated, updated))
            (folder / f"{upload_id}.part").write_bytes(b"abc")
    (folder / "orphan.part").write_bytes(b"x")
    os.utime(folder / "orphan.part", (now - ORPHAN_GRACE_SECONDS - 5,) * 2)
    (folder / "justmade.part").write_bytes(b"")  # its row is being inserted right now
    assert sweep_uploads(box, now) == {"expired": 1, "orphans": 1}
    assert sorted(p.name for p in folder.iterdir()) == ["fresh.part", "justmade.part"]
    with box.db.reader() as conn:
        assert [r[0] for r in conn.execute("SELECT id FROM uploads")] == ["fresh"]


def test_clean_temp_keeps_live_writers_files_and_removes_dead_ones(tmp_path):
    from photobox.datadir.storage import clean_temp

    tmp_dir = tmp_path / "tmp"
    tmp_dir.mkdir()
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom pathlib import Path\nfrom photobox.datadir.storage import TempWriter\n"
        f"w = TempWriter(Path({str(tmp_dir)!r})); w.write_sync(b'x' * 10)\n"
        "print(w.path.name, flush=True); time.sleep(60)\n")], stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        name = writer.stdout.readline().strip()
        (tmp_dir / "0123456789ab-deadbeef.part").write_bytes(b"from a crashed process")
        (tmp_dir / "0123456789ab-deadbeef.part").touch()
        (tmp_dir / "legacy.part").write_bytes(b"older naming")
        assert clean_temp(tmp_dir) == 2
        assert [p.name for p in tmp_dir.glob("*.part")] == [name], "the live writer's file must stay"
    finally:
        writer.kill()
        writer.wait()
    assert clean_temp(tmp_dir) == 1  # its owner died: now it is a leftover
    assert not list(tmp_dir.glob("*.part")) and not list(tmp_dir.glob("owner-*.lock"))
