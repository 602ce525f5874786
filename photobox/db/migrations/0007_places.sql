-- 0007 (places): offline reverse geocoding and where each photo was taken.

-- The gazetteer: towns and cities (GeoNames cities1000, loaded by `photobox places install`).
-- Replaced whole on every install; nothing else refers to its ids.
CREATE TABLE geo_cities (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL,
    admin1        TEXT NOT NULL DEFAULT '',     -- region: state, province, constituent country
    admin2        TEXT NOT NULL DEFAULT '',     -- county, district (often empty)
    country_code  TEXT NOT NULL,                -- ISO 3166-1 alpha-2
    lat           REAL NOT NULL,
    lon           REAL NOT NULL,
    population    INTEGER
) STRICT;
-- Each city as a point on the unit sphere (x, y, z): a box around the query point in 3-D
-- holds every city within a great-circle distance, with no special case at the
-- antimeridian or the poles (where a latitude/longitude box breaks).
CREATE VIRTUAL TABLE geo_cities_xyz USING rtree(id, minx, maxx, miny, maxy, minz, maxz);

-- Places photos were taken in, one row per (country, region, city): ids stay stable when
-- the gazetteer is reinstalled, so links to a place keep working.
CREATE TABLE places (
    id            INTEGER PRIMARY KEY,
    country_code  TEXT NOT NULL,
    country       TEXT NOT NULL,
    region        TEXT NOT NULL DEFAULT '',
    city          TEXT NOT NULL,
    lat           REAL NOT NULL,
    lon           REAL NOT NULL,
    UNIQUE (country_code, region, city)
) STRICT;

-- What the geocoder said for an asset's GPS position. place_id NULL: no town within range
-- (at sea, in the wilderness). latitude/longitude are the position it was computed from,
-- so a changed position (metadata re-read) is geocoded again.
CREATE TABLE asset_places (
    asset_id     INTEGER PRIMARY KEY REFERENCES assets(id) ON DELETE CASCADE,
    place_id     INTEGER REFERENCES places(id),
    distance_km  REAL,
    latitude     REAL NOT NULL,
    longitude    REAL NOT NULL,
    geocoded_at  REAL NOT NULL
) STRICT;
CREATE INDEX asset_places_place ON asset_places(place_id, asset_id);

-- The map reads positions of visible photos by latitude band; a covering index keeps that
-- off the wide assets rows.
CREATE INDEX assets_gps ON assets(latitude, longitude, id)
    WHERE latitude IS NOT NULL AND longitude IS NOT NULL AND trashed_at IS NULL AND motion_of IS NULL
    AND archived = 0;
