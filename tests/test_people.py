"""People pages and the corrections a user makes (remembered as constraints)."""

from __future__ import annotations

import time

import pytest
from bs4 import BeautifulSoup

from photobox.people import store
from tests.conftest import csrf_from
from tests.gen import jpeg_bytes
from tests.test_ingest import api_key, wait_idle


@pytest.fixture
def faces(owner_client):
    """Three photos; two people (one named), with faces inserted as the faces job would."""
    c = owner_client
    key = api_key(c)
    ids = []
    for i in range(3):
        r = c.post("/api/assets", files={"file": (f"p{i}.jpg", jpeg_bytes(seed=i, size=(640, 480)), "image/jpeg")},
                   headers=key)
        ids.append(r.json()["id"])
    box = c.app.state.photobox
    wait_idle(box)
    now = time.time()
    with box.db.transaction() as conn:
        conn.execute("INSERT INTO people (id, name, created_at, updated_at) VALUES (1, 'Ada', ?, ?), (2, '', ?, ?)",
                     (now, now, now, now))
        rows = [(ids[0], 1), (ids[1], 1), (ids[2], 2), (ids[2], None)]
        for n, (asset_id, person) in enumerate(rows):
            conn.execute("INSERT INTO faces (id, asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                         "VALUES (?, ?, ?, 0.2, 0.2, 0.5, 0.6, 0.9, 'test', ?)", (n + 1, asset_id, person, now))
    return ids


def token(c):
    return csrf_from(c.get("/settings").text)


def test_people_grid_named_first(owner_client, faces):
    s = BeautifulSoup(owner_client.get("/people").text, "html.parser")
    names = [e.text for e in s.select(".person-name")]
    assert names == ["Ada", "Add a name"]
    img = s.select_one(".person-card img")
    assert owner_client.get(img["src"]).headers["content-type"] == "image/webp"


def test_person_page_rename_birthday_hide(owner_client, faces):
    c = owner_client
    s = BeautifulSoup(c.get("/people/1").text, "html.parser")
    assert [int(a["data-id"]) for a in s.select("a.tile")] == [faces[1], faces[0]]
    assert s.select_one("a.tile")["href"].endswith("in=person-1")
    c.post("/people/2", data={"name": "Bob", "birth_date": "2015-03-01", "csrf_token": token(c)})
    box = c.app.state.photobox
    with box.db.reader() as conn:
        bob = store.get_person(conn, 2)
    assert (bob.name, bob.birth_date) == ("Bob", "2015-03-01")
    c.post("/people/2/hide", data={"csrf_token": token(c)})
    assert "Bob" not in c.get("/people").text and "Bob" in c.get("/people?hidden=1").text


def test_not_this_person_and_assign_are_remembered(owner_client, faces):
    c = owner_client
    box = c.app.state.photobox
    c.post("/faces/2/not", data={"person_id": "1", "back": "/people/1", "csrf_token": token(c)})
    c.post("/faces/4/assign", data={"new_name": "Cleo", "back": "/", "csrf_token": token(c)})
    with box.db.reader() as conn:
        assert conn.execute("SELECT person_id FROM faces WHERE id = 2").fetchone() == (None,)
        constraints = set(conn.execute("SELECT face_id, person_id, kind FROM face_constraints"))
        cleo = conn.execute("SELECT id FROM people WHERE name = 'Cleo'").fetchone()[0]
    assert (2, 1, "cannot") in constraints and (4, cleo, "must") in constraints


def test_merge_moves_faces_and_pins_them(owner_client, faces):
    c = owner_client
    box = c.app.state.photobox
    c.post("/people/1/merge", data={"other": "2", "csrf_token": token(c)})
    with box.db.reader() as conn:
        assert store.get_person(conn, 2) is None
        assert conn.execute("SELECT person_id FROM faces WHERE id = 3").fetchone() == (1,)
        assert conn.execute("SELECT kind FROM face_constraints WHERE face_id = 3 AND person_id = 1").fetchone() == ("must",)


def test_viewer_lists_faces_with_not_this_person(owner_client, faces):
    s = BeautifulSoup(owner_client.get(f"/photos/{faces[0]}").text, "html.parser")
    item = s.select_one(".face-list li")
    assert "Ada" in item.text and item.select_one("form[action='/faces/1/not']")


def test_age_in_viewer(owner_client, faces):
    c = owner_client
    box = c.app.state.photobox
    with box.db.transaction() as conn:
        taken = conn.execute("SELECT taken_at FROM assets WHERE id = ?", (faces[0],)).fetchone()[0]
        store.update_person(conn, 1, birth_date=f"{int(taken[:4]) - 7}-{taken[5:10]}")
    s = BeautifulSoup(c.get(f"/photos/{faces[0]}").text, "html.parser")
    assert "age 7" in s.select_one(".face-list li").text
    assert store.age_on("2015-03-01", "2023-02-28T10:00:00") == 7
    assert store.age_on("2015-03-01", "2023-03-01T10:00:00") == 8
    assert store.age_on(None, "2023-03-01") is None
