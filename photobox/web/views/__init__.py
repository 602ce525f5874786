"""HTML pages, one module per page kind (Datasette's ``views/``)."""
