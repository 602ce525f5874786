"""Helpers for the model tests: a fake clock, manifests on disk, local file servers."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import FrozenClock
from tests.ml.tinymodels import TinyModelFiles


class FakeClock(FrozenClock):
    """The shared frozen clock, starting at 1000 s (monotonic-clock-like values)."""

    def __init__(self, start: float = 1000.0) -> None:
        super().__init__(start)


def write_manifest(folder: Path, manifest: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{manifest['name']}.json"
    path.write_text(json.dumps(manifest, indent=2))
    return path


def file_override(files: TinyModelFiles) -> dict[str, str]:
    """``source_override`` taking every file from its ``file://`` URL."""
    return {key: getattr(files, key).as_uri() for key in ("image", "text", "tokenizer")}


def leftovers(models_dir: Path) -> list[str]:
    """Everything in models_dir except the lock file: what a failed fetch must not leave."""
    if not models_dir.exists():
        return []
    return sorted(str(p.relative_to(models_dir)) for p in models_dir.rglob("*") if p.name != ".lock")


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate_at: int | None = None
    requests: list[str]

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def do_GET(self) -> None:  # noqa: N802
        self.requests.append(self.path)
        if self.truncate_at is None:
            return super().do_GET()
        body = Path(self.translate_path(self.path)).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))  # promise everything…
        self.end_headers()
        self.wfile.write(body[: self.truncate_at])  # …and hang up part-way
        self.wfile.flush()
        self.close_connection = True


@contextlib.contextmanager
def serve(root: Path, *, truncate_at: int | None = None) -> Iterator[tuple[str, list[str]]]:
    """Serve ``root`` over HTTP on 127.0.0.1 (a free port); yields ``(base_url, requested_paths)``.

    The server runs in a daemon thread and is shut down (and joined, bounded) on exit.
    """
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"truncate_at": truncate_at, "requests": requests})

    def make(*args, **kwargs):
        return handler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), make)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
