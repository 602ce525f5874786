"""The password-guess budget (photobox.throttle), the client address behind a proxy
(photobox.web.proxy) and known devices, in process. The attacks themselves, against the real
server from many addresses, are in tests/test_throttle_e2e.py."""

from __future__ import annotations

from base64 import b64encode

import pytest
from litestar.testing import TestClient

from photobox import auth
from photobox.settings import SettingsError, load_settings
from photobox.throttle import GuessThrottle, address_key, device_key, session_key, share_key
from photobox.web import basic_auth
from photobox.web.proxy import client_address
from tests.conftest import PASSWORD, csrf_from


def test_a_key_is_refused_after_limit_failures_for_the_window(clock):
    t = GuessThrottle(limit=2, window=60, clock=clock)
    t.failed(address_key("1.2.3.4"))
    assert t.retry_after(address_key("1.2.3.4")) == 0
    t.failed(address_key("1.2.3.4"))
    assert t.retry_after(address_key("1.2.3.4")) == 60
    assert t.retry_after(address_key("5.6.7.8")) == 0
    clock.advance(45)
    assert t.retry_after(address_key("1.2.3.4")) == 15
    clock.advance(15)
    assert t.retry_after(address_key("1.2.3.4")) == 0


def test_a_right_password_clears_only_its_own_key(clock):
    t = GuessThrottle(limit=3, window=60, clock=clock)
    for _ in range(2):
        t.failed(share_key(2))
    t.succeeded(share_key(1))  # the right password of another link
    t.failed(share_key(2))
    assert t.retry_after(share_key(2)) > 0
    assert t.retry_after(share_key(1)) == 0
    t.succeeded(share_key(2))
    assert t.retry_after(share_key(2)) == 0


def test_a_spray_slows_unknown_clients_but_never_known_devices(clock):
    t = GuessThrottle(limit=2, window=60, clock=clock, spray_factor=10)
    for i in range(20):  # spread over many addresses, each under its own limit
        t.failed(address_key(f"10.0.{i}.1"))
    assert t.retry_after(address_key("192.168.1.50")) > 0
    assert t.retry_after(device_key("owner-laptop")) == 0
    assert t.retry_after(session_key("a session token")) == 0
    assert t.retry_after(share_key(1)) == 0
    clock.advance(61)
    assert t.retry_after(address_key("192.168.1.50")) == 0


def test_ipv6_clients_are_counted_by_their_64_network():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:ffff::9")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("192.0.2.1") != address_key("192.0.2.2")


def test_memory_stays_bounded(clock):
    t = GuessThrottle(limit=5, window=60, clock=clock, max_keys=100)
    for i in range(50):
        t.failed(share_key(i))
    clock.advance(61)
    t.failed(device_key("x"))
    for i in range(1000):  # the expired keys go first, then the quietest
        t.failed(device_key(str(i)))
        assert len(t) <= 100
    for _ in range(1000):  # one key's timestamps are bounded too
        t.failed(device_key("999"))
    assert len(t._failures[device_key("999")]) == 5


def _scope(peer: str, *forwarded: str) -> dict:
    return {"client": (peer, 50000), "headers": [(b"x-forwarded-for", f.encode()) for f in forwarded]}


def test_x_forwarded_for_counts_only_from_a_trusted_proxy():
    assert client_address(_scope("198.51.100.7", "203.0.113.5"), "") == "198.51.100.7"
    assert client_address(_scope("198.51.100.7", "203.0.113.5"), "127.0.0.1") == "198.51.100.7"
    # The proxy appended the real client last; what the client wrote further left is ignored.
    assert client_address(_scope("127.0.0.1", "10.9.9.9, 203.0.113.5"), "127.0.0.1") == "203.0.113.5"
    # Two proxies of ours in a row (a CDN in 10.0.0.0/8, then the local one), headers split in two.
    assert client_address(_scope("127.0.0.1", "1.1.1.1, 203.0.113.5", "10.1.2.3"), "127.0.0.1, 10.0.0.0/8") \
        == "203.0.113.5"
    assert client_address(_scope("::1", "[2001:db8::5]:4711"), "::1") == "2001:db8::5"
    assert client_address(_scope("::ffff:127.0.0.1", "203.0.113.5:80"), "127.0.0.1") == "203.0.113.5"
    # Garbage where the client's address should be: the proxy is all we know.
    assert client_address(_scope("127.0.0.1", "unknown"), "127.0.0.1") == "127.0.0.1"
    assert client_address(_scope("127.0.0.1"), "127.0.0.1") == "127.0.0.1"
    assert client_address({"headers": []}, "127.0.0.1") == "?"


def test_trusted_proxies_setting_is_checked():
    assert load_settings({"trusted_proxies": "127.0.0.1, ::1, 10.0.0.0/8"}, env={}).trusted_proxies
    with pytest.raises(SettingsError, match="trusted_proxies.*'proxy.lan'"):
        load_settings({"trusted_proxies": "127.0.0.1, proxy.lan"}, env={})


def test_only_device_cookies_photobox_made_count():
    key = b"k" * 32
    token = auth.new_device_token(key)
    device = auth.device_id(key, token)
    assert device and token.startswith(device + ".")
    assert auth.device_id(b"x" * 32, token) is None
    for forged in (None, "", ".", device, device + ".", device + "x." + token.split(".")[1], "é." + token.split(".")[1],
                   token + "0" * 200):
        assert auth.device_id(key, forged) is None, forged


def test_the_current_password_form_has_the_sessions_own_budget(owner_client):
    c = owner_client
    # Someone else at the same address uses up the login budget...
    other = TestClient(app=c.app)
    login = other.get("/login")
    codes = [other.post("/login", data={"username": "alice", "password": f"no{i}", "csrf_token": csrf_from(login.text)})
             .status_code for i in range(6)]
    assert codes[-1] == 429
    # ...which does not stop the session's own form; its wrong guesses are limited on their own.
    token = csrf_from(c.get("/settings").text)
    form = {"password": "new password 1", "password2": "new password 1", "csrf_token": token}
    codes = [c.post("/settings/password", data={**form, "current": f"guess {i}"}).status_code for i in range(6)]
    assert codes == [400] * 5 + [429]
    r = c.post("/settings/password", data={**form, "current": PASSWORD})
    assert r.status_code == 429 and "Retry-After" in r.headers


def test_a_known_webdav_credential_outlives_the_cache(owner_client, monkeypatch):
    """After CACHE_SECONDS the owner's password is checked again, but others' failures cannot
    refuse it; a changed password is no longer known."""
    monkeypatch.setattr(basic_auth, "CACHE_SECONDS", 0.0)
    a = TestClient(app=owner_client.app)

    def propfind(user: str, password: str) -> int:
        auth_header = "Basic " + b64encode(f"{user}:{password}".encode()).decode()
        return a.request("PROPFIND", "/dav/", headers={"Depth": "0", "Authorization": auth_header}).status_code

    assert propfind("alice", PASSWORD) == 207
    assert [propfind("alice", f"guess {i}") for i in range(6)] == [401] * 5 + [429]
    assert propfind("alice", PASSWORD) == 207
    assert propfind("mallory", PASSWORD) == 429  # the credential is name and password
    box = owner_client.app.state.photobox
    with box.db.transaction() as conn:
        auth.set_password(conn, None, auth.hash_password("another password"))
    assert propfind("alice", PASSWORD) == 429
