"""Theory of separate key-query linear attention (ATTN_S): the reduced flow (LA-29), the saddle ladder
(LA-30), the aligned scalar laws (LA-31 to LA-33) and in-context principal-component regression (LA-34).

``predict(spec)`` integrates the reduced gradient flow on the invariant manifold, state (v_i, K_i^x, Q_i^x)
per head, from the projection (LA-35) of the very initial weights the reference draws for the spec's seed
and initialisation rule (§8), with population moments (LA-16 to LA-19, covariance eigenbasis) or, with
``train_size``, the sample moments of §5 of the reference's own training set (original basis): the exact
small-learning-rate limit of the reference run up to the leakage of §10.2 (b).

The right-hand side is assembled from the derived pieces of ``reduced_dynamics.derivations.linear_separate.index_system``;
the flow class is the shared one (``theory.linear_attention.flow.ReducedFlow``) with the ATTN_S head map
B_head = v (K^x)^T Q^x.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import sympy as sp

from reduced_dynamics.derivations import linear_separate as derivation

from ...errors import SpecError
from ...events import staircase
from ...integrate import integrate
from ...specs import LinearSeparateSpec
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance
from . import discrete, given
from .flow import Moments, ReducedFlow, eigen_diagonal
from .mixture_observables import manifold_test_losses

STAIRCASE = {"log_time": True, "window": 0.02, "flat": 0.01}   # plateau detection (events.plateaus)
LEARNED = 0.5          # a component counts as learned once beta_d reaches half of B*_dd


class SeparateFlow(ReducedFlow):
    """Gradient flow (LA-29) of the H-head, rank-R reduced model for given moments.

    State vector: theta of shape (1 + 2RD, H) flattened row-major; column i is head i's
    (v_i, K_i^x row-major, Q_i^x row-major), K^x and Q^x written in ``moments.basis`` (columns rotated).
    Everything but the head map is the shared flow's (loss, G, rhs, Jacobian, solve).
    """

    def __init__(self, dim: int, heads: int, rank: int, moments: Moments, cache_dir=None, decay: float = 0.0):
        self.rank = rank
        super().__init__(derivation, {"D": dim, "R": rank}, 1 + 2 * rank * dim, dim, heads, moments, cache_dir,
                         decay)

    def unpack(self, y: np.ndarray):
        """(v (..., H), K (..., H, R, D), Q (..., H, R, D)) from one state or stacked states (T, n H)."""
        th = np.asarray(y).reshape(-1, self.n, self.heads)
        R, D = self.rank, self.dim
        v = th[:, 0, :]
        K = th[:, 1:1 + R * D, :].transpose(0, 2, 1).reshape(-1, self.heads, R, D)
        Q = th[:, 1 + R * D:, :].transpose(0, 2, 1).reshape(-1, self.heads, R, D)
        return v, K, Q


def projection(K: np.ndarray, Q: np.ndarray, r: np.ndarray):
    """(LA-35): v_i = r_i[D], K_i^x = K_i[:, :D], Q_i^x = Q_i[:, :D] (original basis)."""
    D = r.shape[1] - 1
    return r[:, D].copy(), K[:, :, :D].copy(), Q[:, :, :D].copy()


def pack(v: np.ndarray, K: np.ndarray, Q: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """State vector from v (H,), K, Q (H, R, D) in the original basis, rotated to ``basis`` (K^x E, Q^x E)."""
    H = v.size
    K_rot, Q_rot = K @ basis, Q @ basis
    theta = np.concatenate([v[None, :], K_rot.reshape(H, -1).T, Q_rot.reshape(H, -1).T], axis=0)
    return theta.reshape(-1)


def setup(spec: LinearSeparateSpec, moments: str | None = None, cache_dir=None, initial_weights=None,
          training_set=None):
    """(flow, initial state, covariance) with ``moments`` population or sample (default: sample when
    ``spec.train_size`` is given), from the family's draw and the projection (LA-35) of its initial weights;
    ``initial_weights`` and ``training_set`` replace the drawn weights and set (checked by ``given``)."""
    drawn = task.draw(spec, train=False)
    weights = drawn.weights if initial_weights is None else given.weights(spec, initial_weights)
    cov, (v, K, Q) = drawn.covariance, projection(**weights)
    data = None if training_set is None else given.training_set(spec, training_set)
    cov = cov if data is None else given.covariance(data)     # the eigenbasis of the observables
    mom = given.moments(spec, drawn, data, moments)
    flow = SeparateFlow(spec.dim, spec.heads, spec.rank, mom, cache_dir, spec.weight_decay)
    return flow, pack(v, K, Q, mom.basis), cov


# ---------------------------------------------------------------------------------------------------------
# Closed forms evaluated numerically (lambdified from the derivation)

@functools.lru_cache(maxsize=None)
def _ladder_step():
    """Delta_d of (LA-30) lambdified once, in index form (generic lam_d and tau): the same for every D."""
    return sp.lambdify([derivation.LADDER_LAM, derivation.LADDER_TAU, derivation.N_SYM], derivation.ladder_step())


def ladder(spec: LinearSeparateSpec) -> list[float]:
    """(LA-30): L(M_m) for m = 0 .. min(D, H R) (population moments; depends on Lambda and N only): tau minus
    the partial sums of the derived steps Delta_d, eigenvalues in decreasing order."""
    lam = np.asarray(task.eigenvalues_for(spec.covariance, spec.dim, spec.eigenvalues), dtype=float)
    tau = float(lam.sum())
    steps = [float(_ladder_step()(l, tau, spec.context)) for l in lam]
    full = [tau] + [tau - s for s in np.cumsum(steps)]
    return full[:min(spec.dim, spec.heads * spec.rank) + 1]


@functools.lru_cache(maxsize=None)
def _pcr_function(D: int):
    lam = sp.symbols(f"lam1:{D + 1}", positive=True)
    return sp.lambdify([lam, derivation.N_SYM, derivation.C_SYM], derivation.pcr_coefficients(lam))


def pcr_coefficients(eigenvalues: np.ndarray, context: int) -> np.ndarray:
    """(LA-34): 1 / (((N+1)/N) lambda_d + tau/N), d = 1..D (eigenvalues in decreasing order)."""
    return np.array(_pcr_function(len(eigenvalues))(tuple(eigenvalues), context, 1.0), dtype=float)


def pcr_predict(h: np.ndarray, xq: np.ndarray, cov: task.Covariance, context: int, m: int) -> np.ndarray:
    """In-context principal-component regression with the top m components (LA-34):
    yhat = sum_{d<=m} (e_d^T x_q)(e_d^T h) / (((N+1)/N) lambda_d + tau/N), for prompts h, xq of shape (P, D)."""
    coef = pcr_coefficients(cov.eigenvalues, context)[:m]
    E = cov.basis[:, :m]
    return np.sum((xq @ E) * (h @ E) * coef, axis=1)


def population_b_star(spec: LinearSeparateSpec, cov: task.Covariance) -> np.ndarray:
    """Diagonal of B* in the eigenbasis (LA-20): the PCR coefficients divided by c."""
    return pcr_coefficients(cov.eigenvalues, spec.context) / spec.c


@functools.lru_cache(maxsize=None)
def _scalar_functions():
    rhs, _, a = derivation.scalar_law()
    syms = (derivation.LAM_SYM, derivation.S_SYM, derivation.C_SYM)
    t_half = derivation.escape_time()
    t_lead = derivation.leading_order_escape_time()
    args = [derivation.A0_SYM, *syms]
    return (sp.lambdify([a, *syms], rhs), sp.lambdify(args, t_half), sp.lambdify(args, t_lead))


def second_moments(eigenvalues: np.ndarray, context: int) -> np.ndarray:
    """s_d of (LA-16)."""
    lam = np.asarray(eigenvalues, dtype=float)
    return (context + 1) / context * lam ** 2 + lam.sum() / context * lam


def scalar_laws(eigenvalues, context: int, c: float, a0, t: np.ndarray, rtol: float = 1e-11) -> np.ndarray:
    """Integrate the balanced scalar law (LA-31) of every component from a_0 (scalar or one per component)
    and return beta_d(t) = a_d(t)^3, shape (len(t), D)."""
    lam = np.asarray(eigenvalues, dtype=float)
    s = second_moments(lam, context)
    a0 = np.broadcast_to(np.asarray(a0, dtype=float), lam.shape)
    rhs = _scalar_functions()[0]
    sol = integrate(lambda _, a: rhs(a, lam, s, c), a0, float(t[-1]), method="DOP853", t_eval=t, rtol=rtol,
                    atol=1e-14)
    return sol.y ** 3


def scalar_loss(eigenvalues, context: int, c: float, beta: np.ndarray) -> np.ndarray:
    """tau + sum_d (-2c lambda_d^2 beta_d + c^2 s_d lambda_d beta_d^2) (LA-19 on the aligned set, LA-31)."""
    lam = np.asarray(eigenvalues, dtype=float)
    s = second_moments(lam, context)
    return lam.sum() + np.sum(-2 * c * lam ** 2 * beta + c ** 2 * s * lam * beta ** 2, axis=-1)


def escape_times(eigenvalues, context: int, c: float, a0: float) -> tuple[np.ndarray, np.ndarray]:
    """Midpoint time of every component from a_0: closed form (LA-32) and leading order (LA-33)."""
    lam = np.asarray(eigenvalues, dtype=float)
    s = second_moments(lam, context)
    _, t_half, t_lead = _scalar_functions()
    return (np.array([t_half(a0, l, sd, c) for l, sd in zip(lam, s)], dtype=float),
            np.array([t_lead(a0, l, sd, c) for l, sd in zip(lam, s)], dtype=float))


# ---------------------------------------------------------------------------------------------------------
# Prediction

def held_out_prompts(spec: LinearSeparateSpec, cov: task.Covariance, size: int = 2000):
    """(h, x_q, y_q) of ``size`` fresh prompts of the in-context law (p = 1), never the training set: the
    family's own in-context test set (``tasks.linear_attention.draw``, its "test" stream, with the spec's
    centring and whitening) when ``cov`` is the spec's covariance; prompts of law ``cov`` from the same
    stream when it is the covariance of a given training set (``given.covariance``)."""
    problem = task.draw(spec, train=False, test_size=size)
    if np.array_equal(cov.basis, problem.covariance.basis) and np.array_equal(cov.eigenvalues,
                                                                              problem.covariance.eigenvalues):
        data = problem.tests["in_context"]
    else:
        data = task.draw_training_set(cov, spec.context, size, task.streams(spec.seed)["test"])
    h = np.einsum("pn,pnd->pd", data.y, data.x) / spec.context
    return h, data.xq, data.yq


def predict(spec: LinearSeparateSpec, moments: str | None = None, t_eval: np.ndarray | None = None,
            cache_dir=None, y0: np.ndarray | None = None, test_size: int = 2000, initial_weights=None,
            training_set=None) -> Trajectory:
    """Loss curve of the reduced flow (LA-29) from the projected initial weights (LA-35) (or ``y0``).

    ``initial_weights={"K": (H, R, D+1), "Q": (H, R, D+1), "r": (H, D+1)}``: start from the projection of
    these full weights instead of the spec's draw (off-manifold blocks k_i^y, r_i^x must be zero);
    ``training_set={"x", "y", "xq", "yq"}``: the sample moments of that set (§5) instead of the spec's, and
    the covariance of the observables (eigenbasis, B*, held-out prompts) estimated from its inputs
    (``given.covariance``). See ``given``; meta then says ``initial_weights`` /
    ``training_set`` "given".

    Observables along the trajectory:
      ``beta``         diagonal of B in the covariance eigenbasis (T, D)
      ``learned``      beta_d / B*_dd (LA-20): the learned amount of each principal component (T, D)
      ``components``   number of components with learned >= 1/2 (T,)
      ``test_loss``    mean squared error of the model's predictor c h^T B x_q (LA-11) on held-out prompts
      ``pcr_test_loss`` the same for the PCR predictor (LA-34) with m(t) = ``components`` components
      ``v``, ``balance`` value weights and v_i^2 - ||K_i^x||_F^2 (LA-37)
      ``test_loss_in_context``, ``test_loss_in_weight``  the two test losses (LA-38) of the state: the
                       population loss (LA-19) of B and (LA-55)
    Meta: ``L_star`` (minimum of the moments used), ``ladder`` (LA-30).

    ``attention="softmax"``: the small-score expansion (LA-51, LA-52), labelled an approximation in its meta
    (``softmax_expansion.predict``). ``icl`` < 1 leaves the invariant manifold: the attn-s flow of the §12
    mixture (LA-54, ``iwl_separate.predict``) on every weight that reaches the prediction, same observables."""
    given.supported(spec, {"initial_weights": initial_weights, "training_set": training_set})
    if spec.attention == "softmax":
        from .softmax_expansion import predict as expansion
        return expansion(spec, t_eval=t_eval)
    if spec.batch_size is not None:
        raise SpecError("batch_size", "none for the attn-s theory (the SGD band, sgd.md, covers attn-m; "
                                      "simulate takes --batch-size)", spec.batch_size)
    if spec.icl != 1.0:                       # off the invariant manifold: the §12 flow (LA-54), all weights
        if y0 is not None:
            raise SpecError("y0", "nothing with icl < 1 (the mixture flow starts from the drawn weights)", "a state")
        from .iwl_separate import predict as mixture_predict
        return mixture_predict(spec, moments, t_eval=t_eval, held_out=test_size)
    if y0 is not None and initial_weights is not None:
        raise SpecError("y0", "nothing when initial_weights are given (one start)", "a state vector")
    flow, start, cov = setup(spec, moments, cache_dir, initial_weights, training_set)     # checks both
    y0 = start if y0 is None else np.asarray(y0, dtype=float)
    sol = discrete.solve(flow, y0, spec, "attn-s", t_eval, rank=spec.rank)   # flow, map or modified (LR-3, LR-5)
    b = flow.b_vector(sol.y)
    loss = flow.loss_of_b(b)
    B = b.T.reshape(-1, spec.dim, spec.dim)
    beta = eigen_diagonal(b, flow.moments.basis.T @ cov.basis)    # (moments basis -> eigenbasis): E^T B E
    learned = beta / population_b_star(spec, cov)
    components = np.sum(learned >= LEARNED, axis=1)
    h, xq, yq = held_out_prompts(spec, cov, test_size)
    B_orig = np.einsum("ia,tab,jb->tij", flow.moments.basis, B, flow.moments.basis,
                       optimize=True).reshape(len(sol.t), -1)
    # mean (c h^T B x_q - y_q)^2 over the prompts, through their moments (cost independent of the number
    # of output times): phi = c vec(h x_q^T), row-major like B.
    phi = spec.c * (h[:, :, None] * xq[:, None, :]).reshape(len(h), -1)
    A_test, g_test = phi.T @ phi / len(h), phi.T @ yq / len(h)
    test_loss = np.einsum("ti,ij,tj->t", B_orig, A_test, B_orig, optimize=True) - 2 * B_orig @ g_test + np.mean(yq ** 2)
    pcr = np.array([np.mean((pcr_predict(h, xq, cov, spec.context, m) - yq) ** 2) for m in range(spec.dim + 1)])
    v, K, _ = flow.unpack(sol.y)
    balance = v ** 2 - np.sum(K ** 2, axis=(2, 3))
    tests = manifold_test_losses(B_orig.reshape(-1, spec.dim, spec.dim), spec, cov,      # (LA-38, LA-55)
                                 task.draw(spec, train=False).task_vector)
    meta = provenance("attn-s", spec, f"theory-{flow.moments.kind}", flow.system.derivation_hash,
                      L_star=flow.moments.minimum, tau=cov.trace, c=spec.c, ladder=ladder(spec),
                      pcr_test_losses=pcr.tolist(), rhs_evaluations=sol.nfev,
                      discretisation=spec.discretisation, **given.meta(initial_weights, training_set),
                      loss="MSE without 1/2 (LA-12)", time="gradient-flow time t")
    return Trajectory(t=sol.t, loss=loss, meta=meta, observables={
        "beta": beta, "learned": learned, "components": components.astype(float), "test_loss": test_loss,
        "pcr_test_loss": pcr[components], "v": v, "balance": balance, **tests})


# ---------------------------------------------------------------------------------------------------------
# Hooks used by the registry (families.py)

def summarise(spec: LinearSeparateSpec, trajectory: Trajectory) -> dict:
    """Staircase metrics applied identically to theory and reference curves (``events.staircase`` on a
    log-time axis, settings ``STAIRCASE``):
    plateau levels, the ladder step m of (LA-30) each is nearest to, the drop times between consecutive
    plateaus, the first drop time and the final loss."""
    st = staircase(trajectory.t, trajectory.loss, ladder(spec), **STAIRCASE)
    first = st["drop_times"][0] if st["drop_times"] else math.nan
    return {"plateaus": st["plateaus"], "plateau_steps": st["steps"], "drop_times": st["drop_times"],
            "first_drop_time": first, "final_loss": float(trajectory.loss[-1])}


def comparison_theories(spec: LinearSeparateSpec) -> dict[str, Trajectory]:
    """The sample-moment flow on the reference's own training set (main theory curve, §5), the population
    flow, and at the spec's lr the modified flow (LR-5) and the reduced GD map (LR-3) on the same moments.
    With softmax attention, the small-score expansion (LA-51)."""
    if spec.attention == "softmax":
        return {"theory": predict(spec)}        # labelled in its meta as an expansion (approximation)
    sample_spec = spec.replace(train_size=spec.sample_size, discretisation="flow", batch_size=None)
    spec = spec.replace(batch_size=None)              # full-batch theory: the SGD band covers attn-m only
    if spec.icl != 1.0:                         # the §12 flows (LA-54)
        return {"theory": predict(sample_spec), "population flow": predict(spec, moments="population")}
    return {"theory": predict(sample_spec), "population flow": predict(spec, moments="population"),
            "modified flow": predict(sample_spec.replace(discretisation="modified")),    # (LR-5) at spec.lr
            "reduced GD map": predict(sample_spec.replace(discretisation="map"))}        # (LR-3) at spec.lr


def levels(spec: LinearSeparateSpec, theory: Trajectory) -> dict[str, float]:
    """The saddle ladder (LA-30) as dotted levels; with weight decay the regularised ladder (WD-8)."""
    if spec.weight_decay:
        from .weight_decay import separate_ladder
        return {f"L(M_{m}), decay": value for m, value in enumerate(separate_ladder(spec))}
    return {f"L(M_{m})": value for m, value in enumerate(ladder(spec))}


def report_extras(spec: LinearSeparateSpec) -> dict:
    """Entries added to the comparison report: the ladder (LA-30) as a list."""
    return {"ladder": ladder(spec)}


def flow_probe(spec: LinearSeparateSpec):
    """(rhs(y), loss(y), y0) of the reduced flow, for the common test RHS = -grad loss."""
    flow, y0, _ = setup(spec)
    return (lambda y: flow.rhs(0.0, y)), (lambda y: float(flow.loss(y))), y0


def max_stable_lr(spec, t_max: float | None = None) -> dict:
    """(LR-8): the flow (population moments, or the sample moments with ``train_size``) from the spec's
    projected initial weights to ``t_max`` (default the spec's final time); see ``discrete.stable_lr``."""
    flow, y0, _ = setup(spec)
    return discrete.stable_lr(flow, y0, spec.final_time if t_max is None else t_max)
