"""Vector search: latency, recall and memory of photobox's RAM mirror against exact baselines.

For each data set and size it builds a real photobox database (``vectors.upsert_many``, 50k
vectors a transaction), then runs the same queries (k=50) with no filter, a selective filter
(1% of the ids) and a broad one (50%) through:

* ``mirror int8 (numpy|onnx)``: ``photobox.search.vectors.search``, the shipped code path (int8
  RAM mirror, then exact float32 re-rank from SQLite), with each scan kernel; ``*`` marks the
  one the process picks by timing;
* ``numpy f32 exact``: the vectors as a float32 matrix in RAM (also the recall reference);
* ``vec0 f32 brute``: sqlite-vec's KNN over the space's float32 table (filter: ``asset_id IN json_each``);
* ``vec0 int8 +rerank`` / ``vec0 bit +rerank``: extra sqlite-vec int8 / bit tables, 4x / 20x
  over-fetch, then exact float32 re-rank (sizes up to ``--vec0-quantized-max`` only).

Data: ``random`` unit vectors (the hardest case for quantization: neighbours barely stand out)
and ``clustered`` ones, 1000 Gaussian clusters with queries near cluster centres (what real
CLIP embeddings look like). Text encoding is not included; ``--encode-ms X`` adds X ms to
every latency in an extra column. Allowed ids are passed as Python lists, as the SQL filter
returns them; computing them is the filter's cost, not measured here.

Goals on a 2-core machine: median ≤ 30 ms at 100k and ≤ 150 ms at 1M, recall@50 ≥ 0.95,
filtered searches as correct as unfiltered ones.

Fairness: strategies run interleaved query by query, so a noisy neighbour or a cold cache
hits them all alike (the machine this was written on is shared). OpenBLAS runs one thread
per call here: its idle workers otherwise spin after a big product and steal the cores from
whatever runs next. The float32 baseline gets the same cores as the mirror instead, through
a pool of threads (one per CPU, at most 4) each scanning a slice.

    scripts/bench search [--sizes 10000 100000 1000000] [--data random clustered] [--queries 30]
                         [--dim 512] [--encode-ms 0] [--vec0-quantized-max 100000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before numpy loads OpenBLAS (see above)

from concurrent.futures import ThreadPoolExecutor  # noqa: E402

import numpy as np  # noqa: E402

from photobox.db import Database  # noqa: E402
from photobox.search import vectors  # noqa: E402
from photobox.vectors import get_kernel  # noqa: E402

K = 50
BATCH = 50_000
CELL_SECONDS = 6.0   # stop a slow strategy's queries after this long (at least MIN_QUERIES)
MIN_QUERIES = 5
MB = 1_000_000


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def unit(x: np.ndarray) -> np.ndarray:
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x


def make_data(kind: str, n: int, dim: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.empty((n, dim), dtype=np.float32)
    if kind == "random":
        for a in range(0, n, 100_000):
            x[a:a + 100_000] = unit(rng.standard_normal((min(100_000, n - a), dim), dtype=np.float32))
        return x, unit(rng.standard_normal((queries, dim), dtype=np.float32))
    centres = unit(rng.standard_normal((1000, dim), dtype=np.float32))
    spread = np.float32(0.6 / np.sqrt(dim))  # a point is ~0.86 cosine from its centre
    for a in range(0, n, 100_000):
        m = min(100_000, n - a)
        x[a:a + m] = unit(centres[rng.integers(0, 1000, m)] + spread * rng.standard_normal((m, dim), dtype=np.float32))
    near = centres[rng.integers(0, 1000, queries)]
    return x, unit(near + np.float32(0.3 / np.sqrt(dim)) * rng.standard_normal((queries, dim), dtype=np.float32))


def build_db(path: Path, x: np.ndarray) -> tuple[int, float]:
    t0 = time.monotonic()
    db = Database(path).open()
    with db.transaction() as conn:
        space_id = vectors.create_space(conn, "bench", x.shape[1])
    for a in range(0, len(x), BATCH):
        with db.transaction() as conn:
            vectors.upsert_many(conn, space_id, range(a + 1, a + 1 + len(x[a:a + BATCH])), x[a:a + BATCH])
    with db.transaction() as conn:
        vectors.activate(conn, space_id, force=True)
    db.close()  # checkpoints the WAL into the file
    return space_id, time.monotonic() - t0


def add_quantized_tables(db: Database, x: np.ndarray) -> float:
    """The sqlite-vec int8 and bit candidates (benchmark-only tables)."""
    t0 = time.monotonic()
    dim = x.shape[1]
    peak = float(np.abs(x).max())
    with db.transaction() as conn:
        conn.execute(f"CREATE VIRTUAL TABLE bench_int8 USING vec0(embedding int8[{dim}] distance_metric=cosine)")
        conn.execute(f"CREATE VIRTUAL TABLE bench_bit USING vec0(embedding bit[{dim}])")
    for a in range(0, len(x), BATCH):
        block = x[a:a + BATCH]
        codes = np.rint(block * (127 / peak)).astype(np.int8)  # one global scale: better than 'unit' here
        with db.transaction() as conn:
            conn.executemany("INSERT INTO bench_int8(rowid, embedding) VALUES (?, vec_int8(?))",
                             ((a + 1 + i, codes[i].tobytes()) for i in range(len(block))))
            conn.executemany("INSERT INTO bench_bit(rowid, embedding) VALUES (?, vec_quantize_binary(?))",
                             ((a + 1 + i, block[i].tobytes()) for i in range(len(block))))
    return time.monotonic() - t0


def table_sizes(db: Database) -> dict[str, int]:
    out: dict[str, int] = {}
    with db.reader() as conn:
        try:
            rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
        except Exception:  # noqa: BLE001 - dbstat not compiled in
            return out
    for name, size in rows:
        group = ("vectors (vec_space)" if name.startswith("vec_space") else
                 "entries" if "embedding_entries" in name else
                 "vec0 int8" if name.startswith("bench_int8") else
                 "vec0 bit" if name.startswith("bench_bit") else "other")
        out[group] = out.get(group, 0) + size
    return out


POOL = ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1)))


def scan_f32(x: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``x @ q`` over all cores: one slice per thread (OpenBLAS is single-threaded here)."""
    out = np.empty(len(x), dtype=np.float32)
    bounds = np.linspace(0, len(x), POOL._max_workers + 1).astype(int)

    def part(a: int, b: int) -> None:
        np.dot(x[a:b], q, out=out[a:b])

    for f in [POOL.submit(part, a, b) for a, b in zip(bounds[:-1], bounds[1:])]:
        f.result()
    return out


def exact_top(x: np.ndarray, q: np.ndarray, rows: np.ndarray | None) -> list[int]:
    """Ids (row + 1) of the exact float32 top K, within ``rows`` if given."""
    if rows is None:
        scores = scan_f32(x, q)
        top = np.argpartition(-scores, K)[:K]
        return (top[np.argsort(-scores[top])] + 1).tolist()
    scores = x[rows] @ q if len(rows) < len(x) // 3 else scan_f32(x, q)[rows]
    top = np.argpartition(-scores, min(K, len(rows) - 1))[:K]
    return (rows[top[np.argsort(-scores[top])]] + 1).tolist()


def rerank(conn, space_id: int, q: np.ndarray, ids: list[int]) -> list[int]:
    sql = f"SELECT embedding FROM vec_space_{space_id} WHERE asset_id = ?"
    blobs = [conn.execute(sql, (i,)).fetchone()[0] for i in ids]
    mat = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(ids), len(q))
    order = np.argsort(-(mat @ q))[:K]
    return [ids[j] for j in order]


def vec0_knn(conn, table: str, match_sql: str, q_blob: bytes, k: int, allowed: list[int] | None,
             id_column: str = "rowid") -> list[int]:
    sql = f"SELECT {id_column} FROM {table} WHERE embedding MATCH {match_sql} AND k = ?"
    params: tuple = (q_blob, k)
    if allowed is not None:
        sql += f" AND {id_column} IN (SELECT value FROM json_each(?))"
        params += (json.dumps(allowed),)
    return [r for (r,) in conn.execute(sql, params)]


def measure(strategies: dict[str, tuple[str | None, Callable]], queries: np.ndarray, allowed: list[int] | None,
            truth: list[list[int]], limit: int) -> dict[str, dict[str, float]]:
    """Latency and recall of every strategy on the same queries, interleaved query by query
    (in a rotating order) so that a noisy neighbour on the machine hits them all alike."""
    names = list(strategies)
    times: dict[str, list[float]] = {name: [] for name in names}
    recalls: dict[str, list[float]] = {name: [] for name in names}
    spent = dict.fromkeys(names, 0.0)
    for _name, (kernel, fn) in strategies.items():  # warm-up (page cache, kernel), not counted
        vectors.set_kernel(kernel)
        fn(queries[0], allowed)
    for i, q in enumerate(queries[:limit]):
        for name in names[i % len(names):] + names[:i % len(names)]:
            if len(times[name]) >= MIN_QUERIES and spent[name] > CELL_SECONDS:
                continue  # slow: enough queries for a median
            kernel, fn = strategies[name]
            vectors.set_kernel(kernel)
            t0 = time.perf_counter()
            got = fn(q, allowed)
            elapsed = time.perf_counter() - t0
            spent[name] += elapsed
            times[name].append(elapsed * 1000)
            recalls[name].append(len(set(got[:K]) & set(truth[i])) / max(1, len(truth[i])))
    vectors.set_kernel(None)
    out = {}
    for name in names:
        t = sorted(times[name])
        out[name] = {"median": statistics.median(t), "p95": t[min(len(t) - 1, int(round(0.95 * (len(t) - 1))))],
                     "recall": float(np.mean(recalls[name])), "recall_min": float(np.min(recalls[name])),
                     "queries": len(t)}
    return out


def run(kind: str, n: int, args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    dim = args.dim
    x, queries = make_data(kind, n, dim, args.queries, seed=n + (0 if kind == "random" else 1))
    rng = np.random.default_rng(n)
    filters: dict[str, list[int] | None] = {
        "none": None,
        "1%": np.sort(rng.choice(n, max(K, n // 100), replace=False) + 1).tolist(),
        "50%": np.sort(rng.choice(n, n // 2, replace=False) + 1).tolist(),
    }
    rows_of = {name: None if ids is None else np.asarray(ids) - 1 for name, ids in filters.items()}
    truth = {name: [exact_top(x, q, rows_of[name]) for q in queries] for name in filters}

    results: dict[str, dict[str, dict[str, float]]] = {}
    memory: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.db"
        space_id, build_s = build_db(path, x)
        db_bytes = path.stat().st_size
        db = Database(path, readers=2).open()
        try:
            sizes = table_sizes(db)
            print(f"  database: {n} vectors written in {build_s:.1f} s; file {db_bytes / MB:.0f} MB ("
                  + ", ".join(f"{k} {v / MB:.0f} MB" for k, v in sizes.items()) + ")", flush=True)
            vectors.clear_mirrors()
            get_kernel(dim)  # the kernel choice (and onnxruntime's import) outside the RSS delta
            gc.collect()
            before = rss_bytes()
            stats = vectors.warm(db, space_id)
            grown = rss_bytes() - before
            print(f"  mirror: built in {stats['build_seconds']:.2f} s, {stats['bytes'] / MB:.1f} MB accounted, "
                  f"process RSS +{grown / MB:.0f} MB; scan kernel picked by timing: {stats['kernel']}", flush=True)
            picked = stats["kernel"]
            mirror_mem = f"{stats['bytes'] / MB:.0f} MB RAM"

            with db.reader() as conn:
                def mirror(q: np.ndarray, allowed: list[int] | None) -> list[int]:
                    return [i for i, _ in vectors.search(conn, space_id, q, K, allowed_ids=allowed)]

                def numpy_exact(q: np.ndarray, allowed: list[int] | None) -> list[int]:
                    return exact_top(x, q, None if allowed is None else np.asarray(allowed) - 1)

                def vec0_f32(q: np.ndarray, allowed: list[int] | None) -> list[int]:
                    return vec0_knn(conn, f"vec_space_{space_id}", "?", q.tobytes(), K, allowed, "asset_id")

                strategies: dict[str, tuple[str | None, Callable]] = {}
                for kernel in ("numpy", "onnx"):
                    strategies[f"mirror int8 ({kernel})"] = (kernel, mirror)
                    memory[f"mirror int8 ({kernel})"] = mirror_mem + (" (picked)" if kernel == picked else "")
                strategies["numpy f32 exact"] = (None, numpy_exact)
                memory["numpy f32 exact"] = f"{x.nbytes / MB:.0f} MB RAM"
                strategies["vec0 f32 brute"] = (None, vec0_f32)
                memory["vec0 f32 brute"] = "page cache"
                quantized = n <= args.vec0_quantized_max
                if quantized:
                    print("  (building sqlite-vec int8 and bit tables for the quantized candidates…)", flush=True)
                    extra_s = add_quantized_tables(db, x)
                    sizes = table_sizes(db)
                    print(f"  … in {extra_s:.1f} s: int8 {sizes.get('vec0 int8', 0) / MB:.0f} MB, "
                          f"bit {sizes.get('vec0 bit', 0) / MB:.0f} MB", flush=True)
                    peak = float(np.abs(x).max())

                    def vec0_int8(q: np.ndarray, allowed: list[int] | None) -> list[int]:
                        codes = np.rint(q * (127 / peak)).astype(np.int8).tobytes()
                        ids = vec0_knn(conn, "bench_int8", "vec_int8(?)", codes, 4 * K, allowed)
                        return rerank(conn, space_id, q, ids)

                    def vec0_bit(q: np.ndarray, allowed: list[int] | None) -> list[int]:
                        ids = vec0_knn(conn, "bench_bit", "vec_quantize_binary(?)", q.tobytes(), 20 * K, allowed)
                        return rerank(conn, space_id, q, ids)

                    strategies["vec0 int8 +rerank"] = (None, vec0_int8)
                    strategies["vec0 bit +rerank"] = (None, vec0_bit)
                    memory["vec0 int8 +rerank"] = f"+{sizes.get('vec0 int8', 0) / MB:.0f} MB disk"
                    memory["vec0 bit +rerank"] = f"+{sizes.get('vec0 bit', 0) / MB:.0f} MB disk"

                by_filter = {fname: measure(strategies, queries, allowed, truth[fname], args.queries)
                             for fname, allowed in filters.items()}
                enc = args.encode_ms
                head = f"  {'strategy':24} {'filter':6} {'median':>9} {'p95':>9}"
                head += f" {'+encode':>9}" if enc else ""
                print(head + f" {'recall@50':>10} {'(min)':>6} {'n':>3}  memory", flush=True)
                for name in strategies:
                    results[name] = {fname: by_filter[fname][name] for fname in filters}
                    for fname, r in results[name].items():
                        line = f"  {name:24} {fname:6} {r['median']:6.1f} ms {r['p95']:6.1f} ms"
                        line += f" {r['median'] + enc:6.1f} ms" if enc else ""
                        print(line + f" {r['recall']:10.3f} {r['recall_min']:6.2f} {r['queries']:3d}  "
                              f"{memory[name]}", flush=True)
            results["_picked"] = picked
        finally:
            db.close()
            vectors.clear_mirrors()
    x = None  # the vectors are no longer needed: let the RSS figure below show that
    gc.collect()
    print(f"  process RSS now {rss_bytes() / MB:.0f} MB; load average {os.getloadavg()[0]:.2f}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--data", nargs="+", default=["random", "clustered"], choices=["random", "clustered"])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--encode-ms", type=float, default=0.0, help="add this text-encoding time to every latency")
    parser.add_argument("--vec0-quantized-max", type=int, default=100_000,
                        help="build the sqlite-vec int8/bit candidates only up to this size (slow to build)")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; numpy {np.__version__}; "
          f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}; k={K}, dim={args.dim}", flush=True)
    t_start = time.monotonic()
    summary: dict[tuple[str, int], dict] = {}
    for kind in args.data:
        for n in args.sizes:
            print(f"{kind} vectors, {n} (load average {os.getloadavg()[0]:.2f}):", flush=True)
            summary[kind, n] = run(kind, n, args)

    print(f"\nsummary: median ms with no / 1% / 50% filter, and the lowest mean recall@50 of the three "
          f"(total {time.monotonic() - t_start:.0f} s, load average now {os.getloadavg()[0]:.2f})")
    for kind in args.data:
        print(f"  {kind}:")
        print(f"    {'strategy':24}" + "".join(f"{n:>28}" for n in args.sizes))
        names = dict.fromkeys(s for n in args.sizes for s in summary[kind, n] if not s.startswith("_"))
        for name in names:
            cells = []
            for n in args.sizes:
                r = summary[kind, n].get(name)
                if r is None:
                    cells.append(f"{'-':>28}")
                    continue
                med = "/".join(f"{r[f]['median']:.0f}" if r[f]["median"] >= 10 else f"{r[f]['median']:.1f}"
                               for f in ("none", "1%", "50%"))
                mark = "*" if name == f"mirror int8 ({summary[kind, n]['_picked']})" else " "
                cells.append(f"{med + ' ms':>19}{mark} {min(r[f]['recall'] for f in r):6.3f}")
            print(f"    {name:24}" + "".join(cells))
    print("  * the kernel photobox picked by timing on this machine")
    ok = True
    print("goals (the mirror with the kernel this machine picks):")
    for (kind, n), r in summary.items():
        name = f"mirror int8 ({r['_picked']})"
        goal = 30 if n <= 100_000 else 150
        worst = max(r[name][f]["median"] for f in ("none", "1%", "50%"))
        recall = min(r[name][f]["recall_min"] for f in ("none", "1%", "50%"))
        good = worst <= goal and recall >= 0.95
        ok &= good
        print(f"  {kind:9} {n:>8}: worst median {worst:6.1f} ms (goal ≤ {goal} ms), "
              f"worst query recall@50 {recall:.3f} (goal ≥ 0.95)  {'ok' if good else 'MISSED'}")
    print("all goals met" if ok else "some goals missed")


if __name__ == "__main__":
    main()
