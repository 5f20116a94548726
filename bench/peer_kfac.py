"""Peer ops for `kfac-peft bench factor|precondition|clip` (loaded by bench/peer.py, which
provides np, scipy, timed and rng). Each computes the same product as our kernel."""


def op_syrk(p):
    # F <- beta*F + alpha*X^T X with X [R, d] row-major: X.T is the Fortran-ordered [d, R]
    # view of the same memory, and ssyrk(trans=0) of it is X^T X (upper triangle), no copy.
    from scipy.linalg.blas import ssyrk

    d, R, beta = p["d"], p["R"], p.get("beta", 0.0)
    x = rng(1).standard_normal((R, d), dtype=np.float32)
    xt = x.T
    c = np.asfortranarray(np.eye(d, dtype=np.float32))
    alpha = (1.0 - beta) / R
    if beta == 0.0:
        fn = lambda: ssyrk(alpha, xt, trans=0)
    else:
        fn = lambda: ssyrk(alpha, xt, beta=beta, c=c, trans=0, overwrite_c=1)
    return {"ms": timed(fn, p.get("repeats", 15))}


def op_precondition_eigen(p):
    dout, din, lam = p["dout"], p["din"], p.get("damping", 1e-3)
    r = rng(2)
    g = r.standard_normal((dout, din), dtype=np.float32)
    qa = np.linalg.qr(r.standard_normal((din, din)))[0].astype(np.float32)
    qg = np.linalg.qr(r.standard_normal((dout, dout)))[0].astype(np.float32)
    da = r.random(din, dtype=np.float32)
    dg = r.random(dout, dtype=np.float32)
    t1 = np.empty((dout, din), np.float32)
    t2 = np.empty((dout, din), np.float32)
    out = np.empty((dout, din), np.float32)
    den = np.empty((dout, din), np.float32)

    def fn():
        np.matmul(g, qa, out=t1)
        np.matmul(qg.T, t1, out=t2)
        np.multiply.outer(dg, da, out=den)
        np.add(den, lam, out=den)
        np.divide(t2, den, out=t2)
        np.matmul(qg, t2, out=t1)
        np.matmul(t1, qa.T, out=out)

    return {"ms": timed(fn, p.get("repeats", 15))}


def op_precondition_inverse(p):
    dout, din = p["dout"], p["din"]
    r = rng(3)
    g = r.standard_normal((dout, din), dtype=np.float32)
    ainv = r.standard_normal((din, din), dtype=np.float32)
    ginv = r.standard_normal((dout, dout), dtype=np.float32)
    t1 = np.empty((dout, din), np.float32)
    out = np.empty((dout, din), np.float32)

    def fn():
        np.matmul(g, ainv, out=t1)
        np.matmul(ginv, t1, out=out)

    return {"ms": timed(fn, p.get("repeats", 15))}


def op_damped_inverse(p):
    # LAPACK spotrf + spotri on (A + delta I): the same Cholesky-based inverse.
    from scipy.linalg.lapack import spotrf, spotri

    n, delta = p["n"], p.get("damping", 1e-2)
    x = rng(4).standard_normal((n, n), dtype=np.float32)
    a = np.asfortranarray((x @ x.T) / n + (1.0 + delta) * np.eye(n, dtype=np.float32))

    def fn():
        c, info = spotrf(a, lower=1, clean=0)
        inv, info2 = spotri(c, lower=1, overwrite_c=1)
        if info or info2:
            raise RuntimeError("spotrf/spotri failed")

    return {"ms": timed(fn, p.get("repeats", 15))}


def op_clip(p):
    # Global Newton-step clip over `count` tensors of `size` elements: one reduction, one
    # scale. Every call clips by 0.9 (tau shrinks by 0.9 a call), as the bench of ours does.
    count, size = p["count"], p["size"]
    ts = [rng(5 + i).standard_normal(size, dtype=np.float32) for i in range(count)]
    state = {"tau": 0.9 * np.sqrt(sum(float(np.dot(t, t)) for t in ts))}

    def fn():
        total = np.sqrt(sum(float(np.dot(t, t)) for t in ts))
        s = np.float32(min(1.0, state["tau"] / total))
        for t in ts:
            t *= s
        state["tau"] *= 0.9

    return {"ms": timed(fn, p.get("repeats", 15))}


OPS = {
    "syrk": op_syrk,
    "precondition_eigen": op_precondition_eigen,
    "precondition_inverse": op_precondition_inverse,
    "damped_inverse": op_damped_inverse,
    "clip": op_clip,
}
