"""Closed forms of the regularised end points under weight decay (docs/theory/weight_decay.md).

* ``merged_minimum``: attn-m's shrunken global minimum (WD-5): b = (Hess + mu)^-1 G0 with mu |b| = lambda, the
  one scalar mu found by a bracketing root solver (mu |b(mu)| rises monotonically from 0 to |G0|); B = 0 when
  |G0| <= lambda (WD-6: no head escapes the origin).
* ``separate_ladder``: attn-s's shrunken plateau ladder (WD-8): each learned component rests at the larger
  positive root of the quartic of (WD-8), beta_d = a_d^3, and a component whose quartic has no positive root,
  or whose balanced start lies below the smaller root (``escape_thresholds``), is never learned.

Every formula is the derivation's (``reduced_dynamics.derivations.weight_decay``), lambdified.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp
from scipy.optimize import brentq

from reduced_dynamics.derivations import linear_separate
from reduced_dynamics.derivations import weight_decay as derivation

from ...tasks import linear_attention as task
from .flow import ReducedFlow


@functools.lru_cache(maxsize=None)
def _entry():
    _, solution, mu = derivation.merged_stationarity()
    g0, h = sorted(solution.free_symbols - {mu}, key=str)
    return sp.lambdify((g0, h, mu), solution)


def merged_minimum(flow: ReducedFlow, decay: float | None = None) -> tuple[np.ndarray, float]:
    """(vec B*, data loss at B*) of min L(B) + lambda |B|_F (WD-5) for the flow's moments, in the flow's basis."""
    lam = flow.decay if decay is None else decay
    hess = np.diag(flow._hessian) if flow.diagonal else flow._hessian
    h, Q = np.linalg.eigh(0.5 * (hess + hess.T))
    g = Q.T @ flow._G0
    if lam <= 0:
        b = Q @ np.linalg.lstsq(np.diag(h), g, rcond=None)[0]
        return b, float(flow.loss_of_b(b))
    if np.linalg.norm(g) <= lam:
        return np.zeros_like(g), float(flow.loss_of_b(np.zeros_like(g)))
    entry = _entry()
    mu = brentq(lambda m: m * np.linalg.norm(entry(g, h, m)) - lam, lam / np.linalg.norm(g) * 1e-12 + 1e-300,
                np.linalg.norm(g) / lam * (h.max() + 1.0) + 1.0, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                maxiter=500)
    b = Q @ entry(g, h, mu)
    return b, float(flow.loss_of_b(b))


@functools.lru_cache(maxsize=None)
def _quartic():
    poly, a = derivation.separate_rest_quartic()
    lam, s, c = linear_separate.LAM_SYM, linear_separate.S_SYM, linear_separate.C_SYM
    coeffs = sp.Poly(poly, a).all_coeffs()
    return sp.lambdify((lam, s, c, derivation.WD_SYM), coeffs)


def rest_roots(lam_d: float, s_d: float, c: float, decay: float) -> tuple[float, float]:
    """(escape threshold, rest) of one aligned component: the two positive roots of the quartic (WD-8) in a,
    smaller first; (nan, nan) when it has none (the decay is too strong for this direction ever to be learned)."""
    roots = np.roots(np.array(_quartic()(lam_d, s_d, c, decay), dtype=float))
    real = np.sort(roots[(np.abs(roots.imag) < 1e-12 * np.abs(roots).max()) & (roots.real > 0)].real)
    if decay == 0:
        return 0.0, float(real[-1])
    return (float(real[0]), float(real[-1])) if real.size == 2 else (math.nan, math.nan)


def components(spec, decay: float | None = None):
    """(lambda_d, s_d, escape threshold a_-, rest a_+) per eigen-direction, eigenvalues decreasing (WD-8)."""
    lam = np.asarray(task.eigenvalues_for(spec.covariance, spec.dim, spec.eigenvalues), dtype=float)
    N, c = spec.context, spec.c
    s = (N + 1) / N * lam ** 2 + lam.sum() / N * lam
    wd = spec.weight_decay if decay is None else decay
    roots = np.array([rest_roots(l, sd, c, wd) for l, sd in zip(lam, s)])
    return lam, s, roots[:, 0], roots[:, 1]


def separate_ladder(spec, decay: float | None = None) -> list[float]:
    """(WD-8): the data loss of the rests with the top m components learned at their regularised amplitude
    beta_d = a_d^3, m = 0 .. the last direction whose quartic has a rest (population moments, LA-19); at
    lambda = 0 it is the ladder (LA-30)."""
    lam, s, _, rest = components(spec, decay)
    c = spec.c
    out, level = [float(lam.sum())], float(lam.sum())
    for l, sd, a in zip(lam, s, rest):
        if not math.isfinite(a) or len(out) > min(spec.dim, spec.heads * spec.rank):
            break
        beta = a ** 3
        level -= 2 * c * l ** 2 * beta - c ** 2 * sd * l * beta ** 2
        out.append(level)
    return out
