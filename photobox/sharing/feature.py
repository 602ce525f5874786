"""Share links as a feature: their pages and downloads (:mod:`photobox.sharing.views`)."""

from __future__ import annotations

from photobox.plugins import Feature

__all__ = ["feature"]

feature = Feature("sharing")


@feature.routes
def _routes():
    from photobox.sharing import views

    return views.ROUTES
