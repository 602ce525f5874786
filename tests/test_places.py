"""Places: the geocoder on known coordinates, the gazetteer loader, and the places jobs."""

from __future__ import annotations

import asyncio
import hashlib
import math
import random

import pytest

from photobox.places import gazetteer, geocoder
from photobox.places.data import ChecksumMismatch, read_cities
from photobox.places.geocoder import haversine_km, nearest
from photobox.places.jobs import install
from tests.gen import jpeg_bytes
from tests.places_data import KNOWN, cities_archive, cities_csv, install_known


@pytest.fixture
def geo(box, tmp_path):
    install_known(box, tmp_path)
    return box


def near(box, lat, lon):
    with box.db.reader() as conn:
        return nearest(conn, lat, lon)


def test_known_coordinates(geo):
    eiffel = near(geo, 48.8584, 2.2945)
    assert (eiffel.name, eiffel.admin1, eiffel.country_code, eiffel.country) == ("Paris", "Ile-de-France", "FR", "France")
    assert 3 < eiffel.distance_km < 6
    assert near(geo, 52.5163, 13.3777).name == "Berlin"  # Brandenburg Gate
    # Same name, other continent: the position decides, not the name.
    arkansas = near(geo, 35.3, -93.7)
    assert (arkansas.name, arkansas.admin1, arkansas.country) == ("Paris", "Arkansas", "United States")
    assert near(geo, -18.1, 178.4).name == "Suva"


def test_antimeridian(geo):
    # At -179.99° the nearest town is at +179.95° (6 km across the date line), not the one
    # on the same side of it (-179.6°, 41 km): a latitude/longitude box would get this wrong.
    hit = near(geo, -16.8, -179.99)
    assert hit.name == "Eastedge" and hit.distance_km < 8
    assert near(geo, -16.8, 180.0).name == "Eastedge"
    assert near(geo, -16.8, -179.7).name == "Westedge"


def test_poles(geo):
    # Longitude means little at 89.95°: the town at lon 10° is 17 km from lon -170°.
    hit = near(geo, 89.95, -170.0)
    assert hit.name == "Polarstation" and 15 < hit.distance_km < 19
    assert near(geo, 90.0, 0.0).name == "Polarstation"
    assert near(geo, -90.0, 0.0) is None  # McMurdo is 1360 km from the South Pole
    assert near(geo, -77.85, 166.7).name == "McMurdo Station"


def test_no_place_at_sea(geo):
    # Null Island (0°, 0°) is 570 km from Takoradi, the nearest town: at sea, no place.
    assert near(geo, 0.0, 0.0) is None


def test_max_distance_rule_is_exact(geo):
    lat0, lon0 = 4.88447, -1.75536  # Takoradi
    just_in = lat0 - (geocoder.MAX_KM - 1) / 111.2
    just_out = lat0 - (geocoder.MAX_KM + 1) / 111.2
    assert haversine_km(just_in, lon0, lat0, lon0) < geocoder.MAX_KM < haversine_km(just_out, lon0, lat0, lon0)
    assert near(geo, just_in, lon0).name == "Takoradi"
    assert near(geo, just_out, lon0) is None


def test_bad_positions(geo):
    assert near(geo, float("nan"), 0.0) is None
    assert near(geo, 91.0, 0.0) is None
    assert near(geo, 48.8584, 2.2945 + 360).name == "Paris"  # longitudes wrap


def test_matches_brute_force_everywhere(box, tmp_path):
    rng = random.Random(7)
    rows = []
    for i in range(3000):
        # Uniform on the sphere, plus clusters at the poles and along the antimeridian.
        if i % 3 == 0:
            lat, lon = math.degrees(math.asin(rng.uniform(-1, 1))), rng.uniform(-180, 180)
        elif i % 3 == 1:
            lat, lon = rng.uniform(-89.9, 89.9), rng.choice((-1, 1)) * rng.uniform(179.0, 180.0)
        else:
            lat, lon = rng.choice((-1, 1)) * rng.uniform(88.0, 90.0), rng.uniform(-180, 180)
        rows.append((round(lat, 5), round(lon, 5), f"T{i}", "", "", "XX"))
    install_known(box, tmp_path, rows)
    with box.db.reader() as conn:
        for _ in range(400):
            qlat, qlon = rng.choice(rows)[:2]
            qlat = max(-90.0, min(90.0, qlat + rng.uniform(-1, 1)))
            qlon = qlon + rng.uniform(-1.5, 1.5)
            best = min(rows, key=lambda r: haversine_km(qlat, qlon, r[0], r[1]))
            d = haversine_km(qlat, qlon, best[0], best[1])
            hit = nearest(conn, qlat, qlon)
            if d > geocoder.MAX_KM:
                assert hit is None
            else:
                assert hit is not None and abs(hit.distance_km - d) < 1e-9, (qlat, qlon, best, hit)


# -- loading ---------------------------------------------------------------------------

def test_install_loads_and_is_idempotent(box, tmp_path):
    info = install_known(box, tmp_path)
    assert info["cities"] == len(KNOWN) and info["licence"].startswith("CC BY 4.0")
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(KNOWN)
        assert conn.execute("SELECT count(*) FROM geo_cities_xyz").fetchone()[0] == len(KNOWN)
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'places.all'").fetchone()[0] == 1
    again = install_known(box, tmp_path)
    assert again.get("already") is True
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(KNOWN)


def test_checksum_mismatch_is_refused_and_changes_nothing(box, tmp_path):
    install_known(box, tmp_path)
    other = tmp_path / "other.tar.gz"
    cities_archive(other, KNOWN[:2])
    with pytest.raises(ChecksumMismatch):
        install(box, path=other, sha256="0" * 64, force=True)
    with pytest.raises(ChecksumMismatch):
        install(box, path=other, force=True)  # against the real pin: not those bytes
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(KNOWN)


def test_plain_csv_with_population_and_bad_rows(box, tmp_path):
    data = cities_csv(KNOWN[:3], population=True) + b"nan,1,Bad,,,XX\n95,1,Bad,,,XX\n1,2,,,,XX\n"
    path = tmp_path / "cities.csv"
    path.write_bytes(data)
    info = install(box, path=path, sha256=hashlib.sha256(data).hexdigest())
    assert info["cities"] == 3
    with box.db.reader() as conn:
        assert conn.execute("SELECT population FROM geo_cities ORDER BY id").fetchall() == [(1000,), (1001,), (1002,)]


def test_not_a_cities_file(box, tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a cities file"):
        install(box, path=path, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
    with box.db.reader() as conn:
        assert geocoder.installed(conn) is None


def test_empty_file_keeps_old_gazetteer(box, tmp_path):
    install_known(box, tmp_path)
    path = tmp_path / "empty.csv"
    path.write_bytes(b"lat,lon,name,admin1,admin2,cc\n")
    with pytest.raises(ValueError):
        gazetteer.build(box.attached_path(gazetteer.ALIAS), read_cities(path), info={"sha256": "x"})
    assert not box.path("places.db.new").exists()
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM geo_cities").fetchone()[0] == len(KNOWN)


# -- jobs ------------------------------------------------------------------------------

def ingest(box, tmp_path, name, **kw):
    from photobox.library.ingest import hash_file, ingest_temp_file

    tmp = box.path("tmp", name)
    tmp.write_bytes(jpeg_bytes(**kw))
    checksum, size = hash_file(tmp)
    return ingest_temp_file(box, tmp, checksum, size, original_name=name).asset_id


def places_of(box):
    with box.db.reader() as conn:
        return dict(conn.execute("SELECT ap.asset_id, p.city || ', ' || p.country FROM asset_places ap "
                                 "LEFT JOIN places p ON p.id = ap.place_id").fetchall())


def test_job_stores_place_after_install(box, tmp_path):
    paris = ingest(box, tmp_path, "paris.jpg", gps=(48.8584, 2.2945), seed=1)
    sea = ingest(box, tmp_path, "sea.jpg", gps=(0.5, 0.5), seed=2)
    nogps = ingest(box, tmp_path, "none.jpg", seed=3)
    asyncio.run(box.scheduler.run_until_idle())
    assert places_of(box) == {}  # no gazetteer yet: nothing stored, nothing failed
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind LIKE 'places%' AND state = 'failed'").fetchone()[0] == 0
    install_known(box, tmp_path)
    asyncio.run(box.scheduler.run_until_idle())
    assert places_of(box) == {paris: "Paris, France", sea: None}
    assert nogps not in places_of(box)
    # A new photo is geocoded by its own stage.
    suva = ingest(box, tmp_path, "suva.jpg", gps=(-18.1, 178.4), seed=4)
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'places' AND target = ?",
                            (str(suva),)).fetchone()[0] == 1
    asyncio.run(box.scheduler.run_until_idle())
    assert places_of(box)[suva] == "Suva, Fiji"
    with box.db.reader() as conn:
        # Stable place ids: one row per town, shared by its photos.
        assert conn.execute("SELECT count(*) FROM places").fetchone()[0] == 2


def test_periodic_check_queues_when_pending(box, tmp_path):
    from photobox.places.jobs import queue_geocoding

    install_known(box, tmp_path)
    asyncio.run(box.scheduler.run_until_idle())
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM jobs")
    asyncio.run(queue_geocoding(box))
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'places.all'").fetchone()[0] == 0
    ingest(box, tmp_path, "b.jpg", gps=(52.52, 13.4), seed=5)
    with box.db.transaction() as conn:
        conn.execute("DELETE FROM jobs")
    asyncio.run(queue_geocoding(box))
    with box.db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM jobs WHERE kind = 'places.all'").fetchone()[0] == 1


# -- command line ----------------------------------------------------------------------

def test_cli_install_status_and_doctor(tmp_path, capsys):
    from photobox.cli import main

    data = tmp_path / "data"
    archive = tmp_path / "cities.tar.gz"
    sha = cities_archive(archive)
    assert main(["places", "status", "--data-dir", str(data)]) == 0
    assert "not installed" in capsys.readouterr().out
    assert main(["doctor", "--data-dir", str(data)]) == 0
    assert "WARN  places data: not installed" in capsys.readouterr().out
    assert main(["places", "install", "--from", str(archive), "--sha256", "1" * 64, "--data-dir", str(data)]) == 1
    assert "expected 1111" in capsys.readouterr().out
    assert main(["places", "install", "--from", str(archive), "--sha256", sha, "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert f"installed {len(KNOWN)} cities" in out and "CC BY 4.0" in out and "geocoded 0 photo(s)" in out
    assert main(["places", "install", "--from", str(archive), "--sha256", sha, "--data-dir", str(data)]) == 0
    assert "already installed" in capsys.readouterr().out
    assert main(["places", "status", "--data-dir", str(data)]) == 0
    assert f"places data: {len(KNOWN)} cities" in capsys.readouterr().out
    assert main(["doctor", "--data-dir", str(data)]) == 0
    assert f"OK    places data: {len(KNOWN)} towns" in capsys.readouterr().out


def test_lost_gps_forgets_the_place(box, tmp_path):
    from photobox.places.jobs import queue_geocoding

    install_known(box, tmp_path)
    asset = ingest(box, tmp_path, "p.jpg", gps=(48.8584, 2.2945), seed=7)
    asyncio.run(box.scheduler.run_until_idle())
    assert places_of(box) == {asset: "Paris, France"}
    with box.db.transaction() as conn:  # as a metadata re-read of a file whose GPS was stripped does
        conn.execute("UPDATE assets SET latitude = NULL, longitude = NULL WHERE id = ?", (asset,))
    asyncio.run(queue_geocoding(box))
    asyncio.run(box.scheduler.run_until_idle())
    assert places_of(box) == {}
