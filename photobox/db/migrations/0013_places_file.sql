-- 0013 (places file): the gazetteer moves out of photobox.db into its own file, places.db,
-- ATTACHed as `geo` to every connection (photobox/places/gazetteer.py). It is public reference
-- data and was ~98 % of every backup. The data step `places_file` (photobox.db.migrate
-- DATA_STEPS) has copied the rows there before this runs; photobox.db keeps only the user's
-- places (`places`, `asset_places`).
DROP TABLE geo_cities_xyz;
DROP TABLE geo_cities;
DELETE FROM meta WHERE key = 'places_dataset';
