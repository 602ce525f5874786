"""The safety commands of ``photobox``: backup, restore, sidecar export/apply, rebuild, verify."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from photobox.cli.common import Commands, ask_password, fail, open_box, process_jobs, settings_from

__all__ = ["add_commands"]


def cmd_backup(args: argparse.Namespace) -> int:
    from photobox.datadir.copy import BackupError
    from photobox.safety.backups import make_backup

    box = open_box(args)
    try:
        dest = make_backup(box, Path(args.to) if args.to else None)
    except BackupError as exc:
        return fail(str(exc))
    finally:
        box.close()
    print(f"backup written and verified: {dest} ({dest.stat().st_size / 1048576:.1f} MiB)")
    if dest.with_suffix(".json").exists():
        print(f"sidecar export: {dest.with_suffix('.json')}")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    from photobox.datadir import restore
    from photobox.datadir.copy import BackupError

    settings = settings_from(args)
    data = settings.data_dir.resolve()
    if not data.is_dir():
        return fail(f"the data folder {data} does not exist (is the disk mounted?)")
    try:
        info = restore.stage_restore(data, Path(args.file))
    except (BackupError, OSError) as exc:
        return fail(f"not restored: {exc}")
    print(f"{args.file}: a photobox database, integrity ok, schema {info['schema']}, {info['assets']} photos/videos")
    from photobox.places.gazetteer import FILE_NAME, file_info

    if file_info(data / FILE_NAME) is None:  # reference data is not in backups (photobox.places.gazetteer)
        print(f"Backups do not hold the places (GeoNames) data, and this data folder has no {FILE_NAME}: photos "
              "keep the places they had, but new ones get none until you run `photobox places install`.")
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

    box = open_box(args)
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

    box = open_box(args)
    try:
        stats = sidecar.apply_file(box, Path(args.file))
    except sidecar.SidecarError as exc:
        return fail(str(exc))
    finally:
        box.close()
    _print_apply(stats, args.file)
    return 0


#: What a rebuild cannot bring back: the export holds what the user did to photos, not secrets
#: (keys and links are stored only as hashes) nor what phones uploaded under which name.
NOT_REBUILT = ("Not brought back by a rebuild: the owner account (set it with `photobox user set-password`), API keys "
               "(make new ones under Settings and give them to your phone apps and scripts), share links (share "
               "again: old links stop working), and the WebDAV listing of uploaded file names (a phone app that "
               "uploads \"only new\" files sends them again once; photobox recognises every one and stores no "
               "second copy).")


def _rebuild_owner(box) -> bool:
    """Close the web setup page of the rebuilt database while it has no owner (the first
    visitor on the network would otherwise get every photo), and make the owner here when
    a person is at a terminal. Returns whether an owner exists."""
    from photobox import auth

    with box.db.transaction(durable=True) as conn:
        if auth.get_owner(conn) is not None:
            return True
        auth.close_setup(conn, "This photobox was rebuilt from its files.")
    if not sys.stdin.isatty():
        return False
    print("The web setup page stays closed after a rebuild. Set the owner's password now (Ctrl-C to do it later "
          "with `photobox user set-password`).", flush=True)
    try:
        username = input("User name [owner]: ").strip() or "owner"
        if (password := ask_password()) is None:
            return False
        auth.validate_credentials(username, password)
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return False
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return False
    hashed = auth.hash_password(password)
    with box.db.transaction(durable=True) as conn:
        auth.set_password(conn, username, hashed)
    print(f"owner {username} created")
    return True


def cmd_rebuild(args: argparse.Namespace) -> int:
    """A new database from the files: re-add library folders (from the sidecar), index the
    originals in ``library/`` in place, scan external folders, then re-apply the sidecar.
    The web setup page stays closed: the owner is made on the box (:func:`_rebuild_owner`)."""
    from photobox.safety import integrity, sidecar

    data = None
    if args.sidecar:
        try:
            data = sidecar.load_file(Path(args.sidecar))
        except sidecar.SidecarError as exc:
            return fail(str(exc))
    box = open_box(args, allow_new=True)
    try:
        has_owner = _rebuild_owner(box)
        if data is not None:
            with box.db.transaction() as conn:
                sidecar.apply(conn, {"libraries": data.get("libraries", [])}, now=box.clock())
        queued = integrity.adopt_orphans(box)
        with box.db.reader() as conn:
            libs = [i for (i,) in conn.execute("SELECT id FROM libraries WHERE kind = 'external'")]
        for lib_id in libs:
            box.scheduler.enqueue_sync("scan", str(lib_id), force=True)
        print(f"indexing {queued} files found in library/ and scanning {len(libs)} library folder(s)")
        process_jobs(box, not args.no_wait)
        if data is not None:
            with box.db.transaction() as conn:
                stats = sidecar.apply(conn, data, now=box.clock())
            _print_apply(stats, args.sidecar)
    finally:
        box.close()
    print(NOT_REBUILT)
    if not has_owner:
        print("photobox has no owner yet, and its web setup page stays closed: run `photobox user set-password` "
              "on this machine, then log in.")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from photobox.safety import integrity

    box = open_box(args)
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


def add_commands(commands: Commands) -> None:
    """``backup``, ``restore``, ``sidecar export|apply``, ``rebuild`` and ``verify``."""
    b = commands.add("backup", "back up the database now (verified, with a JSON sidecar export)", cmd_backup)
    b.add_argument("--to", default=None, help="write the backup to this new file instead of backups/")
    r = commands.add("restore", "restore the database from a backup file (verified; keeps a restore point)",
                cmd_restore)
    r.add_argument("file")
    sc_sub = commands.group("sidecar", "JSON export of albums, favourites, people… (what files do not record)")
    ex = sc_sub.add("export", "write the export (default: to standard output)", cmd_sidecar_export)
    ex.add_argument("--to", default=None)
    ap = sc_sub.add("apply", "re-apply an export to this database (matched by checksum; safe to repeat)",
                 cmd_sidecar_apply)
    ap.add_argument("file")
    rb = commands.add("rebuild", "make a new database from the files (when photobox.db is lost and no backup "
                 "will do); the owner is set on this machine (asked here, or `photobox user set-password`), never "
                 "on the web setup page", cmd_rebuild)
    rb.add_argument("--sidecar", default=None, help="a sidecar export to re-apply (e.g. backups/photobox-….json)")
    rb.add_argument("--no-wait", action="store_true", help="leave the indexing to the server")
    v = commands.add("verify", "re-check every original's checksum (a fresh, whole pass) and look for missing and "
                "orphaned files (reports only)", cmd_verify)
    v.add_argument("--slice", action="store_true", help="one time-limited slice of the scheduled pass instead")
