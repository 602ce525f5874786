"""One module owns each table (the house plan's stores): only it writes the table, and the
visible-asset condition is written once.

* ``INSERT``/``UPDATE``/``DELETE``/``REPLACE`` of ``assets``, ``albums``, ``album_assets`` and
  ``uploads`` appear only in their owner module (:data:`OWNERS`);
* ``trashed_at IS [NOT] NULL`` appears only in ``photobox/library/assets.py``, which defines
  ``VISIBLE`` and its variants for everyone else;
* views and API handlers write no table with SQL of their own, and do not query the tables
  above at all: they call the owners' functions.

The scan reads every string in the source (implicit concatenation, f-strings and ``+``
chains joined as the SQL scan of tests/test_security_review.py does), docstrings excepted.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: table -> the modules that may write it
OWNERS = {
    "assets": {"photobox/library/assets.py"},
    "albums": {"photobox/library/albums.py"},
    "album_assets": {"photobox/library/albums.py"},
    "uploads": {"photobox/library/uploads.py"},
}
VISIBLE_OWNER = "photobox/library/assets.py"

# (``ON CONFLICT … DO UPDATE SET`` updates the row of the INSERT it belongs to: no table of its own.)
_WRITE = re.compile(r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|UPDATE(?:\s+OR\s+\w+)?|DELETE\s+FROM)"
                    r"\s+(?!SET\b)([A-Za-z_]\w*)", re.IGNORECASE)
_NAMES = re.compile(r"\b(?:FROM|JOIN|INTO|UPDATE)\s+(" + "|".join(OWNERS) + r")\b", re.IGNORECASE)
_TRASHED = re.compile(r"trashed_at\s+IS\s+(?:NOT\s+)?NULL", re.IGNORECASE)


def _text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        # A placeholder stands in for the interpolated value, so "UPDATE {t} SET" is no table.
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    return ""


def strings(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string expression outside docstrings, ``+`` chains as one."""
    tree = ast.parse(source)
    docstrings = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)
                  and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
    inner = {id(n) for top in ast.walk(tree) if isinstance(top, (ast.BinOp, ast.JoinedStr))
             for n in ast.walk(top) if n is not top}
    return [(node.lineno, _text(node)) for node in ast.walk(tree)
            if isinstance(node, (ast.Constant, ast.JoinedStr, ast.BinOp)) and id(node) not in inner
            and id(node) not in docstrings and _text(node)]


def is_view(rel: str) -> bool:
    """Views and API handlers: ``*/views.py``, ``*/views/*.py``, ``*/api/*.py``."""
    parts = rel.split("/")
    return parts[-1] == "views.py" or "views" in parts[:-1] or "api" in parts[:-1]


def problems(source: str, rel: str) -> list[str]:
    found = []
    for line, text in strings(source):
        for table in _WRITE.findall(text):
            table = table.lower()
            if table in OWNERS and rel not in OWNERS[table]:
                found.append(f"{rel}:{line}: writes {table} (owner: {', '.join(sorted(OWNERS[table]))})")
            elif is_view(rel) and table not in OWNERS:
                found.append(f"{rel}:{line}: a view writes {table} with its own SQL (call the table's store)")
        if is_view(rel):
            found += [f"{rel}:{line}: a view queries {t} with its own SQL (call its store)" for t in _NAMES.findall(text)]
        if _TRASHED.search(text) and rel != VISIBLE_OWNER:
            found.append(f"{rel}:{line}: spells out trashed_at IS NULL (use VISIBLE & co from library.assets)")
    return found


def _sources():
    for path in sorted((ROOT / "photobox").rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_text()


def test_each_table_is_written_only_by_its_owner_and_visible_is_defined_once():
    found = [p for rel, source in _sources() for p in problems(source, rel)]
    assert found == [], "\n".join(found)


def test_the_owners_exist_and_define_the_conditions():
    from photobox.library import assets

    for rel in {m for owners in OWNERS.values() for m in owners}:
        assert (ROOT / rel).is_file(), rel
    assert assets.VISIBLE.startswith(assets.NOT_TRASHED) and "a.archived = 0" in assets.VISIBLE
    assert assets.VISIBLE_WITH_ARCHIVED.startswith(assets.NOT_TRASHED) and "archived" not in assets.VISIBLE_WITH_ARCHIVED
    assert "a.motion_of IS NULL" in assets.VISIBLE and "a.motion_of IS NULL" in assets.VISIBLE_WITH_ARCHIVED


def test_the_scan_catches_what_it_should():
    bad = {
        'conn.execute("UPDATE assets SET favorite = 1 WHERE id = ?", (i,))': "writes assets",
        'conn.execute("UPDATE assets " "SET favorite = 1 WHERE id = ?", (i,))': "writes assets",
        'conn.execute(f"update assets set favorite = {FAV} where id = ?", (i,))': "writes assets",
        'conn.execute("INSERT OR IGNORE INTO album_assets (album_id, asset_id) VALUES (?, ?)", a)': "writes album_assets",
        'sql = "DELETE FROM " + "albums WHERE id = ?"': "writes albums",
        'conn.execute("DELETE FROM uploads WHERE id = ?", (u,))': "writes uploads",
        'WHERE = "a.trashed_at IS NULL AND a.motion_of IS NULL"': "trashed_at IS NULL",
        'x = f"SELECT id FROM assets a WHERE a.trashed_at IS NOT NULL AND a.id = {marks}"': "trashed_at IS NULL",
    }
    for source, what in bad.items():
        assert any(what in p for p in problems(source, "photobox/x/store.py")), source
    view = "photobox/x/views.py"
    assert any("a view writes shares" in p for p in problems('c.execute("UPDATE shares SET views = 1")', view))
    assert any("queries albums" in p for p in problems('c.execute("SELECT id, name FROM albums")', view))
    upsert = problems('c.execute("INSERT INTO meta (key) VALUES (?) ON CONFLICT (key) DO UPDATE SET key = 1")', view)
    assert len(upsert) == 1 and "writes meta" in upsert[0], upsert
    assert any("queries assets" in p for p in problems('c.execute("SELECT count(*) FROM assets")', "photobox/x/api/y.py"))
    for source in ('"""Update assets: DELETE FROM assets when the trash expires; trashed_at IS NULL."""',
                   'conn.execute("SELECT id FROM assets WHERE id = ?", (i,))',
                   'conn.execute(f"UPDATE {table} SET x = 1")',
                   'log.info("deleted from albums: %d", n)',
                   'conn.execute("UPDATE assets_fts SET x = 1")',
                   'conn.execute("INSERT INTO meta (key) VALUES (?) ON CONFLICT (key) DO UPDATE SET key = 1")'):
        assert problems(source, "photobox/x/store.py") == [], source
    assert problems('conn.execute("UPDATE assets SET favorite = 1")', "photobox/library/assets.py") == []
    assert problems('"a.trashed_at IS NULL"', VISIBLE_OWNER) == []
