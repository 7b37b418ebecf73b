"""Monte-Carlo risks of the sparse-family algorithms, with globally tuned hyper-parameters.

Implements the evaluation rules of ``sparse_multihead.md``: excess risk E||w_hat - w*||^2 (SM-6) reported as
a mean with its standard error over test prompts (§1.3), and "tuned" = ONE global hyper-parameter per
method (lambda for ridge SM-20, alpha for Lasso SM-21, eta for T-step GD SM-22 and PtO SM-26) chosen on a
separate set of prompts from the same prior (§4), never per prompt. The continuous-depth curves (§7.1) are
the exact per-prompt matrix functions of SM-23 and SM-30 averaged over prompts; the depth grid itself is
the only thing scanned on the test prompts (its minimum over tau is what SM-C12 reports).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
from scipy.optimize import minimize_scalar

from ...tasks.sparse_regression import Problem, Prompts, context_statistics, draw, excess_risk, mean_and_stderr
from . import algorithms as alg

# hyper-parameter grids (log-spaced); the tuned value is refined between grid neighbours where cheap
RIDGE_GRID = np.geomspace(1e-6, 1e3, 91)
STEP_GRID = np.geomspace(1e-4, 1e3, 71)
LASSO_GRID = np.geomspace(1e-3, 2.0, 25)


@dataclass(frozen=True)
class Risk:
    """A test-set risk: mean, standard error, and the globally tuned hyper-parameter (None if none)."""

    mean: float
    stderr: float
    hyper: float | None = None

    def __str__(self) -> str:
        tail = "" if self.hyper is None else f" (tuned {self.hyper:.4g})"
        return f"{self.mean:.4g} ± {self.stderr:.2g}{tail}"


class Sample:
    """Prompts together with their context statistics (SM-3) and cached eigendecompositions.

    ``eig``: S = U diag(lam) U^T with c = U^T r and w_e = U^T w*; because U is orthogonal the GD and ridge
    risks ||U (f c) - w*||^2 = ||f c - w_e||^2 are computed in the eigenbasis (SM-23). ``pto_eig(nu)``:
    R, and B = R S R = V diag(lam) V^T with c = V^T R r (SM-29, SM-30).
    """

    def __init__(self, prompts: Prompts):
        self.prompts = prompts
        self.S, self.r, _ = context_statistics(prompts)
        lam, U = alg.eigh(self.S)
        self.eig = (lam, U, np.einsum("bji,bj->bi", U, self.r), np.einsum("bji,bj->bi", U, prompts.w))
        self._pto: dict[str, tuple] = {}

    @classmethod
    def of(cls, prompts: Prompts) -> "Sample":
        return cls(prompts)

    def pto_eig(self, normalisation: str) -> tuple:
        if normalisation not in self._pto:
            R = alg.pto_scale(self.r, normalisation)
            lam, V = alg.eigh(R[:, :, None] * self.S * R[:, None, :])
            self._pto[normalisation] = (R, lam, V, np.einsum("bji,bj->bi", V, R * self.r))
        return self._pto[normalisation]

    def spectral_risks(self, filt: np.ndarray) -> np.ndarray:
        """Per-prompt risks of w = U diag(filt) U^T r for filters filt (K, B, d) of S; returns (K, B)."""
        _, _, c, we = self.eig
        with np.errstate(over="ignore", invalid="ignore"):
            return np.sum((filt * c - we) ** 2, axis=-1)

    def pto_estimates(self, filt: np.ndarray, normalisation: str) -> np.ndarray:
        """w = R V diag(filt) V^T R r for filters filt (K, B, d) of B = R S R (SM-29, SM-30); returns (K, B, d)."""
        R, _, V, c = self.pto_eig(normalisation)
        with np.errstate(over="ignore", invalid="ignore"):
            return R[None] * alg._apply_filter(V, filt, c)


def _mean_risk(w_hat: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean risk over prompts for each leading index of w_hat (K, B, d); non-finite estimates count as inf."""
    with np.errstate(over="ignore", invalid="ignore"):
        risk = excess_risk(w_hat, w[None]).mean(axis=-1)
    return np.where(np.isfinite(risk), risk, np.inf)


def tune(objective: Callable[[np.ndarray], np.ndarray], grid: np.ndarray, refine: bool = True) -> float:
    """Global hyper-parameter: argmin of ``objective`` (vectorised over values) on a log grid, then refined by
    a bounded scalar search in log space between the grid neighbours of the best point."""
    values = objective(grid)
    best = int(np.argmin(values))
    if not np.isfinite(values[best]):
        raise RuntimeError("tuning failed: the risk is infinite for every grid value")
    if best in (0, grid.size - 1):
        warnings.warn(f"tuned hyper-parameter {grid[best]:.3g} is at the end of its grid "
                      f"[{grid[0]:.3g}, {grid[-1]:.3g}]; the optimum may lie outside", RuntimeWarning)
    if not refine:
        return float(grid[best])
    lo = np.log(grid[max(best - 1, 0)])
    hi = np.log(grid[min(best + 1, grid.size - 1)])
    res = minimize_scalar(lambda z: float(objective(np.array([np.exp(z)]))[0]), bounds=(lo, hi),
                          method="bounded", options={"xatol": 1e-4})
    return float(np.exp(res.x)) if res.fun <= values[best] else float(grid[best])


def _test(w_hat: np.ndarray, w: np.ndarray, hyper: float | None) -> Risk:
    mean, se = mean_and_stderr(excess_risk(w_hat, w))
    return Risk(float(mean), float(se), hyper)


# ---------------------------------------------------------------------------------------------------------
# tuned baselines

def _finite_mean(risk: np.ndarray) -> np.ndarray:
    mean = risk.mean(axis=-1)
    return np.where(np.isfinite(mean), mean, np.inf)


def ridge_risk(tune_set: Sample, test_set: Sample) -> Risk:
    """Tuned ridge (SM-20): w = U diag(1/(lam + lambda)) U^T r."""
    def objective(sample, lams):
        return sample.spectral_risks(1.0 / (sample.eig[0][None] + np.asarray(lams)[:, None, None]))
    lam = tune(lambda g: _finite_mean(objective(tune_set, g)), RIDGE_GRID)
    return _risk(objective(test_set, [lam])[0], lam)


def lasso_risk(tune_set: Sample, test_set: Sample, grid: np.ndarray = LASSO_GRID) -> Risk:
    """Tuned Lasso (SM-21): alpha chosen on the tuning prompts from ``grid`` (each grid point is a full
    coordinate-descent solve per prompt, so no continuous refinement), then one solve per test prompt."""
    p = tune_set.prompts
    alpha = tune(lambda g: _mean_risk(alg.lasso(p.X, p.y, g), p.w), grid, refine=False)
    q = test_set.prompts
    return _test(alg.lasso(q.X, q.y, [alpha])[0], q.w, alpha)


def gd_steps_risk(tune_set: Sample, test_set: Sample, steps: int) -> Risk:
    """T-step GD from 0 with one tuned step size eta (SM-22, spectral form SM-23)."""
    def objective(sample, etas):
        lam = sample.eig[0]
        return sample.spectral_risks(np.stack([alg.step_factor(lam, e, steps) for e in etas]))
    eta = tune(lambda g: _finite_mean(objective(tune_set, g)), STEP_GRID)
    return _risk(objective(test_set, [eta])[0], eta)


def pto_steps_risk(tune_set: Sample, test_set: Sample, steps: int, normalisation: str) -> Risk:
    """T-step PtO ("none") or PtO-inf ("max") with one tuned step size eta (SM-26, spectral form SM-29)."""
    def objective(sample, etas):
        lam = sample.pto_eig(normalisation)[1]
        filt = np.stack([alg.step_factor(lam, e, steps) for e in etas])
        with np.errstate(over="ignore", invalid="ignore"):
            return excess_risk(sample.pto_estimates(filt, normalisation), sample.prompts.w[None])
    eta = tune(lambda g: _finite_mean(objective(tune_set, g)), STEP_GRID)
    return _risk(objective(test_set, [eta])[0], eta)


def _risk(per_prompt: np.ndarray, hyper: float | None) -> Risk:
    mean, se = mean_and_stderr(per_prompt)
    return Risk(float(mean), float(se), hyper)


# ---------------------------------------------------------------------------------------------------------
# continuous-depth curves (§7.1, our construction)

FLOWS = ("gd_flow", "pto_flow", "pto_inf_flow")


def flow_risk_curves(test_set: Sample, taus: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Risk against continuous depth tau for the GD flow (SM-23), PtO flow (SM-30, nu = 1) and PtO-inf flow
    (SM-30, nu = max|r|). Returns {name: (mean (K,), stderr (K,))}."""
    taus = np.asarray(taus, dtype=float)[:, None, None]
    w = test_set.prompts.w
    risks = {"gd_flow": test_set.spectral_risks(alg.flow_factor(test_set.eig[0][None], taus))}
    for name, nu in (("pto_flow", "none"), ("pto_inf_flow", "max")):
        filt = alg.flow_factor(test_set.pto_eig(nu)[1][None], taus)
        risks[name] = excess_risk(test_set.pto_estimates(filt, nu), w[None])
    return {name: mean_and_stderr(risk, axis=1) for name, risk in risks.items()}


def depth_grid(depth_min: float, depth_max: float, points: int) -> np.ndarray:
    """Geometric grid of continuous depths tau (SM-C12 uses 0.25 ... 4096 with 29 points)."""
    return np.geomspace(depth_min, depth_max, points)


def samples(problem: Problem) -> tuple[Sample, Sample]:
    """The problem's test prompts and its separate tuning prompts (each from its own stream)."""
    return Sample.of(problem.test_prompts), Sample.of(problem.tune_prompts)


def sample_test_and_tune(spec, seed: int, test: int, tune: int) -> tuple[Sample, Sample]:
    """``test`` evaluation prompts and ``tune`` separate tuning prompts of the problem drawn with ``seed``."""
    return samples(draw(spec.replace(seed=seed, test_prompts=test, tune_prompts=tune)))
