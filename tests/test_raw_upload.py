"""Camera RAWs through the real upload API and job pipeline: kept byte for byte, read
(date, camera, exiftool's size) and shown through their embedded preview."""

from __future__ import annotations

import pytest

from photobox.library import assets
from photobox.library.paths import derived_path
from tests.gen import sha1
from tests.media import _raw_gen as gen
from tests.test_ingest import api, api_key, wait_idle  # noqa: F401 - fixtures

SD10 = {"CAMMANUF": "SIGMA", "CAMMODEL": "SIGMA SD10", "TIME": "978309395"}


@pytest.mark.parametrize("name, build, mime, camera, taken, size", [
    ("PICT0001.MRW", lambda: gen.minolta_mrw(), "image/x-minolta-mrw",
     ("Konica Minolta Camera, Inc.", "DiMAGE A2"), "2004-11-18T23:14:58", (3264, 2448)),
    ("IMG00001.X3F", lambda: gen.sigma_x3f(props=SD10), "image/x-sigma-x3f",
     ("SIGMA", "SIGMA SD10"), "2001-01-01T00:36:35", (2268, 1512)),
    ("CF000001.IIQ", lambda: gen.phase_one_iiq(), "image/x-phaseone-iiq",
     ("Phase One", "IQ180"), "2013-06-19T15:44:21", (7320, 5484)),
    ("DSC00001.tif", lambda: gen.tiff_raw(make="SONY", model="ILCE-7M3"), "image/x-sony-arw",
     ("SONY", "ILCE-7M3"), "2021-06-05T14:03:02", (6016, 4016)),
])
def test_raw_upload_is_read_and_gets_a_thumbnail(api, name, build, mime, camera, taken, size):  # noqa: F811
    data = build()
    r = api.post("/api/assets", files={"file": (name, data, "application/octet-stream")},
                 headers={"X-Checksum-SHA1": sha1(data)})
    assert r.status_code == 201, r.text
    asset_id = r.json()["id"]
    box = api.app.state.photobox
    counts = wait_idle(box)
    assert counts["thumbs"] == {"done": 1}, counts
    with box.db.reader() as conn:
        a = assets.get_asset(conn, asset_id)
        mime_, make, model, width, height = conn.execute(
            "SELECT mime, make, model, width, height FROM assets WHERE id = ?", (asset_id,)).fetchone()
    assert (mime_, (make, model), a.taken_at, (width, height)) == (mime, camera, taken, size)
    assert (box.path("library") / a.rel_path).read_bytes() == data
    assert derived_path(box, "thumb", asset_id).exists()
