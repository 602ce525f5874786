"""Phone backup over WebDAV: the folder tree apps see (:mod:`~photobox.dav.store`), the XML
they speak (:mod:`~photobox.dav.props`) and their Basic auth (:mod:`~photobox.dav.basic_auth`).

The HTTP side is :mod:`photobox.web.dav`; files go through the normal ingest pipeline.
"""
