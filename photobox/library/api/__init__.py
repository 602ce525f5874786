"""The library's JSON API: assets (list, upload, download, check) and resumable uploads."""
