"""The data layer: one SQLite file (apsw + sqlite-vec), one writer, many readers.

Domain modules (``photobox.auth``, ``photobox.jobs`` …) keep their SQL in small functions
that take an ``apsw.Connection``; this package only opens, migrates and hands out connections.
"""

from photobox.db.connection import connect
from photobox.db.database import Database, LimitedReader, QueryTimeout
from photobox.db.migrate import SchemaTooNewError, migrate, schema_version

__all__ = ["Database", "LimitedReader", "QueryTimeout", "SchemaTooNewError", "connect", "migrate", "schema_version"]
