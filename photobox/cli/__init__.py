"""The ``photobox`` command: the same operations as the web app, against the same data folder.

The core commands (``serve``, ``user``, ``doctor``, ``jobs``, ``models``) are here; every feature adds its
own (``import``, ``models``, ``places``, ``backup``…) through ``@feature.commands``, as a plugin
named in the ``plugins`` setting can.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from photobox import __version__
from photobox.cli.common import Commands, ask_password, settings_from
from photobox.settings import SETTINGS, SettingsError, load_settings

__all__ = ["build_parser", "main"]


def cmd_set_password(args: argparse.Namespace) -> int:
    from photobox import auth
    from photobox.cli.common import open_box

    password = os.environ.get("PHOTOBOX_NEW_PASSWORD") if args.password_from_env else None
    if password is None and (password := ask_password()) is None:
        return 2
    try:
        auth.validate_credentials(args.username or "owner", password)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    box = open_box(args)
    try:
        with box.db.transaction(durable=True) as conn:
            user = auth.set_password(conn, args.username, auth.hash_password(password))
    finally:
        box.close()
    print(f"Password set for {user.username}; every session was logged out.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from photobox.doctor import run_checks

    return run_checks(settings_from(args), out=sys.stdout)


def cmd_serve(args: argparse.Namespace) -> int:
    from photobox.cli.serve import cmd_serve as serve

    return serve(args)


def _plugin_names() -> str:
    """The ``plugins`` setting as the environment and config file give it (flags are not parsed yet)."""
    try:
        return load_settings().plugins
    except SettingsError:
        return ""  # the command itself will say what is wrong with the settings


def build_parser() -> argparse.ArgumentParser:
    from photobox.cli.jobs import add_commands as add_jobs_commands
    from photobox.cli.models import add_commands as add_models_commands
    from photobox.pipeline import feature_names
    from photobox.plugins import load_features

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
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND"), common)

    commands.add("serve", "serve the web app (granian, one worker); refuses to start when another server uses "
                 "the data folder or the port is taken", cmd_serve)
    user = commands.group("user", "manage the owner account")
    sp = user.add("set-password", "set the owner's password (creates the owner if missing)", cmd_set_password)
    sp.add_argument("--username", default=None, help="also rename the owner (or name a new one)")
    sp.add_argument("--password-from-env", action="store_true",
                    help="read the password from PHOTOBOX_NEW_PASSWORD instead of prompting")
    commands.add("doctor", "check the data folder, database, disk, models and versions", cmd_doctor)
    add_jobs_commands(commands)
    add_models_commands(commands)
    for feature in load_features(feature_names(_plugin_names())):
        for add in feature.command_adders:
            add(commands)
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
    except RuntimeError as exc:
        from photobox.datadir import StorageMissingError
        from photobox.datadir.copy import BackupError  # a clear message, no traceback

        if isinstance(exc, StorageMissingError):
            print(f"photobox: storage missing: {exc}", file=sys.stderr)
        elif isinstance(exc, BackupError):
            print(f"photobox: {exc}", file=sys.stderr)
        else:
            raise
        return 2
