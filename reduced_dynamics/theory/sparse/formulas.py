"""Deterministic risk formulas of the sparse family (theory note ``sparse_multihead.md`` §4 and §7; ours).

* (SM-24) exact one-step GD risk for every n, its optimal step and optimal risk;
* (SM-36) the finite-n GD-flow risk, which needs only the eigenvalues of S (Haar eigenvectors);
* (SM-37) its Marchenko-Pastur limit for d/n -> gamma (atom 1 - 1/gamma at 0 when gamma > 1).

Every prior average replaces ||w*||^2 by E||w*||^2 = s: the risks are affine in ||w*||^2, so this is exact
for both nonzero laws.
"""
from __future__ import annotations

import numpy as np
from scipy.integrate import quad

from ...specs import SparseSpec
from . import algorithms as alg


def one_step_variance(spec: SparseSpec) -> float:
    """V = [d(||w*||^2 + sigma^2) + ||w*||^2] / n = tr Cov[r | w*] averaged over the prior (SM-4, SM-24)."""
    s, d, n, sig2 = spec.sparsity, spec.dim, spec.context, spec.noise ** 2
    return (d * (s + sig2) + s) / n


def one_step_gd_risk(spec: SparseSpec, eta: float) -> float:
    """E||eta r - w*||^2 = (1 - eta)^2 ||w*||^2 + eta^2 V  (SM-24)."""
    return (1 - eta) ** 2 * spec.sparsity + eta ** 2 * one_step_variance(spec)


def one_step_gd_optimum(spec: SparseSpec) -> tuple[float, float]:
    """(eta*, risk*) = (||w*||^2/(||w*||^2 + V), ||w*||^2 V/(||w*||^2 + V))  (SM-24)."""
    s, V = spec.sparsity, one_step_variance(spec)
    return s / (s + V), s * V / (s + V)


def gd_flow_risk_finite_n(spec: SparseSpec, taus: np.ndarray, rng: np.random.Generator,
                          samples: int) -> tuple[np.ndarray, np.ndarray]:
    """GD-flow risk (SM-36) by averaging over sampled S = X^T X / n only (w* and noise integrated exactly):
    R(tau) = ||w*||^2 E[(1/d) tr e^{-2 tau S}] + (sigma^2/n) E[sum_i (1 - e^{-tau lam_i})^2 / lam_i].
    Returns (mean, stderr) over the ``samples`` draws of S."""
    d, n = spec.dim, spec.context
    taus = np.asarray(taus, dtype=float)[:, None, None]
    X = rng.standard_normal((samples, n, d))
    lam, _ = alg.eigh(np.einsum("bni,bnj->bij", X, X) / n)
    bias = np.exp(-2 * taus * lam[None]).mean(axis=-1)
    # (1 - e^{-tau lam})^2 / lam = flow_factor * (1 - e^{-tau lam}) -> 0 at lam = 0
    var = np.sum(alg.flow_factor(lam[None], taus) * -np.expm1(-taus * lam[None]), axis=-1)
    per_sample = spec.sparsity * bias + spec.noise ** 2 / n * var
    return per_sample.mean(axis=1), per_sample.std(axis=1, ddof=1) / np.sqrt(samples)


def marchenko_pastur_integral(gamma: float, f) -> float:
    """Integral of f(lam) against the Marchenko-Pastur law of ratio gamma = d/n (unit variance), with the
    atom of mass 1 - 1/gamma at lam = 0 when gamma > 1; f must accept lam = 0 (pass its limit)."""
    a, b = (1 - np.sqrt(gamma)) ** 2, (1 + np.sqrt(gamma)) ** 2
    # density sqrt((b - lam)(lam - a)) / (2 pi gamma lam) = (lam - a)^(-1/2) (b - lam)^(1/2) (1 - a/lam) / (2 pi gamma):
    # quad's algebraic weight takes both endpoint powers, and the factor 1 - a/lam lies in [0, 1) for every gamma,
    # so the edge gamma = 1 (a = 0, where the density grows like lam^(-1/2)) needs no division by lam at all.
    def edge_factor(lam: float) -> float:      # 1 - a/lam, and its limit 1 at lam = a = 0 (quad samples the edge)
        return 1.0 - a / lam if lam > 0.0 else 1.0

    cont, _ = quad(lambda lam: f(lam) * edge_factor(lam) / (2 * np.pi * gamma), a, b, weight="alg",
                   wvar=(-0.5, 0.5), limit=200, epsabs=1e-13, epsrel=1e-11)
    atom = max(0.0, 1.0 - 1.0 / gamma) * f(0.0)
    return cont + atom


def gd_flow_risk_mp(spec: SparseSpec, taus: np.ndarray) -> np.ndarray:
    """Proportional-limit GD-flow risk (SM-37):
    R(tau) = ||w*||^2 int e^{-2 tau lam} dmu + sigma^2 gamma int (1 - e^{-tau lam})^2 / lam dmu."""
    gamma = spec.dim / spec.context
    out = []
    for tau in np.atleast_1d(np.asarray(taus, dtype=float)):
        bias = marchenko_pastur_integral(gamma, lambda lam: np.exp(-2 * tau * lam))
        var = marchenko_pastur_integral(
            gamma, lambda lam: 0.0 if lam == 0.0 else np.expm1(-tau * lam) ** 2 / lam)
        out.append(spec.sparsity * bias + spec.noise ** 2 * gamma * var)
    return np.array(out)
