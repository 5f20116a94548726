#!/usr/bin/env python3
"""Peer timings for `kfac-peft bench`: numpy/scipy (OpenBLAS, LAPACK) in a worker process.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout.
  {"op": "hello"}                      -> {"ok": true, "numpy": ..., "scipy": ..., "blas": "OpenBLAS 0.3.31 SkylakeX"}
  {"op": "<name>", ...params}          -> {"ok": true, "ms": <median ms>, ...} or {"ok": false, "error": "..."}
Thread count comes from OPENBLAS_NUM_THREADS, set by the caller for the whole process.
Each op times its call after warm-up and returns the median of `repeats` runs.
To add a peer for a new bench case, add a function to OPS.
"""
import ctypes
import glob
import os
import time

import numpy as np
from peer_serve import serve

try:
    import scipy
    import scipy.linalg
    import scipy.linalg.blas
except Exception:  # scipy is optional; ops that need it report an error
    scipy = None


def blas_name():
    cfg = np.show_config(mode="dicts") if hasattr(np, "show_config") else {}
    try:
        blas = cfg["Build Dependencies"]["blas"]
        name = f"{blas.get('name', 'blas')} {blas.get('version', '')}".strip()
    except Exception:
        name = "unknown BLAS"
    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), "..", "numpy.libs", "libscipy_openblas*"))
    if libs:
        try:
            lib = ctypes.CDLL(libs[0])
            for sym in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
                f = getattr(lib, sym, None)
                if f is not None:
                    f.restype = ctypes.c_char_p
                    name += " " + f().decode()
                    break
        except OSError:
            pass
    return name


def timed(fn, repeats, warmup=2):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e3)
    ts.sort()
    return ts[len(ts) // 2]


def rng(seed=0):
    return np.random.default_rng(seed)


def op_gemm(p):
    m, n, k = p["m"], p["n"], p["k"]
    r = rng()
    a = r.standard_normal((k, m) if p.get("transA") else (m, k), dtype=np.float32)
    b = r.standard_normal((n, k) if p.get("transB") else (k, n), dtype=np.float32)
    A = a.T if p.get("transA") else a
    B = b.T if p.get("transB") else b
    if p.get("new"):  # a fresh output each call: numpy's `a @ b`
        return {"ms": timed(lambda: A @ B, p.get("repeats", 15))}
    c = np.empty((m, n), dtype=np.float32)
    return {"ms": timed(lambda: np.matmul(A, B, out=c), p.get("repeats", 15))}


OPS = {"gemm": op_gemm}


def extra_ops():
    """Peer ops contributed by other bench modules (files named peer_*.py beside this one)."""
    here = os.path.dirname(os.path.abspath(__file__))
    for path in sorted(glob.glob(os.path.join(here, "peer_*.py"))):
        if os.path.basename(path) == "peer_serve.py":
            continue
        scope = {"np": np, "scipy": scipy, "timed": timed, "rng": rng}
        with open(path) as f:
            exec(compile(f.read(), path, "exec"), scope)
        OPS.update(scope.get("OPS", {}))


def main():
    extra_ops()
    serve(
        OPS,
        lambda: {
            "numpy": np.__version__,
            "scipy": getattr(scipy, "__version__", None),
            "blas": blas_name(),
            "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "ops": sorted(OPS),
        },
    )


if __name__ == "__main__":
    main()
