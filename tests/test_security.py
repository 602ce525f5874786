"""Security as tests: every route's auth, and the headers every page carries."""

from litestar.testing import TestClient

from photobox.web.security import CSP

# Routes that must work without logging in. Anything else must refuse an anonymous caller.
PUBLIC = {"/healthz", "/setup", "/login", "/static", "/sw.js", "/s"}


def _routes(app):
    for route in app.routes:
        # An ASGI mount (the /dav WebDAV tree) has one handler for every method.
        for handler in getattr(route, "route_handlers", None) or [route.route_handler]:
            for method in sorted(handler.http_methods) if hasattr(handler, "http_methods") else ["GET"]:
                yield route.path, method, handler


def _example(path: str) -> str:
    """Fill path parameters with example values: ``{name:int}`` → 1, ``{name:str}`` → x."""
    import re

    path = path.replace("{path:path}", "/css/app.css")
    path = re.sub(r"\{\w+:int\}", "1", path)
    return re.sub(r"\{\w+:str\}", "x", path)


def test_route_table_walk_every_route_requires_auth(client):
    seen = 0
    for path, method, handler in _routes(client.app):
        if method in {"HEAD", "OPTIONS"}:  # Litestar's automatic CORS-preflight handlers
            continue
        public = bool(handler.opt.get("public"))
        assert public == any(path == p or path.startswith(p + "/") for p in PUBLIC), (
            f"{method} {path}: public={public} but the allow-list says otherwise")
        if public:
            continue
        anon = TestClient(app=client.app)
        r = anon.request(method, _example(path), headers={"accept": "application/json"}, follow_redirects=False)
        assert r.status_code == 401, f"{method} {path} answered {r.status_code} without auth"
        seen += 1
    assert seen >= 8


def test_security_headers(client):
    r = client.get("/setup")
    assert r.headers["content-security-policy"] == CSP
    assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "same-origin"


def test_no_inline_scripts_in_pages(owner_client):
    from bs4 import BeautifulSoup

    for path in ("/", "/settings"):
        soup = BeautifulSoup(owner_client.get(path).text, "html.parser")
        for script in soup.find_all("script"):
            assert script.get("src", "").startswith("/static/"), f"{path}: {script}"
            assert not script.string
        assert not any(attr.startswith("on") for tag in soup.find_all(True) for attr in tag.attrs), path


def test_static_path_traversal(client):
    for evil in ("/static/../photobox/auth.py", "/static/%2e%2e/pyproject.toml", "/static/..%2fpyproject.toml"):
        r = client.get(evil)
        assert r.status_code in (400, 404), evil


def test_htmx_vendored_with_licence(client):
    r = client.get("/static/vendor/htmx.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:2000]
    assert client.get("/static/vendor/htmx.LICENSE").status_code == 200


def test_openapi_schema_under_api(owner_client):
    r = owner_client.get("/api/schema")
    assert r.status_code == 200
    schema = r.json()
    assert schema["info"]["title"] == "photobox API"
    assert all(p.startswith("/api/") for p in schema["paths"]), schema["paths"].keys()
    assert "/api/server" in schema["paths"]
