"""Owner account, sessions, CSRF, API keys and login throttling through the real app."""

from bs4 import BeautifulSoup

from photobox import auth
from tests.conftest import PASSWORD, csrf_from, do_setup


def test_first_visit_goes_to_setup(client):
    r = client.get("/", headers={"accept": "text/html"}, follow_redirects=True)
    assert r.url.path == "/setup"
    soup = BeautifulSoup(r.text, "html.parser")
    assert soup.find("form", attrs={"action": "/setup"})
    assert soup.find("input", attrs={"name": "csrf_token"})["value"]


def test_setup_creates_owner_with_argon2_and_logs_in(client, settings):
    r = do_setup(client)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert "pb_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # plain HTTP on the LAN
    home = client.get("/")
    assert home.status_code == 200 and "alice" not in home.url.path
    box = client.app.state.photobox
    with box.db.reader() as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users").fetchone()
    assert stored.startswith("$argon2id$")
    # Setup cannot run twice.
    again = client.get("/setup", follow_redirects=False)
    assert again.status_code == 303


def test_setup_validates(client):
    page = client.get("/setup")
    r = client.post("/setup", data={"username": "bob", "password": "short", "password2": "short",
                                     "csrf_token": csrf_from(page.text)})
    assert r.status_code == 400 and "at least 8" in r.text
    r = client.post("/setup", data={"username": "bob", "password": PASSWORD, "password2": PASSWORD + "x",
                                     "csrf_token": csrf_from(page.text)})
    assert r.status_code == 400 and "differ" in r.text


def test_setup_without_csrf_is_refused(client):
    client.get("/setup")
    r = client.post("/setup", data={"username": "eve", "password": PASSWORD, "password2": PASSWORD})
    assert r.status_code == 403
    box = client.app.state.photobox
    with box.db.reader() as conn:
        assert auth.get_owner(conn) is None


def test_logout_and_login(owner_client):
    c = owner_client
    home = c.get("/")
    r = c.post("/logout", data={"csrf_token": csrf_from(home.text)}, follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/", headers={"accept": "text/html"}, follow_redirects=False).headers["location"].startswith("/login")
    login = c.get("/login?next=/settings")
    bad = c.post("/login", data={"username": "alice", "password": "wrong password", "next": "/settings",
                                 "csrf_token": csrf_from(login.text)})
    assert bad.status_code == 401 and "Wrong user name or password" in bad.text
    ok = c.post("/login", data={"username": "Alice", "password": PASSWORD, "next": "/settings",
                                "csrf_token": csrf_from(login.text)}, follow_redirects=False)
    assert ok.status_code == 303 and ok.headers["location"] == "/settings"


def test_login_redirect_is_same_site_only(owner_client):
    c = owner_client
    c.post("/logout", data={"csrf_token": csrf_from(c.get("/").text)})
    login = c.get("/login")
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = c.post("/login", data={"username": "alice", "password": PASSWORD, "next": evil,
                                   "csrf_token": csrf_from(login.text)}, follow_redirects=False)
        assert r.headers["location"] == "/", evil
        c.post("/logout", data={"csrf_token": csrf_from(c.get("/").text)})
        login = c.get("/login")


def test_login_throttling(owner_client):
    c = owner_client
    c.post("/logout", data={"csrf_token": csrf_from(c.get("/").text)})
    login = c.get("/login")
    token = csrf_from(login.text)
    codes = [c.post("/login", data={"username": "alice", "password": f"nope{i}", "csrf_token": token}).status_code
             for i in range(6)]
    assert codes[:5] == [401] * 5 and codes[5] == 429
    # Even the right password is refused while throttled.
    r = c.post("/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_csrf_required_on_session_posts(owner_client):
    c = owner_client
    r = c.post("/settings/api-keys", data={"name": "x"})
    assert r.status_code == 403
    r = c.post("/settings/api-keys", data={"name": "x", "csrf_token": "forged"})
    assert r.status_code == 403
    token = csrf_from(c.get("/settings").text)
    r = c.post("/settings/api-keys", data={"name": "x"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 200 and "pbk_" in r.text


def test_api_keys_create_use_revoke(owner_client, client):
    c = owner_client
    token = csrf_from(c.get("/settings").text)
    r = c.post("/settings/api-keys", data={"name": "phone", "csrf_token": token})
    secret = BeautifulSoup(r.text, "html.parser").find("code", class_="secret").text
    assert secret.startswith("pbk_")
    from litestar.testing import TestClient

    anon = TestClient(app=c.app)  # no cookies: only the key
    assert anon.get("/api/me").status_code == 401
    me = anon.get("/api/me", headers={"Authorization": f"Bearer {secret}"})
    assert me.status_code == 200 and me.json() == {"id": 1, "username": "alice", "auth": "api_key"}
    assert anon.get("/api/me", headers={"X-API-Key": secret}).status_code == 200
    # API-key requests need no CSRF token (no ambient credential).
    assert anon.post("/api/jobs/retry", headers={"X-API-Key": secret}).status_code == 200
    page = c.get("/settings").text
    assert "phone" in page and secret not in page  # shown once only
    box = c.app.state.photobox
    with box.db.reader() as conn:
        key_id = auth.list_api_keys(conn)[0].id
    c.post(f"/settings/api-keys/{key_id}/revoke", data={"csrf_token": token})
    assert anon.get("/api/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401


def test_change_password_ends_sessions(owner_client):
    c = owner_client
    token = csrf_from(c.get("/settings").text)
    r = c.post("/settings/password", data={"current": "bad", "password": "x" * 10, "password2": "x" * 10,
                                           "csrf_token": token})
    assert r.status_code == 400
    r = c.post("/settings/password", data={"current": PASSWORD, "password": "new password 1",
                                           "password2": "new password 1", "csrf_token": token},
               follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/api/me").status_code == 401


def test_session_cookie_secure_behind_https_proxy(client):
    page = client.get("/setup")
    r = client.post("/setup", data={"username": "a", "password": PASSWORD, "password2": PASSWORD,
                                     "csrf_token": csrf_from(page.text)},
                    headers={"x-forwarded-proto": "https"}, follow_redirects=False)
    # TestClient's peer is "testclient", not loopback: the header is not trusted.
    assert "Secure" not in r.headers["set-cookie"]
