"""The faces stage end to end with the tiny generated face models: photos in → faces found on
the preview → vectors in sqlite-vec → incremental clustering into people, with corrections
respected."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from photobox.ml.fetch import fetch_model
from photobox.people import store
from tests.ml.helpers import write_manifest
from tests.ml.tinyfaces import face_manifests, write_tiny_faces
from tests.test_ingest import api_key, wait_idle

RED, BLUE = (230, 70, 60), (60, 70, 230)


def picture(squares, size=(960, 720)) -> bytes:
    arr = np.full((size[1], size[0], 3), (40, 40, 40), np.uint8)
    for x0, y0, side, colour in squares:
        arr[y0:y0 + side, x0:x0 + side] = colour
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=95)
    return buf.getvalue()


@pytest.fixture
def face_models(tmp_path_factory, settings):
    files = write_tiny_faces(tmp_path_factory.mktemp("tiny-faces"))
    manifests = tmp_path_factory.mktemp("face-manifests")
    for manifest in face_manifests(files).values():
        write_manifest(manifests, manifest)
    for key in ("yunet", "sface"):
        fetch_model(f"tiny-{key}", settings.data_dir / "models", source_override=files.override(key),
                    manifests_dir=manifests)


def test_faces_found_stored_and_clustered(face_models, owner_client):
    c = owner_client
    key = api_key(c)
    shots = []
    for i in range(5):  # five photos of "red" (some with "blue" too), squares move around
        squares = [(100 + 20 * i, 120, 150, RED)] + ([(600, 300 - 10 * i, 160, BLUE)] if i % 2 == 0 else [])
        r = c.post("/api/assets", files={"file": (f"f{i}.jpg", picture(squares), "image/jpeg")}, headers=key)
        assert r.status_code == 201, r.text
        shots.append(r.json()["id"])
    box = c.app.state.photobox
    counts = wait_idle(box)
    assert counts["faces"] == {"done": 5}, counts
    with box.db.reader() as conn:
        faces = conn.execute("SELECT asset_id, person_id, x1, y1, x2, y2 FROM faces ORDER BY id").fetchall()
        scans = conn.execute("SELECT count(*), sum(faces) FROM face_scans").fetchone()
        people = store.list_people(conn)
    assert scans == (5, 8)
    assert len(faces) == 8
    # Boxes are fractions of the (upright) image.
    first = min((f for f in faces if f[0] == shots[0]), key=lambda f: f[2])  # the red square, left
    assert first[2] == pytest.approx(100 / 960, abs=0.02) and first[4] == pytest.approx(250 / 960, abs=0.02)
    # Two people emerge: all red faces together, all blue faces together, nobody else.
    by_person: dict = {}
    for asset_id, person, *_ in faces:
        by_person.setdefault(person, set()).add(asset_id)
    assert None not in by_person or len(by_person[None]) <= 1, by_person
    named_groups = sorted(len(v) for k, v in by_person.items() if k is not None)
    assert named_groups[-2:] == [3, 5], by_person
    assert len(people) == 2


def test_scan_is_idempotent_and_people_page_shows_them(face_models, owner_client):
    c = owner_client
    key = api_key(c)
    for i in range(3):
        c.post("/api/assets", files={"file": (f"g{i}.jpg", picture([(200 + 10 * i, 200, 150, RED)]), "image/jpeg")},
               headers=key)
    box = c.app.state.photobox
    wait_idle(box)
    with box.db.reader() as conn:
        before = conn.execute("SELECT count(*) FROM faces").fetchone()[0]
        asset = conn.execute("SELECT asset_id FROM faces LIMIT 1").fetchone()[0]
    box.scheduler.enqueue_sync("faces", str(asset), force=True)
    wait_idle(box)
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM faces").fetchone()[0] == before
    assert "Add a name" in c.get("/people").text


def test_person_filter_in_search(face_models, owner_client):
    from photobox.search.filters import Filters
    from photobox.search.service import search

    c = owner_client
    key = api_key(c)
    ids = []
    for i in range(4):
        squares = [(100 + 15 * i, 120, 150, RED)] if i < 3 else [(600, 300, 160, BLUE)]
        ids.append(c.post("/api/assets", files={"file": (f"s{i}.jpg", picture(squares), "image/jpeg")},
                          headers=key).json()["id"])
    box = c.app.state.photobox
    wait_idle(box)
    with box.db.reader() as conn:
        person = conn.execute("SELECT person_id FROM faces WHERE asset_id = ?", (ids[0],)).fetchone()[0]
    assert person is not None
    out = search(box, f=Filters(person=person))
    assert sorted(out.ids) == sorted(ids[:3])
    assert f'value="{person}"' in c.get("/search").text


def test_merge_suggestions_and_review_page(face_models, owner_client):
    c = owner_client
    key = api_key(c)
    for i in range(6):
        c.post("/api/assets", files={"file": (f"m{i}.jpg", picture([(100 + 12 * i, 150, 150, RED)]), "image/jpeg")},
               headers=key)
    box = c.app.state.photobox
    wait_idle(box)
    with box.db.transaction() as conn:
        faces = [f for (f,) in conn.execute("SELECT id FROM faces ORDER BY id")]
        keep = conn.execute("SELECT person_id FROM faces WHERE id = ?", (faces[0],)).fetchone()[0]
        # Split off three faces as "someone else" the way a bad clustering would have.
        conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('Twin?', 0, 0)")
        other = conn.last_insert_rowid()
        conn.execute(f"UPDATE faces SET person_id = ? WHERE id IN ({faces[3]}, {faces[4]}, {faces[5]})", (other,))
        conn.execute("UPDATE faces SET person_id = NULL WHERE id = ?", (faces[2],))
    with box.db.reader() as conn:
        assert [p.id for p in store.merge_suggestions(conn, keep)] == [other]
    page = c.get(f"/people/{keep}").text
    assert "Maybe the same person as" in page and "Twin?" in page
    review = c.get("/people/unassigned").text
    assert f"/faces/{faces[2]}/assign" in review


def test_full_recluster_keeps_names_and_corrections(face_models, owner_client):
    from photobox.people.faces_job import recluster_all

    c = owner_client
    key = api_key(c)
    for i in range(6):
        squares = [(100 + 12 * i, 150, 150, RED)] + ([(600, 300, 150, BLUE)] if i < 4 else [])
        c.post("/api/assets", files={"file": (f"r{i}.jpg", picture(squares), "image/jpeg")}, headers=key)
    box = c.app.state.photobox
    wait_idle(box)
    with box.db.transaction() as conn:
        red = conn.execute("SELECT person_id FROM faces WHERE x1 < 0.3 ORDER BY id LIMIT 1").fetchone()[0]
        store.update_person(conn, red, name="Ada")
        victim = conn.execute("SELECT id FROM faces WHERE person_id = ? ORDER BY id DESC LIMIT 1", (red,)).fetchone()[0]
        store.not_this_person(conn, victim, red)
    stats = recluster_all(box)
    assert stats["faces"] == 10
    with box.db.reader() as conn:
        ada = conn.execute("SELECT id FROM people WHERE name = 'Ada'").fetchone()[0]
        assert ada == red, "the named person keeps their id"
        assert conn.execute("SELECT person_id FROM faces WHERE id = ?", (victim,)).fetchone()[0] != red
        reds = conn.execute("SELECT count(*) FROM faces WHERE person_id = ?", (red,)).fetchone()[0]
    assert reds == 5
    from tests.test_cli import run

    r = run("people", "recluster", "--data-dir", str(box.settings.data_dir))
    assert r.returncode == 0 and "re-clustered 10 faces" in r.stdout, r.stdout + r.stderr
