#!/usr/bin/env python3
"""Could a damping-aware staleness test let the warm eigh refresh skip most rotations?

float64, numpy only (no part of the library runs here). A_old is an EMA (beta = 0.95, 60 steps)
of batch factors XᵀX/R from correlated activations; Q_old its eigenbasis. A_new = beta·A_old +
(1 − beta)·(a fresh batch factor). G is a factor of the same kind with its exact basis. The K-FAC
eigen step is P = Q_G[(Q_Gᵀ W Q_A) ⊘ (d_G d_Aᵀ + λ)]Q_Aᵀ with λ = γ·(tr A/n)(tr G/m). For A it
compares the cold basis with:
  stale   old basis, old eigenvalues (no refresh at all);
  ekfac   old basis, eigenvalues re-estimated as diag(Q_oldᵀ A_new Q_old);
  eps     Jacobi that rotates only the couplings |S_ij| > eps·sqrt((S_ii + λ_A)(S_jj + λ_A)) of
          S = Q_oldᵀ A_new Q_old, with λ_A = λ / max d_G (the smallest damping an A index sees):
          what such sweeps converge to (exact eigh of S with the other couplings zeroed), and how
          many couplings that is (a warm path has budget for about 8n rotations).
Prints the relative step error ‖P − P_cold‖/‖P_cold‖ of each. Usage: refresh-damping-study.py n R
"""
import sys

import numpy as np

rng = np.random.default_rng(0)


def act_model(kind, n, R):
    if kind == "powerlaw":  # correlated Gaussian, covariance spectrum k^-1.2 in a random basis
        U = np.linalg.qr(rng.standard_normal((n, n)))[0]
        L = U * np.arange(1, n + 1) ** -0.6
        return lambda: rng.standard_normal((R, n)) @ L.T
    # rank-32 signal + isotropic noise (0.1) + a mean
    B = rng.standard_normal((n, 32))
    mu = 0.3 * rng.standard_normal(n)
    return lambda: (rng.standard_normal((R, 32)) @ B.T) / np.sqrt(32) + 0.1 * rng.standard_normal((R, n)) + mu


def ema(gen, T, beta):
    F = None
    for _ in range(T):
        X = gen()
        Fb = X.T @ X / X.shape[0]
        F = Fb if F is None else beta * F + (1 - beta) * Fb
    return F


def step(QG, dG, QA, dA, W, lam):
    return QG @ ((QG.T @ W @ QA) / (np.outer(dG, dA) + lam)) @ QA.T


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    R = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    m, beta, T = 256, 0.95, 60
    for kind in ["powerlaw", "lowrank"]:
        genA, genG = act_model(kind, n, R), act_model(kind, m, R)
        A_old, G = ema(genA, T, beta), ema(genG, T, beta)
        dG, QG = np.linalg.eigh(G)
        dG = np.maximum(dG, 0)
        dA_old, QA_old = np.linalg.eigh(A_old)
        Xf = genA()
        A_new = beta * A_old + (1 - beta) * Xf.T @ Xf / R
        dA, QA = np.linalg.eigh(A_new)
        S = QA_old.T @ A_new @ QA_old
        S = (S + S.T) / 2
        off = np.sqrt((np.sum(S**2) - np.sum(np.diag(S) ** 2)) / np.sum(S**2))
        W = rng.standard_normal((m, n))
        print(f"{kind} n={n} R={R}: off-diagonal mass of S {off:.2e}, couplings in all {n * (n - 1) // 2}")
        for gamma in [1e-3, 1e-2, 1e-1]:
            lam = gamma * (np.trace(A_new) / n) * (np.trace(G) / m)
            P0 = step(QG, dG, QA, np.maximum(dA, 0), W, lam)
            err = lambda P: np.linalg.norm(P - P0) / np.linalg.norm(P0)
            row = f"  gamma={gamma:.0e}: stale {err(step(QG, dG, QA_old, np.maximum(dA_old, 0), W, lam)):.2e}"
            row += f"  ekfac {err(step(QG, dG, QA_old, np.maximum(np.diag(S), 0), W, lam)):.2e}"
            lamA, dd = lam / dG.max(), np.diag(S)
            for eps in [1e-2, 1e-3, 1e-4]:
                keep = np.abs(S) > eps * np.sqrt(np.outer(dd + lamA, dd + lamA))
                np.fill_diagonal(keep, True)
                w, V = np.linalg.eigh(np.where(keep, S, 0.0))
                e = err(step(QG, dG, QA_old @ V, np.maximum(w, 0), W, lam))
                row += f" | eps={eps:.0e}: {e:.2e}, {(keep.sum() - n) // 2} couplings"
            print(row)


if __name__ == "__main__":
    main()
