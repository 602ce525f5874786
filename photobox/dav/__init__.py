"""Phone backup over WebDAV: the folder tree apps see (:mod:`~photobox.dav.store`), the XML
they speak (:mod:`~photobox.dav.props`) and their Basic auth (:mod:`~photobox.web.basic_auth`).

The HTTP side is :mod:`photobox.dav.views`; files go through the normal ingest pipeline.
"""
