"""What every ``photobox`` command shares: settings from flags, opening the box, adding commands,
running the queued jobs here. Feature modules add their commands through :class:`Commands`
(``@feature.commands``), so they never reach into each other's modules.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from photobox.settings import SETTINGS, Settings, load_settings

if TYPE_CHECKING:
    from photobox.core import Photobox

__all__ = ["Commands", "ask_password", "fail", "open_box", "process_jobs", "settings_from"]


def settings_from(args: argparse.Namespace) -> Settings:
    """The settings: defaults < config file < environment < the command's flags."""
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return load_settings(overrides, config_file=getattr(args, "config", None))


def open_box(args: argparse.Namespace, *, allow_new: bool = False) -> Photobox:
    """The photobox of the data folder the flags name, opened (``close()`` it after)."""
    from photobox.core import Photobox

    box = Photobox(settings_from(args))
    box.allow_new_database = allow_new
    return box.open()


def ask_password() -> str | None:
    """Ask for a new password twice on the terminal; None (after saying why) if they differ."""
    password = getpass.getpass("New password: ")
    if password != getpass.getpass("Again: "):
        print("The passwords differ.", file=sys.stderr)
        return None
    return password


def fail(message: str) -> int:
    """Print ``photobox: message`` on stderr; return exit code 2 (the request was wrong)."""
    print(f"photobox: {message}", file=sys.stderr)
    return 2


def process_jobs(box: Photobox, wait: bool) -> None:
    """Run queued jobs here until none is left (a running server helps)."""
    import asyncio

    if not wait:
        print("jobs queued; a running photobox server processes them")
        return
    print("processing thumbnails and metadata… (Ctrl-C stops; the rest resumes in the server)", flush=True)

    async def run() -> None:
        try:
            await box.scheduler.run_until_idle()
        finally:
            await box.scheduler.stop()

    asyncio.run(run())
    from photobox.jobs import store

    with box.db.reader() as conn:
        failed = {k: v.get("failed", 0) for k, v in store.counts(conn).items() if v.get("failed")}
    if failed:
        from photobox.hints import command

        print("failed jobs: " + ", ".join(f"{k}={n}" for k, n in failed.items())
              + f" (see `{command(box.settings.data_dir, 'jobs')}`)")


class Commands:
    """Adds commands (or groups of them) to a parser; every command takes the settings flags too.

    ``add("backup", help, fn)`` makes ``photobox backup``; ``group("models", help)`` returns a
    :class:`Commands` for ``photobox models ACTION``. ``fn(args) -> exit code``.
    """

    def __init__(self, subparsers: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
        self._sub = subparsers
        self._common = common

    def add(self, name: str, help: str, func: Callable[[argparse.Namespace], int] | None = None
            ) -> argparse.ArgumentParser:
        parser = self._sub.add_parser(name, help=help, description=help, parents=[self._common])
        if func is not None:
            parser.set_defaults(func=func)
        return parser

    def group(self, name: str, help: str) -> Commands:
        parser = self.add(name, help)
        sub = parser.add_subparsers(dest=f"{name.replace('-', '_')}_command", metavar="ACTION", required=True)
        return Commands(sub, self._common)
