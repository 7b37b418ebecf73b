"""Theory of merged key-query linear attention (ATTN_M): the reduced flow (LA-22) and its closed form.

``predict(spec)`` integrates the reduced gradient flow on the invariant manifold, state (v_i, U_i) per head,
from the projection (LA-35) of the very initial weights the reference draws for the spec's seed:

* without ``train_size``: population moments (LA-16 to LA-19), in the covariance eigenbasis;
* with ``train_size``: the sample moments of §5 of the very training set the reference draws, in the
  original basis, which is the exact small-learning-rate limit of the reference run (up to the leakage
  of §10.2 (b)).

``closed_form(spec)`` is the aligned balanced logistic course (LA-26, LA-27) with U_0 of (LA-25).
The right-hand side is assembled from the derived pieces of ``derivations.linear_merged.block_system``.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from derivations import linear_merged as derivation

from .. import compile as compiler
from .. import compiled_flow
from ..events import midpoint_drop_time
from ..integrate import Solution, integrate
from ..specs import LinearAttentionSpec, LinearMergedSpec
from ..tasks import linear_attention as task
from ..trajectory import Trajectory, provenance


HEAD_POLYNOMIALS = ("head_b", "head_rhs")     # tabulated for the compiled integrator


@dataclass(frozen=True)
class Moments:
    """Parameters of the loss as a quadratic in B, in the argument order of the compiled ``G``/``loss``.

    ``basis`` is the orthogonal matrix whose columns span the coordinates B is written in: the covariance
    eigenbasis (population) or the identity (sample moments, original basis)."""
    kind: str               # "population" or "sample"
    values: np.ndarray
    basis: np.ndarray
    minimum: float          # L* of (LA-21), or the minimum of the sample quadratic


def population_moments(spec: LinearAttentionSpec, cov: task.Covariance) -> Moments:
    lam = cov.eigenvalues
    N, c = spec.context, spec.c
    lstar = float(np.sum(lam * (lam + lam.sum()) / ((N + 1) * lam + lam.sum())))     # (LA-21)
    return Moments("population", np.array([*lam, N, c], dtype=float), cov.basis, lstar)


def sample_moments(spec: LinearAttentionSpec, data: task.TrainingSet) -> Moments:
    """A = mean(phi phi^T), g = mean(phi y_q), mean(y_q^2), phi = c vec(h x_q^T) (§5, LA-4), and the
    minimum of the resulting quadratic (reachable: B is unconstrained for H >= 1)."""
    D = spec.dim
    h = np.einsum("pn,pnd->pd", data.y, data.x) / spec.context
    phi = spec.c * (h[:, :, None] * data.xq[:, None, :]).reshape(len(h), D * D)
    A = phi.T @ phi / len(h)
    g = phi.T @ data.yq / len(h)
    yy = float(np.mean(data.yq ** 2))
    upper = A[np.triu_indices(D * D)]      # the order of derivations.linear_merged.loss_in_b("sample")
    values = np.concatenate([upper, g, [yy]])
    minimum = float(yy - g @ np.linalg.solve(A, g))
    return Moments("sample", values, np.eye(D), minimum)


class ReducedFlow:
    """Gradient flow (LA-22) of the H-head reduced model for given moments.

    State vector: theta of shape (1 + D^2, H) flattened row-major; column i is head i's (v_i, U_i row-major),
    U_i written in ``moments.basis``.
    """

    def __init__(self, dim: int, heads: int, moments: Moments, cache_dir=None):
        self.dim, self.heads, self.moments = dim, heads, moments
        self.system = compiler.compile_system(derivation, "block_system", {"D": dim, "moments": moments.kind},
                                              cache_dir, polynomials=HEAD_POLYNOMIALS)
        f = self.system.functions
        self._G, self._loss, self._head_b, self._head_rhs = f["G"], f["loss"], f["head_b"], f["head_rhs"]
        self._head_jac, self._head_curv = f["head_jac"], f["head_curv"]
        self._hessian = f["hessian"](moments.values)
        self.n = 1 + dim * dim
        # The derived loss is quadratic in B (its Hessian has no B in it), so G(B) = G(0) - Hess vec B exactly.
        self._G0 = self._G(np.zeros(dim * dim), moments.values)

    def theta(self, y: np.ndarray) -> np.ndarray:
        """(n, H) for one state, (n, H, T) for states stacked as the rows of a (T, n H) array."""
        y = np.asarray(y)
        return y.reshape(self.n, self.heads) if y.ndim == 1 else y.T.reshape(self.n, self.heads, -1)

    def b_vector(self, y: np.ndarray) -> np.ndarray:
        """vec B = sum_i vec B_i (D^2,), or (D^2, T) for stacked states, from the derived head map (LA-11)
        evaluated in compiled code."""
        y = np.asarray(y, dtype=float)
        b = compiled_flow.b_vectors(np.ascontiguousarray(y.reshape(-1, self.n * self.heads)),
                                   self.head_flow.packed)
        return b[:, 0] if y.ndim == 1 else b

    def loss(self, y: np.ndarray) -> np.ndarray:
        """Reduced loss at one state (scalar array) or at stacked states (T,)."""
        return self.loss_of_b(self.b_vector(y))

    def loss_of_b(self, b: np.ndarray) -> np.ndarray:
        """Loss (LA-19 or §5) at vec B (D^2,) or at stacked (D^2, T)."""
        return self._loss(b, self.moments.values)[0]

    def G(self, y: np.ndarray) -> np.ndarray:
        """G = -dL/dB (LA-18) at the state(s) y."""
        b = self.b_vector(y)
        return self._G0.reshape((-1,) + (1,) * (b.ndim - 1)) - self._hessian @ b

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """dtheta_i/dt = (dB_i/dtheta_i)^T G(B) for every head (LA-22 via the derived head pull-back)."""
        G = self.G(y)
        return self._head_rhs(self.theta(y), np.repeat(G[:, None], self.heads, axis=1)).reshape(-1)

    def jacobian(self, t: float, y: np.ndarray) -> np.ndarray:
        """d rhs / d theta = -J^T Hess J + blockdiag(sum_ab G_ab d^2 B_ab / dtheta^2)."""
        th = self.theta(y)
        G = self.G(y)
        J = self._head_jac(th).reshape(self.dim ** 2, self.n * self.heads)
        out = -J.T @ self._hessian @ J
        curv = self._head_curv(th, np.repeat(G[:, None], self.heads, axis=1))     # (n, n, H)
        idx = np.arange(self.n)[:, None] * self.heads
        for h in range(self.heads):
            out[np.ix_(idx[:, 0] + h, idx[:, 0] + h)] += curv[:, :, h]
        return out

    @functools.cached_property
    def head_flow(self) -> compiled_flow.HeadFlow:
        """The same flow in the form the compiled integrator takes."""
        p = self.system.polynomials
        return compiled_flow.HeadFlow(self.n, self.heads, self._G0, self._hessian, p["head_b"], p["head_rhs"])


    def solve(self, y0: np.ndarray, t_max: float, method: str = "compiled", **options) -> Solution:
        """Integrate from y0 to t_max: ``method="compiled"`` (default) runs DOP853 in machine code
        (``compiled_flow``); a ``solve_ivp`` method name runs ``rhs`` through ``integrate.integrate``."""
        if method == "compiled":
            return compiled_flow.solve(self.head_flow, y0, t_max, **options)
        return integrate(self.rhs, y0, t_max, jac=self.jacobian, method=method, **options)


def eigen_diagonal(b: np.ndarray, to_eigen: np.ndarray) -> np.ndarray:
    """Diagonal of E^T B E for vec B (row-major) stacked as the columns of b (D^2, T): (T, D)."""
    weights = np.einsum("ad,bd->abd", to_eigen, to_eigen).reshape(-1, to_eigen.shape[1])
    return b.T @ weights


def projection(W: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LA-35): v_i = r_i[D], U_i = W_i[:D, :D] (original basis)."""
    D = r.shape[1] - 1
    return r[:, D].copy(), W[:, :D, :D].copy()


def pack(v: np.ndarray, U: np.ndarray, basis: np.ndarray) -> np.ndarray:
    """State vector from v (H,) and U (H, D, D) in the original basis, rotated to ``basis``."""
    U_rot = np.einsum("da,hde,eb->hab", basis, U, basis)
    H = v.size
    return np.concatenate([v[None, :], U_rot.reshape(H, -1).T], axis=0).reshape(-1)


def moments_for(spec: LinearAttentionSpec, cov: task.Covariance, rngs: dict, moments: str | None = None) -> Moments:
    """Population moments (LA-16) or the §5 sample moments of the very training set the reference draws
    from ``rngs["data"]`` (default: sample when ``spec.train_size`` is given). Shared by attn-m and attn-s."""
    kind = moments or ("sample" if spec.train_size is not None else "population")
    if kind == "population":
        return population_moments(spec, cov)
    data = task.draw_training_set(cov, spec.context, spec.sample_size, rngs["data"],
                                  spec.centre_inputs, spec.whiten_tasks)
    return sample_moments(spec, data)


def setup(spec: LinearMergedSpec, moments: str | None = None, cache_dir=None):
    """The flow and its initial state for the spec's seed, with ``moments`` population or sample
    (default: sample when ``spec.train_size`` is given)."""
    rngs = task.streams(spec.seed)
    cov = task.spec_covariance(spec, rngs)
    W, r = task.merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
    mom = moments_for(spec, cov, rngs, moments)
    flow = ReducedFlow(spec.dim, spec.heads, mom, cache_dir)
    v, U = projection(W, r)
    return flow, pack(v, U, mom.basis), cov


def predict(spec: LinearMergedSpec, moments: str | None = None, t_eval: np.ndarray | None = None,
            cache_dir=None) -> Trajectory:
    """Loss curve of the reduced flow (LA-22) from the projected initial weights (LA-35).

    Observables: ``beta`` (diagonal of B in the covariance eigenbasis), ``v`` (value weights),
    ``balance`` (v_i^2 - ||U_i||_F^2, conserved by (LA-36)). Meta holds the minimum loss ``L_star``."""
    flow, y0, cov = setup(spec, moments, cache_dir)
    sol = flow.solve(y0, spec.final_time, t_eval=t_eval)
    thetas = sol.y.reshape(len(sol.t), flow.n, spec.heads)
    b = flow.b_vector(sol.y)
    loss = flow.loss_of_b(b)
    beta = eigen_diagonal(b, cov.basis.T @ flow.moments.basis)
    v = thetas[:, 0, :]
    balance = v ** 2 - np.einsum("tjh,tjh->th", thetas[:, 1:, :], thetas[:, 1:, :])
    meta = provenance("attn-m", spec, f"theory-{flow.moments.kind}", flow.system.derivation_hash,
                      L_star=flow.moments.minimum, tau=cov.trace, c=spec.c, rhs_evaluations=sol.nfev,
                      loss="MSE without 1/2 (LA-12)", time="gradient-flow time t")
    return Trajectory(t=sol.t, loss=loss, observables={"beta": beta, "v": v, "balance": balance},
                      events={"drop_time": midpoint_drop_time(sol.t, loss)}, meta=meta)


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
    rngs = task.streams(spec.seed)
    cov = task.spec_covariance(spec, rngs)
    W, r = task.merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
    v, U = projection(W, r)
    lam, N, c = cov.eigenvalues, spec.context, spec.c
    s = (N + 1) / N * lam ** 2 + lam.sum() / N * lam
    bhat = lam ** 2 / np.linalg.norm(lam ** 2)
    U_eig = np.einsum("da,hde,eb->hab", cov.basis, U, cov.basis)
    m = 0.5 * (v + np.einsum("hdd,d->h", U_eig, bhat))          # (LA-25), <U_i, b_hat> in the eigenbasis
    return LogisticCourse(normb=c * float(np.linalg.norm(lam ** 2)), a=c ** 2 * float(np.sum(bhat ** 2 * s * lam)),
                          U0=float(np.sum(m ** 2)), tau=cov.trace)


def closed_form(spec: LinearMergedSpec, t: np.ndarray | None = None) -> Trajectory:
    """Trajectory of the logistic course (LA-27); exact for Lambda = lambda I on the aligned set."""
    course = logistic_course(spec)
    t = np.linspace(0.0, spec.final_time, 2001) if t is None else np.asarray(t, dtype=float)
    meta = provenance("attn-m", spec, "closed-form", compiler.derivation_hash(derivation),
                      U0=course.U0, normb=course.normb, a=course.a, drop_time_formula=course.drop_time)
    return Trajectory(t=t, loss=course.loss(t), observables={"U": course.U(t)}, events={"drop_time": course.drop_time},
                      meta=meta)


# ---------------------------------------------------------------------------------------------------------
# Hooks used by the registry (families.py)

def summarise(trajectory: Trajectory) -> dict:
    """Metrics applied identically to theory and reference curves: the midpoint drop time (LA-28's
    definition, levels from the curve itself) and the final loss."""
    return {"drop_time": midpoint_drop_time(trajectory.t, trajectory.loss), "final_loss": float(trajectory.loss[-1])}


def comparison_theories(spec: LinearMergedSpec) -> dict[str, Trajectory]:
    """The curves a comparison shows: the sample-moment flow on the reference's own training set (the main
    theory curve, §5), the population flow and the closed form (LA-27)."""
    sample_spec = spec.replace(train_size=spec.sample_size)
    return {"theory": predict(sample_spec), "population flow": predict(spec, moments="population"),
            "closed form": closed_form(spec)}


def levels(spec: LinearMergedSpec, theory: Trajectory) -> dict[str, float]:
    """Horizontal reference levels: the population minimum L* (LA-21) and the sample minimum."""
    rngs = task.streams(spec.seed)
    cov = task.spec_covariance(spec, rngs)
    out = {"L* (LA-21)": population_moments(spec, cov).minimum}
    if theory.meta.get("kind") == "theory-sample":
        out["sample minimum"] = float(theory.meta["L_star"])
    return out


def flow_probe(spec: LinearMergedSpec):
    """(rhs(y), loss(y), y0) of the reduced flow, for the common test RHS = -grad loss."""
    flow, y0, _ = setup(spec)
    return (lambda y: flow.rhs(0.0, y)), (lambda y: float(flow.loss(y))), y0
