"""Theory side of the softmax-feature family: reduced gradient flows of the K x K weight matrix M (note §5-§9).

* :func:`large_n_flow` integrates (SF-21), compiled from the SymPy derivation (minus the gradient of SF-20).
* :func:`exact_flow` integrates the exact finite-N flow dM[:,k]/dt = -p_k grad L_k (SF-13, SF-31), which is what
  gradient descent on the full model follows (SF-10, SF-13); its expectations over the counts come from the
  Laplace quadrature of the count generating function (:class:`~.exact.LaplaceQuadrature`, cost independent of
  N) or, as the small-N oracle, from the count enumeration (SF-19a).
* :func:`symmetric_exact_flow` integrates the same flow restricted to the symmetric subspace with the 1-D sum
  (SF-19b), cheap for any N.

All flows start from M(0) = 0 unless told otherwise (SF-10) and return the states on a time grid.
:func:`predict` turns a :class:`~reduced_dynamics.specs.SoftmaxFeaturesSpec` into a Trajectory (loss convention
SF-9, with the factor 1/2), with the observables and events of the note (§8).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reduced_dynamics.derivations import softmax_features as derivation

from ... import compile as compiler
from ...integrate import DerivedFlow, integrate
from ...specs import SoftmaxFeaturesSpec, SpecError
from ...tasks.softmax_features import check_probabilities, curve_events, draw
from ...trajectory import Trajectory, provenance
from . import discrete
from .exact import CountEnumeration, LaplaceQuadrature, symmetric_column


@dataclass
class FlowResult:
    """States of a reduced flow: ``t`` (T), ``M`` (T x K x K), per-feature loss ``loss_k`` (T x K)."""

    t: np.ndarray
    M: np.ndarray
    loss_k: np.ndarray


def large_n_functions(n_features: int, cache_dir=None):
    """NumPy callables (rhs, column losses) of the derived large-N system (SF-20, SF-21) for K features,
    compiled through the disk cache of :mod:`reduced_dynamics.compile`.

    ``rhs(M_flat, p) -> dM_flat/dt`` (row-major K x K) and ``losses(M_flat, p) -> (L_1^inf .. L_K^inf)``; both
    accept trailing batch axes.
    """
    system = large_n_system(n_features, cache_dir)
    return system["rhs"], system["losses"]


def large_n_system(n_features: int, cache_dir=None) -> compiler.CompiledSystem:
    """The compiled large-N system (SF-20, SF-21) for K features: its programs feed the compiled integrator."""
    return compiler.compile_system(derivation, "compiled_large_n", {"n_features": int(n_features)}, cache_dir)


def _integrate(rhs, y0: np.ndarray, t_eval: np.ndarray, rtol: float, atol: float, what: str) -> np.ndarray:
    """DOP853 through the guarded wrapper of :mod:`reduced_dynamics.integrate` (blow-up / stall stop): machine
    code for a compiled system (``integrate.DerivedFlow``), SciPy for a NumPy ``rhs(y)``."""
    t_eval = np.asarray(t_eval, dtype=float)
    if t_eval.ndim != 1 or t_eval.size < 1 or np.any(np.diff(t_eval) <= 0) or t_eval[0] < 0:
        raise SpecError("t_eval", "an increasing 1-d array of times >= 0", t_eval.shape)
    if t_eval[-1] == 0.0:
        return np.asarray(y0, float)[None, :]
    if isinstance(rhs, DerivedFlow):
        return integrate(rhs, y0, float(t_eval[-1]), method="compiled", t_eval=t_eval, rtol=rtol, atol=atol).y
    sol = integrate(lambda t, y: rhs(y), y0, float(t_eval[-1]), t_eval=t_eval, rtol=rtol, atol=atol)
    return sol.y


def large_n_flow(probabilities, t_eval, M0=None, rtol: float = 1e-10, atol: float = 1e-12,
                 cache_dir=None, modified_lr: float | None = None, decay: float = 0.0) -> FlowResult:
    """Integrate the large-N flow (SF-21) from M0 (default 0) and evaluate L_k^inf (SF-20) on the grid
    (with ``modified_lr``: the modified flow (LR-5) at that learning rate; ``decay``: weight decay, WD-2)."""
    p = check_probabilities(probabilities)
    K = p.size
    system = large_n_system(K, cache_dir)
    rhs, losses = system["rhs"], system["losses"]
    y0 = np.zeros(K * K) if M0 is None else np.asarray(M0, float).reshape(K * K)
    flow = (DerivedFlow.of(system, "rhs", p, decay=decay) if modified_lr is None
            else _at_lr(_decayed(lambda y: np.asarray(rhs(y, p), float), decay), modified_lr))
    ys = _integrate(flow, y0, t_eval, rtol, atol, "large-N softmax flow")
    loss_k = np.asarray(losses(ys.T, p[:, None]), float).T
    return FlowResult(np.asarray(t_eval, float), ys.reshape(-1, K, K), loss_k)


EVALUATORS = {"laplace": LaplaceQuadrature, "enumeration": CountEnumeration}


def exact_evaluator(probabilities, context: int, include_query_token: bool = False, method: str = "laplace"):
    """The exact finite-N expectations L_k, grad L_k, E[a] (SF-9, SF-16, SF-7): ``"laplace"`` (any N, cost
    independent of N; :class:`~.exact.LaplaceQuadrature`) or ``"enumeration"`` (SF-19a, the small-N oracle)."""
    if method not in EVALUATORS:
        raise SpecError("method", f"one of {sorted(EVALUATORS)}", method)
    return EVALUATORS[method](probabilities, context, include_query_token)


def observe_states(evaluator, Ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """L_k (T x K) and the expected attention (T x K x K) at the states Ms. The Laplace quadrature takes a stack of
    512 / K^2 states at once (~1e5 numbers per array: measured fastest, larger stacks leave the cache); the
    enumeration one state at a time."""
    if isinstance(evaluator, CountEnumeration):
        observed = [evaluator.losses_and_attention(M) for M in Ms]
        return np.array([L for L, _ in observed]), np.array([a for _, a in observed])
    block = max(1, 512 // Ms.shape[-1] ** 2)
    parts = [evaluator.losses_and_attention(Ms[i:i + block]) for i in range(0, len(Ms), block)]
    return np.concatenate([L for L, _ in parts]), np.concatenate([a for _, a in parts])


def exact_flow(probabilities, context: int, t_eval, M0=None, include_query_token: bool = False,
               rtol: float = 1e-8, atol: float = 1e-10, observe: bool = True, method: str = "laplace",
               modified_lr: float | None = None, decay: float = 0.0) -> FlowResult:
    """Integrate the exact finite-N flow dM[:,k]/dt = -p_k grad L_k(M[:,k]) (SF-13, SF-31); ``method`` picks the
    evaluator of the expectations (:func:`exact_evaluator`; ``"enumeration"`` is SF-19a).

    With ``observe=False`` the losses are left as NaN (the caller evaluates them); with ``modified_lr`` the
    modified flow (LR-5) at that learning rate is integrated instead."""
    p = check_probabilities(probabilities)
    K = p.size
    enum = exact_evaluator(p, context, include_query_token, method)
    y0 = np.zeros(K * K) if M0 is None else np.asarray(M0, float).reshape(K * K)
    ys = _integrate(_at_lr(_decayed(lambda y: enum.flow_rhs(y.reshape(K, K)).ravel(), decay), modified_lr), y0,
                    t_eval, rtol, atol, f"exact-N softmax flow (N = {context})")
    Ms = ys.reshape(-1, K, K)
    loss_k = observe_states(enum, Ms)[0] if observe else np.full((len(Ms), K), np.nan)
    return FlowResult(np.asarray(t_eval, float), Ms, loss_k)


def _decayed(rhs, decay: float):
    """The flow's right-hand side with weight decay: M = V Q V^T are orthonormal coordinates of Q (LR-1), so
    -lambda Q becomes -lambda M (WD-2); the identity at decay 0."""
    if not decay:
        return rhs
    return lambda y: rhs(y) - decay * np.asarray(y)


def _at_lr(rhs, modified_lr):
    """The flow's right-hand side, or that of its modified flow (LR-5) at ``modified_lr``."""
    if modified_lr is None:
        return rhs
    return discrete.modified_rhs(rhs, modified_lr)


def symmetric_exact_flow(q: float, n_features: int, context: int, t_eval, include_query_token: bool = False,
                         rtol: float = 1e-10, atol: float = 1e-12) -> tuple[np.ndarray, np.ndarray]:
    """Exact finite-N flow of A_k on the symmetric subspace, B_k = -A_k/(K-1) (SF-15, SF-19b).

    dA/dt = -q dL_k/dm_k, the diagonal entry of (SF-13). Returns (A(t), L_k(t)).
    """
    K = int(n_features)

    def rhs(y):
        _, gA, _ = symmetric_column(y[0], -y[0] / (K - 1), q, K, context, include_query_token)
        return np.array([-q * gA])

    A = _integrate(rhs, np.zeros(1), t_eval, rtol, atol, f"symmetric softmax flow (N = {context})")[:, 0]
    L = symmetric_column(A, -A / (K - 1), q, K, context, include_query_token)[0]
    return A, L


def large_n_attention(M: np.ndarray, p) -> np.ndarray:
    """pi_n(M[:, k]) = softmax(M[:, k] + log p)_n (SF-20) for states M of shape (..., K, K)."""
    logits = np.asarray(M, float) + np.log(np.asarray(p, float))[:, None]
    logits = logits - logits.max(axis=-2, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-2, keepdims=True)


def output_grid(spec: SoftmaxFeaturesSpec) -> np.ndarray:
    """The reference's record times t = lr * step (every ``record_every`` steps, and t_max): theory and reference
    curves are then read on the same points by the same crossing function, so linear interpolation between
    samples biases both threshold times alike (it matters when a threshold falls inside the first steps)."""
    T = spec.final_time
    uniform = spec.lr * np.arange(0, spec.gd_steps + 1, spec.record_every)
    return np.unique(np.round(np.concatenate([uniform[uniform <= T + 1e-12], [T]]), 12))


def start(spec: SoftmaxFeaturesSpec) -> tuple[np.ndarray, np.ndarray]:
    """(p, M(0) = V Q(0) V^T) of the spec's problem draw, the same start as the reference's GD (SF-10)."""
    problem = draw(spec)
    return problem.probabilities, problem.features @ problem.initial_Q @ problem.features.T


def predict(spec: SoftmaxFeaturesSpec, t_eval: np.ndarray | None = None, cache_dir=None) -> Trajectory:
    """Reduced flow of M from M = 0 (SF-10): the exact finite-N flow (SF-13, expectations of SF-19a by the Laplace
    quadrature of :class:`~.exact.LaplaceQuadrature`; ``limit='exact'``) or
    the large-N flow (SF-21; ``limit='large-n'``).

    ``loss`` = sum_k p_k L_k with the factor 1/2 of (SF-9). Observables: ``loss_k`` (T x K), ``A`` (T x K, the
    own-feature weights A_k = M[k,k]), ``M`` (T x K x K, row n = token feature, column k = query feature; the
    off-diagonal entries are the B_{k,n}), ``attention`` (T x K x K, expected attention mass of a query of
    feature k on tokens of feature n; the diagonal is ``own_attention``), ``own_attention`` (T x K).
    Events: threshold times per feature, half-attention times (SF-28) and the phase boundaries E1-E4 (§8.2).
    """
    if spec.discretisation == "map":                # the reduced GD map at spec.lr (LR-1, LR-3)
        if spec.limit != "exact":
            raise SpecError("discretisation", "'flow' or 'modified' with --limit large-n ('map' is exact-N)", "map")
        return exact_gd_map(spec)
    p, M0 = start(spec)
    t = output_grid(spec) if t_eval is None else np.asarray(t_eval, dtype=float)
    lr = spec.lr if spec.discretisation == "modified" else None
    if spec.limit == "large-n":
        flow = large_n_flow(p, t, M0=M0, cache_dir=cache_dir, modified_lr=lr, decay=spec.weight_decay)
        attention = large_n_attention(flow.M, p)
        kind, note = "theory-large-N", "large-N flow (SF-21) of the derived loss (SF-20)"
        if spec.include_query_token:
            note += "; the query token's O(1/N) share of the softmax vanishes in this limit (SF-6)"
    else:
        flow = exact_flow(p, spec.context, t, M0=M0, include_query_token=spec.include_query_token, observe=False,
                          modified_lr=lr, decay=spec.weight_decay)
        flow.loss_k, attention = observe_states(exact_evaluator(p, spec.context, spec.include_query_token), flow.M)
        kind, note = "theory-exact-N", ("exact finite-N flow (SF-13); expectations over the counts (SF-19a) by "
                                        "Laplace quadrature of the count generating function (SF-19d)")
    own = np.einsum("tkk->tk", attention)
    events = curve_events(flow.t, flow.loss_k, flow.M, attention, p, spec.levels)
    if lr is not None:
        kind, note = kind + "-modified", note + f"; modified flow (LR-5) at lr {lr}"
    meta = provenance("softmax", spec, kind, compiler.derivation_hash(derivation), probabilities=list(p),
                      thresholds=list(spec.levels), flow=note,
                      loss="L = (1/2) E[(yhat - y_q)^2] = sum_k p_k L_k (SF-9, factor 1/2)",
                      time="gradient-flow time t (GD: t = lr * step)")
    return Trajectory(t=flow.t, loss=flow.loss_k @ p, events=events, meta=meta,
                      observables={"loss_k": flow.loss_k, "A": np.einsum("tkk->tk", flow.M), "M": flow.M,
                                   "attention": attention, "own_attention": own})


def exact_gd_map(spec: SoftmaxFeaturesSpec) -> Trajectory:
    """Gradient descent on M with the exact finite-N gradient, M <- M - lr G diag(p), at the spec's lr.

    By (SF-13) this is exactly what full-model gradient descent does with population gradients, step by step; it
    separates the O(lr) gap between GD and the flow (SF-10) from the sampling noise of finite batches. Recorded at
    the reference's record times, with the same observables and events as :func:`predict`.
    """
    p, M = start(spec)
    enum = exact_evaluator(p, spec.context, spec.include_query_token)
    steps, Ms = [], []
    for step in range(spec.gd_steps + 1):
        if step % spec.record_every == 0 or step == spec.gd_steps:
            steps.append(step)
            Ms.append(M.copy())
        if step < spec.gd_steps:
            M = M + spec.lr * (enum.flow_rhs(M) - spec.weight_decay * M)       # weight decay (WD-1, WD-2)
    t = spec.lr * np.array(steps, dtype=float)
    keep = t <= spec.final_time + 1e-12
    t, Ms = t[keep], np.array(Ms)[keep]
    loss_k, attention = observe_states(enum, Ms)
    events = curve_events(t, loss_k, Ms, attention, p, spec.levels)
    meta = provenance("softmax", spec, "theory-exact-N-GD-map", compiler.derivation_hash(derivation),
                      probabilities=list(p), thresholds=list(spec.levels),
                      flow="exact-gradient GD on M (SF-13 step by step, SF-19a)",
                      loss="L = (1/2) E[(yhat - y_q)^2] = sum_k p_k L_k (SF-9, factor 1/2)", time="t = lr * step")
    return Trajectory(t=t, loss=loss_k @ p, events=events, meta=meta,
                      observables={"loss_k": loss_k, "A": np.einsum("tkk->tk", Ms), "M": Ms, "attention": attention,
                                   "own_attention": np.einsum("tkk->tk", attention)})


# ---------------------------------------------------------------------------------------------------------
# Hooks used by the registry (families.py)

def summarise(spec: SoftmaxFeaturesSpec, trajectory: Trajectory) -> dict:
    """Metrics applied identically to theory and reference curves (same crossing function, same grid rule):
    per-feature threshold times (one list per feature, one entry per threshold), per-feature times at which the
    own-feature attention reaches 1/2 (SF-28), the time the total loss reaches the middle threshold, the
    final loss."""
    p = np.asarray(spec.p, float)
    levels = list(spec.levels)
    obs = trajectory.observables
    events = curve_events(trajectory.t, obs["loss_k"], obs["M"], obs["attention"], p, levels)
    from ...events import first_crossing_below
    middle = levels[len(levels) // 2]
    return {"threshold_times": events["threshold_times"],
            "half_attention_times": events["half_attention_times"],
            "loss_threshold_time": first_crossing_below(trajectory.t, trajectory.loss, middle),
            "final_loss": float(trajectory.loss[-1])}


def comparison_theories(spec: SoftmaxFeaturesSpec) -> dict[str, Trajectory]:
    """The spec's theory curve and, for the exact limit, the large-N flow and the exact-gradient GD map on M
    (which isolates the O(lr) GD-flow gap of SF-10 from batch noise) beside it."""
    out = {"theory": predict(spec)}
    if spec.limit == "exact":
        out["large-N flow"] = predict(spec.replace(limit="large-n"))
        out["exact-N GD map"] = exact_gd_map(spec)
    return out


def flow_probe(spec: SoftmaxFeaturesSpec):
    """(rhs(y), loss(y), y0) of the spec's reduced flow on y = M row-major, for the common RHS = -grad test."""
    p = np.asarray(spec.p)
    K, lam = spec.features, spec.weight_decay
    if spec.limit == "large-n":
        rhs, losses = large_n_functions(K)
        flow, loss = (lambda y: np.asarray(rhs(y, p), float)), (lambda y: float(np.asarray(losses(y, p)) @ p))
    else:
        enum = exact_evaluator(p, spec.context, spec.include_query_token)
        flow, loss = (lambda y: enum.flow_rhs(y.reshape(K, K)).ravel()), (lambda y: float(enum.losses(y.reshape(K, K)) @ p))
    return _decayed(flow, lam), (lambda y: loss(y) + 0.5 * lam * float(y @ y)), np.zeros(K * K)      # (WD-1, WD-2)


def large_n_error(n_features: int, sizes, t_eval, eps: float = 0.05) -> dict:
    """Size of the large-N error (SF-23) for balanced features on the symmetric subspace.

    For every N in ``sizes`` the exact flow of A (SF-19b) is compared with the large-N flow (SF-21):
    ``sup_error[j] = max_t |A_N(t) - A_inf(t)|``, the least-squares slope of log sup_error against log N
    (``slope``; -1 for an O(1/N) error), and the times at which L_k reaches ``eps`` (``threshold_times``, and
    ``threshold_time_inf`` for the large-N flow).
    """
    from ...events import first_crossing_below

    K = int(n_features)
    t = np.asarray(t_eval, dtype=float)
    big = large_n_flow([1.0 / K] * K, t)
    A_inf = big.M[:, 0, 0]
    A, L = zip(*(symmetric_exact_flow(1.0 / K, K, N, t) for N in sizes))
    A, L = np.array(A), np.array(L)
    sup_error = np.abs(A - A_inf[None, :]).max(axis=1)
    slope, intercept = np.polyfit(np.log(np.asarray(sizes, float)), np.log(sup_error), 1)
    return {"A": A, "loss": L, "A_inf": A_inf, "sup_error": sup_error, "slope": float(slope),
            "intercept": float(intercept),
            "threshold_times": [first_crossing_below(t, row, eps) for row in L],
            "threshold_time_inf": first_crossing_below(t, big.loss_k[:, 0], eps)}


def max_stable_lr(spec: SoftmaxFeaturesSpec, t_max: float | None = None, points: int = 60) -> dict:
    """(LR-8) for a softmax spec: eta_max = 2 / lambda_max of the Hessian of the exact finite-N loss (central
    differences of its exact gradient) along the flow from the spec's start up to ``t_max`` (default the spec's
    final time); see ``discrete.stable_lr_along``."""
    p, M0 = start(spec)
    K = spec.features
    evaluator = exact_evaluator(p, spec.context, spec.include_query_token)
    t = np.linspace(0.0, spec.final_time if t_max is None else t_max, points)
    flow = exact_flow(p, spec.context, t, M0=M0, include_query_token=spec.include_query_token, observe=False)
    return discrete.stable_lr_along(lambda y: -evaluator.flow_rhs(y.reshape(K, K)).ravel(),
                                    flow.M.reshape(len(t), -1), t)
