"""Exact inner-product search with FAISS IndexFlatIP, for `cargo xtask bench retrieval`.

Reads the same .npy files as the Rust engine, searches with the given threads (best of three
runs, like the Rust side), and writes the time and the top-k row ids as JSON. `--runs 1` times a single search, for the
alternating runs against `kailin retrieve search`.
"""
import argparse
import json
import sys
import time

import numpy as np

try:
    import faiss
except ImportError:
    sys.exit("faiss is not installed: pip install faiss-cpu")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--base", required=True)
    p.add_argument("--queries", required=True)
    p.add_argument("--k", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--runs", type=int, default=3, help="searches timed (the best is reported)")
    a = p.parse_args()
    faiss.omp_set_num_threads(a.threads)
    base = np.ascontiguousarray(np.load(a.base), dtype=np.float32)
    queries = np.ascontiguousarray(np.load(a.queries), dtype=np.float32)
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    best, ids = float("inf"), None
    for _ in range(a.runs):
        t = time.perf_counter()
        _, ids = index.search(queries, a.k)
        best = min(best, time.perf_counter() - t)
    with open(a.out, "w") as f:
        json.dump({"seconds": best, "version": faiss.__version__, "threads": a.threads, "ids": ids.tolist()}, f)
    print(f"FAISS {faiss.__version__}: {best:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
