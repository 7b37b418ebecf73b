"""In-context vs in-weight learning (linear_attention_iwl.md §12): the reduced flow of merged linear
attention off the invariant manifold, on the mixture of random and fixed tasks.

The loss is a quadratic in Theta = sum_i r_i (x) W_i[:, :D] (LA-44) with moments (A, b, E y_q^2) of the
feature Phi = M (x) x_q. Three sets of moments, all from ``reduced_dynamics.derivations.linear_iwl`` (LA-42, LA-43):
population of each law (exact for every N and any Lambda; the random-task average over w ~ N(0, I) by a
3-point Gauss-Hermite product rule, exact for these degree-4 polynomials in w), their mixture
p D_rand + (1 - p) D_fix (D_noise for p = 0), or the sample moments of the very training set the reference
draws. Three levels of the flow, all the same code with different (rows, cols):

* "full":   r_i in R^(D+1), W_i[:, :D] in R^((D+1) x D), H (D+1)^2 numbers, any Lambda (LA-44);
* "sector": the symmetric sector (LA-41) for white Lambda: r~_i = (v_i, alpha_i), w~_i = (sqrt(D-1) beta_i,
  delta_i, mu_i), 5H numbers, moments projected on the six basis tensors (LA-45);
* "head1":  one balanced aligned head on the top singular pair of the drive (LA-46).

All start from the projection of the very initial weights the reference draws (``task.draw``). The test
losses (LA-38) are the same quadratics with the moments of D_rand and D_noise.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import sympy as sp

from reduced_dynamics.derivations import linear_iwl as derivation

from ... import compile as compiler
from ...events import midpoint_drop_time, transience_events
from ...integrate import integrate
from ...specs import LinearMergedSpec
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance
from . import discrete
from .mixture_observables import merged_head_observables

LEVELS = ("full", "sector", "head1")


# ---------------------------------------------------------------------------------------------------------
# Moments (LA-42, LA-43)

@dataclass(frozen=True)
class Moments:
    """L(theta) = yy - 2 b . theta + theta^T A theta, theta = vec Theta (row-major over (a, b, c)); kappa
    already folded in (b = kappa E[Phi y_q], A = kappa^2 E[Phi Phi^T])."""
    A: np.ndarray
    b: np.ndarray
    yy: float

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.A + other.A, self.b + other.b, self.yy + other.yy)

    def __mul__(self, x: float) -> "Moments":
        return Moments(x * self.A, x * self.b, x * self.yy)

    __rmul__ = __mul__

    def loss(self, theta: np.ndarray) -> np.ndarray:
        """Loss at theta (n,) or at stacked thetas (T, n)."""
        return self.yy - 2.0 * theta @ self.b + np.einsum("...i,ij,...j->...", theta, self.A, theta)

    def project(self, basis: np.ndarray) -> "Moments":
        """Moments in the coordinates theta = basis @ theta~ (columns of ``basis`` orthonormal)."""
        return Moments(basis.T @ self.A @ basis, basis.T @ self.b, self.yy)

    @property
    def minimum(self) -> float:
        return float(self.yy - self.b @ np.linalg.lstsq(self.A, self.b, rcond=None)[0])


@functools.lru_cache(maxsize=None)
def _terms():
    """The derived einsum terms with their coefficients as polynomials in N (highest power first)."""
    N = derivation.N_SYM
    return {key: [(np.array([float(x) for x in sp.Poly(coef, N).all_coeffs()]), subs, ops)
                  for coef, subs, ops in terms]
            for key, terms in derivation.moment_terms().items()}


def token_covariances(cov_matrix: np.ndarray, w: np.ndarray, noise: bool = False):
    """(S, S_q, w') of a law given its task: context token z = (x, w^T x), or (x, xi) for the noise
    context of p = 0; query z_q = (x_q, 0), y_q = w'^T z_q with w' = (w, 0)."""
    D = len(w)
    S = np.zeros((D + 1, D + 1))
    S[:D, :D] = cov_matrix
    if noise:
        S[D, D] = 1.0
    else:
        S[:D, D] = S[D, :D] = cov_matrix @ w
        S[D, D] = w @ cov_matrix @ w
    Sq = np.zeros((D + 1, D + 1))
    Sq[:D, :D] = cov_matrix
    return S, Sq, np.append(w, 0.0)


def moments_given(S: np.ndarray, Sq: np.ndarray, wq: np.ndarray, N: int, kappa: float) -> Moments:
    """Evaluate the derived (LA-42, LA-43) for given token covariances: A, b restricted to c < D."""
    operands = {"S": S, "Sq": Sq, "w": wq}
    out = {}
    for key, terms in _terms().items():
        out[key] = sum(float(np.polyval(coef, N)) * np.einsum(subs, *(operands[o] for o in ops))
                       for coef, subs, ops in terms)
    D = len(wq) - 1
    A = out["A"][:, :, :D, :, :, :D]
    n = (D + 1) ** 2 * D
    return Moments(kappa ** 2 * A.reshape(n, n), kappa * out["b"][:, :, :D].reshape(n), float(out["yy"]))


def gauss_hermite_cube(dim: int):
    """Nodes (M, dim) and weights (M,) of the 3-point probabilists' Gauss-Hermite product rule: exact for
    E over w ~ N(0, I) of every polynomial of degree <= 5 in each coordinate."""
    x1, w1 = np.array([-math.sqrt(3.0), 0.0, math.sqrt(3.0)]), np.array([1 / 6, 2 / 3, 1 / 6])
    grids = np.meshgrid(*([x1] * dim), indexing="ij")
    weights = np.meshgrid(*([w1] * dim), indexing="ij")
    return np.stack([g.ravel() for g in grids], axis=1), np.prod(np.stack([g.ravel() for g in weights]), axis=0)


def law_moments(law: str, cov_matrix: np.ndarray, w_bar: np.ndarray, N: int, kappa: float) -> Moments:
    """Population moments of one law of §12.1: "rand" (w ~ N(0, I)), "fix" (w = w_bar), "noise"."""
    key = (law, np.asarray(cov_matrix, dtype=float).tobytes(), np.asarray(w_bar, dtype=float).tobytes(),
           len(w_bar), int(N), float(kappa))
    if key not in _LAW_CACHE:
        _LAW_CACHE[key] = _law_moments(law, cov_matrix, w_bar, N, kappa)
    return _LAW_CACHE[key]


_LAW_CACHE: dict = {}


def _law_moments(law: str, cov_matrix: np.ndarray, w_bar: np.ndarray, N: int, kappa: float) -> Moments:
    if law == "fix":
        return moments_given(*token_covariances(cov_matrix, w_bar), N, kappa)
    if law == "noise":
        return moments_given(*token_covariances(cov_matrix, w_bar, noise=True), N, kappa)
    if law == "rand":
        nodes, weights = gauss_hermite_cube(len(w_bar))
        total = None
        for w, weight in zip(nodes, weights):
            m = weight * moments_given(*token_covariances(cov_matrix, w), N, kappa)
            total = m if total is None else total + m
        return total
    raise ValueError(f"law: expected rand, fix or noise, got {law!r}")


def mixture_moments(p: float, cov_matrix: np.ndarray, w_bar: np.ndarray, N: int, kappa: float) -> Moments:
    """Training law of §12.1: p D_rand + (1 - p) D_fix for 0 < p <= 1, D_noise for p = 0."""
    if p == 0.0:
        return law_moments("noise", cov_matrix, w_bar, N, kappa)
    out = p * law_moments("rand", cov_matrix, w_bar, N, kappa)
    return out if p == 1.0 else out + (1.0 - p) * law_moments("fix", cov_matrix, w_bar, N, kappa)


def sample_moments(data: task.TrainingSet, kappa: float) -> Moments:
    """Moments of a training set: exactly the loss gradient descent sees (C14, "emp")."""
    Z = task.token_matrices(data)
    M = Z @ Z.transpose(0, 2, 1)
    P, width = M.shape[:2]
    phi = (M[:, :, :, None] * data.xq[:, None, None, :]).reshape(P, -1)
    return Moments(kappa ** 2 * phi.T @ phi / P, kappa * phi.T @ data.yq / P, float(np.mean(data.yq ** 2)))


# ---------------------------------------------------------------------------------------------------------
# The flow (LA-44), at any level

@dataclass(frozen=True)
class IWLFlow:
    """Gradient flow of L(Theta) with Theta = sum_i r_i w_i^T (rows x cols):
    dr_i/dt = G w_i, dw_i/dt = G^T r_i, G = 2 b - 2 A Theta (LA-44; ``derivation.head_pullback``).
    State: heads stacked, each (r_i, w_i). ``decay``: weight decay lambda, the flow of L + (lambda/2)|y|^2
    (WD-2); every level's state is orthonormal coordinates of the full weights (LA-41, LA-46), so the decay
    term is -lambda y at each."""
    train: Moments
    tests: dict          # name -> Moments (same coordinates)
    rows: int
    cols: int
    heads: int
    decay: float = 0.0

    def split(self, y: np.ndarray):
        y = np.asarray(y).reshape(self.heads, self.rows + self.cols)
        return y[:, :self.rows], y[:, self.rows:]

    def theta(self, y: np.ndarray) -> np.ndarray:
        R, Wv = self.split(y)
        return (R.T @ Wv).reshape(-1)

    def drive(self, R: np.ndarray, Wv: np.ndarray) -> np.ndarray:
        """G = 2 b - 2 A Theta (rows x cols), minus the gradient of L in Theta (LA-44)."""
        return (2.0 * self.train.b - 2.0 * self.train.A @ (R.T @ Wv).reshape(-1)).reshape(self.rows, self.cols)

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        R, Wv = self.split(y)
        G = self.drive(R, Wv)
        out = np.concatenate([Wv @ G.T, R @ G], axis=1).reshape(-1)
        return out - self.decay * np.asarray(y) if self.decay else out        # (WD-2)

    def hvp(self, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Hess L . u at the state y (LR-9): minus the derivative of the right-hand side along u. With
        dTheta = sum_i (dr_i w_i^T + r_i dw_i^T) and dG = -2 A dTheta, the product rule on (LA-44) gives
        d(dr_i/dt) = dG w_i + G dw_i and d(dw_i/dt) = dG^T r_i + G^T dr_i; exact (the flow is cubic)."""
        R, Wv = self.split(y)
        dR, dW = self.split(u)
        G = self.drive(R, Wv)
        dG = (-2.0 * self.train.A @ (dR.T @ Wv + R.T @ dW).reshape(-1)).reshape(self.rows, self.cols)
        out = -np.concatenate([Wv @ dG.T + dW @ G.T, R @ dG + dR @ G], axis=1).reshape(-1)
        return out + self.decay * np.asarray(u)          # Hess of the regularised loss (WD-3)

    def modified_rhs(self, eta: float):
        """Right-hand side of the modified flow (LR-5) of this flow at step eta: f + (eta/2) Hess L f."""
        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            f = self.rhs(t, y)
            return f + 0.5 * eta * self.hvp(y, f)
        return rhs

    def thetas(self, ys: np.ndarray) -> np.ndarray:
        ys = np.asarray(ys).reshape(len(ys), self.heads, self.rows + self.cols)
        return np.einsum("thr,thc->trc", ys[:, :, :self.rows], ys[:, :, self.rows:]).reshape(len(ys), -1)


# ---------------------------------------------------------------------------------------------------------
# Coordinates: the full weights and the symmetric sector (LA-41)

def full_state(weights: dict) -> np.ndarray:
    """The reference's initial ATTN_M weights as the full state: (r_i, W_i[:, :D] row-major) per head."""
    r, W = weights["r"], weights["W"]
    D = r.shape[1] - 1
    return np.concatenate([r, W[:, :, :D].reshape(len(r), -1)], axis=1).reshape(-1)


def sector_basis(w_bar: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Pi, row basis (D+1, 2), column basis ((D+1) D, 3)) of (LA-41): rows e_y, w_hat; columns
    P_V / sqrt(D-1) (x rows), w_hat w_hat^T (x rows), w_hat^T (label row). Pi[:, 3 j + k] = row_j (x) col_k."""
    D = len(w_bar)
    wh = w_bar / np.linalg.norm(w_bar)
    rows = np.zeros((D + 1, 2))
    rows[D, 0] = 1.0
    rows[:D, 1] = wh
    cols = np.zeros((3, D + 1, D))
    cols[0, :D] = (np.eye(D) - np.outer(wh, wh)) / math.sqrt(D - 1)
    cols[1, :D] = np.outer(wh, wh)
    cols[2, D] = wh
    cols = cols.reshape(3, -1).T
    Pi = np.einsum("aj,bk->abjk", rows, cols).reshape((D + 1) * D * (D + 1), 6)
    return Pi, rows, cols


def sector_state(weights: dict, w_bar: np.ndarray) -> np.ndarray:
    """Projection (LA-41) of the full initial weights: r~_i = (v_i, alpha_i), w~_i = (sqrt(D-1) beta_i,
    delta_i, mu_i), i.e. the coordinates of r_i and W_i[:, :D] on the orthonormal row and column bases."""
    _, rows, cols = sector_basis(w_bar)
    r, W = weights["r"], weights["W"]
    D = r.shape[1] - 1
    return np.concatenate([r @ rows, W[:, :, :D].reshape(len(r), -1) @ cols], axis=1).reshape(-1)


def top_mode(moments: Moments, rows: int):
    """(l1, s1, rho1, a1) of the drive b read as a rows x cols matrix: top singular triple and the
    curvature a1 = (l1 (x) rho1)^T A (l1 (x) rho1) along it (LA-46, LA-48)."""
    u, s, vt = np.linalg.svd(moments.b.reshape(rows, -1))
    l1, rho1 = u[:, 0], vt[0]
    mode = np.outer(l1, rho1).reshape(-1)
    return l1, float(s[0]), rho1, float(mode @ moments.A @ mode)


def head1_state(y0: np.ndarray, moments: Moments, rows: int, heads: int):
    """(LA-46): one head r = sqrt(U0) l1, w = sqrt(U0) rho1 with U0 = sum_i m_i^2,
    m_i = (l1 . r_i(0) + rho1 . w_i(0)) / 2."""
    l1, _, rho1, _ = top_mode(moments, rows)
    Y = np.asarray(y0).reshape(heads, -1)
    m = 0.5 * (Y[:, :rows] @ l1 + Y[:, rows:] @ rho1)
    U0 = float(np.sum(m ** 2))
    return np.concatenate([math.sqrt(U0) * l1, math.sqrt(U0) * rho1]), U0


@functools.lru_cache(maxsize=None)
def _laws():
    t_iw = derivation.in_weight_drop_time()
    delay = derivation.in_context_delay()
    return (sp.lambdify((derivation.U0_SYM, derivation.S1_SYM, derivation.A1_SYM), t_iw),
            sp.lambdify((derivation.N_SYM, derivation.C_SYM, derivation.P_SYM, derivation.LAM_SYM,
                         derivation.TAU_SYM, derivation.USTAR_SYM), delay))


# ---------------------------------------------------------------------------------------------------------
# Setup and prediction

def setup(spec: LinearMergedSpec, moments: str | None = None, level: str = "full", tests: str = "population",
          test_size: int = task.TEST_SIZE):
    """(flow, initial state, problem) for the spec's seed. ``moments``: population (default without
    ``train_size``) or sample (the reference's training set); ``level``: full, sector or head1; ``tests``:
    population test losses (LA-38) or the sample moments of the reference's own two test sets."""
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {', '.join(LEVELS)}, got {level!r}")
    kind = moments or ("sample" if spec.train_size is not None else "population")
    drawn = task.draw(spec, train=(kind == "sample"), test_size=test_size if tests == "sample" else 0)
    cov, w_bar, N, kappa = drawn.covariance.matrix, drawn.task_vector, spec.context, spec.kappa
    if kind == "sample":
        train = sample_moments(drawn.train, kappa)
    else:
        train = mixture_moments(spec.icl, cov, w_bar, N, kappa)
    if tests == "sample":
        tests = {name: sample_moments(data, kappa) for name, data in drawn.tests.items()}
    else:
        tests = {"in_context": law_moments("rand", cov, w_bar, N, kappa),
                 "in_weight": law_moments("noise", cov, w_bar, N, kappa)}
    D, H = spec.dim, spec.heads
    if level == "full":
        flow = IWLFlow(train, tests, D + 1, (D + 1) * D, H, spec.weight_decay)
        return flow, full_state(drawn.weights), drawn
    if not np.allclose(drawn.covariance.eigenvalues, drawn.covariance.eigenvalues[0], rtol=1e-12, atol=0):
        raise ValueError("the symmetric sector (LA-41) needs a white covariance (Lambda = lambda I)")
    Pi, _, _ = sector_basis(w_bar)
    sector = IWLFlow(train.project(Pi), {k: m.project(Pi) for k, m in tests.items()}, 2, 3, H, spec.weight_decay)
    y0 = sector_state(drawn.weights, w_bar)
    if level == "sector":
        return sector, y0, drawn
    y1, _ = head1_state(y0, sector.train, 2, H)
    return IWLFlow(sector.train, sector.tests, 2, 3, 1, spec.weight_decay), y1, drawn


@dataclass(frozen=True)
class DropLaws:
    """(LA-48) and (LA-49) for the flow's moments and initial state."""
    s1: float
    a1: float
    U0: float
    t_in_weight: float         # (LA-48)
    t_in_weight_leading: float  # ln(1/sigma^2)-type leading order: ln(u*/U0) / (4 s1)
    delay_linear: float         # Delta_lin of (LA-49) (white Lambda), NaN otherwise

    @property
    def ustar(self) -> float:
        return self.s1 / self.a1


def drop_laws(spec: LinearMergedSpec, flow: IWLFlow, y0: np.ndarray, drawn: task.Problem) -> DropLaws:
    l1, s1, rho1, a1 = top_mode(flow.train, flow.rows)
    _, U0 = head1_state(y0, flow.train, flow.rows, flow.heads)
    t_iw, delay = _laws()
    lam = drawn.covariance.eigenvalues
    white = np.allclose(lam, lam[0], rtol=1e-12, atol=0)
    dl = (float(delay(spec.context, spec.c, spec.icl, lam[0], lam.sum(), s1 / a1))
          if white and spec.icl > 0 else math.nan)
    return DropLaws(s1, a1, U0, float(t_iw(U0, s1, a1)), math.log(s1 / a1 / U0) / (4 * s1), dl)


def predict(spec: LinearMergedSpec, moments: str | None = None, level: str = "full",
            t_eval: np.ndarray | None = None, rtol: float = 1e-9, tests: str = "population",
            test_size: int = task.TEST_SIZE) -> Trajectory:
    """Training loss and both test losses (LA-38) of the reduced flow (LA-44) at ``level``, from the
    projected initial weights; events ``in_weight_drop_time`` and ``in_context_drop_time`` (§12.11; absent
    when that drop does not happen), meta the laws (LA-48) and (LA-49). ``spec.discretisation``: the flow,
    the GD map at spec.lr (LR-3; at level "full" on sample moments this is full-batch GD of every weight that
    reaches the prediction) or the modified flow (LR-5) with the Hessian-vector product ``IWLFlow.hvp`` (LR-9)."""
    flow, y0, drawn = setup(spec, moments, level, tests, test_size)
    if spec.discretisation == "map":                                  # GD on these weights at spec.lr (LR-3)
        sol = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps)
    else:                                                             # the flow, or its modified flow (LR-5)
        rhs = flow.modified_rhs(spec.lr) if spec.discretisation == "modified" else flow.rhs
        sol = integrate(rhs, y0, spec.final_time, method="DOP853", rtol=rtol, t_eval=t_eval)
    thetas = flow.thetas(sol.y)
    loss = flow.train.loss(thetas)
    L_ic, L_iw = flow.tests["in_context"].loss(thetas), flow.tests["in_weight"].loss(thetas)
    laws = drop_laws(spec, flow, y0, drawn)
    kind = moments or ("sample" if spec.train_size is not None else "population")
    events = {"drop_time": midpoint_drop_time(sol.t, loss),
              **task.drop_events(sol.t, L_ic, L_iw, drawn.covariance, spec.context),
              **(transience_events(sol.t, L_ic, L_iw) if spec.icl != 1.0 else {})}     # (WD-9)
    meta = provenance("attn-m", spec, f"theory-iwl-{kind}-{level}", compiler.derivation_hash(derivation),
                      icl=spec.icl, level=level, test_moments=tests, discretisation=spec.discretisation, t_in_weight_formula=laws.t_in_weight, s1=laws.s1, a1=laws.a1,
                      U0=laws.U0, delay_linear_formula=laws.delay_linear, L_min=flow.train.minimum,
                      loss="MSE without 1/2 (LA-44)", time="gradient-flow time t")
    full = thetas if level == "full" else thetas @ sector_basis(drawn.task_vector)[0].T     # (LA-41) -> Theta
    heads = merged_head_observables(sol.y, full, flow.rows, flow.heads, spec.dim, drawn.covariance.basis,
                                    spec.dim if level == "full" else 0)   # the manifold route's names (LA-40)
    return Trajectory(t=sol.t, loss=loss, observables={**heads, "test_loss_in_context": L_ic, "test_loss_in_weight": L_iw},
                      events=events, meta=meta)
