"""The real camera files of ../shared/corpus through the whole pipeline: Live Photos pair,
Motion Photos give a playable motion part, hostile files are refused or kept with a clear
error, and nothing crashes or hangs. Skipped when the corpus is absent."""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import time

import pytest

from photobox.library.ingest import RejectedFile, ingest_temp_file
from photobox.library.paths import derived_path
from tests.conftest import CORPUS

pytestmark = [pytest.mark.corpus,
              pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/corpus is absent (test data, not shipped)")]


def ingest(box, src):
    tmp = box.path("tmp", "corpus.part")
    shutil.copyfile(src, tmp)
    data = tmp.read_bytes()
    return ingest_temp_file(box, tmp, hashlib.sha1(data).digest(), len(data), original_name=src.name,
                            mtime=src.stat().st_mtime)


def run_jobs(box, timeout=300):
    async def run():
        await asyncio.wait_for(box.scheduler.run_until_idle(), timeout)
    asyncio.run(run())


def test_live_photo_pairs_into_one_asset(box):
    still = ingest(box, CORPUS / "live" / "ly__train.jpg")
    video = ingest(box, CORPUS / "live" / "ly__train.mov")
    run_jobs(box)
    with box.db.reader() as conn:
        motion_of = conn.execute("SELECT motion_of FROM assets WHERE id = ?", (video.asset_id,)).fetchone()[0]
        state = conn.execute("SELECT motion_state FROM assets WHERE id = ?", (still.asset_id,)).fetchone()[0]
        from photobox.library import timeline

        shown = [t.id for t in timeline.page(conn, timeline.Scope("timeline"))]
    assert motion_of == still.asset_id and state == "paired"
    assert shown == [still.asset_id], "the Live Photo's video is part of the still, not its own tile"


def test_live_photo_pairs_in_either_order(box):
    video = ingest(box, CORPUS / "live" / "ly__train.mov")
    still = ingest(box, CORPUS / "live" / "ly__train.jpg")
    with box.db.reader() as conn:
        assert conn.execute("SELECT motion_of FROM assets WHERE id = ?", (video.asset_id,)).fetchone()[0] == still.asset_id


@pytest.mark.parametrize("name", ["exo__pixel-motion-photo-shortened.jpg", "exo__ss-motion-photo-shortened.jpg",
                                  "lp__motionphoto.heic"])
def test_motion_photo_gets_a_playable_motion_part(box, name):
    import av

    res = ingest(box, CORPUS / "motion" / name)
    run_jobs(box)
    with box.db.reader() as conn:
        state = conn.execute("SELECT motion_state FROM assets WHERE id = ?", (res.asset_id,)).fetchone()[0]
    assert state == "embedded"
    path = derived_path(box, "motion", res.asset_id)
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
    assert codec in ("h264", "vp9", "av1"), codec


def test_ultra_hdr_gain_map_is_not_a_motion_photo(box):
    import json

    expected = json.loads((CORPUS / "expected.json").read_text())["files"]
    gain_maps = [k for k, v in expected.items() if "gain" in json.dumps(v).lower() and not k.startswith("hostile/")
                 and not (v.get("motion_photo") or {}).get("is_motion_photo")]
    if not gain_maps:
        pytest.skip("no gain-map file in the corpus")
    res = ingest(box, CORPUS / gain_maps[0])
    run_jobs(box)
    with box.db.reader() as conn:
        assert conn.execute("SELECT motion_state FROM assets WHERE id = ?", (res.asset_id,)).fetchone()[0] is None


def test_whole_corpus_and_hostile_files_never_crash(box):
    """Every file ends as an asset (possibly with a recorded error) or a clear refusal."""
    outcomes = {}
    started = time.monotonic()
    for src in sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name not in ("README.md", "expected.json")):
        try:
            outcomes[src] = ingest(box, src).status
        except RejectedFile as exc:
            outcomes[src] = f"refused: {exc}"
            assert str(exc), src
    run_jobs(box, timeout=900)
    elapsed = time.monotonic() - started
    refused = {p.name: o for p, o in outcomes.items() if o.startswith("refused")}
    # Only hostile files (and a sidecar, which is no photo) may be refused; every refusal says why.
    assert all("hostile" in str(p) or p.suffix == ".xmp" for p, o in outcomes.items() if o.startswith("refused")), refused
    with box.db.reader() as conn:
        stuck = conn.execute("SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')").fetchone()[0]
        failed = conn.execute("SELECT kind, target, error FROM jobs WHERE state = 'failed'").fetchall()
        names = dict(conn.execute("SELECT id, rel_path FROM assets"))
    if stuck:
        with box.db.reader() as conn:
            rows = conn.execute("SELECT kind, target, attempts, error FROM jobs WHERE state IN ('queued', 'running')").fetchall()
        raise AssertionError([(k, names.get(int(t)), a, e) for k, t, a, e in rows])
    for kind, target, error in failed:
        assert error and "Traceback" not in error, (kind, names.get(int(target)), error)
    print(f"\n{len(outcomes)} corpus files in {elapsed:.0f} s: {len(refused)} refused, {len(failed)} failed jobs")
    for kind, target, error in failed:
        print(f"  {kind:7} {names.get(int(target))}: {error.splitlines()[0][:120]}")
