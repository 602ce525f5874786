"""What a handler is given (Litestar's dependency injection, set on the app).

A handler names what it needs as a parameter:

* ``box: Box``: the app's :class:`~photobox.core.Photobox` (settings, the scheduler, writes
  through ``box.db.write``);
* ``read: Read``: a :class:`~photobox.db.LimitedReader`, for this request's reads. Every query gets the
  ``web_query_time_limit_ms`` setting as a time limit by default, and a caller may pass a
  lower ``limit_ms``, never a higher one (Datasette's ``sql_time_limit_ms``). A query that
  runs out of time raises :class:`~photobox.db.QueryTimeout`, which the app answers with a
  503 that says to narrow the view, never a 500. The limit keeps one slow page from
  holding a Pi's few reader threads.

Code that Litestar does not call with dependencies (middleware, exception handlers, the
WebDAV mount, helpers given a connection) uses :func:`photobox_of` and :func:`reader_for`.
"""

from __future__ import annotations

from litestar import Litestar
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide

from photobox.core import Photobox
from photobox.db import LimitedReader

__all__ = ["Box", "DEPENDENCIES", "Read", "photobox_of", "reader_for"]

#: A handler parameter ``box: Box`` is given the app's photobox.
Box = NamedDependency[Photobox]
#: A handler parameter ``read: Read`` is given the request's time-limited reader.
Read = NamedDependency[LimitedReader]


def photobox_of(app: Litestar) -> Photobox:
    """The photobox ``app`` serves."""
    return app.state.photobox


def reader_for(box: Photobox) -> LimitedReader:
    """Reads of ``box`` under the web's query time limit."""
    return LimitedReader(box.db, box.settings.web_query_time_limit_ms)


def _provide_box(state: State) -> Photobox:
    return state.photobox


def _provide_read(state: State) -> LimitedReader:
    return reader_for(state.photobox)


#: The app's dependencies: ``box`` and ``read`` (see the module docstring).
DEPENDENCIES: dict[str, Provide] = {
    "box": Provide(_provide_box, sync_to_thread=False),
    "read": Provide(_provide_read, sync_to_thread=False),
}
