"""WebDAV as a feature: the ``/dav/`` mount that phone backup apps upload to."""

from __future__ import annotations

from photobox.plugins import Feature

__all__ = ["feature"]

feature = Feature("webdav")


@feature.routes
def _routes():
    from photobox.dav import views as dav

    return dav.ROUTES
