#!/usr/bin/env python3
"""The page http://photobox.local/ shows while the first boot runs: the first-boot log, reloading.

photobox-status.service runs it on port 80 until photobox-firstboot.service finishes and stops it;
then photobox itself answers on port 80. Every path answers the same small page (a phone that
opens http://photobox.local/setup still sees it). No JavaScript: a ``<meta http-equiv=refresh>``
reloads it. Stdlib only.
"""

from __future__ import annotations

import argparse
import html
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TAIL_LINES = 60

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="refresh" content="5">
<title>photobox is starting</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;margin:0;padding:1rem;background:#f6f6f4;color:#222}}
main{{max-width:46rem;margin:auto}} h1{{font-size:1.4rem}}
pre{{background:#fff;border:1px solid #ddd;padding:.75rem;overflow-x:auto;white-space:pre-wrap;font-size:.85rem}}
.hint{{background:#fff7d6;border:1px solid #e8d58a;padding:.75rem}}
</style></head>
<body><main>
<h1>photobox is getting ready</h1>
<p>This is the first start: photobox looks for its SSD and prepares it. This page reloads by itself;
when setup is done it turns into photobox, where you create the owner account.</p>
{hint}
<h2>Progress</h2>
<pre>{log}</pre>
</main></body></html>
"""

HINT = ("<p class=hint>Waiting for the SSD: plug in a disk formatted as ext4 with the label "
        "<b>PHOTOBOX</b>, or an empty disk after setting <code>format_empty_disk=yes</code> in "
        "<code>photobox.txt</code> on the SD card's boot partition.</p>")


def render(log_text: str) -> str:
    """The HTML page for the current log (escaped; last lines only)."""
    lines = log_text.splitlines()[-TAIL_LINES:]
    waiting = bool(lines) and ("Waiting" in lines[-1] or "empty disk" in lines[-1] or "ERROR" in lines[-1])
    return PAGE.format(hint=HINT if waiting else "", log=html.escape("\n".join(lines) or "starting…"))


def make_handler(log_path: Path):
    class Handler(BaseHTTPRequestHandler):
        server_version = "photobox-firstboot"

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            try:
                text = log_path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                text = ""
            body = render(text).encode()
            self.send_response(503)  # not the app yet; nothing should cache this
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Retry-After", "5")
            self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format: str, *args) -> None:  # keep the journal quiet
            pass

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--log", type=Path, default=Path("/run/photobox-firstboot.log"))
    args = parser.parse_args(argv)
    ThreadingHTTPServer((args.host, args.port), make_handler(args.log)).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
