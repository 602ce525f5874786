""""On this day": daily generation with a frozen clock (skipping trashed, archived,
non-keeper duplicates and burst neighbours), the row on the home page, the slideshow."""

from __future__ import annotations

import asyncio
import time
from datetime import date, datetime

import pytest
from bs4 import BeautifulSoup

from photobox.core import Photobox
from photobox.duplicates.job import run_dupes
from photobox.library import assets, memories
from tests.conftest import FrozenClock
from tests.gen import jpeg_bytes
from tests.gen_dupes import _exif, _jpeg
from tests.test_duplicates import _scene, add
from tests.test_ingest import api_key, wait_idle


def exif_time(d: datetime) -> str:
    return d.strftime("%Y:%m:%d %H:%M:%S")


@pytest.fixture
def frozen_box(settings):
    # Noon on 14 July 2026 in the box's local time zone.
    clock = FrozenClock(time.mktime((2026, 7, 14, 12, 0, 0, 0, 0, -1)))
    box = Photobox(settings, clock=clock).open()
    yield box, clock
    box.close()


def test_memories_by_year_skipping_trash_archive_duplicates_and_bursts(frozen_box):
    box, clock = frozen_box
    assert memories.today_for(box) == date(2026, 7, 14)
    ids = {}
    for n, (key, when) in enumerate([
            ("y2021a", datetime(2021, 7, 14, 9, 0, 0)), ("y2021b", datetime(2021, 7, 14, 18, 0, 0)),
            ("burst1", datetime(2021, 7, 14, 18, 0, 5)), ("burst2", datetime(2021, 7, 14, 18, 0, 9)),
            ("trashed", datetime(2021, 7, 14, 11, 0, 0)), ("archived", datetime(2021, 7, 14, 12, 0, 0)),
            ("y2020", datetime(2020, 7, 15, 10, 0, 0)),     # the day after, six years ago
            ("y2025", datetime(2025, 7, 14, 8, 0, 0)),
            ("thisyear", datetime(2026, 7, 14, 8, 0, 0)), ("otherday", datetime(2024, 3, 1, 8, 0, 0))]):
        ids[key] = add(box, f"{key}.jpg", jpeg_bytes(taken=exif_time(when), seed=100 + n, size=(320, 240)))
    # A copy of 2021-07-14 09:00 (smaller): the original is the keeper, the copy stays out.
    im = _scene(31, size=(640, 480))
    taken = datetime(2021, 7, 14, 15, 0, 0)
    ids["orig"] = add(box, "orig.jpg", _jpeg(im, 92, _exif(taken)))
    ids["copy"] = add(box, "copy.jpg", _jpeg(im.resize((320, 240)), 80, _exif(taken)))
    asyncio.run(box.scheduler.run_until_idle())
    run_dupes(box)
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [ids["trashed"]], now=clock())
        assets.apply_action(conn, "archive", [ids["archived"]], now=clock())
        assets.apply_action(conn, "favorite", [ids["burst2"]], now=clock())
    assert asyncio.run(memories.refresh_memories(box)) == 3
    with box.db.reader() as conn:
        shown = memories.memories_for(conn, date(2026, 7, 14))
        photos = {m.year: [p[0] for p in memories.get_memory(conn, m.id)[1]] for m in shown}
    assert [(m.year, m.title) for m in shown] == [(2025, "1 year ago"), (2021, "5 years ago"), (2020, "6 years ago")]
    # One photo per moment: the favourite of the burst; no trashed, archived or duplicate copy.
    assert photos[2021] == [ids["y2021a"], ids["orig"], ids["burst2"]]
    assert photos[2025] == [ids["y2025"]] and photos[2020] == [ids["y2020"]]
    assert shown[1].cover_id == ids["burst2"]  # a favourite is the cover
    # A cover trashed later is replaced by the first photo still there; counts follow.
    with box.db.transaction() as conn:
        assets.apply_action(conn, "trash", [ids["burst2"]], now=clock())
        again = memories.memories_for(conn, date(2026, 7, 14))[1]
        assets.apply_action(conn, "restore", [ids["burst2"]], now=clock())
    assert (again.cover_id, again.count) == (ids["y2021a"], 2)
    # Once a day: the same day does nothing, the next day makes new ones.
    assert asyncio.run(memories.refresh_memories(box)) is None
    clock.advance(86400)
    assert asyncio.run(memories.refresh_memories(box)) == 3  # 15 July: 14 July counts (±1 day)
    with box.db.reader() as conn:
        assert [m.year for m in memories.memories_for(conn, date(2026, 7, 15))] == [2025, 2021, 2020]
        assert memories.memories_for(conn, date(2026, 7, 14))  # kept a week, not shown on the home page


def test_many_moments_are_spread_across_the_day():
    rows = [(i, 1000.0 + i * 600, 0, 100) for i in range(40)]
    picked = memories._pick(rows)
    assert len(picked) == memories.PER_YEAR and picked[0] == 0 and picked[-1] == 39
    assert memories._pick([(1, 0.0, 0, 10), (2, 30.0, 0, 50), (3, 500.0, 0, 1)]) == [2, 3]


def test_leap_day_memories(settings):
    clock = FrozenClock(time.mktime((2028, 2, 29, 12, 0, 0, 0, 0, -1)))
    box = Photobox(settings, clock=clock).open()
    try:
        a = add(box, "leap.jpg", jpeg_bytes(taken="2024:02:29 10:00:00", seed=1))
        b = add(box, "march.jpg", jpeg_bytes(taken="2025:03:01 10:00:00", seed=2))
        with box.db.transaction() as conn:
            assert memories.build_memories(conn, date(2028, 2, 29), now=clock()) == 2
            got = {m.year: memories.get_memory(conn, m.id)[1][0][0] for m in memories.memories_for(conn, date(2028, 2, 29))}
        assert got == {2024: a, 2025: b}  # 2025 has no 29 February: the 28th ±1 day
    finally:
        box.close()


@pytest.fixture
def home_memory(owner_client):
    c = owner_client
    key = api_key(c)
    box = c.app.state.photobox
    today = memories.today_for(box)
    ids = []
    for n, year in enumerate((today.year - 2, today.year - 2, today.year - 1)):
        try:
            when = datetime(year, today.month, today.day, 10 + n, 0, 0)
        except ValueError:
            when = datetime(year, today.month, 28, 10 + n, 0, 0)
        r = c.post("/api/assets", files={"file": (f"m{n}.jpg", jpeg_bytes(taken=exif_time(when), seed=n), "image/jpeg")},
                   headers=key)
        ids.append(r.json()["id"])
    wait_idle(box)
    asyncio.run(memories.refresh_memories(box, force=True))
    with box.db.reader() as conn:
        shown = memories.memories_for(conn, today)
    return shown, ids


def test_home_page_shows_the_memory_row(owner_client, home_memory):
    shown, ids = home_memory
    s = BeautifulSoup(owner_client.get("/").text, "html.parser")
    cards = s.select(".memories a.memory-card")
    assert [c["href"] for c in cards] == [f"/memories/{m.id}" for m in shown]
    assert [c.select_one(".memory-title").text for c in cards] == ["1 year ago", "2 years ago"]
    assert "2 photos" in cards[1].text
    # Jumping to a month shows the grid only.
    assert not BeautifulSoup(owner_client.get("/?at=2001-01").text, "html.parser").select(".memories")


def test_home_page_without_memories_has_no_row(owner_client):
    assert "On this day" not in owner_client.get("/").text


def test_slideshow_page(owner_client, home_memory):
    shown, ids = home_memory
    c = owner_client
    two = shown[1]
    s = BeautifulSoup(c.get(f"/memories/{two.id}").text, "html.parser")
    assert s.select_one("#slide-image")["src"].startswith(f"/api/assets/{ids[0]}/preview")
    assert [li["data-src"].split("?")[0] for li in s.select(".slides li")] == [f"/api/assets/{i}/preview" for i in ids[:2]]
    assert s.select_one("#slide-next")["href"] == f"/memories/{two.id}?i=1"
    assert s.select_one('script[src^="/static/js/slideshow.js"]') and not s.select("script:not([src])")
    s = BeautifulSoup(c.get(f"/memories/{two.id}?i=1").text, "html.parser")
    assert s.select_one("#slide-image")["src"].startswith(f"/api/assets/{ids[1]}/preview")
    assert c.get(s.select_one("#slide-image")["src"]).status_code == 200
    assert c.get("/memories/999999").status_code == 404
    assert c.get("/static/js/slideshow.js").status_code == 200
