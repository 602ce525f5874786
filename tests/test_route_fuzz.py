"""No input makes a 5xx: every route of the real app's route table, with arbitrary values in
its path parameters, query parameters, form/JSON fields, bodies and in every request header
photobox reads (see :mod:`tests.route_fuzz`), answers below 500.

The app runs in-process on a throw-away data folder holding one photo, an album, a person
with a face and a share link, so ids that exist are among the values. Its scheduler is
stopped after start-up: nothing a fuzzed request queues (say, a library at ``/``) runs.
Then the specific inputs of the hardening issue, each with its clear 4xx.
"""

from __future__ import annotations

import hashlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from litestar.testing import TestClient

from photobox import auth
from photobox.settings import load_settings
from photobox.web.app import create_app
from tests.gen import jpeg_bytes
from tests.resil import api_key_for
from tests.route_fuzz import endpoints, requests

JPEG = jpeg_bytes(seed=41, size=(64, 48))
ENDPOINTS = endpoints(create_app(load_settings({"data_dir": "/nonexistent-route-table-only"}, env={})))
FUZZ = settings(max_examples=25, derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def app_client(tmp_path_factory):
    data = tmp_path_factory.mktemp("routefuzz") / "data"
    key = api_key_for(data)
    app = create_app(load_settings({"data_dir": data, "workers": 1, "isolate_decoders": False,
                                    "job_poll_seconds": 3600.0}, env={}))
    with TestClient(app=app, raise_server_exceptions=False) as client:
        box = app.state.photobox
        client.blocking_portal.call(box.scheduler.stop)
        client.headers["x-api-key"] = key
        r = client.post("/api/assets", files={"file": ("seed.jpg", JPEG, "image/jpeg")})
        assert r.status_code == 201, r.text
        now = time.time()
        with box.db.transaction() as conn:
            conn.execute("INSERT INTO albums (name, created_at, updated_at) VALUES ('seed', ?, ?)", (now, now))
            conn.execute("INSERT INTO album_assets (album_id, asset_id, sort_ts, added_at) VALUES (1, 1, 0, ?)", (now,))
            conn.execute("INSERT INTO people (name, created_at, updated_at) VALUES ('Ada', ?, ?)", (now, now))
            conn.execute("INSERT INTO faces (asset_id, person_id, x1, y1, x2, y2, score, model, created_at) "
                         "VALUES (1, 1, 0.1, 0.1, 0.5, 0.5, 0.9, 'seed@1', ?)", (now,))
        assert client.post("/shares", data={"ids": "1"}).status_code in (200, 303)
        yield client, key


def _keep_key(client: TestClient, key: str) -> None:
    """A fuzzed request may revoke the test's own API key (``/settings/api-keys/1/revoke``): make another."""
    if client.get("/api/me").status_code == 401:
        with client.app.state.photobox.db.transaction() as conn:
            _, secret = auth.create_api_key(conn, "fuzz")
        client.headers["x-api-key"] = secret


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=lambda e: e.id)
def test_no_route_answers_5xx_to_any_input(app_client, endpoint):
    client, key = app_client

    @FUZZ
    @given(req=requests(endpoint, JPEG))
    def check(req):
        r = client.request(req["method"], req["url"], headers=req["headers"], content=req["content"])
        assert r.status_code < 500, f"{req['method']} {req['url']} {req['headers']} -> {r.status_code} {r.text[:300]}"
        if endpoint.path.startswith("/settings"):
            _keep_key(client, key)

    check()


# -- the inputs of the hardening issue, each with its clear answer ---------------------

@pytest.mark.parametrize("value", ["1e20", "nan", "inf", "-1e15", "-inf", "1e400", "yesterday"])
def test_upload_times_out_of_range_are_refused_clearly(app_client, value):
    client, _ = app_client
    photo = jpeg_bytes(seed=hash(value) % 1000 + 100)
    r = client.post("/api/assets", files={"file": ("t.jpg", photo, "image/jpeg")}, data={"mtime": value})
    assert r.status_code == 400 and "mtime" in r.json()["detail"] and "nothing was stored" in r.json()["detail"], r.text
    r = client.post("/api/uploads", json={"name": "t.jpg", "size": 10, "mtime": value})
    assert r.status_code == 400 and "mtime" in r.json()["detail"], r.text
    r = client.put("/dav/upload/t.jpg", content=photo, headers={"X-OC-Mtime": value})
    assert r.status_code == 400 and "X-OC-Mtime" in r.text, r.text
    info = client.post("/api/assets/check", json={"checksums": [hashlib.sha1(photo).hexdigest()]}).json()
    assert info["results"][0]["status"] == "new", "a refused upload stored nothing"


def test_upload_times_in_range_are_kept(app_client):
    client, _ = app_client
    r = client.post("/api/assets", files={"file": ("ms.jpg", jpeg_bytes(seed=900), "image/jpeg")},
                    data={"mtime": "1600000000000"})  # JavaScript's lastModified: milliseconds
    assert r.status_code == 201, r.text
    r = client.put("/dav/upload/http-date.jpg", content=jpeg_bytes(seed=901),
                   headers={"X-OC-Mtime": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("value", ["²", "١٢", "1e3", "-5", "99999999999999999999999"])
def test_numbers_in_query_strings_are_ascii_integers_in_range(app_client, value):
    client, _ = app_client
    for path, name in (("/api/search", "limit"), ("/api/search", "like"), ("/search", "start")):
        r = client.get(path, params={name: value})
        assert r.status_code == 400 and name in r.json()["detail"], r.text
    # A declared int parameter is parsed by Litestar (msgspec), which also takes "1e3" as 1000.
    assert client.get("/people/unassigned", params={"after": value}).status_code == (200 if value == "1e3" else 400)
    assert client.get("/api/search", params={"album": value, "person": value}).status_code == 200  # filters ignore junk


@pytest.mark.parametrize("path", ["/photos/{}", "/api/assets/{}", "/albums/{}", "/people/{}", "/api/assets/{}/original",
                                  "/memories/{}", "/places/town/{}", "/api/faces/{}/thumbnail", "/s/x/p/{}"])
def test_ids_beyond_sqlite_are_not_found(app_client, path):
    client, _ = app_client
    r = client.get(path.format("99999999999999999999999"))
    assert r.status_code == 404, r.text


def test_form_and_json_ids_beyond_sqlite_are_refused(app_client):
    client, _ = app_client
    huge = "99999999999999999999999"
    r = client.post("/assets/bulk", data={"action": "favorite", "ids": huge})
    assert r.status_code == 400 and "ids" in r.json()["detail"], r.text
    r = client.post("/albums/1/cover", data={"asset_id": huge})
    assert r.status_code == 400 and "asset_id" in r.json()["detail"], r.text
    r = client.post("/api/uploads", json={"name": "x.jpg", "size": int(huge)})
    assert r.status_code == 400 and "size" in r.json()["detail"], r.text


def test_deep_or_huge_json_is_refused(app_client):
    client, _ = app_client
    deep = '{"checksums": ' + "[" * 100_000 + "]" * 100_000 + "}"
    r = client.post("/api/assets/check", content=deep, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "nested deeper" in r.json()["detail"], r.text
    big = '{"checksums": [' + ",".join(['"' + "a" * 40 + '"'] * 30_000) + "]}"
    r = client.post("/api/assets/check", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413, r.text
    ok = '{"checksums": ["' + "0" * 40 + '"]}'
    assert client.post("/api/assets/check", content=ok, headers={"content-type": "application/json"}).status_code == 200


def test_assigning_a_face_or_person_that_does_not_exist_is_not_found(app_client):
    client, _ = app_client
    r = client.post("/faces/999999/assign", data={"person_id": "1"})
    assert r.status_code == 404 and "face" in r.json()["detail"], r.text
    r = client.post("/faces/1/assign", data={"person_id": "999999"})
    assert r.status_code == 404 and "person" in r.json()["detail"], r.text
    r = client.post("/faces/999999/not", data={"person_id": "1"})
    assert r.status_code == 404, r.text
    with client.app.state.photobox.db.reader() as conn:
        assert conn.execute("SELECT person_id FROM faces WHERE id = 1").fetchone() == (1,), "nothing changed"
