"""Theory of merged key-query linear attention (ATTN_M): the reduced flow (LA-22) and its closed form.

``predict(spec)`` integrates the reduced gradient flow on the invariant manifold, state (v_i, U_i) per head,
from the projection (LA-35) of the very initial weights the reference draws for the spec's seed:

* without ``train_size``: population moments (LA-16 to LA-19), in the covariance eigenbasis;
* with ``train_size``: the sample moments of §5 of the very training set the reference draws, in the
  original basis, which is the exact small-learning-rate limit of the reference run (up to the leakage
  of §10.2 (b)).

``closed_form(spec)`` is the aligned balanced logistic course (LA-26, LA-27) with U_0 of (LA-25).
The right-hand side is assembled from the derived pieces of ``reduced_dynamics.derivations.linear_merged.index_system`` by
``flow.ReducedFlow``, which attn-s shares.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from reduced_dynamics.derivations import linear_merged as derivation

from ... import compile as compiler
from ...errors import SpecError
from ...events import midpoint_drop_time, transience_summary
from ...specs import LinearMergedSpec
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance
from . import discrete, given
from .flow import ReducedFlow, eigen_diagonal, population_moments
from .mixture_observables import manifold_test_losses


def projection(W: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LA-35): v_i = r_i[D], U_i = W_i[:D, :D] (original basis)."""
    D = r.shape[1] - 1
    return r[:, D].copy(), W[:, :D, :D].copy()


def pack(v: np.ndarray, U: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """State vector from v (H,) and U (H, D, D) in the original basis, rotated to ``basis``."""
    U_rot = np.einsum("da,hde,eb->hab", basis, U, basis)
    H = v.size
    return np.concatenate([v[None, :], U_rot.reshape(H, -1).T], axis=0).reshape(-1)


def merged_flow(dim: int, heads: int, moments, cache_dir=None, decay: float = 0.0) -> ReducedFlow:
    """The flow (LA-22): head map B_i = v_i U_i (LA-11), n = 1 + D^2 numbers per head; weight decay (WD-2)."""
    return ReducedFlow(derivation, {"D": dim}, 1 + dim * dim, dim, heads, moments, cache_dir, decay)


def setup(spec: LinearMergedSpec, moments: str | None = None, cache_dir=None, initial_weights=None,
          training_set=None):
    """The flow and its initial state for the spec's seed, with ``moments`` population or sample
    (default: sample when ``spec.train_size`` is given); ``initial_weights`` and ``training_set`` replace
    the drawn weights and set (checked by ``given``)."""
    drawn = task.draw(spec, train=False)
    cov = drawn.covariance
    weights = drawn.weights if initial_weights is None else given.weights(spec, initial_weights)
    data = None if training_set is None else given.training_set(spec, training_set)
    cov = cov if data is None else given.covariance(data)     # the eigenbasis of the observables
    mom = given.moments(spec, drawn, data, moments)
    flow = merged_flow(spec.dim, spec.heads, mom, cache_dir, spec.weight_decay)
    v, U = projection(weights["W"], weights["r"])
    return flow, pack(v, U, mom.basis), cov


def predict(spec: LinearMergedSpec, moments: str | None = None, t_eval: np.ndarray | None = None,
            cache_dir=None, initial_weights=None, training_set=None) -> Trajectory:
    """Loss curve of the reduced flow (LA-22) from the projected initial weights (LA-35).

    ``initial_weights={"W": (H, D+1, D+1), "r": (H, D+1)}``: start from the projection of these full weights
    instead of the spec's draw (off-manifold blocks u_i, r_i^x must be zero); ``training_set={"x", "y",
    "xq", "yq"}``: the sample moments of that set (§5) instead of the spec's, and ``beta`` in the eigenbasis
    of its inputs' second moment (``given.covariance``). See ``given``; meta then says ``initial_weights`` /
    ``training_set`` "given".

    Observables: ``beta`` (diagonal of B in the covariance eigenbasis), ``v`` (value weights),
    ``balance`` (v_i^2 - ||U_i||_F^2, conserved by (LA-36)) and the two test losses (LA-38) of the state,
    ``test_loss_in_context`` (the population loss LA-19 of B) and ``test_loss_in_weight`` (LA-55), the names
    the icl < 1 route records too. Meta holds the minimum loss ``L_star``.

    ``icl`` < 1 leaves the invariant manifold: the §12 flow (LA-44) of ``iwl.predict``, with both test
    losses; so does ``all_weights`` at icl = 1 (every weight that reaches the prediction moves, as in
    unfrozen GD). ``attention="softmax"``: the small-score expansion (LA-51, LA-52), labelled an
    approximation. ``batch_size``: minibatch SGD at spec.lr, the mean curve and band of ``sgd.predict``
    (SGD-5), with the quantiles of the loss as observables."""
    given.supported(spec, {"initial_weights": initial_weights, "training_set": training_set})
    if spec.batch_size is not None:                 # minibatch SGD: mean curve and band (sgd.md, SGD-5)
        if initial_weights is not None or training_set is not None:
            raise SpecError("batch_size", "none with given initial weights or training set (the SGD band uses "
                                          "the spec's own draw)", spec.batch_size)
        from .sgd import predict as sgd_predict
        return sgd_predict(spec)
    if spec.attention == "softmax":
        from .softmax_expansion import predict as expansion
        return expansion(spec, t_eval=t_eval)
    if spec.icl != 1.0 or spec.all_weights:
        from .iwl import predict as iwl_predict
        return iwl_predict(spec, moments, t_eval=t_eval)
    flow, y0, cov = setup(spec, moments, cache_dir, initial_weights, training_set)     # checks both
    sol = discrete.solve(flow, y0, spec, "attn-m", t_eval)     # flow, GD map or modified flow (LR-3, LR-5)
    thetas = sol.y.reshape(len(sol.t), flow.n, spec.heads)
    b = flow.b_vector(sol.y)
    loss = flow.loss_of_b(b)
    beta = eigen_diagonal(b, flow.moments.basis.T @ cov.basis)    # (moments basis -> eigenbasis): E^T B E
    v = thetas[:, 0, :]
    balance = v ** 2 - np.einsum("tjh,tjh->th", thetas[:, 1:, :], thetas[:, 1:, :])
    meta = provenance("attn-m", spec, f"theory-{flow.moments.kind}", flow.system.derivation_hash,
                      L_star=flow.moments.minimum, tau=cov.trace, c=spec.c, rhs_evaluations=sol.nfev,
                      discretisation=spec.discretisation, **given.meta(initial_weights, training_set),
                      loss="MSE without 1/2 (LA-12)", time="gradient-flow time t")
    B = np.einsum("ad,tde,be->tab", flow.moments.basis, b.T.reshape(-1, spec.dim, spec.dim), flow.moments.basis)
    tests = manifold_test_losses(B, spec, cov, task.draw(spec, train=False).task_vector)     # (LA-38, LA-55)
    drop = midpoint_drop_time(sol.t, loss)
    if math.isnan(drop) and t_eval is None:
        warnings.warn(f"attn-m: the loss has not dropped by t = {sol.t[-1]:g} (it fell {loss[0] - loss.min():.2g}); "
                      "raise --t-max to see the drop", RuntimeWarning)
    return Trajectory(t=sol.t, loss=loss, observables={"beta": beta, "v": v, "balance": balance, **tests},
                      events={"drop_time": drop}, meta=meta)


# ---------------------------------------------------------------------------------------------------------
# Closed form (LA-25 to LA-28)

@dataclass(frozen=True)
class LogisticCourse:
    normb: float    # ||b||_F with b = c Lambda^2
    a: float        # c^2 <b_hat, S b_hat Lambda>
    U0: float       # sum_i m_i^2 (LA-25)
    tau: float

    @property
    def ustar(self) -> float:
        return self.normb / self.a

    def U(self, t: np.ndarray) -> np.ndarray:
        """(LA-27)."""
        return self.ustar / (1.0 + (self.ustar / self.U0 - 1.0) * np.exp(-4.0 * self.normb * np.asarray(t)))

    def loss(self, t: np.ndarray) -> np.ndarray:
        U = self.U(t)
        return self.tau - 2.0 * self.normb * U + self.a * U ** 2

    @property
    def drop_time(self) -> float:
        """(LA-28)."""
        return math.log((self.ustar / self.U0 - 1.0) * (math.sqrt(2.0) - 1.0)) / (4.0 * self.normb)


def logistic_course(spec: LinearMergedSpec) -> LogisticCourse:
    """Constants of (LA-26) in the eigenbasis and U_0 of (LA-25) from the projected initial weights."""
    drawn = task.draw(spec, train=False)
    cov = drawn.covariance
    v, U = projection(drawn.weights["W"], drawn.weights["r"])
    lam, N, c = cov.eigenvalues, spec.context, spec.c
    s = (N + 1) / N * lam ** 2 + lam.sum() / N * lam
    bhat = lam ** 2 / np.linalg.norm(lam ** 2)
    U_eig = np.einsum("da,hde,eb->hab", cov.basis, U, cov.basis)
    m = 0.5 * (v + np.einsum("hdd,d->h", U_eig, bhat))          # (LA-25), <U_i, b_hat> in the eigenbasis
    return LogisticCourse(normb=c * float(np.linalg.norm(lam ** 2)), a=c ** 2 * float(np.sum(bhat ** 2 * s * lam)),
                          U0=float(np.sum(m ** 2)), tau=cov.trace)


def closed_form(spec: LinearMergedSpec, t: np.ndarray | None = None) -> Trajectory:
    """Trajectory of the logistic course (LA-27); exact for Lambda = lambda I on the aligned set."""
    if spec.weight_decay:
        raise SpecError("weight_decay", "0 for the logistic course (LA-27); with decay the end point is the "
                        "regularised minimum (WD-5)", spec.weight_decay)
    course = logistic_course(spec)
    t = np.linspace(0.0, spec.final_time, 2001) if t is None else np.asarray(t, dtype=float)
    meta = provenance("attn-m", spec, "closed-form", compiler.derivation_hash(derivation),
                      U0=course.U0, normb=course.normb, a=course.a, drop_time_formula=course.drop_time)
    return Trajectory(t=t, loss=course.loss(t), observables={"U": course.U(t)}, events={"drop_time": course.drop_time},
                      meta=meta)


# ---------------------------------------------------------------------------------------------------------
# Hooks used by the registry (families.py)

def summarise(spec: LinearMergedSpec, trajectory: Trajectory) -> dict:
    """Metrics applied identically to theory and reference curves: the midpoint drop time (LA-28's
    definition, levels from the curve itself) and the final loss; on the mixture (icl < 1) also the transience
    measures of the two test losses (WD-9)."""
    out = {"drop_time": midpoint_drop_time(trajectory.t, trajectory.loss), "final_loss": float(trajectory.loss[-1])}
    obs = trajectory.observables
    if spec.icl != 1.0 and "test_loss_in_context" in obs:
        out.update(transience_summary(trajectory.t, obs["test_loss_in_context"], obs["test_loss_in_weight"]))
    return out


def comparison_theories(spec: LinearMergedSpec) -> dict[str, Trajectory]:
    """The curves a comparison shows: the sample-moment flow on the reference's own training set (the main
    theory curve, §5), the population flow, the closed form (LA-27), and at the spec's lr the modified flow
    (LR-5) and the reduced GD map (LR-3) on the same sample moments (finite_learning_rate.md). With softmax
    attention, the small-score expansion (LA-51); with icl < 1, the §12 flows (LA-44)."""
    if spec.attention == "softmax":
        return {"theory": predict(spec.replace(batch_size=None))}   # an expansion (approximation), full batch
    if spec.batch_size is not None:         # SGD: the band's mean (SGD-5) and full-batch GD of every weight (LR-3)
        return {"theory": predict(spec), "full-batch GD map": predict(spec.replace(
            batch_size=None, train_size=spec.sample_size, all_weights=True, discretisation="map"))}
    sample_spec = spec.replace(train_size=spec.sample_size, discretisation="flow")
    if spec.icl != 1.0:
        return {"theory": predict(sample_spec), "population flow": predict(spec, moments="population")}
    manifold = sample_spec.replace(all_weights=False)
    curves = {"theory": predict(sample_spec), "population flow": predict(spec.replace(all_weights=False),
                                                                         moments="population"),
              **({} if spec.weight_decay else {"closed form": closed_form(spec)}),     # (LA-27) has no decay
              "modified flow": predict(manifold.replace(discretisation="modified")),    # (LR-5) at spec.lr
              "reduced GD map": predict(manifold.replace(discretisation="map"))}        # (LR-3) at spec.lr
    if not spec.freeze_off_manifold:      # unfrozen GD also moves the off-manifold blocks: LA-44 at the step
        curves["all-weights modified flow"] = predict(manifold.replace(all_weights=True, discretisation="modified"))
    return curves


def levels(spec: LinearMergedSpec, theory: Trajectory) -> dict[str, float]:
    """Horizontal reference levels: the population minimum L* (LA-21) and the sample minimum."""
    cov = task.draw(spec, train=False).covariance
    out = {"L* (LA-21)": population_moments(spec, cov).minimum}
    if spec.weight_decay and spec.icl == 1.0 and spec.attention == "linear":
        from .weight_decay import merged_minimum
        out["regularised minimum (WD-5)"] = merged_minimum(setup(spec.replace(all_weights=False))[0])[1]
    if theory.meta.get("kind") == "theory-sample":
        out["sample minimum"] = float(theory.meta["L_star"])
    return out


def flow_probe(spec: LinearMergedSpec):
    """(rhs(y), loss(y), y0) of the reduced flow, for the common test RHS = -grad loss."""
    flow, y0, _ = setup(spec)
    return (lambda y: flow.rhs(0.0, y)), (lambda y: float(flow.loss(y))), y0


def max_stable_lr(spec, t_max: float | None = None) -> dict:
    """(LR-8): the flow (population moments, or the sample moments with ``train_size``) from the spec's
    projected initial weights to ``t_max`` (default the spec's final time); see ``discrete.stable_lr``."""
    flow, y0, _ = setup(spec)
    return discrete.stable_lr(flow, y0, spec.final_time if t_max is None else t_max)
