"""WebDAV as a feature: the ``/dav/`` mount that phone backup apps upload to."""

from __future__ import annotations

from photobox.plugins import Feature

__all__ = ["feature"]

feature = Feature("webdav")


@feature.routes
def _routes():
    from photobox.web import dav

    return dav.ROUTES
