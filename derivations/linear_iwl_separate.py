"""attn-s under the §12 mixture (docs/theory/linear_attention_iwl.md §12, LA-54), derived with SymPy.

With separate key and query of rank R, head i's score matrix is W_i = K_i^T Q_i, so the prediction (LA-39)
is the merged one with W_i replaced: yhat = kappa <Phi, Theta>, Theta = sum_i r_i (x) (K_i^T Q_i^x), where
Q_i^x = Q_i[:, :D] (the column Q_i[:, D] multiplies the query's zero label and never matters) and Phi the
feature of (LA-39). Every weight that reaches the prediction is in the state: r_i (D+1), the whole key
K_i (R x (D+1): its label column k_i^y carries the in-weight routes) and Q_i^x (R x D).

The training loss and both test losses (LA-38) are the very quadratics in Theta of (LA-44), with the same
moments (``linear_iwl``); only the map from the weights to Theta differs. So the flow is the pull-back of
G = -dL/dTheta through that map: for each head, the gradient of <G, r (x) K^T Q^x> in (r, K, Q^x) with G
held fixed, which by the chain rule is minus the gradient of L (checked against finite differences of L in
the tests). Nothing is written by hand; ``system(D, R)`` returns the pieces for ``reduced_dynamics.compile``:
  head_theta (state,)            Theta_i = r_i (x) vec(K_i^T Q_i^x), row-major ((D+1) x (D+1) D),
  head_rhs   (state, G)          d state_i / dt (LA-54),
  head_jvp   (state, G, u, dG)   the derivative of head_rhs along (u, dG): the Hessian-vector product of
                                 the modified flow (LR-5, LR-9) with dG = -2 A dTheta (kappa folded into A).
"""
from __future__ import annotations

import sympy as sp


def head_symbols(D: int, R: int):
    """One head: r (D+1), K (R x (D+1)), Q^x (R x D)."""
    r = sp.Matrix(D + 1, 1, lambda a, _: sp.Symbol(f"r_{a}"))
    K = sp.Matrix(R, D + 1, lambda k, a: sp.Symbol(f"K_{k}_{a}"))
    Q = sp.Matrix(R, D, lambda k, c: sp.Symbol(f"Q_{k}_{c}"))
    return r, K, Q


def head_state(r, K, Q) -> list:
    """Ordering of one head's state: (r, K row-major, Q^x row-major); n = (D+1)(R+1) + R D numbers."""
    return [*list(r), *list(K), *list(Q)]


def head_theta(r, K, Q) -> list:
    """Theta_i = r_i (x) vec(K_i^T Q_i^x): rows a (the value index), columns (b, c) row-major."""
    W = K.T * Q                                                    # (D+1) x D
    return [r[a] * W[b, c] for a in range(r.rows) for b in range(W.rows) for c in range(W.cols)]


def system(D: int, R: int) -> dict:
    """head_theta, head_rhs and head_jvp (module docstring) for ``reduced_dynamics.compile``."""
    r, K, Q = head_symbols(D, R)
    state = head_state(r, K, Q)
    theta = head_theta(r, K, Q)
    G = [sp.Symbol(f"G_{j}") for j in range(len(theta))]
    contracted = sp.Add(*[g * t for g, t in zip(G, theta)])
    rhs = [sp.diff(contracted, x) for x in state]
    u = [sp.Symbol(f"u_{j}") for j in range(len(state))]
    dG = [sp.Symbol(f"dG_{j}") for j in range(len(G))]
    jvp = [sp.Add(*[sp.diff(f, x) * d for x, d in zip(state, u)], *[sp.diff(f, g) * d for g, d in zip(G, dG)])
           for f in rhs]
    return {"head_theta": ([state], theta), "head_rhs": ([state, G], rhs), "head_jvp": ([state, G, u, dG], jvp)}


def full_loss(D: int, H: int, R: int):
    """For tests: the loss L = yy - 2 b . Theta + Theta^T A Theta with symbolic moments of a small size, as a
    function of all H heads' states (returns loss, state symbols, A, b, yy)."""
    n_theta = (D + 1) * (D + 1) * D
    A = sp.Matrix(n_theta, n_theta, lambda i, j: sp.Symbol(f"A_{min(i, j)}_{max(i, j)}"))
    b = sp.Matrix(n_theta, 1, lambda i, _: sp.Symbol(f"b_{i}"))
    yy = sp.Symbol("yy")
    states, total = [], sp.zeros(n_theta, 1)
    for h in range(H):
        r, K, Q = head_symbols(D, R)
        rename = {s: sp.Symbol(f"h{h}_{s.name}") for s in head_state(r, K, Q)}
        states += [rename[s] for s in head_state(r, K, Q)]
        total += sp.Matrix(head_theta(r, K, Q)).xreplace(rename)
    loss = yy - 2 * (b.T * total)[0] + (total.T * A * total)[0]
    return loss, states, A, b, yy
