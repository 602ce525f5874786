"""The quality bar on generated cases, end to end (real files → ingest → thumbnails → the
dupes job → groups in SQLite): copies found with recall ≥ 0.9, distinct burst frames grouped
with a false positive rate ≤ 5 %. ``scripts/bench dupes`` runs the same on a bigger set."""

from __future__ import annotations

import asyncio

from photobox.duplicates import store
from photobox.duplicates.job import run_dupes
from tests.gen_dupes import cases, score
from tests.test_duplicates import add


def test_recall_and_burst_false_positive_rate(box):
    generated = cases(8, 8, seed=5, frame_size=(960, 720), burst_copies=True)
    ids = [add(box, c.name, c.data) for c in generated]
    asyncio.run(box.scheduler.run_until_idle())
    stats = run_dupes(box)
    assert stats["hashed"] == len(generated)
    index = {asset_id: n for n, asset_id in enumerate(ids)}
    with box.db.reader() as conn:
        groups = [[index[m.id] for m in g.members] for g in store.list_groups(conn, limit=1000)]
    result = score(generated, groups)
    print(result)
    assert result["copies"] == 8 * 7 + 8 and result["burst_pairs"] == 8 * 5  # 3 frames + a copy of one: 5 cross-moment pairs
    assert result["recall"] >= 0.9, result
    assert result["burst_fpr"] <= 0.05, result
    assert result["precision"] >= 0.95, result
    for kind in ("resized", "recompressed", "cropped", "edited", "heic", "png", "messaging"):
        assert result[f"recall_{kind}"] >= 0.75, (kind, result)
