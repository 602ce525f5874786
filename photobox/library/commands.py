"""``photobox import``, ``photobox scan`` and ``photobox library add|list``: files in, from the CLI."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from photobox.cli.common import Commands, open_box, process_jobs

__all__ = ["add_commands", "import_one", "iter_import_files"]


def iter_import_files(paths: list[Path], skipped: list[tuple[Path, str]] | None = None):
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


def import_one(box, src: Path):
    from photobox.datadir.storage import TempWriter
    from photobox.library.ingest import ingest_temp_file

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

    box = open_box(args)
    counts = {"created": 0, "duplicate": 0, "refused": 0}
    skipped: list[tuple[Path, str]] = []
    try:
        files = iter_import_files([Path(p) for p in args.paths], skipped)
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
                pending.append((src, pool.submit(import_one, box, src)))
                drain(workers * 2)
            drain(0)
        for src, reason in skipped:  # at the end, together, so none scrolls away unseen
            print(f"skipped   {src}: {reason}")
        print(f"imported {counts['created']}, duplicates {counts['duplicate']}, refused {counts['refused']}, "
              f"skipped {len(skipped)}")
        process_jobs(box, not args.no_wait)
    finally:
        box.close()
    nothing = not (counts["created"] or counts["duplicate"])
    return 1 if nothing and (counts["refused"] or skipped) else 0


def cmd_library_add(args: argparse.Namespace) -> int:
    from photobox.library import libraries

    box = open_box(args)
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

    box = open_box(args)
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

    box = open_box(args)
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
        process_jobs(box, not args.no_wait)
        with box.db.reader() as conn:
            for lib in libraries.list_libraries(conn):
                if lib.id in wanted:
                    for rel, reason in libraries.skipped_files(conn, lib.id):
                        print(f"skipped   {Path(lib.root) / rel}: {reason}")
                    print(f"{lib.name}: {lib.last_scan_stats}")
    finally:
        box.close()
    return 0


def add_commands(commands: Commands) -> None:
    """``import``, ``scan`` and ``library add|list``."""
    imp = commands.add("import", "copy files or folders into the library (originals are never changed)", cmd_import)
    imp.add_argument("paths", nargs="+", help="files or folders; in a folder, a file without a photo or video "
                     "extension is taken when its content is one, and every file left out is listed with the reason")
    imp.add_argument("--no-wait", action="store_true", help="queue thumbnails etc. for the server instead of "
                     "making them now")
    imp.add_argument("-v", "--verbose", action="store_true", help="list every file")
    scan = commands.add("scan", "scan external libraries (all, or the ids given); lists the files not shown and why",
                        cmd_scan)
    scan.add_argument("library", nargs="*", type=int)
    scan.add_argument("--no-wait", action="store_true", help="leave the scan to the running server")
    library = commands.group("library", "manage external libraries (folders indexed in place)")
    lib_add = library.add("add", "register a folder to index in place (read-only)", cmd_library_add)
    lib_add.add_argument("path")
    lib_add.add_argument("--name", default="")
    lib_add.add_argument("--exclude", action="append", help="glob pattern to skip (repeatable)")
    lib_add.add_argument("--scan-minutes", type=int, default=360, help="rescan interval; 0 = only on demand")
    library.add("list", "list external libraries", cmd_library_list)
