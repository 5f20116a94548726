#!/usr/bin/env python3
"""LAPACK ssyevd (scipy.linalg.eigh(a, driver='evd'), float32) on (X+Xᵀ)/2, median ms per size.
Usage: OPENBLAS_NUM_THREADS=T [env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE] python3 eigh_peer.py 128 256 …
"""
import sys
import time

import numpy as np
import scipy.linalg as sl

rng = np.random.default_rng(0)
for n in [int(x) for x in sys.argv[1:]]:
    x = rng.standard_normal((n, n)).astype(np.float32)
    a = (x + x.T) / 2
    ts = []
    for _ in range(9 if n < 1024 else 3):
        t = time.perf_counter()
        sl.eigh(a, driver="evd")
        ts.append(time.perf_counter() - t)
    print("scipy", n, "%.2f ms" % (1e3 * np.median(ts)))
