"""Gradient descent at a finite learning rate for the softmax-feature family (docs/theory/finite_learning_rate.md).

M = V Q V^T with orthonormal V: the K^2 entries of M are coordinates of Q in the orthonormal basis v_n v_k^T, so
full-model gradient descent with population gradients is exactly gradient descent on M (SF-13, LR-1), the map
M <- M + eta f(M), f(M) = -G diag(p) (``features.exact_gd_map``). Its first-order modified flow (LR-5) is

    dM/dt = f(M) - (eta/2) Df(M)[f(M)]       (Df = -Hess L, so this is -grad L - (eta/2) Hess L grad L),

with the directional derivative of the exact gradient taken by a central difference of the exact (enumerated,
SF-19a) or large-N (SF-21) right-hand side along f itself: relative error O(h^2) ~ 1e-10 in the O(eta) term.
"""
from __future__ import annotations

import numpy as np


def modified_rhs(rhs, eta: float, h: float = 1e-4):
    """y -> rhs(y) - (eta/2) Drhs(y)[rhs(y)] (LR-5), the directional derivative by a central difference with
    step h / max|rhs(y)| along rhs(y)."""
    def modified(y):
        f = rhs(y)
        scale = float(np.max(np.abs(f)))
        if scale == 0.0:
            return f
        step = h / scale
        directional = (rhs(y + step * f) - rhs(y - step * f)) / (2.0 * step)
        return f - 0.5 * eta * directional
    return modified


def stable_lr_along(gradient, states: np.ndarray, t: np.ndarray, h: float = 1e-5) -> dict:
    """(LR-8) along a path: eta_max = 2 / the largest lambda_max of the Hessian of the loss, by central
    differences of ``gradient`` (of a flat state) at each of ``states`` (T, n) at times ``t``. The softmax loss
    has no finite minimiser (SF-22): the sharpness decays like 1/t late, so the bound comes from the sharpest
    point on the way (``along_path``), typically the start."""
    lam = []
    for y in states:
        H = np.array([(gradient(y + h * e) - gradient(y - h * e)) / (2 * h) for e in np.eye(y.size)])
        lam.append(np.linalg.eigvalsh(0.5 * (H + H.T))[-1])
    lam = np.array(lam)
    return {"eta_max": 2.0 / lam.max(), "along_path": 2.0 / lam.max(), "at_end": 2.0 / lam[-1],
            "sharpest_time": float(t[int(np.argmax(lam))]), "lambda": lam, "t": t}


def batch_gd_map(counts: np.ndarray, coefficients: np.ndarray, query_ids: np.ndarray, eta: float, steps: int,
                 M0: np.ndarray | None = None) -> np.ndarray:
    """GD on M for one fixed batch of prompts, in reduced coordinates only (LR-1 with the batch loss): prompt b
    has feature counts ``counts[b]`` (SF-7), task coefficients w_n = <w, v_n> ``coefficients[b]`` and query
    feature ``query_ids[b]``; yhat = sum_n a_n w_n, loss (1/2)(yhat - w_k)^2, gradient in M[n, k]
    r a_n (w_n - yhat) (SF-16 before averaging over w). Returns the states M_0 .. M_steps (steps+1, K, K)."""
    counts, w = np.asarray(counts, float), np.asarray(coefficients, float)
    B, K = counts.shape
    k = np.asarray(query_ids)
    M = np.zeros((K, K)) if M0 is None else np.array(M0, float)
    out = [M.copy()]
    for _ in range(steps):
        m = M[:, k].T                                               # (B, K): column k of each prompt
        e = counts * np.exp(m - m.max(axis=1, keepdims=True))
        a = e / e.sum(axis=1, keepdims=True)
        yhat = np.sum(a * w, axis=1)
        grad_cols = ((yhat - w[np.arange(B), k])[:, None] * a * (w - yhat[:, None]))    # (B, n)
        G = np.zeros((K, K))
        np.add.at(G.T, k, grad_cols)
        M = M - eta * G / B
        out.append(M.copy())
    return np.array(out)
