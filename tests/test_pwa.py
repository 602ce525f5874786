"""The installable web app: manifest, icons, service worker, and the share target's CSRF rule."""

from __future__ import annotations

import io
import json
import re

from bs4 import BeautifulSoup
from PIL import Image

from tests import gen


def test_manifest_is_valid_and_linked(owner_client):
    soup = BeautifulSoup(owner_client.get("/").text, "html.parser")
    link = soup.find("link", rel="manifest")
    assert link is not None
    r = owner_client.get(link["href"])
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
    manifest = json.loads(r.text)
    assert manifest["display"] == "standalone" and manifest["start_url"] == "/" and manifest["scope"] == "/"
    assert manifest["name"] and manifest["short_name"] and manifest["theme_color"].startswith("#")
    share = manifest["share_target"]
    assert share["action"] == "/share" and share["method"] == "POST" and share["enctype"] == "multipart/form-data"
    files = share["params"]["files"][0]
    assert files["name"] == "media" and {"image/*", "video/*"} <= set(files["accept"])
    sizes = {}
    for icon in manifest["icons"]:
        r = owner_client.get(icon["src"])
        assert r.status_code == 200, icon["src"]
        if icon["type"] == "image/png":
            im = Image.open(io.BytesIO(r.content))
            assert f"{im.width}x{im.height}" == icon["sizes"]
            sizes.setdefault(icon["purpose"], set()).add(im.width)
    assert {192, 512} <= sizes["any"] and 512 in sizes["maskable"]


def test_service_worker_served_at_root(client):
    r = client.get("/sw.js")  # public: the browser fetches it without asking
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert r.headers["service-worker-allowed"] == "/" and "no-cache" in r.headers["cache-control"]
    assert "/static/offline.html" in r.text
    assert client.get("/static/offline.html").status_code == 200


def _share(client, files, headers):
    return client.post("/share", files=[("media", f) for f in files], data={"title": "", "text": ""},
                       headers=headers, follow_redirects=False)


def test_share_target_stores_files_and_shows_them(owner_client, settings):
    jpg, png = gen.jpeg_bytes(seed=21), gen.png_bytes()
    r = _share(owner_client, [("a.jpg", jpg, "image/jpeg"), ("b.png", png, "image/png"),
                              ("notes.txt", b"not a photo", "text/plain")], {"Sec-Fetch-Site": "none"})
    assert r.status_code == 303 and r.headers["location"].startswith("/share/done?")
    page = owner_client.get(r.headers["location"])
    assert page.status_code == 200
    assert "2 new photos and videos added" in page.text and "1 file was not a photo" in page.text
    assert len(re.findall(r'href="/photos/\d+"', page.text)) == 2
    # The same photo again: "already in photobox", not a second asset.
    r = _share(owner_client, [("again.jpg", jpg, "image/jpeg")], {"Sec-Fetch-Site": "same-origin"})
    page = owner_client.get(r.headers["location"])
    assert "1 was already in photobox" in page.text
    assert not list((settings.data_dir / "tmp").glob("*.part"))


def test_share_target_refuses_cross_site_posts(owner_client):
    jpg = [("x.jpg", gen.jpeg_bytes(seed=22), "image/jpeg")]
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"}, {}):
        r = _share(owner_client, jpg, headers)
        assert r.status_code == 403, headers
    # Without fetch metadata, an Origin equal to this server is accepted (older browsers).
    r = _share(owner_client, jpg, {"Origin": "http://testserver.local"})
    assert r.status_code == 303


def test_share_needs_login(client):
    r = client.post("/share", files=[("media", ("x.jpg", b"x", "image/jpeg"))], headers={"Sec-Fetch-Site": "none"},
                    follow_redirects=False)
    assert r.status_code in (303, 401)

