"""The safety commands of ``photobox``: backup, restore, sidecar export/apply, rebuild, verify."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

__all__ = ["add_commands"]


def _settings(args):
    from photobox.cli import _settings as settings

    return settings(args)


def _open(args, *, allow_new: bool = False):
    from photobox.core import Photobox

    box = Photobox(_settings(args))
    box.allow_new_database = allow_new
    return box.open()


def _fail(message: str) -> int:
    print(f"photobox: {message}", file=sys.stderr)
    return 2


def cmd_backup(args: argparse.Namespace) -> int:
    from photobox.safety.backups import BackupError, make_backup

    box = _open(args)
    try:
        dest = make_backup(box, Path(args.to) if args.to else None)
    except BackupError as exc:
        return _fail(str(exc))
    finally:
        box.close()
    print(f"backup written and verified: {dest} ({dest.stat().st_size / 1048576:.1f} MiB)")
    if dest.with_suffix(".json").exists():
        print(f"sidecar export: {dest.with_suffix('.json')}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from photobox.safety import restore
    from photobox.safety.backups import BackupError

    settings = _settings(args)
    data = settings.data_dir.resolve()
    if not data.is_dir():
        return _fail(f"the data folder {data} does not exist (is the disk mounted?)")
    try:
        info = restore.stage_restore(data, Path(args.file))
    except (BackupError, OSError) as exc:
        return _fail(f"not restored: {exc}")
    print(f"{args.file}: a photobox database, integrity ok, schema {info['schema']}, {info['assets']} photos/videos")
    if restore.server_running(data):
        print("The photobox server is running, so the restore is staged: it replaces the database at the next "
              "start (e.g. `sudo systemctl restart photobox`). The current database is kept as a restore point "
              "in backups/ then.")
        return 0
    lock = restore.ServerLock(data)
    if not lock.acquire():
        print("staged; it is applied at the next start")
        return 0
    try:
        point = restore.apply_staged_restore(data, now=time.time())
    finally:
        lock.release()
    print("restored." + (f" The previous database is kept as {point}" if point else ""))
    return 0


def cmd_sidecar_export(args: argparse.Namespace) -> int:
    import json

    from photobox.safety import sidecar

    box = _open(args)
    try:
        with box.db.reader() as conn:
            data = sidecar.export(conn)
    finally:
        box.close()
    text = json.dumps(data, ensure_ascii=False, indent=1) + "\n"
    if args.to in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.to).write_text(text, encoding="utf-8")
        print(f"exported {len(data['assets'])} photos with your changes, {len(data['albums'])} albums, "
              f"{len(data['people'])} people to {args.to}")
    return 0


def _print_apply(stats: dict, path) -> None:
    print(f"applied: {stats['assets']} photos' favourite/archive/trash/description, {stats['albums']} albums created "
          f"({stats['album_members']} photos added), {stats['people']} people, {stats['faces']} faces, "
          f"{stats['libraries']} library folders")
    if stats["assets_missing"] or stats["faces_missing"]:
        print(f"not found yet: {stats['assets_missing']} photos, {stats['faces_missing']} faces (after scanning and "
              f"face detection have finished, run `photobox sidecar apply {path}` again; it is safe to repeat)")


def cmd_sidecar_apply(args: argparse.Namespace) -> int:
    from photobox.safety import sidecar

    box = _open(args)
    try:
        stats = sidecar.apply_file(box, Path(args.file))
    except sidecar.SidecarError as exc:
        return _fail(str(exc))
    finally:
        box.close()
    _print_apply(stats, args.file)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    """A new database from the files: re-add library folders (from the sidecar), index the
    originals in ``library/`` in place, scan external folders, then re-apply the sidecar."""
    from photobox.cli import _process_jobs
    from photobox.safety import integrity, sidecar

    data = None
    if args.sidecar:
        try:
            data = sidecar.load_file(Path(args.sidecar))
        except sidecar.SidecarError as exc:
            return _fail(str(exc))
    box = _open(args, allow_new=True)
    try:
        if data is not None:
            with box.db.transaction() as conn:
                sidecar.apply(conn, {"libraries": data.get("libraries", [])}, now=box.clock())
        queued = integrity.adopt_orphans(box)
        with box.db.reader() as conn:
            libs = [i for (i,) in conn.execute("SELECT id FROM libraries WHERE kind = 'external'")]
        for lib_id in libs:
            box.scheduler.enqueue_sync("scan", str(lib_id), force=True)
        print(f"indexing {queued} files found in library/ and scanning {len(libs)} library folder(s)")
        _process_jobs(box, not args.no_wait)
        if data is not None:
            with box.db.transaction() as conn:
                stats = sidecar.apply(conn, data, now=box.clock())
            _print_apply(stats, args.sidecar)
    finally:
        box.close()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from photobox.safety import integrity

    box = _open(args)
    try:
        if args.slice:
            counts = integrity.run_slice(box, spread=False)
        else:
            counts = integrity.run_pass(box)
        with box.db.reader() as conn:
            issues = integrity.list_issues(conn, limit=1000)
    finally:
        box.close()
    print(f"checked {counts['checked']} originals ({counts['bytes'] / 1048576:.1f} MiB): {counts['ok']} ok, "
          f"{counts['missing']} missing, {counts['changed']} changed, {counts['unreadable']} unreadable, "
          f"{counts['skipped']} skipped (offline or folder not mounted); {counts['orphan']} orphaned files"
          + ("" if counts["finished"] else "; the pass continues with the next slice"))
    for issue in issues:
        print(f"{issue['kind']:10} {issue['library'] or issue['library_id']}: {issue['rel_path']}  {issue['detail']}")
    if issues:
        print("photobox changed and deleted nothing; check these files yourself.")
    return 1 if issues else 0


def add_commands(sub, command) -> None:
    """Add the safety commands to ``photobox``'s sub-parsers (``command`` is cli's helper)."""
    b = command(sub, "backup", "back up the database now (verified, with a JSON sidecar export)", cmd_backup)
    b.add_argument("--to", default=None, help="write the backup to this new file instead of backups/")
    r = command(sub, "restore", "restore the database from a backup file (verified; keeps a restore point)",
                cmd_restore)
    r.add_argument("file")
    sc_sub = command(sub, "sidecar", "JSON export of albums, favourites, people… (what files do not record)"
                     ).add_subparsers(dest="sidecar_command", metavar="ACTION", required=True)
    ex = command(sc_sub, "export", "write the export (default: to standard output)", cmd_sidecar_export)
    ex.add_argument("--to", default=None)
    ap = command(sc_sub, "apply", "re-apply an export to this database (matched by checksum; safe to repeat)",
                 cmd_sidecar_apply)
    ap.add_argument("file")
    rb = command(sub, "rebuild", "make a new database from the files (when photobox.db is lost and no backup "
                 "will do)", cmd_rebuild)
    rb.add_argument("--sidecar", default=None, help="a sidecar export to re-apply (e.g. backups/photobox-….json)")
    rb.add_argument("--no-wait", action="store_true", help="leave the indexing to the server")
    v = command(sub, "verify", "re-check every original's checksum (a fresh, whole pass) and look for missing and "
                "orphaned files (reports only)", cmd_verify)
    v.add_argument("--slice", action="store_true", help="one time-limited slice of the scheduled pass instead")
