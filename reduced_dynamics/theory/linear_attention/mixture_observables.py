"""Observables shared by the invariant-manifold routes and the §12 mixture routes of attn-m and attn-s, so
that a curve records the same names at every value of ``icl`` (linear_attention_iwl.md §12, LA-40, LA-55).

* ``regression_matrix``: the in-context regression matrix B of (LA-40), the coefficient of g x_q^T in the
  prediction, read off Theta (LA-44): B = Theta[D, :D, :] + Theta[:D, D, :] (M is symmetric, so the two
  slots of M multiplying g meet the same feature). On the invariant manifold it is sum_i B_i of (LA-11).
* ``manifold_test_losses``: the two test losses (LA-38) of a state on the invariant manifold, where Theta
  has only its label row, Theta[D, :D, :] = B: L_IC is the population loss (LA-19) of B (D_rand is the
  p = 1 training law) and L_IW has the closed form (LA-55). Both are checked in the tests against the
  derived moments of ``iwl`` evaluated on the embedded Theta.
"""
from __future__ import annotations

import numpy as np


def regression_matrix(thetas: np.ndarray, dim: int) -> np.ndarray:
    """B (T, D, D), original basis, of stacked Theta (T, (D+1)^2 D) (LA-40)."""
    Th = np.asarray(thetas).reshape(-1, dim + 1, dim + 1, dim)
    return Th[:, dim, :dim, :] + Th[:, :dim, dim, :]


def in_weight_loss_on_manifold(B: np.ndarray, cov_matrix: np.ndarray, w_bar: np.ndarray, context: int,
                               c: float) -> np.ndarray:
    """(LA-55): L_IW(B) = w_bar^T Lambda w_bar + (c^2 / N) tr(B^T Lambda B Lambda) for B (T, D, D), original
    basis. On D_noise the context labels are independent of everything, so E g = 0 and E g g^T = N Lambda
    (LA-42): the cross term vanishes and the prediction kappa g^T B x_q only adds its variance."""
    B = np.asarray(B)
    LBL = np.einsum("ab,tbc,cd->tad", cov_matrix, B, cov_matrix)
    return float(w_bar @ cov_matrix @ w_bar) + c ** 2 / context * np.einsum("tab,tab->t", B, LBL)


def in_context_loss_on_manifold(B: np.ndarray, spec, cov) -> np.ndarray:
    """L_IC(B) for B (T, D, D), original basis: the population loss (LA-19) of B, evaluated by the derived
    attn-m loss pieces (``merged.merged_flow`` with population moments, B written in the eigenbasis)."""
    from .flow import population_moments
    from .merged import merged_flow
    flow = merged_flow(spec.dim, 1, population_moments(spec, cov))
    beta = np.einsum("da,tde,eb->tab", cov.basis, np.asarray(B), cov.basis)
    return flow.loss_of_b(beta.reshape(len(beta), -1).T)


def manifold_test_losses(B: np.ndarray, spec, cov, w_bar: np.ndarray) -> dict:
    """Both test losses (LA-38) of states on the invariant manifold with regression matrix B (T, D, D),
    original basis, for the input covariance ``cov`` and the fixed task ``w_bar`` of §12.1."""
    return {"test_loss_in_context": in_context_loss_on_manifold(B, spec, cov),
            "test_loss_in_weight": in_weight_loss_on_manifold(B, cov.matrix, w_bar, spec.context, spec.c)}


def merged_head_observables(ys: np.ndarray, full_thetas: np.ndarray, rows: int, heads: int, dim: int,
                            cov_basis: np.ndarray, v_index: int) -> dict:
    """``beta`` (diagonal of E^T B E, B of LA-40), ``v`` (the label entry of each r_i, at ``v_index`` of the
    head's row vector) and ``balance`` (||r_i||^2 - ||w_i||^2, conserved by LA-44; v_i^2 - ||U_i||_F^2 on the
    invariant manifold, LA-36) of attn-m states stacked (T, H (rows + cols)), heads laid out as ``iwl.IWLFlow``."""
    Y = np.asarray(ys).reshape(len(ys), heads, -1)
    B = regression_matrix(full_thetas, dim)
    return {"beta": np.einsum("da,tde,ea->ta", cov_basis, B, cov_basis), "v": Y[:, :, v_index],
            "balance": np.sum(Y[:, :, :rows] ** 2, axis=2) - np.sum(Y[:, :, rows:] ** 2, axis=2)}
