"""Build the offline world outline for the Places map (run by hand when updating it).

Input: ``countries-110m.json`` from the npm package ``world-atlas`` 2.0.2 (ISC; TopoJSON
of Natural Earth 1:110m Admin 0 countries, public domain), given as the file or as the
package tarball from ``npm pack world-atlas@2.0.2``. Output: a GeoJSON FeatureCollection
(one feature per country with its name), coordinates rounded to 0.01° (about 1 km, far
below what 1:110m resolves), at ``static/vendor/world/countries-110m.geojson``.

Usage: python scripts/build_world_geojson.py world-atlas-2.0.2.tgz
"""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "static" / "vendor" / "world" / "countries-110m.geojson"


def _load(path: Path) -> dict:
    if path.suffix in (".tgz", ".gz"):
        with tarfile.open(path) as tar:
            return json.load(tar.extractfile("package/countries-110m.json"))
    return json.loads(path.read_text())


def _arcs(topo: dict) -> list[list[tuple[float, float]]]:
    """Decode the delta-encoded, quantized arcs into lon/lat positions."""
    (sx, sy), (tx, ty) = topo["transform"]["scale"], topo["transform"]["translate"]
    out = []
    for arc in topo["arcs"]:
        x = y = 0
        points = []
        for dx, dy in arc:
            x += dx
            y += dy
            points.append((round(x * sx + tx, 2), round(y * sy + ty, 2)))
        out.append(points)
    return out


def _ring(arcs: list, indexes: list[int]) -> list[list[float]]:
    ring: list[tuple[float, float]] = []
    for i in indexes:
        points = arcs[i] if i >= 0 else arcs[~i][::-1]
        ring.extend(points[1:] if ring else points)
    # Drop repeats left by the rounding; keep the ring closed.
    cleaned = [ring[0]]
    for p in ring[1:]:
        if p != cleaned[-1]:
            cleaned.append(p)
    if cleaned[0] != cleaned[-1]:
        cleaned.append(cleaned[0])
    # Rings crossing the antimeridian (Russia, Fiji) jump from 180 to -180; a map would draw
    # that jump as a line across the world. Keep longitudes continuous instead (Chukotka
    # runs on to 190°), which Leaflet draws where it belongs.
    out, shift = [], 0.0
    for i, (lon, lat) in enumerate(cleaned):
        if i and abs(lon + shift - out[-1][0]) > 180:
            shift += 360.0 if out[-1][0] > lon + shift else -360.0
        out.append([round(lon + shift, 2), lat])
    return out


def convert(topo: dict) -> dict:
    arcs = _arcs(topo)
    features = []
    for geom in topo["objects"]["countries"]["geometries"]:
        if geom.get("type") == "Polygon":
            polygons = [geom["arcs"]]
        elif geom.get("type") == "MultiPolygon":
            polygons = geom["arcs"]
        else:
            continue
        coords = [[r for r in (_ring(arcs, ring) for ring in poly) if len(r) >= 4] for poly in polygons]
        coords = [p for p in coords if p]
        if coords:
            features.append({"type": "Feature", "properties": {"name": geom.get("properties", {}).get("name", "")},
                             "geometry": {"type": "MultiPolygon", "coordinates": coords}})
    return {"type": "FeatureCollection",
            "source": "Natural Earth 1:110m Admin 0 countries (public domain) via world-atlas 2.0.2 (ISC)",
            "features": features}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    geo = convert(_load(Path(argv[1])))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(geo, separators=(",", ":")))
    print(f"{OUT}: {len(geo['features'])} countries, {OUT.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
