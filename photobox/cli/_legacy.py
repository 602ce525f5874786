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
        log_level=settings.log_level,
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

    from photobox.safety.restore import ServerLock

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


def ask_password() -> str | None:
    """Ask for a new password twice on the terminal; None (after saying why) if they differ."""
    password = getpass.getpass("New password: ")
    if password != getpass.getpass("Again: "):
        print("The passwords differ.", file=sys.stderr)
        return None
    return password


def cmd_set_password(args: argparse.Namespace) -> int:
    from photobox import auth
    from photobox.core import Photobox

    password = os.environ.get("PHOTOBOX_NEW_PASSWORD") if args.password_from_env else None
    if password is None and (password := ask_password()) is None:
        return 2
    try:
        auth.validate_credentials(args.username or "owner", password)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    box = Photobox(_settings(args)).open()
    try:
        with box.db.transaction(durable=True) as conn:
            user = auth.set_password(conn, args.username, auth.hash_password(password))
    finally:
        box.close()
    print(f"Password set for {user.username}; every session was logged out.")
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from photobox.doctor import run_checks

    return run_checks(_settings(args), out=sys.stdout)


def _open(args: argparse.Namespace):
    from photobox.core import Photobox

    return Photobox(_settings(args)).open()


def _process_jobs(box, wait: bool) -> None:
    """Run queued jobs here until none is left (the server, if running, helps)."""
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


def _iter_import_files(paths: list[Path], skipped: list[tuple[Path, str]] | None = None):
    """Yield the files to import under ``paths``; append (path, reason) to ``skipped`` for the others.

    A file named on the command line is always tried. In folders, hidden, system and NAS
    thumbnail files and folders are left out, and a file without a media extension is taken
    when its content is a photo or video (``libraries.skip_reason``).
    """
    from photobox.library.libraries import DEFAULT_EXCLUSIONS, _excluded, skip_reason

    patterns = list(DEFAULT_EXCLUSIONS)
    skipped = [] if skipped is None else skipped
    for path in paths:
        if path.is_file():
            yield path  # named explicitly: try it whatever its extension
        elif path.is_dir():
            for root, dirs, files in os.walk(path):
                for d in sorted(dirs):
                    if _excluded(d, d, patterns):
                        skipped.append((Path(root) / d, "folder left out: hidden, recycle bin or NAS thumbnails"))
                dirs[:] = sorted(d for d in dirs if not _excluded(d, d, patterns))
                for name in sorted(files):
                    file = Path(root) / name
                    if _excluded(name, name, patterns):
                        skipped.append((file, "left out: a hidden, system or temporary file"))
                    elif (reason := skip_reason(file)) is not None:
                        skipped.append((file, reason))
                    else:
                        yield file
        else:
            skipped.append((path, "no such file or folder"))


def _import_one(box, src: Path):
    from photobox.library.ingest import ingest_temp_file
    from photobox.library.storage import TempWriter

    writer = TempWriter(box.path("tmp"))
    try:
        with open(src, "rb") as f:
            while block := f.read(1 << 20):
                writer.write_sync(block)
        tmp, checksum, size = writer.finish_sync()
    except BaseException:
        writer.discard()
        raise
    return ingest_temp_file(box, tmp, checksum, size, original_name=src.name, mtime=src.stat().st_mtime)


def cmd_import(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from photobox.library.ingest import RejectedFile

    box = _open(args)
    counts = {"created": 0, "duplicate": 0, "refused": 0}
    skipped: list[tuple[Path, str]] = []
    try:
        files = _iter_import_files([Path(p) for p in args.paths], skipped)
        # Bounded look-ahead (rclip's LOOKAHEAD_BATCHES): never more than 2 files per thread in flight.
        workers = box.settings.cpu_workers
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: list = []

            def drain(limit: int) -> None:
                while len(pending) > limit:
                    src, future = pending.pop(0)
                    try:
                        result = future.result()
                        counts[result.status] += 1
                        if args.verbose or result.status != "created":
                            print(f"{result.status:9} {src}")
                    except (RejectedFile, OSError) as exc:
                        counts["refused"] += 1
                        print(f"refused   {src}: {exc}", file=sys.stderr)

            for src in files:
                pending.append((src, pool.submit(_import_one, box, src)))
                drain(workers * 2)
            drain(0)
        for src, reason in skipped:  # at the end, together, so none scrolls away unseen
            print(f"skipped   {src}: {reason}")
        print(f"imported {counts['created']}, duplicates {counts['duplicate']}, refused {counts['refused']}, "
              f"skipped {len(skipped)}")
        _process_jobs(box, not args.no_wait)
    finally:
        box.close()
    nothing = not (counts["created"] or counts["duplicate"])
    return 1 if nothing and (counts["refused"] or skipped) else 0


def cmd_library_add(args: argparse.Namespace) -> int:
    from photobox.library import libraries

    box = _open(args)
    try:
        exclusions = list(libraries.DEFAULT_EXCLUSIONS) + list(args.exclude or [])
        with box.db.transaction() as conn:
            lib_id = libraries.add_library(conn, Path(args.path), name=args.name or "", exclusions=exclusions,
                                           scan_minutes=args.scan_minutes, now=box.clock(), data_dir=box.data_dir)
        from photobox.hints import command

        print(f"library {lib_id} added: {Path(args.path).resolve()} "
              f"(scan it with `{command(box.settings.data_dir, 'scan', str(lib_id))}`)")
    except ValueError as exc:
        print(f"photobox: {exc}", file=sys.stderr)
        return 2
    finally:
        box.close()
    return 0


def cmd_library_list(args: argparse.Namespace) -> int:
    from photobox.library import libraries

    box = _open(args)
    try:
        with box.db.reader() as conn:
            libs = libraries.list_libraries(conn)
        for lib in libs:
            stats = lib.last_scan_stats or {}
            print(f"{lib.id:3}  {lib.name:20} {lib.root}  every {lib.scan_minutes} min  last scan: "
                  + (", ".join(f"{k}={v}" for k, v in stats.items()) or "never"))
        if not libs:
            from photobox.hints import command

            print(f"no external libraries (add one with `{command(box.settings.data_dir, 'library', 'add', 'PATH')}`)")
    finally:
        box.close()
    return 0


def cmd_scan(args: argparse.Namespace) -> int:
    from photobox.library import libraries

    box = _open(args)
    try:
        with box.db.reader() as conn:
            ids = [lib.id for lib in libraries.list_libraries(conn)]
        wanted = args.library or ids
        unknown = set(wanted) - set(ids)
        if unknown:
            print(f"photobox: no external library {sorted(unknown)}", file=sys.stderr)
            return 2
        for lib_id in wanted:
            box.scheduler.enqueue_sync("scan", str(lib_id), force=True)
        print(f"scan queued for {len(wanted)} librar{'y' if len(wanted) == 1 else 'ies'}")
        _process_jobs(box, not args.no_wait)
        with box.db.reader() as conn:
            for lib in libraries.list_libraries(conn):
                if lib.id in wanted:
                    for rel, reason in libraries.skipped_files(conn, lib.id):
                        print(f"skipped   {Path(lib.root) / rel}: {reason}")
                    print(f"{lib.name}: {lib.last_scan_stats}")
    finally:
        box.close()
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from photobox.ml.commands import cmd_models_list as run

    return run(_settings(args), sys.stdout)


def cmd_models_fetch(args: argparse.Namespace) -> int:
    from photobox.ml.commands import cmd_models_fetch as run

    return run(_settings(args), args.names, sys.stdout, source_override_dir=args.source,
               trust_on_first_use=args.trust_on_first_use)


def cmd_people_recluster(args: argparse.Namespace) -> int:
    from photobox.people.faces_job import recluster_all

    box = _open(args)
    try:
        stats = recluster_all(box)
    finally:
        box.close()
    print(f"re-clustered {stats['faces']} faces: {stats['changed']} moved, {stats['new_people']} new people")
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

    command(sub, "serve", "serve the web app (granian, one worker); refuses to start when another server uses "
            "the data folder or the port is taken", cmd_serve)
    user_sub = command(sub, "user", "manage the owner account").add_subparsers(
        dest="user_command", metavar="ACTION", required=True)
    sp = command(user_sub, "set-password", "set the owner's password (creates the owner if missing)", cmd_set_password)
    sp.add_argument("--username", default=None, help="also rename the owner (or name a new one)")
    sp.add_argument("--password-from-env", action="store_true",
                    help="read the password from PHOTOBOX_NEW_PASSWORD instead of prompting")
    command(sub, "doctor", "check the data folder, database, disk, models and versions", cmd_doctor)
    imp = command(sub, "import", "copy files or folders into the library (originals are never changed)", cmd_import)
    imp.add_argument("paths", nargs="+", help="files or folders; in a folder, a file without a photo or video "
                     "extension is taken when its content is one, and every file left out is listed with the reason")
    imp.add_argument("--no-wait", action="store_true", help="queue thumbnails etc. for the server instead of "
                     "making them now")
    imp.add_argument("-v", "--verbose", action="store_true", help="list every file")
    scan = command(sub, "scan", "scan external libraries (all, or the ids given); lists the files not shown and why",
                   cmd_scan)
    scan.add_argument("library", nargs="*", type=int)
    scan.add_argument("--no-wait", action="store_true", help="leave the scan to the running server")
    lib_sub = command(sub, "library", "manage external libraries (folders indexed in place)").add_subparsers(
        dest="library_command", metavar="ACTION", required=True)
    lib_add = command(lib_sub, "add", "register a folder to index in place (read-only)", cmd_library_add)
    lib_add.add_argument("path")
    lib_add.add_argument("--name", default="")
    lib_add.add_argument("--exclude", action="append", help="glob pattern to skip (repeatable)")
    lib_add.add_argument("--scan-minutes", type=int, default=360, help="rescan interval; 0 = only on demand")
    command(lib_sub, "list", "list external libraries", cmd_library_list)
    models_sub = command(sub, "models", "ML models for search by description and people").add_subparsers(
        dest="models_command", metavar="ACTION", required=True)
    command(models_sub, "list", "list available and installed models", cmd_models_list)
    people_sub = command(sub, "people", "people (face clusters)").add_subparsers(
        dest="people_command", metavar="ACTION", required=True)
    command(people_sub, "recluster", "cluster all faces again (names and your corrections are kept)",
            cmd_people_recluster)
    fetch = command(models_sub, "fetch", "download (checking sha256), quantize to int8 and install models",
                    cmd_models_fetch)
    fetch.add_argument("names", nargs="*", help="models to fetch (default: the default CLIP model)")
    fetch.add_argument("--from", dest="source", type=Path, default=None,
                       help="take the files from this folder instead of the model hub (offline installs)")
    fetch.add_argument("--trust-on-first-use", action="store_true",
                       help="accept files whose sha256 is not pinned in the manifest, and pin what was downloaded")
    from photobox.places.commands import add_commands as add_places_commands

    add_places_commands(command, sub, _settings)
    from photobox.jobs.commands import add_commands as add_jobs_commands

    add_jobs_commands(command, sub, _settings)
    from photobox.safety.commands import add_commands as add_safety_commands  # backup, restore, verify…

    add_safety_commands(sub, command)
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
        from photobox.safety.backups import BackupError  # a clear message, no traceback
        from photobox.safety.mounts import StorageMissingError

        if isinstance(exc, StorageMissingError):
            print(f"photobox: storage missing: {exc}", file=sys.stderr)
        elif isinstance(exc, BackupError):
            print(f"photobox: {exc}", file=sys.stderr)
        else:
            raise
        return 2
