"""Per-prompt estimators of the sparse family: GD, ridge, Lasso, PtO and PtO-inf, in steps and in depth.

Implements §4 and §5 of the theory note ``sparse_multihead.md``. Every estimator is linear in the query
x_q, so it is returned as a task estimate w_hat (SM-6). All functions are batched over prompts: ``S`` has
shape (B, d, d) and ``r`` shape (B, d) (the context statistics SM-3); results have shape (B, d), or
(K, B, d) for K depths / hyper-parameters.

Closed forms use the symmetric eigendecomposition (``eigh``) of S or of B = R S R (SM-23, SM-29, SM-30),
never ``expm`` of the non-symmetric R^2 S; (1 - e^{-tau lam})/lam is written ``-expm1(-tau lam)/lam`` with
the limit tau at lam = 0, which is needed when n < d. The explicit step loops and the numerical
integration are kept as independent cross-checks (SM-C5).

The continuous-depth flows (SM-23 flow, SM-30) are OUR construction (note §0, §7), not the paper's.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import expm
from scipy.sparse import block_diag
from threadpoolctl import threadpool_limits

from ...integrate import integrate
from ...errors import optional_import
from ...specs import SpecError

NORMALISATIONS = ("none", "max")  # nu = 1 ("PtO") or nu = max_j |r_j| ("PtO-inf")  (SM-25)


# ---------------------------------------------------------------------------------------------------------
# spectral filter factors

def flow_factor(lam: np.ndarray, tau: float | np.ndarray) -> np.ndarray:
    """(1 - e^{-tau lam}) / lam with the limit tau at lam = 0 (SM-23, SM-30), stable for small lam."""
    lam = np.asarray(lam, dtype=float)
    tau = np.asarray(tau, dtype=float)
    zero = lam == 0.0
    safe = np.where(zero, 1.0, lam)
    return np.where(zero, tau, -np.expm1(-tau * safe) / safe)


def step_factor(lam: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """(1 - (1 - eta lam)^T) / lam with the limit eta T at lam = 0 (SM-23, SM-29), stable for small lam."""
    lam = np.asarray(lam, dtype=float)
    zero = lam == 0.0
    safe = np.where(zero, 1.0, lam)
    x = eta * safe
    small = np.abs(x) < 0.5  # accurate branch through log1p/expm1; elsewhere the power is well conditioned
    with np.errstate(invalid="ignore", over="ignore"):
        accurate = -np.expm1(steps * np.log1p(-np.where(small, x, 0.0)))
        direct = 1.0 - (1.0 - x) ** steps
    return np.where(zero, eta * steps, np.where(small, accurate, direct) / safe)


def eigh(S: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched symmetric eigendecomposition on one BLAS thread: for stacks of small matrices the threaded
    OpenBLAS path gains nothing and, on a shared machine, was measured 10-40x slower (11.3 s vs 0.30 s for
    2000 matrices of size 32)."""
    with threadpool_limits(limits=1, user_api="blas"):
        lam, U = np.linalg.eigh(S)
    return lam, U


def _apply_filter(U: np.ndarray, filt: np.ndarray, coeff: np.ndarray) -> np.ndarray:
    """U diag(filt) U^T-style product: returns U (filt * coeff) with coeff = U^T b already computed.

    ``filt`` is (B, d) or (K, B, d); result has the same leading shape."""
    prod = filt * coeff  # (..., B, d)
    lead = prod.shape[:-2]
    flat = prod.reshape((-1,) + prod.shape[-2:])  # (K, B, d)
    out = np.matmul(U, np.moveaxis(flat, 0, -1))  # (B, d, K)
    return np.moveaxis(out, -1, 0).reshape(lead + prod.shape[-2:])


# ---------------------------------------------------------------------------------------------------------
# gradient descent (SM-22, SM-23)

def gd_steps(S: np.ndarray, r: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """T explicit GD steps from 0: w <- w + eta (r - S w)  (SM-22)."""
    w = np.zeros_like(r)
    for _ in range(steps):
        w = w + eta * (r - np.einsum("bij,bj->bi", S, w))
    return w


def gd_spectral(S: np.ndarray, r: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """T GD steps in spectral form: w_T = U diag((1 - (1 - eta lam)^T)/lam) U^T r  (SM-23)."""
    lam, U = eigh(S)
    coeff = np.einsum("bji,bj->bi", U, r)
    return _apply_filter(U, step_factor(lam, eta, steps), coeff)


def gd_flow(S: np.ndarray, r: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """GD flow dw/dtau = r - S w, w(0) = 0, at every depth tau: U diag((1 - e^{-tau lam})/lam) U^T r (SM-23).

    Returns (K, B, d) for K depths."""
    taus = np.atleast_1d(np.asarray(taus, dtype=float))
    lam, U = eigh(S)
    coeff = np.einsum("bji,bj->bi", U, r)
    filt = flow_factor(lam[None, :, :], taus[:, None, None])
    return _apply_filter(U, filt, coeff)


# ---------------------------------------------------------------------------------------------------------
# ridge (SM-20) and Lasso (SM-21)

def ridge(S: np.ndarray, r: np.ndarray, lams: np.ndarray) -> np.ndarray:
    """Ridge w = (S + lambda I)^{-1} r (SM-20) for every lambda in ``lams``; returns (K, B, d)."""
    lams = np.atleast_1d(np.asarray(lams, dtype=float))
    if np.any(lams <= 0) or not np.all(np.isfinite(lams)):
        raise SpecError("ridge lambda", "positive finite numbers", lams)
    ev, U = eigh(S)
    coeff = np.einsum("bji,bj->bi", U, r)
    return _apply_filter(U, 1.0 / (ev[None, :, :] + lams[:, None, None]), coeff)


def lasso(X: np.ndarray, y: np.ndarray, alphas: np.ndarray, tol: float = 1e-6) -> np.ndarray:
    """Lasso argmin_w (1/2n)||y - X w||^2 + alpha ||w||_1 (SM-21) for every alpha; returns (K, B, d).

    Solved per prompt by scikit-learn's coordinate descent (``lasso_path``, warm-started along the alpha
    path; its objective is exactly SM-21 without intercept). ``tol`` is scikit-learn's duality-gap tolerance.
    """
    optional_import("sklearn", "the sparse family's Lasso", "sparse")     # one line naming the extra if missing
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import lasso_path

    alphas = np.atleast_1d(np.asarray(alphas, dtype=float))
    if np.any(alphas <= 0) or not np.all(np.isfinite(alphas)):
        raise SpecError("lasso alpha", "positive finite numbers", alphas)
    order = np.argsort(-alphas)  # lasso_path wants decreasing alphas
    out = np.empty((alphas.size,) + (X.shape[0], X.shape[2]))
    unconverged = 0
    for b in range(X.shape[0]):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            _, coefs, _ = lasso_path(X[b], y[b], alphas=alphas[order], tol=tol, max_iter=100_000)
        unconverged += sum(issubclass(c.category, ConvergenceWarning) for c in caught)
        out[order, b, :] = coefs.T
    if unconverged:
        raise RuntimeError(f"Lasso: coordinate descent did not converge on {unconverged} (prompt, alpha) pairs")
    return out


# ---------------------------------------------------------------------------------------------------------
# preprocess-then-optimise (SM-25 .. SM-31)

def pto_scale(r: np.ndarray, normalisation: str) -> np.ndarray:
    """Diagonal of R = diag(r)/nu (SM-25): nu = 1 ("none", PtO) or nu = max_j |r_j| ("max", PtO-inf)."""
    if normalisation == "none":
        return r.copy()
    if normalisation == "max":
        nu = np.max(np.abs(r), axis=-1, keepdims=True)
        return r / np.where(nu == 0.0, 1.0, nu)
    raise SpecError("normalisation", "one of " + ", ".join(NORMALISATIONS), normalisation)


def pto_steps(X: np.ndarray, y: np.ndarray, eta: float, steps: int, normalisation: str = "none") -> np.ndarray:
    """PtO in step form on the re-weighted data (SM-25, SM-26): x_i~ = R x_i, v <- v - eta X~^T (X~ v - y)/n.

    Returns w = R v_T, so that y_q = <v_T, R x_q> = <w, x_q>."""
    n = X.shape[1]
    r = np.einsum("bni,bn->bi", X, y) / n
    R = pto_scale(r, normalisation)
    Xt = X * R[:, None, :]
    v = np.zeros_like(r)
    for _ in range(steps):
        resid = np.einsum("bni,bi->bn", Xt, v) - y
        v = v - eta * np.einsum("bni,bn->bi", Xt, resid) / n
    return R * v


def pto_preconditioned_steps(S: np.ndarray, r: np.ndarray, eta: float, steps: int,
                             normalisation: str = "none") -> np.ndarray:
    """PtO as preconditioned GD: w <- w + eta R^2 (r - S w)  (SM-27)."""
    R2 = pto_scale(r, normalisation) ** 2
    w = np.zeros_like(r)
    for _ in range(steps):
        w = w + eta * R2 * (r - np.einsum("bij,bj->bi", S, w))
    return w


def _pto_basis(S: np.ndarray, r: np.ndarray, normalisation: str):
    """Eigendecomposition of B = R S R (symmetric PSD) and c = R r (SM-29)."""
    R = pto_scale(r, normalisation)
    Bmat = R[:, :, None] * S * R[:, None, :]
    lam, V = eigh(Bmat)
    coeff = np.einsum("bji,bj->bi", V, R * r)
    return R, lam, V, coeff


def pto_spectral(S: np.ndarray, r: np.ndarray, eta: float, steps: int, normalisation: str = "none") -> np.ndarray:
    """PtO after T steps in spectral form: w_T = R V diag((1 - (1 - eta lam)^T)/lam) V^T R r  (SM-29)."""
    R, lam, V, coeff = _pto_basis(S, r, normalisation)
    return R * _apply_filter(V, step_factor(lam, eta, steps), coeff)


def pto_flow(S: np.ndarray, r: np.ndarray, taus: np.ndarray, normalisation: str = "none") -> np.ndarray:
    """PtO flow dw/dtau = R^2 (r - S w), w(0) = 0, at every depth (SM-30, our construction):
    w(tau) = R V diag((1 - e^{-tau lam})/lam) V^T R r with B = R S R = V diag(lam) V^T. Returns (K, B, d)."""
    taus = np.atleast_1d(np.asarray(taus, dtype=float))
    R, lam, V, coeff = _pto_basis(S, r, normalisation)
    filt = flow_factor(lam[None, :, :], taus[:, None, None])
    return R[None] * _apply_filter(V, filt, coeff)


def pto_flow_expm(S: np.ndarray, r: np.ndarray, tau: float, normalisation: str = "none") -> np.ndarray:
    """Second closed form of SM-30, valid when S is invertible: w = [I - exp(-tau R^2 S)] S^{-1} r.

    Uses ``scipy.linalg.expm`` of a non-symmetric matrix: a cross-check only (SM-C5)."""
    R2 = pto_scale(r, normalisation) ** 2
    out = np.empty_like(r)
    for b in range(r.shape[0]):
        E = expm(-tau * R2[b][:, None] * S[b])
        out[b] = (np.eye(r.shape[1]) - E) @ np.linalg.solve(S[b], r[b])
    return out


def pto_flow_ivp(S: np.ndarray, r: np.ndarray, taus: np.ndarray, normalisation: str = "none",
                 rtol: float = 1e-11, atol: float = 1e-13) -> np.ndarray:
    """Integrate the PtO flow (SM-30) numerically (Radau with the exact Jacobian): a cross-check of the
    closed form only (SM-C5). All prompts are integrated together as one linear system. Returns (K, B, d)."""
    taus = np.atleast_1d(np.asarray(taus, dtype=float))
    Bn, d = r.shape
    R2 = pto_scale(r, normalisation) ** 2
    A = R2[:, :, None] * S  # dw/dtau = R^2 r - A w
    J = -block_diag(list(A), format="csc")  # block-diagonal: one d x d block per prompt
    forcing = (R2 * r).ravel()

    def rhs(_, w):
        return forcing + J @ w

    sol = integrate(rhs, np.zeros(Bn * d), float(taus.max()), method="Radau", t_eval=taus, jac=lambda *_: J,
                    rtol=rtol, atol=atol)
    return sol.y.reshape(taus.size, Bn, d)


def pto_mean_field(r: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """The naive "S ~ I" mean-field of §7.3: w_j(tau) = r_j (1 - e^{-tau r_j^2}). Inaccurate beyond tau ~ 1
    (SM-C13); kept only to show that."""
    taus = np.atleast_1d(np.asarray(taus, dtype=float))
    return -r[None] * np.expm1(-taus[:, None, None] * r[None] ** 2)
