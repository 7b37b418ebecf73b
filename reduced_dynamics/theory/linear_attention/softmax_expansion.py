"""Softmax attention on in-context linear regression (linear_attention_iwl.md §13): the small-score
expansion, an APPROXIMATION, not an exact reduction.

To first order in the scores, softmax attention is a constant (uniform-attention) term plus linear
attention with kappa = 1/(N+1) on centred tokens (LA-51). Its population loss on the invariant manifold is
(LA-52), a function of B = sum_i B_i and V = sum_i v_i, derived in ``reduced_dynamics.derivations.linear_iwl``; this module
integrates its gradient flow for the heads of attn-m (B_i = v_i U_i) or attn-s (B_i = v_i K_i^T Q_i) from
the projection (LA-35) of the very initial weights the reference draws, and gives the centred ladder
(LA-53) as reference levels. What it does and does not predict is stated in §13.3: the escape from the
small-initialisation plateau (first drop), one drop for attn-m, a staircase for attn-s whose rests sit
above the centred ladder; not the plateau heights at finite time nor the later escape times.
"""
from __future__ import annotations

import functools

import numpy as np
import sympy as sp

from reduced_dynamics.derivations import linear_iwl as derivation

from ... import compile as compiler
from ...errors import SpecError
from ...events import midpoint_drop_time
from ...integrate import integrate
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance

LABEL = "small-score expansion of softmax attention (LA-51, LA-52): an approximation, not an exact reduction"


@functools.lru_cache(maxsize=None)
def _functions(D: int):
    system = derivation.expansion_system(D)
    return {name: sp.lambdify(args, outs, "numpy") for name, (args, outs) in system.items()}


def centred_ladder(eigenvalues, context: int) -> list[float]:
    """(LA-53) levels L(M_0) .. L(M_D), eigenvalues in decreasing order."""
    levels, _ = derivation.centred_ladder([float(x) for x in eigenvalues], context)
    return [float(x) for x in levels]


class SampleExpansion:
    """The expansion (LA-51) on the invariant set with the moments of a training set instead of (LA-52):
    yhat = V ybar + m_c^T B x_q / (N+1), m_c = (M_c)_{y,x}, features phi = (ybar, vec(m_c x_q^T)/(N+1)),
    written in the covariance eigenbasis E (x -> E^T x). L(V, B) = yy - 2 b.theta + theta^T A theta."""

    def __init__(self, data: task.TrainingSet, basis: np.ndarray):
        Z = task.token_matrices(data)
        D = data.xq.shape[1]
        Zc = Z - Z.mean(axis=2, keepdims=True)
        m_c = np.einsum("pm,pdm->pd", Zc[:, D], Zc[:, :D]) @ basis
        xq = data.xq @ basis
        phi = np.concatenate([Z[:, D].mean(axis=1)[:, None],
                              (m_c[:, :, None] * xq[:, None, :]).reshape(len(xq), -1) / Z.shape[2]], axis=1)
        P = len(phi)
        self.A, self.b, self.yy = phi.T @ phi / P, phi.T @ data.yq / P, float(np.mean(data.yq ** 2))

    def loss(self, B, V) -> float:
        theta = np.concatenate([[V], B.ravel()])
        return float(self.yy - 2 * self.b @ theta + theta @ self.A @ theta)

    def ladder(self) -> list[float]:
        """Sample centred ladder: the minimum with B restricted to the top-m x top-m eigen-block (V free),
        m = 0..D (the sample counterpart of (LA-53))."""
        D = int(round(np.sqrt(self.b.size - 1)))
        out = []
        for m in range(D + 1):
            keep = [0] + [1 + a * D + c for a in range(m) for c in range(m)]
            A, b = self.A[np.ix_(keep, keep)], self.b[keep]
            out.append(float(self.yy - b @ np.linalg.solve(A, b)))
        return out

    def gradient(self, B, V):
        """(G, G_V) = -dL/dB, -dL/dV."""
        g = 2 * self.b - 2 * self.A @ np.concatenate([[V], B.ravel()])
        return g[1:].reshape(B.shape), g[0]


class ExpansionFlow:
    """Gradient flow of (LA-52) (or of ``SampleExpansion``) for H heads in the covariance eigenbasis.
    attn-m state per head: (v, U (D x D)); attn-s: (v, K (R x D), Q (R x D)). With G = -dL/dB, G_V = -dL/dV:
    dv_i = <G, dB_i/dv_i> + G_V, dU_i = v_i G (attn-m), dK_i = v_i Q_i G^T, dQ_i = v_i K_i G (attn-s)."""

    def __init__(self, eigenvalues, context: int, heads: int, rank: int | None = None,
                 sample: SampleExpansion | None = None):
        self.lam = np.asarray(eigenvalues, dtype=float)
        self.D, self.H, self.R, self.N = self.lam.size, heads, rank, context
        self.params = [*self.lam, float(context)]
        self.f = _functions(self.D)
        self.sample = sample
        self.width = 1 + (self.D * self.D if rank is None else 2 * rank * self.D)

    def unpack(self, y):
        Y = np.asarray(y).reshape(self.H, self.width)
        v = Y[:, 0]
        if self.R is None:
            U = Y[:, 1:].reshape(self.H, self.D, self.D)
            return v, U, None, None
        K = Y[:, 1:1 + self.R * self.D].reshape(self.H, self.R, self.D)
        Q = Y[:, 1 + self.R * self.D:].reshape(self.H, self.R, self.D)
        return v, np.einsum("hra,hrb->hab", K, Q), K, Q

    def bv(self, y):
        v, U, _, _ = self.unpack(y)
        return np.einsum("h,hab->ab", v, U), float(v.sum())

    def loss(self, y) -> float:
        B, V = self.bv(y)
        if self.sample is not None:
            return self.sample.loss(B, V)
        return float(self.f["loss"](list(B.ravel()), [V], self.params)[0])

    def rhs(self, t, y):
        v, U, K, Q = self.unpack(y)
        B, V = np.einsum("h,hab->ab", v, U), float(v.sum())
        if self.sample is not None:
            G, GV = self.sample.gradient(B, V)
        else:
            g = np.asarray(self.f["G"](list(B.ravel()), [V], self.params), dtype=float)
            G, GV = g[:-1].reshape(self.D, self.D), g[-1]
        dv = np.einsum("ab,hab->h", G, U) + GV
        if self.R is None:
            rest = (v[:, None, None] * G).reshape(self.H, -1)
        else:
            dK = v[:, None, None] * np.einsum("hrc,ac->hra", Q, G)
            dQ = v[:, None, None] * np.einsum("hra,ac->hrc", K, G)
            rest = np.concatenate([dK.reshape(self.H, -1), dQ.reshape(self.H, -1)], axis=1)
        return np.concatenate([dv[:, None], rest], axis=1).reshape(-1)


def initial_state(spec, drawn: task.Problem) -> np.ndarray:
    """Projection (LA-35) of the reference's initial weights, rotated to the covariance eigenbasis E."""
    E, D, w = drawn.covariance.basis, spec.dim, drawn.weights
    v = w["r"][:, D]
    if "W" in w:
        U = np.einsum("da,hde,eb->hab", E, w["W"][:, :D, :D], E)
        return np.concatenate([v[:, None], U.reshape(len(v), -1)], axis=1).reshape(-1)
    K, Q = w["K"][:, :, :D] @ E, w["Q"][:, :, :D] @ E
    return np.concatenate([v[:, None], K.reshape(len(v), -1), Q.reshape(len(v), -1)], axis=1).reshape(-1)


def predict(spec, t_eval: np.ndarray | None = None, rtol: float = 1e-8, weights: dict | None = None,
            moments: str | None = None) -> Trajectory:
    """Loss of the expansion flow for an attn-m or attn-s spec with ``attention="softmax"``: population
    moments (LA-52), or (``moments="sample"``, the default when ``spec.train_size`` is given) the moments of
    the reference's own training set; from the spec's initial weights (or the full-model ``weights``
    given). Observables ``beta`` (diagonal of B in the eigenbasis), ``V`` (sum of value weights); meta
    ``approximation`` says it is an expansion, ``ladder`` the centred levels (LA-53)."""
    if spec.icl != 1.0:
        raise SpecError("icl", "1 for the softmax expansion (§13 treats the random-task law only)", spec.icl)
    if spec.weight_decay:
        raise SpecError("weight_decay", "0 for the softmax expansion (weight_decay.md covers linear attention)",
                        spec.weight_decay)
    kind = moments or ("sample" if spec.train_size is not None else "population")
    drawn = task.draw(spec, train=(kind == "sample"))
    sample = SampleExpansion(drawn.train, drawn.covariance.basis) if kind == "sample" else None
    if weights is not None:
        drawn = task.Problem(drawn.covariance, weights, drawn.train, {}, drawn.task_vector)
    lam = drawn.covariance.eigenvalues
    flow = ExpansionFlow(lam, spec.context, spec.heads, spec.rank if spec.model == "attn-s" else None, sample)
    # LSODA: once a head has died (K_i, Q_i -> 0 under the constant-term pull) the flow is stiff and an
    # explicit method can leave its stability region (seen with DOP853 on the aligned attn-s start).
    sol = integrate(flow.rhs, initial_state(spec, drawn), spec.final_time, method="LSODA", rtol=rtol, t_eval=t_eval)
    loss = np.array([flow.loss(y) for y in sol.y])
    bv = [flow.bv(y) for y in sol.y]
    beta = np.array([np.diag(B) for B, _ in bv])
    V = np.array([v for _, v in bv])
    ladder = centred_ladder(lam, spec.context)
    extra = {"sample_ladder": sample.ladder()} if sample is not None else {}
    meta = provenance(spec.model, spec, f"theory-softmax-expansion-{kind}", compiler.derivation_hash(derivation),
                      approximation=LABEL, ladder=ladder, attention="softmax", **extra,
                      loss="MSE without 1/2 (LA-52)", time="gradient-flow time t")
    return Trajectory(t=sol.t, loss=loss, observables={"beta": beta, "V": V},
                      events={"drop_time": midpoint_drop_time(sol.t, loss)}, meta=meta)
