"""The ``places`` stage: reverse-geocode each photo with a GPS position, and install the gazetteer.

``places`` runs per asset after metadata (it is appended to the ingest :data:`STAGES`).
``places.all`` works through every asset whose position was never geocoded or changed,
in batches: it is queued after ``photobox places install`` and by a periodic check, so a
library imported before the gazetteer was installed gets its places too. Both are
idempotent (a row per asset, replaced), so at-least-once delivery is harmless. Without the
gazetteer they do nothing and the Places page says how to install it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from photobox.jobs import Job, Stopping
from photobox.jobs import store as job_store
from photobox.places import gazetteer, store
from photobox.places.data import DEFAULT_SOURCE, Source, download, read_cities, verify
from photobox.places.geocoder import installed
from photobox.plugins import Feature

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["BATCH", "geocode_pending", "install", "queue_geocoding"]

log = logging.getLogger(__name__)

BATCH = 500

feature = Feature("places")
#: The gazetteer is reference data: its own file, ATTACHed to every connection, not backed up.
feature.attach(gazetteer.ALIAS, gazetteer.FILE_NAME)


def _has_position(kind: str, md) -> bool:
    return getattr(md, "latitude", None) is not None and getattr(md, "longitude", None) is not None


@feature.job("places", title="Places", priority=15, after="metadata", wanted=_has_position)
def places_job(job: Job) -> None:
    """Geocode one asset (its position as stored now)."""
    box: Photobox = job.context
    asset_id = int(job.target)
    with box.db.transaction() as conn:
        if installed(conn) is None:
            return  # no gazetteer yet: places.all catches up after `photobox places install`
        row = conn.execute("SELECT latitude, longitude FROM assets WHERE id = ?", (asset_id,)).fetchone()
        if row is None or row[0] is None or row[1] is None:
            conn.execute("DELETE FROM asset_places WHERE asset_id = ?", (asset_id,))
            return
        store.geocode_asset(conn, asset_id, row[0], row[1], now=box.clock())


@feature.job("places.all", title="Places (catching up)", priority=5)
def places_all_job(job: Job) -> None:
    """Geocode every asset that needs it."""
    done = geocode_pending(job.context, should_stop=job.should_stop)
    if done:
        log.info("places: geocoded %d photo(s)", done)


def geocode_pending(box: Photobox, *, should_stop=lambda: False) -> int:
    """Geocode every asset never geocoded or moved since, a batch per transaction (short
    writes); return how many. Does nothing without the gazetteer."""
    with box.db.transaction() as conn:
        store.forget_lost_gps(conn)
    done, after = 0, 0
    while True:
        if should_stop():
            raise Stopping()
        with box.db.transaction() as conn:
            if installed(conn) is None:
                return done
            batch = store.pending_assets(conn, BATCH, after_id=after)
            for asset_id, lat, lon in batch:
                store.geocode_asset(conn, asset_id, lat, lon, now=box.clock())
        if not batch:
            return done
        after = batch[-1][0]
        done += len(batch)


@feature.every(300, "places-geocoding")
async def queue_geocoding(box: Photobox) -> None:
    """Periodic: queue ``places.all`` when the gazetteer is installed and photos lack a place."""
    def pending(conn) -> bool:
        return installed(conn) is not None and (bool(store.pending_assets(conn, 1)) or store.has_lost_gps(conn))

    if await box.db.read(pending):
        await box.scheduler.enqueue("places.all", "", force=True)


def install(box: Photobox, *, source: Source = DEFAULT_SOURCE, path: Path | None = None,
            sha256: str | None = None, force: bool = False) -> dict:
    """Download (or take ``path``), verify the sha256 pin, load the gazetteer into a new places
    file and swap it in, then queue geocoding of the whole library; return the dataset info.

    The load holds no lock of photobox.db (it writes its own file); what changes photobox.db
    afterwards is done in short transactions, so uploads and jobs go on meanwhile. A second
    call with the same pin does nothing unless ``force``. A file given by ``path`` is checked
    against ``sha256`` (default: the pin of ``source``); a ``.csv`` is read as is, anything
    else as the source's archive.

    Raises:
        ChecksumMismatch: the bytes are not the pinned ones (nothing is changed).
        ValueError: the file is not a cities file.
        OSError: the download failed.
    """
    expected = (sha256 or source.sha256).lower()
    with box.db.reader() as conn:
        current = installed(conn)
    if current is not None and current.get("sha256") == expected and not force:
        return {**current, "already": True}
    downloaded = None
    if path is None:
        downloaded = download(source.url, box.path("tmp", f"places-{expected[:16]}.download"), expected)
        path = downloaded
    else:
        verify(path, expected)
    member = None if path.suffix.lower() == ".csv" else source.member
    try:
        count = gazetteer.build(box.attached_path(gazetteer.ALIAS), read_cities(path, member),
                                info={"source": source.name, "url": source.url, "sha256": expected,
                                      "licence": source.licence, "installed_at": box.clock()})
    finally:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
    if current is not None and current.get("sha256") != expected:
        _forget_places(box)  # derived data: redo it with the new gazetteer
    spec = box.scheduler.registry.get("places.all")
    with box.db.transaction() as conn:
        job_store.enqueue(conn, "places.all", "", now=box.clock(), priority=spec.priority if spec else 5,
                          max_attempts=box.settings.job_max_attempts, force=True)
    box.scheduler.notify()
    log.info("places: installed %d cities from %s", count, source.name)
    with box.db.reader() as conn:
        return installed(conn) or {}


def _forget_places(box: Photobox) -> None:
    """Delete every photo's place, BATCH rows per transaction (other writers get in between)."""
    while True:
        with box.db.transaction() as conn:
            conn.execute("DELETE FROM asset_places WHERE asset_id IN (SELECT asset_id FROM asset_places LIMIT ?)",
                         (BATCH,))
            if conn.changes() == 0:
                return


@feature.check("places data")
def _doctor(settings):
    from photobox.places.commands import doctor_check

    return doctor_check(settings)


@feature.commands
def _commands(commands) -> None:
    from photobox.places.commands import add_commands

    add_commands(commands)


@feature.routes
def _routes():
    from photobox.places import views as places

    return places.ROUTES


@feature.details
def _place_of(conn, asset_id: int) -> dict:
    from photobox.places.store import place_of_asset

    return {"place": place_of_asset(conn, asset_id)}
