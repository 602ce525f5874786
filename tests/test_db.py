import shutil
import threading

import apsw
import pytest

from photobox.db import Database, QueryTimeout, SchemaTooNewError, connect, migrate, schema_version
from photobox.db.migrate import MIGRATIONS_DIR, available


def test_connection_pragmas_and_sqlite_vec(tmp_path):
    conn = connect(tmp_path / "x.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("SELECT vec_version()").fetchone()[0].startswith("v")
    conn.execute("CREATE VIRTUAL TABLE v USING vec0(embedding float[4])")
    conn.execute("INSERT INTO v(rowid, embedding) VALUES (1, '[1,0,0,0]'), (2, '[0,1,0,0]')")
    rows = conn.execute("SELECT rowid FROM v WHERE embedding MATCH '[0.9,0.1,0,0]' AND k = 1").fetchall()
    assert rows == [(1,)]


def test_migrate_fresh_and_idempotent(tmp_path):
    conn = connect(tmp_path / "x.db")
    applied = migrate(conn)
    assert [m.version for m in applied] == [m.version for m in available()]
    assert schema_version(conn) == available()[-1].version
    assert migrate(conn) == []
    recorded = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
    assert [v for (v,) in recorded] == [m.version for m in available()]


def _partial_migrations(tmp_path, upto: int):
    older = tmp_path / f"migrations_upto_{upto}"
    older.mkdir()
    for m in available()[:upto]:
        shutil.copy(m.path, older / m.path.name)
    return older


def test_open_db_created_by_older_migration_set(tmp_path):
    """A DB made by an older photobox (fewer migrations) upgrades, with a backup first."""
    older = _partial_migrations(tmp_path, 1)
    extra = tmp_path / "migrations_next"
    shutil.copytree(MIGRATIONS_DIR, extra)
    (extra / f"{len(available()) + 1:04d}_add_notes.sql").write_text(
        "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);")
    path = tmp_path / "x.db"
    conn = connect(path)
    migrate(conn, older)
    conn.execute("INSERT INTO meta(key, value) VALUES ('kept', 'yes')")
    calls = []
    applied = migrate(conn, extra, before_upgrade=lambda c, cur, target: calls.append((cur, target)))
    assert [m.version for m in applied] == list(range(2, len(available()) + 2))
    assert calls == [(1, len(available()) + 1)]
    assert conn.execute("SELECT value FROM meta WHERE key='kept'").fetchone() == ("yes",)
    assert conn.execute("SELECT count(*) FROM notes").fetchone() == (0,)


def test_refuses_newer_schema(tmp_path):
    conn = connect(tmp_path / "x.db")
    migrate(conn)
    conn.execute("PRAGMA user_version = 999")
    with pytest.raises(SchemaTooNewError, match="newer photobox"):
        migrate(conn)


def test_failed_migration_leaves_schema_whole(tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(MIGRATIONS_DIR, bad)
    n = len(available()) + 1
    (bad / f"{n:04d}_broken.sql").write_text("CREATE TABLE half (id INTEGER); THIS IS NOT SQL;")
    conn = connect(tmp_path / "x.db")
    with pytest.raises(apsw.SQLError):
        migrate(conn, bad)
    assert schema_version(conn) == n - 1
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name='half'").fetchone() == (0,)


def test_photobox_takes_backup_before_upgrade(tmp_path, settings):
    from photobox.core import Photobox

    settings.data_dir.mkdir(parents=True)
    conn = connect(settings.db_path)
    migrate(conn, _partial_migrations(tmp_path, 1))
    conn.close()
    if len(available()) == 1:
        pytest.skip("only one migration exists: nothing to upgrade yet")
    box = Photobox(settings).open()
    box.close()
    backups = list((settings.data_dir / "backups").glob("pre-upgrade-v1-*.db"))
    assert len(backups) == 1
    assert schema_version(connect(backups[0], readonly=True)) == 1


def test_one_writer_many_readers(tmp_path):
    db = Database(tmp_path / "x.db", readers=2).open()
    with db.transaction() as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")
    errors = []

    def writer(i):
        try:
            for j in range(50):
                with db.transaction() as conn:
                    conn.execute("INSERT INTO t VALUES (?)", (i * 1000 + j,))
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            errors.append(exc)

    def reader():
        try:
            for _ in range(50):
                with db.reader() as conn:
                    conn.execute("SELECT count(*) FROM t").fetchone()
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)] + [
        threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (200,)
    db.close()


def test_transaction_rolls_back_on_error(tmp_path):
    db = Database(tmp_path / "x.db").open()
    with db.transaction() as conn:
        conn.execute("CREATE TABLE t (n INTEGER)")
    with pytest.raises(RuntimeError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("boom")
    with db.reader() as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (0,)
    db.close()


def test_readers_are_read_only(tmp_path):
    db = Database(tmp_path / "x.db").open()
    with pytest.raises(apsw.ReadOnlyError):
        with db.reader() as conn:
            conn.execute("INSERT INTO meta(key, value) VALUES ('x', 'y')")
    db.close()


def test_query_time_limit(tmp_path):
    db = Database(tmp_path / "x.db").open()
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(QueryTimeout):
        with db.reader(time_limit_ms=50) as conn:
            conn.execute(slow).fetchone()
    # The connection is usable again afterwards, without the limit.
    with db.reader() as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    db.close()


async def _async_roundtrip(db):
    await db.write(lambda c: c.execute("CREATE TABLE t (n INTEGER)"))
    await db.write(lambda c: c.execute("INSERT INTO t VALUES (42)"))
    return await db.read(lambda c: c.execute("SELECT n FROM t").fetchone()[0])


def test_async_api(tmp_path):
    import asyncio

    db = Database(tmp_path / "x.db").open()
    assert asyncio.run(_async_roundtrip(db)) == 42
    db.close()


def test_durable_transaction_syncs_fully_for_that_commit_only(tmp_path):
    db = Database(tmp_path / "d.db").open()
    try:
        with db.transaction(durable=True) as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
            conn.execute("INSERT INTO meta (key, value) VALUES ('k', 'v')")
        with db.transaction() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # back to NORMAL
        with pytest.raises(ZeroDivisionError), db.transaction(durable=True):
            _ = 1 / 0
        with db.transaction() as conn:
            assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
            assert conn.execute("SELECT value FROM meta WHERE key = 'k'").fetchone() == ("v",)
    finally:
        db.close()
