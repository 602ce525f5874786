"""Fuzz the parsers for a bounded time: metadata extraction, Motion Photo scanning and the
upload multipart path (the real app in-process). Hypothesis generates the mutations of real
seed files (generated JPEG/PNG/HEIC/WebP/TIFF/MP4/Motion Photos, plus ../shared/corpus when
present); each target runs in its own child process with an address-space limit (RLIMIT_AS)
and a per-input time limit, so a hang, a native crash or a memory blow-up is a finding, not a
dead benchmark. Prints executions/second per target and every distinct finding (inputs are
saved under --out).

    scripts/bench fuzz [SECONDS] [--targets metadata,motion,multipart] [--out DIR]

SECONDS (default 60) is split between the targets.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TARGETS = ("metadata", "motion", "multipart")
PER_INPUT_SECONDS = 10.0
MEMORY_HEADROOM = 1 << 30  # the child may grow 1 GiB beyond its start


class _Stop(Exception):
    pass


class _Hang(Exception):
    pass


def _limit_memory() -> None:
    with open("/proc/self/statm") as f:
        vm = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (vm + MEMORY_HEADROOM, resource.RLIM_INFINITY))


def worker(target: str, seconds: float, out: Path) -> None:
    """Run one target until ``seconds`` pass; print a JSON summary on the last line."""
    import warnings

    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis import strategies as st

    from tests import fuzz

    warnings.simplefilter("ignore")
    from tests.resil import find_corpus

    seeds = fuzz.seed_files(find_corpus())
    names = sorted(seeds)
    if target == "motion":
        names = [n for n in names if "motion" in n.lower() or n.endswith((".jpg", ".heic", ".HEIC"))]
    if target == "multipart":
        names = [n for n in names if len(seeds[n]) < 200_000]
    work = Path(tempfile.mkdtemp(prefix=f"fuzz-{target}-"))
    mp = fuzz.MultipartTarget(work / "data") if target == "multipart" else None
    _limit_memory()
    stats = {"target": target, "execs": 0, "seeds": len(names), "findings": {}}

    def on_alarm(signum, frame):
        raise _Hang()

    signal.signal(signal.SIGALRM, on_alarm)
    started = time.monotonic()
    end = started + seconds

    def record(findings, data: bytes) -> None:
        for f in findings:
            key = "|".join(f.key())
            if key not in stats["findings"]:
                saved = out / f"{target}-{len(stats['findings']):03d}.bin"
                saved.write_bytes(f.data or data)
                stats["findings"][key] = {"kind": f.kind, "detail": f.detail, "input": str(saved), "count": 0}
            stats["findings"][key]["count"] += 1

    @settings(max_examples=10**9, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(name=st.sampled_from(names), ops=fuzz.mutations,
           boundary=st.sampled_from(["fuzzB0undary", "a", "x" * 70, "b;c", ""]))
    def one(name, ops, boundary):
        if time.monotonic() > end:
            raise _Stop()
        if target == "multipart":
            data = fuzz.mutate(fuzz.multipart_body(Path(name).name, seeds[name], boundary or "fuzzB0undary"), ops)
        else:
            data = fuzz.mutate(seeds[name], ops, head_bias=target == "metadata")
        path = work / ("input" + Path(name).suffix)
        path.write_bytes(data)
        signal.setitimer(signal.ITIMER_REAL, PER_INPUT_SECONDS)
        try:
            if target == "metadata":
                findings = fuzz.check_metadata(path)
            elif target == "motion":
                findings = fuzz.check_motion(path, work)
            else:
                findings = mp.check(data, f"multipart/form-data; boundary={boundary}")
        except _Hang:
            findings = [fuzz.Finding(target, "hang", f"over {PER_INPUT_SECONDS} s on a mutation of {name}")]
        except MemoryError:
            findings = [fuzz.Finding(target, "memory", f"MemoryError (over {MEMORY_HEADROOM >> 20} MiB) on {name}")]
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        stats["execs"] += 1
        record(findings, data)

    try:
        one()
    except _Stop:
        pass
    finally:
        if mp is not None:
            stats["statuses"] = mp.statuses
            mp.close()
    stats["seconds"] = time.monotonic() - started
    print(json.dumps(stats), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("seconds", nargs="?", type=float, default=60.0)
    parser.add_argument("--targets", default=",".join(TARGETS))
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "photobox-fuzz-findings")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        worker(args.worker, args.seconds, args.out)
        return
    targets = [t for t in args.targets.split(",") if t]
    share = args.seconds / len(targets)
    total_findings = 0
    print(f"fuzzing {', '.join(targets)} for {share:.0f} s each (findings saved in {args.out})")
    for target in targets:
        proc = subprocess.Popen([sys.executable, __file__, str(share), "--worker", target, "--out", str(args.out)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
        try:
            stdout, stderr = proc.communicate(timeout=share + 120)  # seed generation + one slow input
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
            print(f"{target}: FINDING hang: the child did not finish (killed); last input: {args.out}")
            total_findings += 1
            continue
        lines = [line for line in stdout.splitlines() if line.startswith("{")]
        if proc.returncode != 0 or not lines:
            print(f"{target}: FINDING crash: child exited with {proc.returncode}\n{stderr[-2000:]}")
            total_findings += 1
            continue
        stats = json.loads(lines[-1])
        rate = stats["execs"] / max(stats["seconds"], 1e-9)
        extra = f", HTTP statuses {stats['statuses']}" if "statuses" in stats else ""
        print(f"{target:9} {stats['execs']:7d} inputs in {stats['seconds']:.1f} s = {rate:8.1f} exec/s "
              f"({stats['seeds']} seeds){extra}; {len(stats['findings'])} distinct findings")
        for f in stats["findings"].values():
            total_findings += 1
            print(f"  FINDING {f['kind']}: {f['detail']} (x{f['count']}; input {f['input']})")
    print(f"total distinct findings: {total_findings}")
    sys.exit(1 if total_findings else 0)


if __name__ == "__main__":
    main()
