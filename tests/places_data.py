"""Small gazetteer files for tests, built here (tests never download the real one)."""

from __future__ import annotations

import csv
import hashlib
import io
import tarfile
from pathlib import Path

from photobox.places.data import DEFAULT_SOURCE

# Real GeoNames positions (cities1000) plus made-up towns where the real table has none
# close enough to the edge cases (the antimeridian, the North Pole).
KNOWN = [
    (48.85341, 2.3488, "Paris", "Ile-de-France", "Paris", "FR"),
    (52.52437, 13.41053, "Berlin", "Berlin", "", "DE"),
    (35.29203, -93.72992, "Paris", "Arkansas", "Logan County", "US"),
    (-18.14161, 178.44149, "Suva", "Central", "", "FJ"),
    (-16.8, 179.95, "Eastedge", "Northern", "", "FJ"),       # just west of 180°
    (-16.8, -179.6, "Westedge", "Eastern", "", "FJ"),        # east of 180°, farther away
    (78.22334, 15.64689, "Longyearbyen", "Svalbard", "Spitsbergen", "SJ"),
    (89.9, 10.0, "Polarstation", "", "", "SJ"),
    (-77.846, 166.676, "McMurdo Station", "", "", "AQ"),
    (4.88447, -1.75536, "Takoradi", "Western", "", "GH"),
    (5.55602, -0.1969, "Accra", "Greater Accra", "", "GH"),
]


def cities_csv(rows=KNOWN, *, population: bool = False) -> bytes:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["lat", "lon", "name", "admin1", "admin2", "cc", *(["population"] if population else [])])
    for i, row in enumerate(rows):
        w.writerow([*row, *([1000 + i] if population else [])])
    return out.getvalue().encode()


def cities_archive(path: Path, rows=KNOWN) -> str:
    """Write a .tar.gz laid out like the real source (the CSV at its member path); return its sha256."""
    data = cities_csv(rows)
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(DEFAULT_SOURCE.member)
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_known(box, tmp_path: Path, rows=KNOWN) -> dict:
    """Install a generated gazetteer through the real install path (verify + load + queue)."""
    from photobox.places.jobs import install

    archive = tmp_path / "cities.tar.gz"
    sha = cities_archive(archive, rows)
    return install(box, path=archive, sha256=sha)
