"""Peer ops of the eigh bench cases (loaded by bench/peer.py): LAPACK through scipy/numpy."""
# np, scipy, timed and rng come from peer.py.


def _sym(n, seed=0):
    x = rng(seed).standard_normal((n, n), dtype=np.float32)
    return (x + x.T) * np.float32(0.5)


def op_eigh(p):
    """scipy.linalg.eigh(a, driver='evd') on a float32 symmetric matrix: LAPACK ssyevd."""
    if scipy is None:
        raise RuntimeError("scipy is not installed")
    a = _sym(p["n"])
    return {"ms": timed(lambda: scipy.linalg.eigh(a, driver="evd"), p.get("repeats", 7))}


def op_batched_eigh(p):
    """numpy.linalg.eigh on a [B, r, r] float32 stack (LAPACK ssyevd per matrix)."""
    b, r = p["batch"], p["r"]
    x = rng(1).standard_normal((b, r, r), dtype=np.float32)
    a = (x + np.swapaxes(x, 1, 2)) * np.float32(0.5)
    return {"ms": timed(lambda: np.linalg.eigh(a), p.get("repeats", 15))}


OPS = {"eigh": op_eigh, "batched-eigh": op_batched_eigh}
