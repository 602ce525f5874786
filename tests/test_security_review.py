"""The security review, written as tests that walk the whole app (issue 8).

Each test states one property for *every* route (or every file, for the SQL scan), so a
route added later is reviewed by the same checks without anyone remembering to:

* auth: every route is public by design (an explicit allow list) or refuses anonymous callers;
* CSRF: every state-changing route refuses a session-cookie request without the token;
* path traversal: every file-serving route and upload file names stay inside the data folder;
* SQL: ``execute()`` text is never built from anything but reviewed constant fragments;
* cookies: HttpOnly, SameSite, Secure behind HTTPS; headers on every HTML page;
* login and share-password throttling; API key scopes, enforced centrally in the guard.

Findings and fixes are listed in the README section "Security review".
"""

from __future__ import annotations

import ast
import io
import re
import zipfile
from base64 import b64encode
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from litestar.testing import TestClient

from photobox import auth
from photobox.dav.views import ALLOW
from photobox.settings import load_settings
from photobox.web.app import create_app
from photobox.web.security import CSP, scope_allows
from tests.conftest import PASSWORD, csrf_from, do_setup
from tests.gen import jpeg_bytes
from tests.test_sharing import lib, make_share  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
#: Public by design: first-run setup, login, health, static files, share links.
PUBLIC_PREFIXES = ("/healthz", "/setup", "/login", "/static", "/s/", "/sw.js")


def routes(app):
    """(path template, method, handler) for every route, Litestar's automatic OPTIONS excluded."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]:
            methods = sorted(handler.http_methods) if hasattr(handler, "http_methods") else ["GET"]
            for method in methods:
                if method == "OPTIONS":
                    continue
                yield route.path, method, handler


def fill(path: str, values: dict[str, str]) -> str:
    """A concrete URL for a path template: named parameters from ``values``, else 1 / x."""
    def one(m: re.Match) -> str:
        name, kind = m.group(1), m.group(2)
        if name in values:
            return values[name]
        return {"int": "1", "path": "/css/app.css"}.get(kind, "x")
    return re.sub(r"\{(\w+):(\w+)\}", one, path).replace("//", "/")


# -- auth ------------------------------------------------------------------------------------

def test_every_route_is_public_by_design_or_refuses_anonymous(owner_client):
    app = owner_client.app
    anon = TestClient(app=app)
    checked = 0
    for path, method, handler in routes(app):
        public = bool(handler.opt.get("public"))
        allowed = path.startswith(PUBLIC_PREFIXES) or path in {"/healthz", "/setup", "/login", "/static", "/sw.js"}
        assert public == allowed, f"{method} {path}: opt public={public}, allow list says {allowed}"
        if public:
            continue
        url = fill(path, {})
        for accept in ("application/json", "text/html"):
            r = anon.request(method, url, headers={"accept": accept}, follow_redirects=False)
            if accept == "text/html" and not path.startswith("/api/"):
                assert r.status_code in (303, 401), f"{method} {url} → {r.status_code} for a browser"
                if r.status_code == 303:
                    assert r.headers["location"].startswith(("/login", "/setup")), (method, url)
            else:
                assert r.status_code == 401, f"{method} {url} → {r.status_code} without auth"
        checked += 1
    assert checked >= 40


# -- CSRF ------------------------------------------------------------------------------------

def test_every_state_changing_route_needs_the_csrf_token(owner_client, lib):  # noqa: F811
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"], password="pw pw pw")
    values = {"token": token, "asset_id": str(lib["ids"]["paris.jpg"]), "album_id": str(lib["album"])}
    box = c.app.state.photobox
    before = _db_fingerprint(box)
    checked = 0
    for path, method, _handler in routes(c.app):
        if method not in UNSAFE:
            continue
        url = fill(path, values)
        for headers, data in (({}, None), ({}, {"csrf_token": "forged"}),
                              ({"x-csrf-token": "forged"}, None),
                              ({"origin": "https://evil.example"}, {"name": "x"})):
            r = c.request(method, url, headers=headers, data=data, follow_redirects=False)
            assert r.status_code == 403, f"{method} {url} with {headers or data} → {r.status_code}"
        checked += 1
    assert checked >= 25
    assert _db_fingerprint(box) == before  # nothing changed


def test_every_post_form_in_the_templates_carries_the_token():
    checked = 0
    for template in sorted((ROOT / "templates").glob("*.html")):
        soup = BeautifulSoup(template.read_text(), "html.parser")
        for form in soup.find_all("form"):
            if (form.get("method") or "get").lower() != "post":
                continue
            checked += 1
            field = form.find("input", attrs={"name": "csrf_token", "type": "hidden"})
            assert field is not None and field.get("value") == "{{ csrf_token }}", (template.name, form.get("action"))
    assert checked >= 20


def _db_fingerprint(box) -> tuple:
    with box.db.reader() as conn:
        return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # constant table names
                     for t in ("albums", "album_assets", "shares", "api_keys", "assets", "libraries", "sessions"))


def test_csrf_token_is_per_session(client):
    do_setup(client)
    token = csrf_from(client.get("/settings").text)
    other = TestClient(app=client.app)
    page = other.get("/login")
    r = other.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": csrf_from(page.text)},
                   follow_redirects=False)
    assert r.status_code == 303
    # The first session's token does not work for the second session.
    assert other.post("/settings/api-keys", data={"name": "x", "csrf_token": token}).status_code == 403
    assert other.post("/settings/api-keys", data={"name": "x", "csrf_token": csrf_from(other.get("/settings").text)}
                      ).status_code == 200


# -- path traversal --------------------------------------------------------------------------

EVIL = ("..", "%2e%2e", "..%2f..%2fphotobox.db", "%2e%2e%2f%2e%2e%2fphotobox.db", "..%5c..%5cphotobox.db",
        "%2fetc%2fpasswd", "/etc/passwd", "C:%5cwindows", "x%00.jpg", "....//....//photobox.db", "%252e%252e")


def _leaks(r) -> bool:
    return r.status_code == 200 and (b"SQLite format 3" in r.content or b"root:" in r.content
                                     or b"[project]" in r.content)


def test_file_routes_refuse_traversal_in_every_parameter(owner_client, lib):  # noqa: F811
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"], allow_download="1", show_metadata="1")
    good = {"token": token, "asset_id": str(lib["ids"]["paris.jpg"])}
    anon = TestClient(app=c.app)
    file_routes = [(p, h) for p, m, h in routes(c.app) if m == "GET" and
                   re.search(r"thumbnail|preview|original|video|motion|download|\{path:path\}", p)]
    assert len(file_routes) >= 10
    tried = 0
    for path, _handler in file_routes:
        for param in re.findall(r"\{(\w+):\w+\}", path):
            for evil in EVIL:
                url = fill(path, {**good, param: evil})
                for client in (c, anon):
                    r = client.get(url, follow_redirects=False)
                    assert not _leaks(r), url
                    assert r.status_code in (400, 401, 403, 404, 405), f"{url} → {r.status_code}"
                    tried += 1
    assert tried > 100
    # The resumable upload id names a file in tmp/resumable: only ids the server made are used.
    sentinel = c.app.state.photobox.data_dir / "sentinel.part"
    sentinel.write_bytes(b"keep me")
    for evil in (*EVIL, "..%2fsentinel", "..%2f..%2fsentinel"):
        for method in ("HEAD", "PATCH", "DELETE"):
            r = c.request(method, f"/api/uploads/{evil}", content=b"x", headers={
                "upload-offset": "0", "x-csrf-token": csrf_from(c.get("/settings").text)})
            assert r.status_code in (400, 404, 405), (method, evil, r.status_code)
    assert sentinel.read_bytes() == b"keep me"
    for evil in ("/static/../photobox/auth.py", "/static/%2e%2e/pyproject.toml", "/static/..%2fpyproject.toml",
                 "/static/..%5c..%5cpyproject.toml", "/static//etc/passwd", "/static/css%00/app.css"):
        r = c.get(evil)
        assert r.status_code in (400, 404) and not _leaks(r), evil


def test_tampered_rel_path_never_leaves_the_library(owner_client, lib):  # noqa: F811
    """A row whose path points outside its library (a bug, a crafted backup) is refused, not served."""
    c = owner_client
    box = c.app.state.photobox
    victim = lib["ids"]["paris.jpg"]
    token = make_share(c, lib, album_id=lib["album"], allow_download="1", show_metadata="1")
    for evil in ("../photobox.db", "/etc/passwd", "a/../../photobox.db"):
        with box.db.transaction() as conn:
            conn.execute("UPDATE assets SET rel_path = ? WHERE id = ?", (evil, victim))
        for url in (f"/api/assets/{victim}/original", f"/api/assets/{victim}/original?download=1",
                    f"/s/{token}/a/{victim}/original"):
            r = c.get(url)
            assert r.status_code == 404 and not _leaks(r), (evil, url, r.status_code)
        r = c.post("/assets/download", data={"ids": [victim], "csrf_token": lib["csrf"]})
        assert not _leaks(r) and b"SQLite format 3" not in r.content
        z = c.get(f"/s/{token}/download")
        assert b"SQLite format 3" not in z.content


def test_upload_file_names_cannot_escape(owner_client, tmp_path):
    from tests.test_ingest import api_key

    c = owner_client
    box = c.app.state.photobox
    key = api_key(c)
    names = ["../../../evil1.jpg", "..\\..\\..\\evil2.jpg", "/tmp/evil3.jpg", "C:\\evil4.jpg", "evil5\x00.jpg",
             ".hidden.jpg", "a/../../evil6.jpg", "%2e%2e%2fevil7.jpg", "\u202egpj.evil8.jpg"]
    for i, name in enumerate(names):
        r = c.post("/api/assets", files={"file": (name, jpeg_bytes(seed=100 + i), "image/jpeg")}, headers=key)
        assert r.status_code == 201, (name, r.text)
    # The resumable upload path stores its name too.
    data = jpeg_bytes(seed=200)
    up = c.post("/api/uploads", json={"name": "../../evil9.jpg", "size": len(data)}, headers=key).json()
    r = c.patch(f"/api/uploads/{up['id']}", content=data, headers={**key, "upload-offset": "0"})
    assert r.status_code == 201, r.text
    library = (box.data_dir / "library").resolve()
    with box.db.reader() as conn:
        rows = conn.execute("SELECT rel_path, original_name FROM assets").fetchall()
    assert len(rows) == len(names) + 1
    for rel, _ in rows:
        assert (library / rel).resolve().is_relative_to(library), rel
        assert ".." not in Path(rel).parts and not rel.startswith("/") and "\\" not in rel and "\x00" not in rel
    outside = [p for p in tmp_path.rglob("evil*") if not p.resolve().is_relative_to(library)]
    assert outside == []
    # Zip downloads use those names as entry names: they must not climb out of the folder
    # the zip is extracted into ("zip slip").
    with box.db.reader() as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM assets")]
    z = c.post("/assets/download", data={"ids": ids, "csrf_token": csrf_from(c.get("/settings").text)})
    with zipfile.ZipFile(io.BytesIO(z.content)) as zf:
        for n in zf.namelist():
            assert ".." not in re.split(r"[/\\]", n) and not n.startswith(("/", "\\")) and ":" not in n, n


# -- SQL -------------------------------------------------------------------------------------

_SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|PRAGMA|WHERE|FROM|VALUES|ORDER BY|LIMIT|JOIN|SET)\b")

#: Reviewed: what may be interpolated into SQL text, per module. Each is a constant fragment
#: (column lists, SQL chosen from a constant dict by name, the visible-asset conditions of
#: ``library.assets``: VISIBLE, VISIBLE_WITH_ARCHIVED, NOT_TRASHED, IN_TRASH), "?,?,?"
#: placeholders from ``db.sql.id_chunks``, or a table name made from an int (``vec_space_<int>``).
REVIEWED = {
    "photobox/datadir/copy.py": {"pragma"},  # one of two constant PRAGMA names
    "photobox/dav/store.py": {"where", "_COLUMNS"},  # where: _subtree_where's constant text with ? params
    "photobox/library/memories.py": {"marks", "VISIBLE"},
    "photobox/duplicates/index.py": {"marks", "ELIGIBLE", "VISIBLE", "VISIBLE_WITH_ARCHIVED"},
    "photobox/duplicates/links.py": {"marks"},
    "photobox/duplicates/store.py": {"marks", "_MEMBER", "ELIGIBLE", "', '.join(cols)", "NOT_TRASHED"},  # cols: constant column names
    "photobox/db/migrate.py": {"int(migration.version)"},
    "photobox/jobs/store.py": {"_COLUMNS"},
    "photobox/jobs/failures.py": {"_FAILURE_SQL"},  # a constant SELECT … JOIN, parameters only
    # sets: "col = :col" per constant column; IN_TRASH, DETAIL_COLUMNS: the module's constants
    "photobox/library/assets.py": {"sets", "', '.join(_ASSET_COLUMNS)", "_SELECT", "marks", "IN_TRASH", "DETAIL_COLUMNS"},
    "photobox/library/ingest.py": {"NOT_TRASHED"},
    "photobox/library/libraries.py": {"_COLUMNS"},
    "photobox/library/timeline.py": {"_TILE", "marks", "base", "order", "ident", "VISIBLE", "VISIBLE_WITH_ARCHIVED",
                                     "NOT_TRASHED", "IN_TRASH"},
    "photobox/people/faces_job.py": {"table", "int(dim)", "face_table(dim)", "marks", "NOT_TRASHED"},
    "photobox/people/graph.py": {"marks", "table"},  # table: face_table(dim), an int-built name
    "photobox/people/knn.py": {"table", "self.table"},  # _table(dim): face_vectors_<int>
    "photobox/people/store.py": {"marks", "face_table(dim)", "_PERSON", "NOT_TRASHED"},
    "photobox/places/store.py": {"_LOST_GPS", "VISIBLE", "lon_clause"},  # constants; lon_clause one of two
    "photobox/safety/integrity.py": {"marks"},
    "photobox/safety/sidecar.py": {"marks"},
    "photobox/search/filters.py": {"' AND '.join(clauses)", "NOT_TRASHED"},  # clauses: constant strings, :named params
    "photobox/search/service.py": {"marks", "VISIBLE"},
    "photobox/search/vectors.py": {"_table(space_id)", "dim", "CHUNK_SIZE", "space.table", "_SPACE_COLUMNS",
                                   "marks", "int(dim)", "VISIBLE_WITH_ARCHIVED"},
    "photobox/sharing/store.py": {"marks", "_COLUMNS", "_TILE", "base", "order", "ident", "VISIBLE_WITH_ARCHIVED"},
}


def _sql_text(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str))
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp):
        return _sql_text(node.left) + _sql_text(node.right)
    return ""


def _looks_like_sql(text: str) -> bool:
    return len(_SQL.findall(text)) >= 2 or text.lstrip().upper().startswith(
        ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "CREATE ", "DROP ", "PRAGMA "))


def _fragments(node: ast.AST) -> list[str]:
    """The non-constant pieces of a string built with f-strings and ``+``."""
    if isinstance(node, ast.Constant):
        return []
    if isinstance(node, ast.JoinedStr):
        return [ast.unparse(v.value) for v in node.values if isinstance(v, ast.FormattedValue)]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _fragments(node.left) + _fragments(node.right)
    return [ast.unparse(node)]


def sql_problems(source: str, rel: str, allowed: set[str]) -> list[str]:
    problems = []
    tree = ast.parse(source, rel)
    inner = {id(n) for top in ast.walk(tree) if isinstance(top, ast.BinOp) and isinstance(top.op, ast.Add)
             for n in (top.left, top.right)}
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) and id(node) not in inner and _looks_like_sql(_sql_text(node)):
            bad = [f for f in _fragments(node) if f not in allowed]
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and id(node) not in inner
              and _looks_like_sql(_sql_text(node))):
            bad = [f for f in _fragments(node) if f not in allowed]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) and _looks_like_sql(_sql_text(node.left)):
            bad = ["% formatting"]
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "format"
              and _looks_like_sql(_sql_text(node.func.value))):
            bad = [".format()"]
        else:
            continue
        problems += [f"{rel}:{node.lineno}: SQL text built from {b!r}" for b in bad]
    return problems


def test_sql_is_only_built_from_reviewed_constant_fragments():
    problems = []
    for path in sorted((ROOT / "photobox").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        problems += sql_problems(path.read_text(), rel, REVIEWED.get(rel, set()))
    assert problems == [], "\n".join(problems)


def test_sql_scan_catches_what_it_should():
    for bad in ('conn.execute(f"SELECT * FROM assets WHERE name = {name}")',
                'conn.execute("SELECT * FROM assets WHERE name = \'" + name + "\'")',
                'sql = "SELECT * FROM assets WHERE name = \'%s\'" % name',
                'sql = "DELETE FROM albums WHERE id = {}".format(album_id)',
                'sql = ("SELECT a.id FROM assets a WHERE " + " AND ".join(user_clauses))'):
        assert sql_problems(bad, "x.py", {"marks"}), bad
    for good in ('conn.execute("SELECT * FROM assets WHERE name = ?", (name,))',
                 'conn.execute(f"SELECT id FROM assets WHERE id IN ({marks})", chunk)',
                 'log.info(f"imported {n} files from {path}")'):
        assert not sql_problems(good, "x.py", {"marks"}), good


# -- cookies and headers ---------------------------------------------------------------------

def _cookies(response) -> dict[str, str]:
    return {h.split("=", 1)[0]: h for h in response.headers.get_list("set-cookie")}


def test_cookie_flags(tmp_path, owner_client):
    # Plain HTTP on the LAN: HttpOnly and SameSite=Lax, not Secure.
    anon = TestClient(app=owner_client.app)
    anon_cookie = _cookies(anon.get("/login"))["pb_anon"]
    assert "HttpOnly" in anon_cookie and "SameSite=Lax" in anon_cookie and "Secure" not in anon_cookie
    # Behind HTTPS (secure_cookies = always): every cookie photobox sets is Secure.
    settings = load_settings({"data_dir": tmp_path / "https-data", "workers": 1, "secure_cookies": "always"}, env={})
    with TestClient(app=create_app(settings)) as plain:
        assert "Secure" in _cookies(plain.get("/setup"))["pb_anon"]  # even when the request looked like HTTP
    # (httpx keeps Secure cookies to https URLs, so the rest of the flow runs as https.)
    with TestClient(app=create_app(settings), base_url="https://testserver.local") as c:
        page = c.get("/setup")
        assert "Secure" in _cookies(page)["pb_anon"]
        r = do_setup(c)
        session = _cookies(r)["pb_session"]
        assert "HttpOnly" in session and "samesite=lax" in session.lower() and "Secure" in session
        assert "Path=/" in session and "Max-Age=" in session
        token = csrf_from(c.get("/albums").text)
        c.post("/albums", data={"name": "A", "csrf_token": token})
        r = c.post("/shares", data={"album_id": 1, "password": "pw pw pw", "csrf_token": token})
        share = BeautifulSoup(r.text, "html.parser").select_one("#new-link-url")["value"].rsplit("/s/", 1)[1]
        a = TestClient(app=c.app, base_url="https://testserver.local")
        form = a.get(f"/s/{share}")
        ok = a.post(f"/s/{share}/unlock", data={"password": "pw pw pw", "csrf_token": csrf_from(form.text)},
                    follow_redirects=False)
        unlock = _cookies(ok)["pb_share_1"]
        assert "HttpOnly" in unlock and "Secure" in unlock and f"Path=/s/{share}" in unlock
        # Logging out clears the session cookie.
        out = c.post("/logout", data={"csrf_token": token}, follow_redirects=False)
        assert out.status_code == 303, (out.status_code, out.headers)
        assert 'pb_session=""' in _cookies(out)["pb_session"] or "Max-Age=0" in _cookies(out)["pb_session"]


def _html_urls(app, values: dict[str, str]) -> list[str]:
    urls = []
    for path, method, _handler in routes(app):
        if method == "GET" and not path.startswith(("/api/", "/static")) and "download" not in path \
                and not re.search(r"/a/\{", path):
            urls.append(fill(path, values))
    return urls


def test_headers_and_no_inline_script_on_every_html_page(owner_client, lib):  # noqa: F811
    c = owner_client
    token = make_share(c, lib, album_id=lib["album"])
    values = {"token": token, "asset_id": str(lib["ids"]["paris.jpg"]), "album_id": str(lib["album"])}
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe-inline" not in CSP.split(
        "script-src")[1].split(";")[0]
    pages = 0
    for client in (c, TestClient(app=c.app)):
        for url in _html_urls(c.app, values):
            r = client.get(url, headers={"accept": "text/html"})
            if "text/html" not in r.headers.get("content-type", ""):
                continue
            pages += 1
            assert r.headers["content-security-policy"] == CSP, url
            assert r.headers["x-content-type-options"] == "nosniff", url
            assert r.headers["x-frame-options"] == "DENY", url
            if url.startswith("/s/"):
                assert r.headers["referrer-policy"] == "no-referrer", url
                assert "noindex" in r.headers["x-robots-tag"], url
            else:
                assert r.headers["referrer-policy"] in ("same-origin", "no-referrer"), url
            soup = BeautifulSoup(r.text, "html.parser")
            for script in soup.find_all("script"):
                assert script.get("src", "").startswith("/static/") and not script.string, (url, script)
            handlers = [(t.name, a) for t in soup.find_all(True) for a in t.attrs if a.lower().startswith("on")]
            assert handlers == [], (url, handlers)
            assert not soup.find_all(style=True), (url, "inline style attributes are refused by the CSP")
    assert pages >= 15


def test_user_text_is_escaped(owner_client, lib):  # noqa: F811
    c = owner_client
    evil = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    c.post(f"/albums/{lib['album']}", data={"name": evil, "description": evil, "csrf_token": lib["csrf"]})
    token = make_share(c, lib, album_id=lib["album"], title=evil)
    for client, url in ((c, f"/albums/{lib['album']}"), (c, "/albums"), (c, "/shares"),
                        (TestClient(app=c.app), f"/s/{token}")):
        html = client.get(url).text
        assert evil not in html and "&lt;script&gt;" in html, url


# -- throttling ------------------------------------------------------------------------------

def test_login_throttle_ignores_forwarded_for(owner_client):
    """The throttle keys on the connection's address: a spoofed X-Forwarded-For gains nothing."""
    c = owner_client
    c.post("/logout", data={"csrf_token": csrf_from(c.get("/").text)})
    token = csrf_from(c.get("/login").text)
    codes = [c.post("/login", data={"username": "alice", "password": f"no{i}", "csrf_token": token},
                    headers={"x-forwarded-for": f"10.0.0.{i}", "x-real-ip": f"10.0.1.{i}"}).status_code
             for i in range(6)]
    assert codes[-1] == 429


# -- API key scopes --------------------------------------------------------------------------

def _key(c, scopes: str) -> dict:
    token = csrf_from(c.get("/settings").text)
    r = c.post("/settings/api-keys", data={"name": scopes, "scopes": scopes, "csrf_token": token})
    secret = BeautifulSoup(r.text, "html.parser").find("code", class_="secret").text
    return {"Authorization": f"Bearer {secret}"}


def test_api_key_scopes(owner_client, lib):  # noqa: F811
    c = owner_client
    asset = lib["ids"]["paris.jpg"]
    up, read, full = _key(c, "upload"), _key(c, "read"), _key(c, "all")
    assert "(upload only)" in c.get("/settings").text
    a = TestClient(app=c.app)  # keys only, no session
    # upload: a phone backup app's key uploads and checks, and reads nothing.
    r = a.post("/api/assets", files={"file": ("n.jpg", jpeg_bytes(seed=77), "image/jpeg")}, headers=up)
    assert r.status_code == 201
    assert a.post("/api/assets/check", json={"checksums": ["0" * 40]}, headers=up).status_code == 200
    data = jpeg_bytes(seed=78)
    new = a.post("/api/uploads", json={"name": "r.jpg", "size": len(data)}, headers=up)
    assert new.status_code == 201
    assert a.head(f"/api/uploads/{new.json()['id']}", headers=up).status_code == 200
    assert a.patch(f"/api/uploads/{new.json()['id']}", content=data,
                   headers={**up, "upload-offset": "0"}).status_code == 201
    assert a.get("/api/me", headers=up).status_code == 200
    for url in (f"/api/assets/{asset}", f"/api/assets/{asset}/original", f"/api/assets/{asset}/thumbnail",
                "/api/jobs", "/api/search?q=x", "/", "/settings"):
        assert a.get(url, headers=up).status_code == 403, url
    assert a.post("/api/jobs/retry", headers=up).status_code == 403
    # read: GETs under /api/ only.
    assert a.get(f"/api/assets/{asset}", headers=read).status_code == 200
    assert a.get(f"/api/assets/{asset}/original", headers=read).status_code == 200
    assert a.post("/api/assets", files={"file": ("m.jpg", jpeg_bytes(seed=79), "image/jpeg")},
                  headers=read).status_code == 403
    assert a.post("/api/jobs/retry", headers=read).status_code == 403
    assert a.get("/settings", headers=read).status_code == 403
    # all: everything, as before.
    assert a.get(f"/api/assets/{asset}", headers=full).status_code == 200
    assert a.post("/api/jobs/retry", headers=full).status_code == 200
    # Walk the table: a read key is refused by every state-changing route, centrally.
    for path, method, handler in routes(c.app):
        if method in UNSAFE and not handler.opt.get("public"):
            r = a.request(method, fill(path, {"asset_id": str(asset)}), headers=read)
            assert r.status_code == 403, (method, path, r.status_code)


def test_scope_rules_unit():
    assert scope_allows("all", "POST", "/settings/api-keys")
    assert scope_allows("upload", "POST", "/api/assets") and scope_allows("upload", "PATCH", "/api/uploads/abc")
    assert not scope_allows("upload", "GET", "/api/assets/1/original")
    assert not scope_allows("upload", "PATCH", "/api/uploads/abc/../../assets")
    assert scope_allows("read", "GET", "/api/assets/1") and not scope_allows("read", "GET", "/settings")
    assert not scope_allows("read", "DELETE", "/api/uploads/abc")
    assert not scope_allows("", "GET", "/api/me") and not scope_allows("bogus", "GET", "/api/me")
    assert scope_allows("read,upload", "POST", "/api/assets")


@pytest.mark.parametrize("scopes", ["all", "read", "upload"])
def test_settings_form_only_makes_known_scopes(owner_client, scopes):
    """An unknown scope is refused with a 400 and a message, never stored as ``all``."""
    c = owner_client
    token = csrf_from(c.get("/settings").text)
    assert c.post("/settings/api-keys", data={"name": "k", "scopes": scopes, "csrf_token": token}).status_code == 200
    for bad in ("admin,all;drop", "admin", "", "read,admin"):
        r = c.post("/settings/api-keys", data={"name": "k", "scopes": bad, "csrf_token": token})
        assert r.status_code == 400 and "No key was made" in r.text and 'class="secret"' not in r.text, bad
    with c.app.state.photobox.db.reader() as conn:
        made = [k.scopes for k in auth.list_api_keys(conn)]
    assert made == [scopes]


def test_unknown_scopes_are_refused_wherever_keys_are_made(box):
    with box.db.transaction() as conn:
        for bad in ("admin", "all;drop", "read,,admin", ""):
            with pytest.raises(ValueError, match="scope"):
                auth.create_api_key(conn, "k", scopes=bad)
        assert auth.create_api_key(conn, "k", scopes=" Upload , read")[0].scopes == "read,upload"
        assert auth.create_api_key(conn, "k", scopes="read,all")[0].scopes == "all"
        assert [k.scopes for k in auth.list_api_keys(conn)] == ["all", "read,upload"]


#: What each key scope may do under /dav (every method photobox answers there): ``read`` looks
#: and downloads and changes nothing; ``upload`` does what an auto-upload app needs (list to skip
#: known files, folders, PUT, rename, times, locks, forget a name) and never GETs an original.
DAV_SCOPES = {"all": set(ALLOW.split(", ")), "read": {"OPTIONS", "GET", "HEAD", "PROPFIND"},
              "upload": set(ALLOW.split(", ")) - {"GET"}}


def _dav_call(a: TestClient, method: str, tag: str, headers: dict) -> int:
    """One sensible request of ``method`` (files named after ``tag`` so each call has its own)."""
    xml = {"LOCK": '<d:lockinfo xmlns:d="DAV:"><d:lockscope><d:exclusive/></d:lockscope>'
                   '<d:locktype><d:write/></d:locktype></d:lockinfo>',
           "PROPPATCH": '<d:propertyupdate xmlns:d="DAV:"><d:set><d:prop><d:getlastmodified>'
                        'Wed, 01 Jan 2020 10:00:00 GMT</d:getlastmodified></d:prop></d:set></d:propertyupdate>'}
    url = {"MKCOL": f"/dav/upload/d/{tag}/", "PUT": f"/dav/upload/d/{tag}.jpg", "DELETE": f"/dav/upload/d/del-{tag}.jpg",
           "MOVE": f"/dav/upload/d/mv-{tag}.jpg", "PROPFIND": "/dav/upload/d/", "OPTIONS": "/dav/upload/"}
    extra = {"PROPFIND": {"Depth": "1"}, "UNLOCK": {"Lock-Token": "<opaquelocktoken:x>"},
             "MOVE": {"Destination": f"/dav/upload/d/moved-{tag}.jpg"},
             "COPY": {"Destination": f"/dav/upload/d/copy-{tag}.jpg"}}
    content = jpeg_bytes(seed=len(tag)) if method == "PUT" else xml[method].encode() if method in xml else None
    r = a.request(method, url.get(method, "/dav/upload/d/f.jpg"), content=content,
                  headers={**headers, **extra.get(method, {})})
    return r.status_code


def test_api_key_scopes_on_every_dav_method(owner_client):
    """WebDAV takes keys as the Basic password (phone apps) or as Bearer: the scopes hold for each."""
    c = owner_client
    box = c.app.state.photobox
    with box.db.transaction() as conn:
        keys = {s: auth.create_api_key(conn, s, scopes=s)[1] for s in DAV_SCOPES}
    a = TestClient(app=c.app)  # keys only, no session
    full = {"Authorization": f"Bearer {keys['all']}"}
    assert a.request("MKCOL", "/dav/upload/d/", headers=full).status_code == 201
    assert a.put("/dav/upload/d/f.jpg", content=jpeg_bytes(seed=80), headers=full).status_code == 201
    for scope, allowed in DAV_SCOPES.items():
        for how, headers in (("basic", {"Authorization": "Basic " + b64encode(f"phone:{keys[scope]}".encode()).decode()}),
                             ("bearer", {"Authorization": f"Bearer {keys[scope]}"})):
            for method in ALLOW.split(", "):
                tag = f"{scope}-{how}-{method.lower()}"
                for name in (f"del-{tag}.jpg", f"mv-{tag}.jpg"):
                    a.put(f"/dav/upload/d/{name}", content=jpeg_bytes(seed=81), headers=full)
                status = _dav_call(a, method, tag, headers)
                if method in allowed:
                    assert status < 400, (scope, how, method, status)
                else:
                    assert status == 403, (scope, how, method, status)
    # Refused writes changed nothing: the read key's DELETE/MOVE targets are still listed.
    names = set(re.findall(r"<d:href>/dav/upload/d/([^<]+)</d:href>",
                           a.request("PROPFIND", "/dav/upload/d/", headers={**full, "Depth": "1"}).text))
    assert {"del-read-basic-delete.jpg", "mv-read-basic-move.jpg"} <= names
    assert not {n for n in names if n.startswith(("read-", "moved-read", "copy-read"))}
