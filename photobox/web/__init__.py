"""The web front end: HTMX pages and the JSON API, one Litestar app (``create_app``)."""
