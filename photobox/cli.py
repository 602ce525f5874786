"""The ``photobox`` command: the same operations as the web app, against the same data folder."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from photobox import __version__
from photobox.settings import SETTINGS, Settings, SettingsError, load_settings

__all__ = ["main"]


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {s.name: getattr(args, s.name, None) for s in SETTINGS}
    return load_settings(overrides, config_file=getattr(args, "config", None))


def cmd_serve(args: argparse.Namespace) -> int:
    from granian import Granian
    from granian.constants import Interfaces

    settings = _settings(args)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
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
        log_level=settings.log_level,
        respawn_failed_workers=True,
    ).serve()
    return 0


def cmd_set_password(args: argparse.Namespace) -> int:
    from photobox import auth
    from photobox.core import Photobox

    password = os.environ.get("PHOTOBOX_NEW_PASSWORD") if args.password_from_env else None
    if password is None:
        password = getpass.getpass("New password: ")
        if password != getpass.getpass("Again: "):
            print("The passwords differ.", file=sys.stderr)
            return 2
    try:
        auth.validate_credentials(args.username or "owner", password)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    box = Photobox(_settings(args)).open()
    try:
        with box.db.transaction() as conn:
            user = auth.set_password(conn, args.username, auth.hash_password(password))
    finally:
        box.close()
    print(f"Password set for {user.username}; every session was logged out.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from photobox.doctor import run_checks

    return run_checks(_settings(args), out=sys.stdout)


def cmd_jobs(args: argparse.Namespace) -> int:
    from photobox.core import Photobox
    from photobox.jobs import store

    box = Photobox(_settings(args)).open()
    try:
        if args.retry:
            with box.db.transaction() as conn:
                print(f"queued {store.retry(conn, now=box.clock())} failed job(s) again")
        with box.db.reader() as conn:
            counts = store.counts(conn)
        for kind, states in sorted(counts.items()):
            print(f"{kind:12} " + "  ".join(f"{state}={n}" for state, n in sorted(states.items())))
        if not counts:
            print("no jobs")
    finally:
        box.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    # Settings flags work before or after the command (`photobox --port 9000 serve` or
    # `photobox serve --port 9000`); SUPPRESS keeps a subcommand from resetting them to None.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS,
                        help="TOML file with settings (default: PHOTOBOX_CONFIG or photobox.toml in the data folder)")
    for s in SETTINGS:
        common.add_argument(f"--{s.name.replace('_', '-')}", dest=s.name, default=argparse.SUPPRESS,
                            help=f"{s.help} (default: {s.default!r}; env PHOTOBOX_{s.name.upper()})")
    parser = argparse.ArgumentParser(prog="photobox", description="A self-hosted photo archive.", parents=[common])
    parser.add_argument("--version", action="version", version=f"photobox {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(group, name: str, help: str, func=None) -> argparse.ArgumentParser:
        p = group.add_parser(name, help=help, description=help, parents=[common])
        if func is not None:
            p.set_defaults(func=func)
        return p

    command(sub, "serve", "serve the web app (granian, one worker)", cmd_serve)
    user_sub = command(sub, "user", "manage the owner account").add_subparsers(
        dest="user_command", metavar="ACTION", required=True)
    sp = command(user_sub, "set-password", "set the owner's password (creates the owner if missing)", cmd_set_password)
    sp.add_argument("--username", default=None, help="also rename the owner (or name a new one)")
    sp.add_argument("--password-from-env", action="store_true",
                    help="read the password from PHOTOBOX_NEW_PASSWORD instead of prompting")
    command(sub, "doctor", "check the data folder, database, disk, models and versions", cmd_doctor)
    jobs = command(sub, "jobs", "show job counts by kind and state", cmd_jobs)
    jobs.add_argument("--retry", action="store_true", help="queue failed jobs again first")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except SettingsError as exc:
        print(f"photobox: {exc}", file=sys.stderr)
        return 2
