"""attn-s under the §12 mixture of random and fixed tasks (linear_attention_iwl.md §12, LA-54).

Separate key and query of rank R: W_i = K_i^T Q_i, so the model is linear in the same features as attn-m,
Theta = sum_i r_i (x) (K_i^T Q_i^x) (``reduced_dynamics.derivations.linear_iwl_separate``), and its training
loss and both test losses (LA-38) are the quadratics of (LA-44) with the moments of ``iwl`` (LA-42, LA-43):
population moments of the mixture, or the sample moments of the very training set the reference draws (then
the flow is the small-learning-rate limit of full-batch gradient descent on every weight that reaches the
prediction). Only the parametrisation differs, and with it the flow (LA-54):

    dr_i/dt = G : W_i,   dK_i/dt = Q_i^x Gamma_i^T,   dQ_i^x/dt = K_i Gamma_i,   Gamma_i = G^T r_i,

G = 2 b - 2 A Theta read as (D+1) x (D+1) x D, W_i = K_i^T Q_i^x and Gamma_i[b, c] = sum_a r_i[a] G[a, b, c].
The right-hand side below is this NumPy form; the tests hold it to the derived, compiled pull-back
(``compiled_system``) at roundoff and to finite differences of the loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from reduced_dynamics.derivations import linear_iwl_separate as derivation

from ... import compile as compiler
from ...events import midpoint_drop_time
from ...integrate import integrate
from ...specs import LinearSeparateSpec
from ...tasks import linear_attention as task
from ...trajectory import Trajectory, provenance
from . import discrete
from .iwl import Moments, law_moments, mixture_moments, sample_moments
from .mixture_observables import regression_matrix


def compiled_system(dim: int, rank: int, cache_dir=None):
    """The derived pieces (head_theta, head_rhs, head_jvp) compiled through the disk cache."""
    return compiler.compile_system(derivation, "system", {"D": dim, "R": rank}, cache_dir)


@dataclass(frozen=True)
class SeparateIWLFlow:
    """Gradient flow (LA-54) of the H-head, rank-R attn-s model on a quadratic loss in Theta.
    State: heads stacked, each (r_i (D+1), K_i row-major (R x (D+1)), Q_i^x row-major (R x D)): the full
    weights themselves, so weight decay lambda adds -lambda y to the flow and lambda to the Hessian (WD-2, WD-3)."""
    train: Moments
    tests: dict          # name -> Moments (same coordinates as train)
    dim: int
    rank: int
    heads: int
    decay: float = 0.0

    @property
    def n(self) -> int:
        D, R = self.dim, self.rank
        return (D + 1) * (R + 1) + R * D

    def split(self, y: np.ndarray):
        """(r (H, D+1), K (H, R, D+1), Q (H, R, D)) of one state."""
        D, R, H = self.dim, self.rank, self.heads
        Y = np.asarray(y).reshape(H, self.n)
        return (Y[:, :D + 1], Y[:, D + 1:(D + 1) * (R + 1)].reshape(H, R, D + 1),
                Y[:, (D + 1) * (R + 1):].reshape(H, R, D))

    def thetas(self, ys: np.ndarray) -> np.ndarray:
        """Theta (LA-44 coordinates, (D+1)^2 D numbers) of stacked states (T, H n)."""
        D, R, H = self.dim, self.rank, self.heads
        Y = np.asarray(ys).reshape(-1, H, self.n)
        r = Y[:, :, :D + 1]
        K = Y[:, :, D + 1:(D + 1) * (R + 1)].reshape(-1, H, R, D + 1)
        Q = Y[:, :, (D + 1) * (R + 1):].reshape(-1, H, R, D)
        return np.einsum("tha,thkb,thkc->tabc", r, K, Q, optimize=True).reshape(len(Y), -1)

    def theta(self, y: np.ndarray) -> np.ndarray:
        return self.thetas(np.asarray(y)[None])[0]

    def drive(self, theta: np.ndarray) -> np.ndarray:
        """G = 2 b - 2 A Theta = -dL/dTheta (LA-44), as (D+1, D+1, D)."""
        D = self.dim
        return (2.0 * self.train.b - 2.0 * self.train.A @ theta).reshape(D + 1, D + 1, D)

    @staticmethod
    def _pullback(G, r, K, Q):
        W = np.einsum("hka,hkc->hac", K, Q)
        Gamma = np.einsum("abc,ha->hbc", G, r)
        return (np.einsum("abc,hbc->ha", G, W), np.einsum("hbc,hkc->hkb", Gamma, Q),
                np.einsum("hkb,hbc->hkc", K, Gamma))

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        r, K, Q = self.split(y)
        dr, dK, dQ = self._pullback(self.drive(self.theta(y)), r, K, Q)
        out = self._pack(dr, dK, dQ)
        return out - self.decay * np.asarray(y) if self.decay else out        # (WD-2)

    def _pack(self, dr, dK, dQ) -> np.ndarray:
        H = self.heads
        return np.concatenate([dr, dK.reshape(H, -1), dQ.reshape(H, -1)], axis=1).reshape(-1)

    def hvp(self, y: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Hess L . u at y (LR-9): minus the derivative of the right-hand side along u, by the product rule on
        the trilinear pull-back with dG = -2 A dTheta; exact (the flow is a polynomial)."""
        D = self.dim
        r, K, Q = self.split(y)
        ur, uK, uQ = self.split(u)
        G = self.drive(self.theta(y))
        W = np.einsum("hka,hkc->hac", K, Q)
        dW = np.einsum("hka,hkc->hac", uK, Q) + np.einsum("hka,hkc->hac", K, uQ)
        dTheta = (np.einsum("ha,hbc->abc", ur, W) + np.einsum("ha,hbc->abc", r, dW)).reshape(-1)
        dG = (-2.0 * self.train.A @ dTheta).reshape(D + 1, D + 1, D)
        Gamma = np.einsum("abc,ha->hbc", G, r)
        dGamma = np.einsum("abc,ha->hbc", dG, r) + np.einsum("abc,ha->hbc", G, ur)
        dr = np.einsum("abc,hbc->ha", dG, W) + np.einsum("abc,hbc->ha", G, dW)
        dK = np.einsum("hbc,hkc->hkb", dGamma, Q) + np.einsum("hbc,hkc->hkb", Gamma, uQ)
        dQ = np.einsum("hkb,hbc->hkc", uK, Gamma) + np.einsum("hkb,hbc->hkc", K, dGamma)
        out = -self._pack(dr, dK, dQ)
        return out + self.decay * np.asarray(u) if self.decay else out        # (WD-3)

    def modified_rhs(self, eta: float):
        """Right-hand side of the modified flow (LR-5) at step eta: f + (eta/2) Hess L f."""
        def rhs(t: float, y: np.ndarray) -> np.ndarray:
            f = self.rhs(t, y)
            return f + 0.5 * eta * self.hvp(y, f)
        return rhs

    def derived_rhs(self, y: np.ndarray, system=None) -> np.ndarray:
        """The same right-hand side from the derived, compiled pull-back (``derivation.system``)."""
        system = compiled_system(self.dim, self.rank) if system is None else system
        Y = np.asarray(y).reshape(self.heads, self.n)
        G = self.drive(self.theta(y)).reshape(-1)
        return system["head_rhs"](Y.T, np.repeat(G[:, None], self.heads, axis=1)).T.reshape(-1)


def initial_state(weights: dict) -> np.ndarray:
    """The reference's initial attn-s weights as the state: (r_i, K_i, Q_i[:, :D]) per head."""
    r, K, Q = weights["r"], weights["K"], weights["Q"]
    D, H = r.shape[1] - 1, len(r)
    return np.concatenate([r, K.reshape(H, -1), Q[:, :, :D].reshape(H, -1)], axis=1).reshape(-1)


def setup(spec: LinearSeparateSpec, moments: str | None = None, tests: str = "population",
          test_size: int = task.TEST_SIZE):
    """(flow, initial state, problem) for the spec's seed: population moments of the mixture p D_rand +
    (1 - p) D_fix (D_noise at p = 0) or the sample moments of the reference's training set (default with
    ``train_size``); test losses (LA-38) from the population laws or the reference's own two test sets."""
    kind = moments or ("sample" if spec.train_size is not None else "population")
    drawn = task.draw(spec, train=(kind == "sample"), test_size=test_size if tests == "sample" else 0)
    cov, w_bar, N, kappa = drawn.covariance.matrix, drawn.task_vector, spec.context, spec.kappa
    train = sample_moments(drawn.train, kappa) if kind == "sample" else mixture_moments(spec.icl, cov, w_bar, N, kappa)
    if tests == "sample":
        test_moments = {name: sample_moments(data, kappa) for name, data in drawn.tests.items()}
    else:
        test_moments = {"in_context": law_moments("rand", cov, w_bar, N, kappa),
                        "in_weight": law_moments("noise", cov, w_bar, N, kappa)}
    flow = SeparateIWLFlow(train, test_moments, spec.dim, spec.rank, spec.heads, spec.weight_decay)
    return flow, initial_state(drawn.weights), drawn


def predict(spec: LinearSeparateSpec, moments: str | None = None, t_eval: np.ndarray | None = None,
            rtol: float = 1e-9, tests: str = "population", test_size: int = task.TEST_SIZE,
            held_out: int = 2000) -> Trajectory:
    """Training loss and both test losses (LA-38) of the attn-s flow (LA-54) from the very initial weights of
    the reference, at ``spec.discretisation``: the flow, the GD map at spec.lr (LR-3; on sample moments this
    is full-batch GD of every weight that reaches the prediction) or the modified flow (LR-5).

    Observables: ``test_loss_in_context``, ``test_loss_in_weight`` (LA-38), and those of the invariant-manifold
    route (``separate.predict``) read off Theta: ``beta`` (diagonal, in the covariance eigenbasis, of the
    in-context regression matrix B of (LA-40), the coefficient of g x_q^T), ``learned``, ``components``,
    ``test_loss`` (the model's mean squared error on ``held_out`` fresh prompts of the in-context law, the
    prompts ``separate.held_out_prompts`` uses), ``pcr_test_loss``, ``v`` (r_i[D]) and ``balance``
    (||r_i||^2 - ||K_i||_F^2, conserved by the flow, LA-37). Events: ``drop_time`` of the training loss and
    the §12.11 drops of the two test losses."""
    from . import separate
    flow, y0, drawn = setup(spec, moments, tests, test_size)
    if spec.discretisation == "map":
        sol = discrete.gd_map(flow, y0, spec.lr, spec.gd_steps)
    else:
        rhs = flow.modified_rhs(spec.lr) if spec.discretisation == "modified" else flow.rhs
        sol = integrate(rhs, y0, spec.final_time, method="DOP853", rtol=rtol, t_eval=t_eval)
    thetas = flow.thetas(sol.y)
    loss = flow.train.loss(thetas)
    L_ic, L_iw = flow.tests["in_context"].loss(thetas), flow.tests["in_weight"].loss(thetas)
    cov = drawn.covariance
    B = regression_matrix(thetas, spec.dim)
    beta = np.einsum("da,tde,ea->ta", cov.basis, B, cov.basis)
    learned = beta / separate.population_b_star(spec, cov)
    components = np.sum(learned >= separate.LEARNED, axis=1)
    held = task.draw(spec, train=False, test_size=held_out).tests["in_context"]   # separate.held_out_prompts
    test_loss = sample_moments(held, spec.kappa).loss(thetas)
    h = np.einsum("pn,pnd->pd", held.y, held.x) / spec.context
    pcr = np.array([np.mean((separate.pcr_predict(h, held.xq, cov, spec.context, m) - held.yq) ** 2)
                    for m in range(spec.dim + 1)])
    r, K, _ = (np.stack(x) for x in zip(*(flow.split(y) for y in sol.y)))
    kind = moments or ("sample" if spec.train_size is not None else "population")
    events = {"drop_time": midpoint_drop_time(sol.t, loss),
              **task.drop_events(sol.t, L_ic, L_iw, cov, spec.context)}
    meta = provenance("attn-s", spec, f"theory-iwl-{kind}", compiler.derivation_hash(derivation), icl=spec.icl,
                      test_moments=tests, discretisation=spec.discretisation, L_min=flow.train.minimum,
                      ladder=separate.ladder(spec), pcr_test_losses=pcr.tolist(),
                      loss="MSE without 1/2 (LA-44)", time="gradient-flow time t")
    return Trajectory(t=sol.t, loss=loss, events=events, meta=meta, observables={
        "beta": beta, "learned": learned, "components": components.astype(float), "test_loss": test_loss,
        "pcr_test_loss": pcr[components], "v": r[:, :, spec.dim], "balance": np.sum(r ** 2, axis=2) - np.sum(K ** 2, axis=(2, 3)),
        "test_loss_in_context": L_ic, "test_loss_in_weight": L_iw})
