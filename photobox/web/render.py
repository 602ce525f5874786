"""Rendering pages: one template per page, and only a named block for HTMX requests
(django-htmx-patterns' "inline partials")."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.plugins.htmx import HTMXRequest
from litestar.response import Response, Template

from photobox import __version__
from photobox.hints import command
from photobox.web.deps import photobox_of
from photobox.web.security import csrf_token_for

__all__ = ["from_htmx", "page"]


def from_htmx(request: Request) -> bool:
    """Whether HTMX sent ``request``. The app's request class is an ``HTMXRequest``, whose
    ``request.htmx`` handlers read directly; code given any request (error handlers) asks here."""
    return isinstance(request, HTMXRequest) and bool(request.htmx)


def page(request: Request, name: str, *, block: str | None = None, status_code: int = 200,
         **context: Any) -> Response:
    """Render ``name`` with the common context; for an HTMX request with ``block``, just that block."""
    box = photobox_of(request.app)
    user = request.scope.get("user")
    context.update(
        # cli("places", "install"): a command to show, written to work as typed (photobox.hints);
        # without this box's paths for visitors who are not logged in
        cli=lambda *args: command(getattr(getattr(box, "settings", None), "data_dir", None), *args,
                                  public=user is None),
        request=request,
        user=user,
        csrf_token=csrf_token_for(request),
        version=__version__,
        ml_available=False,
        # backup: missing library folders (unmounted disks), shown as a banner on every page
        storage_problems=getattr(box, "storage_problems", None) or [],
    )
    if block is not None and from_htmx(request):
        engine = request.app.template_engine
        template = engine.engine.get_template(name)  # type: ignore[union-attr]
        ctx = template.new_context(context)
        html = "".join(template.blocks[block](ctx))
        return Response(html, media_type="text/html", status_code=status_code)
    return Template(template_name=name, context=context, status_code=status_code)
