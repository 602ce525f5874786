"""Accuracy of `extract` against exiftool 12.57 on the shared camera corpus.

The corpus (``../shared/corpus`` next to the repository) holds real files
under mixed licences, so it is never copied into the repo; these tests skip
when it is absent.  ``expected.json`` holds exiftool's answers; the helpers
below turn them into the value photobox should produce, following the same
precedence rules as `photobox.media.metadata` (documented there).

The expectations apply photobox's documented validity rules to exiftool's
raw values (a date before 1826 or in the future, a GPS fix at exactly (0, 0)
or out of range, an Orientation outside 1..8 all mean "unknown"), and take
`ORACLE_ERRATA` where a later exiftool corrected 12.57's answer.

Agreement per field = files where we match exiftool, plus files listed in
`KNOWN_DIFFERENCES` with the reason we (deliberately or unavoidably) differ.
Two floors hold: the raw agreement, computed WITHOUT the exception list, must
reach 98 % for every required field (so a regression on a listed file cannot
hide behind its entry), and with the list every disagreement must be
explained; every listed disagreement must still exist (so the list cannot go
stale).  The table is printed in pytest's terminal summary (and with ``-s``
as it is computed) and written to ``corpus_report.txt`` in pytest's temporary
directory.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import pytest

from photobox.media.metadata import Metadata, extract

pytestmark = [
    pytest.mark.corpus,
    # Pillow's notes about damaged EXIF in corpus files are expected here.
    pytest.mark.filterwarnings("ignore::UserWarning:PIL.TiffImagePlugin"),
]

CORPUS = Path(__file__).resolve().parents[2] / ".." / "shared" / "corpus"
REQUIRED = ("taken_at", "gps", "make_model", "orientation", "display_size")
INFORMATIONAL = ("mime", "kind", "size", "duration", "exposure", "lens", "live_photo",
                 "motion_photo")
THRESHOLD = 0.98              # with the exception list
RAW_FLOOR = 0.98              # without it
GPS_TOLERANCE = 1e-4          # degrees; exiftool -n prints 6 decimals
DURATION_TOLERANCE = 0.05     # seconds

# exiftool's MIME names where photobox's API uses another common spelling.
MIME_ALIASES = {
    "video/m2ts": "video/mp2t",
    "image/x-fujifilm-raf": "image/x-fuji-raf",
}

# A reason starting with this marker depends on today's date, so the stale
# check skips it.
DATE_DEPENDENT = "date-dependent: "

# Where exiftool 12.57, the corpus oracle, was later corrected: file -> field
# -> the corrected value, as exiftool 13.58 reports it.  Unlike an exception,
# the corrected value is still compared, so a regression shows.
_WEBP_ERRATUM = ("exiftool 12.57 skipped a WebP EXIF chunk that starts with 'Exif\\0\\0' "
                 "(as Pillow wrote them); 13.x reads it ('Improper EXIF header')")
ORACLE_ERRATA: dict[str, dict[str, Any]] = {
    f"orientation/pil__hopper_orientation_{n}.webp": {"orientation": n} for n in range(2, 8)
}

# file -> field -> why photobox's answer differs from exiftool's.
_SEF_TRAILER = ("the embedded MP4 is followed by a Samsung SEF trailer; the corpus scan "
                "counts bytes to EOF, photobox stops at the end of the MP4's boxes")

KNOWN_DIFFERENCES: dict[str, dict[str, str]] = {
    # --- GPS ---
    "jpeg/camera/mei__Nikon_D5000.jpg": {
        "gps": "GPS seconds are 0/0 next to decimal minutes (48 deg 53.32358'); exiftool "
               "discards the position, photobox reads the seconds as 0"},
    # --- make/model ---
    "video/mei__Sony_ILCE-7M3_A7M3.mts": {
        "make_model": "exiftool -n prints the AVCHD maker code (264 = 0x108); photobox "
                      "maps it to 'Sony' as exiftool does without -n",
        "duration": "ffmpeg's container duration (0.544 s) vs exiftool's PCR-based 0.45 s",
        "exposure": "exiftool decodes the MDPM shutter record (0x7f), photobox only 0xa0/0xa1"},
    # --- informational: mime naming ---
    "heic/ev2__Sony.HIF": {"mime": "brand 'heix': exiftool says HEIF, IANA/Apple say HEIC"},
    "heic/ev2__issue_9292_sony_8_left-bottom.HIF": {"mime": "brand 'heix', see ev2__Sony.HIF"},
    "other/mei__BigTIFF.tif": {"mime": "BigTIFF: exiftool's image/x-tiff-big, photobox "
                                       "image/tiff"},
    "hostile/bad-tiff__pil__seek_too_large.tif": {"mime": "BigTIFF header, see mei__BigTIFF"},
    "hostile/bad-heif__hf__clusterfuzz-testcase-minimized-file-fuzzer-5120279175102464.heic": {
        "mime": "blank major brand with compatible brand 'mif1': exiftool falls back to MP4, "
                "photobox to HEIF (the file is broken either way)",
        "kind": "follows the mime difference"},
    "hostile/bad-video__ev2__issue_2340_poc.mp4": {
        "mime": "starts with a QuickTime 'pnot' box: photobox says QuickTime, exiftool MP4 "
                "(from the name)"},
    "hostile/truncated__mei__Issue_419.rw2": {
        "mime": "368-byte RW2 stub: exiftool gives up on the model and says image/x-raw"},
    "hostile/wrong-ext__ev2__exiv2-bug855.jpg": {
        "mime": "a JPEG stream whose EXIF carries DNGVersion: exiftool calls it DNG"},
    # --- informational: motion photo length ---
    "motion/exo__ss-motion-photo-shortened.jpg": {"motion_photo": _SEF_TRAILER},
    "motion/lp__motionphoto.heic": {"motion_photo": _SEF_TRAILER},
    # --- informational: exposure settings ---
    "jpeg/camera/mei__Kodak_DX6490.jpg": {
        "exposure": "ISO exists only in the Kodak MakerNote, which photobox does not parse"},
    "jpeg/camera/mei__FujiFilm_FinePixS2Pro.jpg": {
        "exposure": "EXIF ISO is 0; photobox reports None (unknown)"},
    "stripped/et__GPS.jpg": {"exposure": "EXIF ISO is 0; photobox reports None (unknown)"},
}


# --------------------------------------------------------------------------
# Turning exiftool's answers into expectations

_DATE_RE = re.compile(
    r"^(\d{4}):(\d\d):(\d\d) (\d\d):(\d\d)(?::(\d\d))?(?:\.\d+)?\s*(Z|[+-]\d\d:?\d\d)?")


def _parse(value: Any, offset: Any = None) -> tuple[str, int | None] | None:
    """exiftool date string -> ("YYYY-MM-DDTHH:MM:SS", offset minutes)."""
    if not isinstance(value, str):
        return None
    match = _DATE_RE.match(value.strip())
    if not match:
        return None
    y, mo, d, h, mi, s, tz = match.groups()
    try:
        when = dt.datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
    except ValueError:
        return None
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    tz = tz or offset
    minutes = None
    if tz == "Z":
        minutes = 0
    elif isinstance(tz, str) and re.match(r"^[+-]\d\d:?\d\d$", tz):
        minutes = int(tz[1:3]) * 60 + int(tz[-2:])
        minutes = -minutes if tz[0] == "-" else minutes
    utc = when - dt.timedelta(minutes=minutes or 0)
    if when.year < 1826 or utc > now + dt.timedelta(days=1):
        return None
    return when.strftime("%Y-%m-%dT%H:%M:%S"), minutes


def expected_taken(e: dict[str, Any]) -> tuple[str, int | None] | None:
    """The capture time photobox should report, from exiftool's fields."""
    offset = e.get("offset_time_original") or e.get("offset_time")
    created = e.get("create_date", {})
    candidates = [
        # DateTimeOriginal, whichever group exiftool took it from (EXIF,
        # XMP-exif, IPTC-derived composite, H.264 MDPM, AVI IDIT...).
        (e.get("date_time_original"), offset),
        (created.get("ExifIFD") or created.get("IFD0"), e.get("offset_time")),
        (e.get("date_created", {}).get("XMP-photoshop"), None),
        (created.get("XMP-xmp"), None),
    ]
    if e.get("mime", "").startswith("video/"):
        candidates += [(e.get("apple_creation_date"), None),
                       (created.get("QuickTime"), "Z")]   # QuickTime dates are UTC
    for value, zone in candidates:
        parsed = _parse(value, zone)
        if parsed:
            return parsed
    return None


def expected_gps(e: dict[str, Any]) -> tuple[float, float] | None:
    """The position photobox should report: exiftool's, unless it is no position.

    photobox's rules (`metadata._choose_gps`): a fix at exactly (0, 0) is a
    receiver without a fix writing zeros, and a position out of range is
    corrupt; exiftool reports both as they are stored.
    """
    gps = e.get("gps") or {}
    lat, lon = gps.get("lat"), gps.get("lon")
    if not (isinstance(lat, (int, float)) and isinstance(lon, (int, float))):
        return None
    if (lat, lon) == (0, 0) or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def expected_orientation(e: dict[str, Any]) -> int | None:
    """exiftool's Orientation; a value outside 1..8 is none (photobox: unknown)."""
    value = e.get("orientation", e.get("orientation_xmp"))
    return value if isinstance(value, int) and 1 <= value <= 8 else None


def expected_kind(mime: str | None) -> str | None:
    if not mime:
        return None
    if mime.startswith("video/"):
        return "video"
    if mime.startswith("image/"):
        return "image"
    return None


# --------------------------------------------------------------------------
# Per-field comparison: returns (agrees, expected, ours)


def compare(field: str, e: dict[str, Any], md: Metadata,
            errata: dict[str, Any] | None = None) -> tuple[bool, Any, Any]:
    """(agrees, expected, ours) for one field; ``errata`` overrides the expectation."""
    if errata and field in errata:
        ours = _ours(field, md)
        return errata[field] == ours, errata[field], ours
    return _compare(field, e, md)


def _ours(field: str, md: Metadata) -> Any:
    return {"orientation": md.orientation}[field]


def _compare(field: str, e: dict[str, Any], md: Metadata) -> tuple[bool, Any, Any]:
    if field == "taken_at":
        exp = expected_taken(e)
        # Only the dates exiftool reports as DateTimeOriginal/CreateDate count: the GPS fix
        # time (UTC) and the file-name/mtime fallbacks are our extra.
        ours = None
        if md.taken_at and md.taken_at_source not in ("gps", "filename", "mtime"):
            ours = (md.taken_at[:19], md.tz_offset_min)
        if exp is None or ours is None:
            return exp == ours, exp, ours
        same_offset = exp[1] is None or exp[1] == ours[1]
        return exp[0] == ours[0] and same_offset, exp, ours
    if field == "gps":
        exp = expected_gps(e)
        ours = (md.latitude, md.longitude) if md.latitude is not None else None
        if exp is None or ours is None:
            return exp == ours, exp, ours
        ok = abs(exp[0] - ours[0]) <= GPS_TOLERANCE and abs(exp[1] - ours[1]) <= GPS_TOLERANCE
        return ok, exp, ours
    if field == "make_model":
        exp = (e.get("make"), e.get("model"))
        ours = (md.make, md.model)
        return exp == ours, exp, ours
    if field == "orientation":
        exp = expected_orientation(e)
        return exp == md.orientation, exp, md.orientation
    if field == "display_size":
        exp = (e.get("display_width"), e.get("display_height"))
        ours = (md.display_width, md.display_height)
        return exp == ours, exp, ours
    if field == "size":
        exp = (e.get("width"), e.get("height"))
        ours = (md.width, md.height)
        return exp == ours, exp, ours
    if field == "mime":
        exp = MIME_ALIASES.get(e.get("mime"), e.get("mime"))
        return exp == md.mime, exp, md.mime
    if field == "kind":
        exp = expected_kind(e.get("mime"))
        return exp == md.kind, exp, md.kind
    if field == "duration":
        exp = e.get("duration_s")
        if exp is None or md.duration is None:
            return exp == md.duration, exp, md.duration
        return abs(exp - md.duration) <= DURATION_TOLERANCE, exp, md.duration
    if field == "exposure":
        keys = ("exposure_time", "f_number", "iso", "focal_length")
        exp = tuple(e.get(k) for k in keys)
        ours = tuple(getattr(md, k) for k in keys)
        return all(_close(a, b) for a, b in zip(exp, ours)), exp, ours
    if field == "lens":
        # Only where exiftool reports a LensModel (EXIF, XMP or a maker's record).
        exp = (e.get("lens_model") or "").strip() or None     # blank = none, as photobox
        return exp is None or exp == md.lens, exp, md.lens
    if field == "live_photo":
        exp = e.get("apple_content_identifier")
        return exp == md.live_photo_id, exp, md.live_photo_id
    if field == "motion_photo":
        mp = e.get("motion_photo") or {}
        scan = mp.get("embedded_video_scan") or {}
        exp = (scan.get("offset"), scan.get("bytes")) if mp.get("is_motion_photo") else None
        ours = None
        if md.motion_video_offset is not None:
            ours = (md.motion_video_offset, md.motion_video_length)
        return exp == ours, exp, ours
    raise ValueError(field)


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 0.01 * max(abs(a), abs(b))


# --------------------------------------------------------------------------
# Fixtures and report


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, md_report) -> dict[str, Any]:
    expected_file = CORPUS / "expected.json"
    if not expected_file.exists():
        pytest.skip(f"camera corpus not found at {CORPUS.resolve()} "
                    "(test data is kept outside the repository)")
    files = json.loads(expected_file.read_text())["files"]
    rows: dict[str, dict[str, tuple[bool, Any, Any]]] = {}
    for rel, e in sorted(files.items()):
        md = extract(CORPUS / rel)
        rows[rel] = {f: compare(f, e, md, ORACLE_ERRATA.get(rel))
                     for f in REQUIRED + INFORMATIONAL}
    report = _report(rows)
    out = tmp_path_factory.mktemp("corpus") / "corpus_report.txt"
    out.write_text(report + "\n")
    print("\n" + report)
    md_report(f"{report}\n(also written to {out})")
    return rows


def _report(rows: dict[str, dict[str, tuple[bool, Any, Any]]]) -> str:
    lines = [f"{'field':<14}{'n':>5}{'match':>7}{'known':>7}{'other':>7}"
             f"{'raw %':>8}{'agree %':>9}  required"]
    details = []
    for field in REQUIRED + INFORMATIONAL:
        match = known = other = 0
        for rel, row in rows.items():
            ok, exp, ours = row[field]
            if ok:
                match += 1
            elif field in KNOWN_DIFFERENCES.get(rel, {}):
                known += 1
            else:
                other += 1
                details.append(f"  {field:<13} {rel}: exiftool={exp!r} ours={ours!r}")
        n = len(rows)
        lines.append(f"{field:<14}{n:>5}{match:>7}{known:>7}{other:>7}"
                     f"{100 * match / n:>8.1f}{100 * (match + known) / n:>9.1f}"
                     f"  {'yes' if field in REQUIRED else 'info'}")
    floor = ", ".join(f"{f} {100 * _raw_share(rows, f):.1f}" for f in REQUIRED)
    lines += ["", f"raw agreement floor, no exception list (>= {100 * RAW_FLOOR:.0f} %): {floor}"]
    if details:
        lines += ["", "disagreements not in KNOWN_DIFFERENCES:"] + details
    return "\n".join(lines)


def _raw_share(rows: dict[str, dict[str, tuple[bool, Any, Any]]], field: str) -> float:
    return sum(1 for row in rows.values() if row[field][0]) / len(rows)


# --------------------------------------------------------------------------
# Tests


@pytest.mark.parametrize("field", REQUIRED)
def test_required_field_agreement(results: dict[str, Any], field: str) -> None:
    n = len(results)
    agree = sum(1 for rel, row in results.items()
                if row[field][0] or field in KNOWN_DIFFERENCES.get(rel, {}))
    assert agree / n >= THRESHOLD, f"{field}: {agree}/{n} agree"


@pytest.mark.parametrize("field", REQUIRED)
def test_raw_agreement_floor(results: dict[str, Any], field: str) -> None:
    """Agreement with exiftool WITHOUT `KNOWN_DIFFERENCES`: no entry can hide a regression."""
    share = _raw_share(results, field)
    misses = [rel for rel, row in results.items() if not row[field][0]]
    assert share >= RAW_FLOOR, f"{field}: {100 * share:.1f} % raw agreement; misses: {misses}"


def test_every_disagreement_is_explained(results: dict[str, Any]) -> None:
    unexplained = [
        f"{rel} {field}: exiftool={row[field][1]!r} ours={row[field][2]!r}"
        for rel, row in results.items() for field in REQUIRED + INFORMATIONAL
        if not row[field][0] and field not in KNOWN_DIFFERENCES.get(rel, {})
    ]
    assert not unexplained, "\n".join(unexplained)


def test_known_differences_are_not_stale(results: dict[str, Any]) -> None:
    stale = [
        f"{rel} {field}" for rel, fields in KNOWN_DIFFERENCES.items()
        for field, reason in fields.items()
        if not reason.startswith(DATE_DEPENDENT)
        and (rel not in results or results[rel][field][0])
    ]
    assert not stale, "listed as different but now agree: " + ", ".join(stale)
