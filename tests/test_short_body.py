"""A body shorter than its Content-Length, against the real server (granian on 127.0.0.1).

A client that sends part of its body and closes its side (a crashed script, a proxy giving
up mid-request) still reads the answer. Every way in answers 400 saying how much arrived
of what was announced, keeps nothing of it, and leaves the server well.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.resil import api_key_for, check_data_folder
from tests.server import Server

pytestmark = pytest.mark.e2e

BOUNDARY = "b0undary"
CUT = [
    ("POST", "/api/assets/check", "application/json", b'{"checksums": []', 100),
    ("POST", "/api/uploads", "application/json", b'{"name": "x.jpg"', 100),
    ("PATCH", "/api/uploads/{upload}", "application/offset+octet-stream", b"\xff\xd8\xff", 100),
    ("POST", "/api/assets", f"multipart/form-data; boundary={BOUNDARY}",
     f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'.encode() + b"\xff\xd8", 5000),
    ("PUT", "/dav/upload/a.jpg", "image/jpeg", b"\xff\xd8\xff", 100),
    ("POST", "/albums", "application/x-www-form-urlencoded", b"name=half", 100),
    ("POST", "/share", f"multipart/form-data; boundary={BOUNDARY}", f"--{BOUNDARY}\r\n".encode(), 100),
]


def _cut_short(port: int, key: str, method: str, path: str, ctype: str, body: bytes, announced: int) -> bytes:
    """Send ``body`` under a Content-Length of ``announced``, close our side, read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nx-api-key: {key}\r\nUpload-Offset: 0\r\n"
                     f"Content-Type: {ctype}\r\nContent-Length: {announced}\r\n\r\n".encode() + body)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while block := sock.recv(65536):
            answer += block
    return answer


def test_a_body_shorter_than_its_content_length_is_a_clear_400(tmp_path):
    data = tmp_path / "data"
    Server(data).start().stop()
    key = api_key_for(data)
    server = Server(data).start()
    try:
        r = httpx.post(server.url + "/api/uploads", json={"name": "r.jpg", "size": 1000}, headers={"x-api-key": key})
        upload = r.json()["id"]
        for method, path, ctype, body, announced in CUT:
            answer = _cut_short(server.port, key, method, path.format(upload=upload), ctype, body, announced)
            status = answer.split(b"\r\n", 1)[0]
            assert status.startswith(b"HTTP/1.1 400"), (method, path, answer[-300:])
            assert (f"ended after {len(body)} bytes of the {announced}".encode() in answer
                    and b"nothing of it was stored" in answer), (method, path, answer[-300:])
        head = httpx.head(f"{server.url}/api/uploads/{upload}", headers={"x-api-key": key})
        assert head.headers["upload-offset"] == "0", "the cut chunk was not counted"
        albums = httpx.get(server.url + "/albums", headers={"x-api-key": key, "accept": "text/html"}).text
        assert "half" not in albums
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        assert server.stop() == 0
    report = check_data_folder(data)
    report.assert_ok()
    assert report.assets == 0
    assert "Traceback" not in server.log.read_text()
