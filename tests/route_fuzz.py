"""The route-table fuzzer behind ``tests/test_route_fuzz.py``: every route of the real app,
every parameter it reads, every header photobox reads, arbitrary values; 5xx is a finding.

Nothing is listed by hand, so a new route or a new parameter is fuzzed the day it is added:

* routes, methods, path parameters, query parameters declared in handler signatures and
  the fields of their form/JSON bodies come from Litestar's route table;
* query parameters and multipart fields read by hand (``request.query_params.get("q")``,
  ``query_int(request, "limit", …)``, ``fields.get("mtime")``), and every request header
  photobox reads (``headers.get("upload-offset")``), are found by scanning the source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args
from urllib.parse import quote, urlencode

import msgspec
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
SOURCE = "\n".join(p.read_text() for p in sorted((ROOT / "photobox").rglob("*.py")))
FILTERS = (ROOT / "photobox" / "search" / "filters.py").read_text()

#: Values that broke photobox before, and their relatives.
NASTY = ["", "0", "1", "2", "-1", "99999999999999999999999", "9223372036854775807", "9223372036854775808",
         "-9223372036854775809", "²", "١٢", "𝟙", "1e3", "1e20", "1e400", "-1e15", "nan", "inf", "-inf", "0x10",
         "1.5", " 7 ", "..", "../../etc/passwd", "/", "%00", "a,b", "1,2,3", "[]", "{}", "null", "true",
         "2023-01-01", "2023-01-01T12:00:00Z", "Wed, 21 Oct 2015 07:28:00 GMT", "<x>", "'", '"', "\\", "\u202e",
         "x" * 3000, "album-1", "person-²", "1:2", "nan:1", "SHA1:" + "0" * 40, "bytes=0-1", "bytes=-5",
         "infinity", "*", "multipart/form-data; boundary=b", "application/json"]
values = st.one_of(st.sampled_from(NASTY), st.text(max_size=24), st.integers(-2**70, 2**70).map(str))
#: What a JSON field may hold: any JSON value, numbers far outside int64 and floats included.
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False), values),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


def _found(*patterns: str, text: str = SOURCE) -> list[str]:
    return sorted({m for p in patterns for m in re.findall(p, text)})


#: Query parameters and multipart fields photobox reads by hand, and every request header it
#: reads (search filters read theirs through ``Filters.from_query``'s ``get("name")``).
HAND_QUERY = sorted({*_found(r'query_params\.get\("([^"]+)"', r'query_int\(\w+, "([^"]+)"'),
                     *_found(r'\bget\("([a-z]+)"\)', text=FILTERS)})
FORM_FIELDS = _found(r'fields\.get\("([^"]+)"', r'segment\.name == "([^"]+)"', r'event\.name in \(([^)]*)\)')
HEADERS = sorted({h.lower() for h in _found(r'headers\.get\("([^"]+)"') if h.lower() != "content-length"}
                 | {"authorization", "cookie", "x-api-key"})
FORM_FIELDS = sorted({f.strip(' "') for item in FORM_FIELDS for f in item.split(",") if f.strip(' "')})
SPECIAL = {"request", "data", "scope", "state", "headers", "cookies", "socket", "body", "receive", "send"}
DAV_METHODS = ["OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PROPFIND", "PROPPATCH", "MKCOL", "COPY", "MOVE",
               "LOCK", "UNLOCK", "POST", "TRACE"]


@dataclass
class Endpoint:
    method: str
    path: str                       # a template: /photos/{asset_id:int}
    query: list[str] = field(default_factory=list)
    body: str | None = None         # form | json | raw
    fields: list[str] = field(default_factory=list)

    @property
    def id(self) -> str:
        return f"{self.method} {self.path}"


def _struct(annotation: Any) -> type | None:
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def endpoints(app) -> list[Endpoint]:
    """Every (method, route) of ``app`` with what it reads, from the route table."""
    out: list[Endpoint] = []
    for route in app.routes:
        handlers = getattr(route, "route_handlers", None) or [route.route_handler]
        path = route.path
        for handler in handlers:
            methods = sorted(getattr(handler, "http_methods", None) or ())
            if not methods:  # a mounted ASGI app (/dav, /static): it answers any method itself
                methods = DAV_METHODS if path.startswith("/dav") else ["GET", "HEAD", "POST"]
                path = path.rstrip("/") + "/{rest:path}"
            params = handler.parsed_fn_signature.parameters
            query = [n for n in params if n not in SPECIAL and "{" + n + ":" not in path]
            body, fields = None, []
            data = params.get("data")
            if data is not None:
                struct = _struct(data.annotation)
                fields = list(struct.__struct_fields__) if struct else []
                media = getattr(getattr(data, "kwarg_definition", None), "media_type", None)
                body = "form" if "form" in str(getattr(media, "value", media)) else "json"
            for method in methods:
                if method == "OPTIONS":
                    continue
                out.append(Endpoint(method, path, query, body or ("raw" if method in ("POST", "PUT", "PATCH")
                                                                   or path.startswith("/dav") else None), fields))
    return out


def _path_value(value: str, kind: str) -> str:
    if kind == "path":
        return "/".join(quote(part, safe="") for part in value.split("/"))
    return quote(value, safe="") or "x"


@st.composite
def requests(draw, endpoint: Endpoint, jpeg: bytes) -> dict:
    """One request to ``endpoint``: path parameters, query, headers and body, all drawn."""
    def fill(match: re.Match) -> str:
        return _path_value(draw(values), match.group(2))

    path = re.sub(r"\{(\w+):(\w+)\}", fill, endpoint.path)
    # Declared parameters are sent more often than not; hand-read ones a few at a time.
    query = {n: draw(values) for n in endpoint.query if draw(st.integers(0, 3))}
    query.update({n: draw(values) for n in draw(st.lists(st.sampled_from(HAND_QUERY), max_size=3, unique=True))})
    headers = {h: draw(values) for h in draw(st.lists(st.sampled_from(HEADERS), max_size=3, unique=True))}
    headers = {k: v.encode("utf-8") for k, v in headers.items() if not re.search(r"[\r\n\x00]", v)}
    content: bytes | None = None
    if endpoint.body == "form":
        chosen = draw(st.lists(st.sampled_from(endpoint.fields or ["x"]), max_size=len(endpoint.fields) + 1))
        content = urlencode([(n, draw(values)) for n in chosen]).encode()
        headers.setdefault("content-type", b"application/x-www-form-urlencoded")
    elif endpoint.body == "json":
        obj = {n: draw(json_values) for n in endpoint.fields if draw(st.booleans())}
        content = json.dumps(obj).encode() if draw(st.integers(0, 4)) else draw(st.binary(max_size=64))
        headers.setdefault("content-type", b"application/json")
    elif endpoint.body == "raw":
        kind = draw(st.sampled_from(["multipart", "bytes", "empty"]))
        if kind == "multipart":
            boundary = "fuzzB0undary"
            parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{n}"\r\n\r\n{draw(values)}\r\n'.encode()
                     for n in draw(st.lists(st.sampled_from(FORM_FIELDS or ["x"]), max_size=3))]
            name = draw(st.sampled_from(["file", "media", "assetData", "other"]))
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="a.jpg"\r\n'
                         f"Content-Type: image/jpeg\r\n\r\n".encode() + jpeg + b"\r\n")
            content = b"".join(parts) + f"--{boundary}--\r\n".encode()
            headers.setdefault("content-type", f"multipart/form-data; boundary={boundary}".encode())
        elif kind == "bytes":
            content = draw(st.binary(max_size=256))
    return {"method": endpoint.method, "url": path + ("?" + urlencode(query) if query else ""),
            "headers": headers, "content": content}
