-- 0005: a running job asked for again (force) runs once more after it finishes, instead of
-- the request being lost. Batch jobs such as ``clip`` (one job embeds whatever is missing)
-- rely on it: a photo whose preview appears while the batch runs is picked up right after.
ALTER TABLE jobs ADD COLUMN rerun INTEGER NOT NULL DEFAULT 0;
