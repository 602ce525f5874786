"""The library: originals on disk, assets in the database, and the ingest pipeline between."""
