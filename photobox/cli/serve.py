"""``photobox serve``: granian with one worker, after refusing what would go wrong in the worker."""

from __future__ import annotations

import argparse
import os
import sys

from photobox import __version__
from photobox.cli.common import settings_from
from photobox.settings import Settings

__all__ = ["cmd_serve"]


def cmd_serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces
    from granian.log import LogLevels

    settings = settings_from(args)
    if settings.data_dir.parent.is_dir():  # backup: never create a missing disk's folder chain
        settings.data_dir.mkdir(exist_ok=True)
    # Refuse a newer database here, with the message, instead of in granian's worker (which
    # would be respawned over and over).
    from photobox.db.migrate import SchemaTooNewError, refuse_newer

    try:
        refuse_newer(settings.db_path)
    except SchemaTooNewError as exc:
        print(f"photobox {__version__} cannot open {settings.db_path}: {exc}", file=sys.stderr)
        return 2
    refusal, lock = _claim_server(settings)
    if refusal:
        print(f"photobox: not started: {refusal}", file=sys.stderr)
        return 2
    # The app is built in granian's worker process from PHOTOBOX_* (create_app without
    # arguments), so hand every resolved setting over through the environment.
    os.environ.update(settings.to_env())
    os.environ.pop("PHOTOBOX_CONFIG", None)
    print(f"photobox {__version__}: http://{settings.host}:{settings.port}/  (data: {settings.data_dir.resolve()})",
          flush=True)
    Granian(
        "photobox.web.app:create_app",
        factory=True,
        interface=Interfaces.ASGI,
        address=settings.host,
        port=settings.port,
        # ONE worker: it holds the scheduler and the only write connection.
        workers=1,
        log_level=LogLevels(settings.log_level),
        respawn_failed_workers=True,
    ).serve()
    if lock is not None:
        lock.release()
    return 0


def _claim_server(settings: Settings):
    """Take the data folder's server lock (held until this process ends; the worker works
    under it) and check the port; return (why not to start or None, the lock).

    granian listens with SO_REUSEPORT, so a second server on the same port would start
    silently and share the connections with the first (two libraries answering in turn).
    """
    import socket

    from photobox.datadir.restore import ServerLock

    lock = None
    data = settings.data_dir.resolve()
    if data.is_dir():  # a missing disk: the worker waits for it and takes the lock then
        lock = ServerLock(data)
        if not lock.acquire():
            holder = lock.holder()
            return (f"another photobox server{f' (pid {holder})' if holder else ''} is already using the data "
                    f"folder {data}"), None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(settings.host, settings.port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        with socket.socket(family, kind, proto) as probe:
            # SO_REUSEADDR (not SO_REUSEPORT): a listener of any program on the port makes bind fail.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if lock is not None:
            lock.release()
        return (f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc} (another photobox or "
                f"another program is using that port; choose another with --port)"), None
    return None, lock
