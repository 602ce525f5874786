"""The hardening issue's attacks on passwords and keys, replayed against the real granian server.

Clients come from different real addresses: Linux routes all of 127.0.0.0/8 to loopback, so a
client socket bound to 127.0.0.N reaches the server from 127.0.0.N. One server trusts
127.0.0.1 as its reverse proxy (``trusted_proxies``), one keeps the default (no proxy trusted).
"""

from __future__ import annotations

import re
import socket
from base64 import b64encode

import httpx
import pytest
from bs4 import BeautifulSoup

from photobox import auth
from photobox.db import connect
from tests import gen
from tests.conftest import PASSWORD, csrf_from
from tests.server import Server

pytestmark = pytest.mark.e2e


def _can_bind(address: str) -> bool:
    try:
        with socket.socket() as s:
            s.bind((address, 0))
        return True
    except OSError:
        return False


if not _can_bind("127.0.0.2"):  # Linux routes 127/8 to loopback; macOS only 127.0.0.1
    pytest.skip("clients from several loopback addresses need Linux", allow_module_level=True)


def _start(tmp_path_factory, name: str, env: dict[str, str]) -> Server:
    srv = Server(tmp_path_factory.mktemp(name) / "data", env=env).start()
    srv.owner = browser(srv)  # the owner's browser: after setup, a known device
    page = srv.owner.get("/setup")
    r = srv.owner.post("/setup", data={"username": "alice", "password": PASSWORD, "password2": PASSWORD,
                                       "csrf_token": csrf_from(page.text)})
    assert r.status_code == 303
    conn = connect(srv.data_dir / "photobox.db")
    with conn:
        srv.keys = {s: auth.create_api_key(conn, s, scopes=s)[1] for s in ("all", "read", "upload")}
    conn.close()
    return srv


def _stop(srv: Server) -> None:
    srv.owner.close()
    assert srv.stop() == 0
    log = srv.log.read_text()
    assert "Traceback" not in log, log[-3000:]


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    """A server behind a (pretend) reverse proxy on 127.0.0.1, configured as trusted."""
    srv = _start(tmp_path_factory, "proxied", {"PHOTOBOX_TRUSTED_PROXIES": "127.0.0.1"})
    yield srv
    _stop(srv)


@pytest.fixture
def plain(tmp_path_factory):
    """A server with the default settings (no proxy trusted)."""
    srv = _start(tmp_path_factory, "plain", {})
    yield srv
    _stop(srv)


def browser(server: Server, address: str = "127.0.0.1") -> httpx.Client:
    """A client whose connections come from ``address``."""
    return httpx.Client(base_url=server.url, timeout=60,
                        transport=httpx.HTTPTransport(local_address=address))


def login(client: httpx.Client, password: str, headers: dict | None = None) -> int:
    """The status of a login through the form (303 in, 401 wrong, 429 throttled)."""
    client.cookies.delete("pb_session")
    page = client.get("/login", headers=headers)
    return client.post("/login", data={"username": "alice", "password": password, "csrf_token": csrf_from(page.text)},
                       headers=headers).status_code


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + b64encode(f"{user}:{password}".encode()).decode()}


def propfind(client: httpx.Client, headers: dict) -> int:
    return client.request("PROPFIND", "/dav/upload/", headers={"Depth": "0", **headers}).status_code


def test_a_spray_cannot_lock_the_owner_out_of_a_known_browser(plain):
    owner = plain.owner
    # Behind a proxy photobox was not told about, every client is 127.0.0.1, the owner's too.
    with browser(plain) as attacker, browser(plain) as new_browser:
        assert [login(attacker, f"guess {i}") for i in range(6)] == [401] * 5 + [429]
        assert login(new_browser, PASSWORD) == 429  # an unknown browser shares the address's budget
    assert login(owner, PASSWORD) == 303            # the owner's known browser does not
    # 11 addresses x 5 failures (the attack): each address is refused after its 5, and
    # after 50 from all unknown clients together (10x login_attempts) the 11th gets none.
    for n in range(10, 20):
        with browser(plain, f"127.0.0.{n}") as attacker:
            expected = [429] * 6 if n == 19 else [401] * 5 + [429]
            assert [login(attacker, f"guess {i}") for i in range(6)] == expected, n
    # The known browser still gets in. (A browser never used before waits while the spray lasts.)
    assert login(owner, PASSWORD) == 303
    with browser(plain, "127.0.0.30") as new_browser:
        assert login(new_browser, PASSWORD) == 429
    # The device cookie is what makes it known (copied, it works elsewhere); a forged one does not.
    device = owner.cookies.get("pb_device", path="/login")
    id_, _, mac = device.partition(".")
    for value, expected in ((f"{id_}.{mac[::-1]}", 429), (f"{id_}x.{mac}", 429), (device, 303)):
        with browser(plain, "127.0.0.31") as other:
            other.cookies.set("pb_device", value, domain="127.0.0.1", path="/login")
            assert login(other, PASSWORD) == expected, value


def test_behind_a_trusted_proxy_each_client_has_its_own_budget(proxied):
    with browser(proxied) as proxy:  # 127.0.0.1: the trusted proxy, forwarding clients
        # The attacker forges X-Forwarded-For entries; the proxy appends the real address last.
        codes = [login(proxy, f"guess {i}", {"X-Forwarded-For": f"10.9.9.{i}, 198.51.100.7"}) for i in range(6)]
        assert codes == [401] * 5 + [429]
        # The owner, on a browser never used before, from another address: let in.
        assert login(proxy, PASSWORD, {"X-Forwarded-For": "203.0.113.5"}) == 303
    # X-Forwarded-For from a client that is not the proxy counts for nothing.
    with browser(proxied, "127.0.0.2") as direct:
        codes = [login(direct, f"guess {i}", {"X-Forwarded-For": f"203.0.113.{i + 10}"}) for i in range(6)]
        assert codes == [401] * 5 + [429]


def test_login_form_and_webdav_share_one_budget(proxied):
    with browser(proxied, "127.0.0.3") as c:
        phone = basic("alice", PASSWORD)
        assert propfind(c, phone) == 207  # a phone app with the owner's password, verified once
        assert [login(c, f"guess {i}") for i in range(3)] == [401] * 3
        assert [propfind(c, basic("alice", f"guess {i}")) for i in range(2)] == [401] * 2
        assert login(c, "guess 9") == 429 and propfind(c, basic("alice", "guess 9")) == 429
        assert login(c, PASSWORD) == 429  # an unknown browser at that address waits...
        assert propfind(c, phone) == 207  # ...the phone's known credential does not
        assert propfind(c, basic("x", proxied.keys["all"])) == 207  # nor does an API key


def _share(owner: httpx.Client, password: str) -> str:
    token = csrf_from(owner.get("/albums").text)
    album = owner.post("/albums", data={"name": password, "csrf_token": token}).headers["location"].rsplit("/", 1)[1]
    r = owner.post("/shares", data={"csrf_token": token, "album_id": album, "password": password, "expires_days": 0},
                   follow_redirects=True)
    return BeautifulSoup(r.text, "html.parser").select_one("#new-link-url")["value"].rsplit("/s/", 1)[1]


def unlock(client: httpx.Client, token: str, password: str) -> int:
    page = client.get(f"/s/{token}")
    return client.post(f"/s/{token}/unlock", data={"password": password, "csrf_token": csrf_from(page.text)}).status_code


def test_share_passwords_count_per_link(proxied):
    a, b = _share(proxied.owner, "link A pass"), _share(proxied.owner, "link B pass")
    with browser(proxied, "127.0.0.4") as v1, browser(proxied, "127.0.0.5") as v2, \
            browser(proxied, "127.0.0.6") as v3:
        assert [unlock(v1, b, f"guess {i}") for i in range(4)] == [401] * 4
        assert unlock(v1, a, "link A pass") == 303  # a right password on A resets nothing on B
        assert unlock(v2, b, "guess 4") == 401      # another address spends the same link's budget
        assert unlock(v1, b, "guess 5") == 429
        assert unlock(v3, b, "link B pass") == 429  # B waits for everyone without its cookie...
        assert unlock(v3, a, "link A pass") == 303  # ...A does not


def test_webdav_holds_keys_to_their_scope(proxied):
    with browser(proxied) as c:
        full, up, read = (basic("phone", proxied.keys[s]) for s in ("all", "upload", "read"))
        photo = gen.jpeg_bytes(seed=31)
        assert c.put("/dav/upload/scoped.jpg", content=photo, headers=full).status_code == 201
        # upload: lists (to skip known files) and uploads; never downloads an original.
        listing = c.request("PROPFIND", "/dav/upload/", headers={"Depth": "1", **up})
        assert listing.status_code == 207 and "scoped.jpg" in listing.text
        assert c.get("/dav/upload/scoped.jpg", headers=up).status_code == 403
        assert c.put("/dav/upload/up.jpg", content=gen.jpeg_bytes(seed=32), headers=up).status_code == 201
        # read: downloads; PUT and DELETE are refused and change nothing.
        assert c.get("/dav/upload/scoped.jpg", headers=read).content == photo
        assert c.put("/dav/upload/read.jpg", content=gen.jpeg_bytes(seed=33), headers=read).status_code == 403
        assert c.delete("/dav/upload/scoped.jpg", headers=read).status_code == 403
        assert c.get("/dav/upload/scoped.jpg", headers=full).status_code == 200
        assert c.get("/dav/upload/read.jpg", headers=full).status_code == 404


def test_webdav_move_to_another_server_is_502(proxied):
    full = basic("phone", proxied.keys["all"])
    with browser(proxied) as c, browser(proxied, "127.0.0.7") as direct:
        assert c.put("/dav/upload/mv.jpg", content=gen.jpeg_bytes(seed=34), headers=full).status_code == 201
        r = c.request("MOVE", "/dav/upload/mv.jpg", headers={**full, "Destination": "http://evil.example/dav/upload/x.jpg"})
        assert r.status_code == 502
        # Through the proxy, the client's host arrives as X-Forwarded-Host (and https outside).
        outside = {**full, "X-Forwarded-Host": "photos.example", "Destination": "https://photos.example/dav/upload/c.jpg"}
        assert direct.request("COPY", "/dav/upload/mv.jpg", headers=outside).status_code == 502  # not from the proxy
        assert c.request("COPY", "/dav/upload/mv.jpg", headers=outside).status_code == 201
        here = f"http://127.0.0.1:{proxied.port}/dav/upload/m2.jpg"
        assert c.request("MOVE", "/dav/upload/mv.jpg", headers={**full, "Destination": here}).status_code == 201
        names = re.findall(r"<d:href>/dav/upload/([^<]+)</d:href>",
                           c.request("PROPFIND", "/dav/upload/", headers={"Depth": "1", **full}).text)
        assert "c.jpg" in names and "m2.jpg" in names and "x.jpg" not in names
