#!/usr/bin/env python3
"""Memory read bandwidth of this machine, for docs/benchmarks.md: numpy sums over a 512 MB f32
array (far larger than the caches), in one process, then in N processes at once (default 2).

    python3 xtask/scripts/bandwidth.py [N]
"""
import multiprocessing
import sys
import time

import numpy as np


def read_gbps(_: int = 0) -> float:
    a = np.ones(2**27, dtype=np.float32)
    a.sum()
    start = time.perf_counter()
    for _ in range(5):
        a.sum()
    return a.nbytes * 5 / (time.perf_counter() - start) / 1e9


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    print(f"1 process: {read_gbps():.1f} GB/s")
    with multiprocessing.Pool(n) as pool:
        rates = pool.map(read_gbps, range(n))
    print(f"{n} processes: {sum(rates):.1f} GB/s in all ({', '.join(f'{r:.1f}' for r in rates)})")
