"""Server start-up time (seconds until /healthz answers) and idle RSS, on a fresh and a
reopened data folder, compared with a bare granian "hello" app as the baseline.

    scripts/bench server [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.server import Server  # noqa: E402


def measure(data: Path, runs: int) -> tuple[list[float], list[int]]:
    times, rss = [], []
    for _ in range(runs):
        server = Server(data).start()
        try:
            time.sleep(2)  # idle: let the scheduler settle
            rss.append(sum(server.rss_kib().values()))
            times.append(server.started_in or 0.0)
        finally:
            server.stop()
    return times, rss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        times, rss = measure(data, args.runs)
        print(f"photobox serve: start-up to /healthz median {statistics.median(times):.2f} s "
              f"(runs: {', '.join(f'{t:.2f}' for t in times)}); idle RSS (granian main + worker) "
              f"median {statistics.median(rss) / 1024:.1f} MiB")
        server = Server(data).start()
        try:
            per_pid = server.rss_kib()
        finally:
            server.stop()
        print("  per process: " + ", ".join(f"pid {pid}: {kib / 1024:.1f} MiB" for pid, kib in per_pid.items()))
        # Baseline: the cost of Python + granian alone, with a trivial ASGI app.
        import subprocess

        app = Path(tmp) / "hello.py"
        app.write_text("async def app(scope, receive, send):\n"
                       "    if scope['type'] != 'http':\n        return\n"
                       "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
                       "    await send({'type': 'http.response.body', 'body': b'ok'})\n")
        import httpx

        from tests.server import free_port

        port = free_port()
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port),
                                 "hello:app"], cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.02)
        started = time.monotonic() - t0
        time.sleep(2)
        out = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
        base = sum(int(next(l for l in Path(f"/proc/{p}/status").read_text().splitlines()
                            if l.startswith("VmRSS:")).split()[1]) for p in out)
        import os
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)
        print(f"baseline granian hello app: start-up {started:.2f} s, idle RSS {base / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
