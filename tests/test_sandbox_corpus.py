"""Every file of the shared corpus (cameras and ``hostile/``): metadata and thumbnails made in a
decoder child equal the in-thread results (same values, same exception type and message, same
output bytes), and no file needs a new child. Skipped when the corpus is absent (test data)."""

from __future__ import annotations

import pytest

from photobox.media.metadata import extract
from photobox.media.sandbox import DecoderPool
from photobox.media.thumbs import make_thumbnails
from tests.resil import find_corpus

CORPUS = find_corpus()


def _run(fn):
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 -- compared, not handled
        return ("err", type(exc).__name__, str(exc))


@pytest.mark.skipif(CORPUS is None, reason="../shared/corpus is absent (test data, not shipped)")
def test_corpus_gives_the_same_results_in_a_child(tmp_path):
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".json", ".md"))
    pool = DecoderPool(1, timeout=120)
    out = tmp_path
    problems = []
    try:
        for f in files:
            m1 = _run(lambda f=f: extract(f, mtime=1.0))
            m2 = _run(lambda f=f: pool.call("metadata", f, mtime=1.0))
            if m1 != m2:
                problems.append(f"metadata {f.name}: {m1!r:.120} != {m2!r:.120}")
            kind = m1[1].kind if m1[0] == "ok" else None
            if kind not in ("image", "video"):
                continue
            t1 = _run(lambda f=f, kind=kind: make_thumbnails(f, out / "a.webp", out / "a.jpg", kind=kind))
            t2 = _run(lambda f=f, kind=kind: pool.call("thumbs", f, out / "b.webp", out / "b.jpg", kind=kind))
            if t1 != t2 or (t1[0] == "ok" and ((out / "a.webp").read_bytes() != (out / "b.webp").read_bytes()
                                               or (out / "a.jpg").read_bytes() != (out / "b.jpg").read_bytes())):
                problems.append(f"thumbs {f.name}: {t1!r:.120} != {t2!r:.120}")
        assert pool.started == 1, "a corpus file crashed or exhausted the decoder child"
    finally:
        pool.close()
    assert len(files) > 50
    assert not problems, "\n".join(problems)
