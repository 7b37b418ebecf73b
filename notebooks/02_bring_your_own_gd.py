# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Bring your own gradient descent
#
# A training loop written by hand in plain NumPy, as one would write it in PyTorch or JAX, for merged
# key-query linear attention (attn-m, (LA-5)):
#
# $$\hat y = \kappa \sum_{i=1}^H r_i^\top (Z Z^\top) W_i z_q, \qquad L = \frac1P \sum_p (\hat y_p - y_{q,p})^2,$$
#
# with tokens $z = (x, y)$ as the columns of $Z$ (the query last, its label slot zero) and $\kappa = 1/N$.
# Its recorded losses are wrapped with `Trajectory.from_arrays` and compared with the reduced flow
# (LA-22) started from **the projection (LA-35) of the very initial weights** of this loop, on the moments
# of **the very training set** it trains on:
#
# ```python
# theory = rd.predict(spec, initial_weights={"W": W0, "r": r0}, training_set={"x": x, "y": y, "xq": xq, "yq": yq})
# ```
#
# The weights are the full model's, per head, label coordinate last: `W` (H, D+1, D+1) merged key-query
# matrices, `r` (H, D+1) the value rows (for attn-s: `K`, `Q` (H, R, D+1) and `r`). The training set is the
# contexts `x` (P, N, D), their labels `y` (P, N), the queries `xq` (P, D) and the targets `yq` (P,).
# The weights must lie on the invariant manifold of §3 (`W[:, D, :D]` and `r[:, :D]` zero, as below):
# off it the reduced flow is not the dynamics, and `rd.predict` says so instead of projecting.
#
# Nothing below comes from the package's draws: the loop makes its own data and its own initialisation.

# %%
import matplotlib.pyplot as plt
import numpy as np

import reduced_dynamics as rd
from reduced_dynamics import Trajectory

spec = rd.spec("attn-m", dim=3, context=16, heads=2, init_scale=1e-3, lr=0.05, t_max=40)
D, N, H, P = spec.dim, spec.context, spec.heads, 4000
rng = np.random.default_rng(2024)
Lambda_root = np.linalg.qr(rng.standard_normal((D, D)))[0] * np.sqrt([0.5, 0.3, 0.2])   # my own input covariance
x_all = rng.standard_normal((P, N + 1, D)) @ Lambda_root.T
w = rng.standard_normal((P, D))                                                            # one task per prompt
y_all = np.einsum("pnd,pd->pn", x_all, w)
x, y, xq, yq = x_all[:, :N], y_all[:, :N], x_all[:, N], y_all[:, N]
W0 = spec.init_scale * rng.standard_normal((H, D + 1, D + 1))
r0 = spec.init_scale * rng.standard_normal((H, D + 1))
W0[:, D, :D] = 0.0                             # u_i = 0 and r_i^x = 0: the invariant manifold (§3)
r0[:, :D] = 0.0
W0.shape, r0.shape, x.shape

# %% [markdown]
# ## The user's model and training loop (nothing from the package)

# %%
Z = np.zeros((P, D + 1, N + 1))                # one column per token, the query last
Z[:, :D, :N] = x.transpose(0, 2, 1)
Z[:, D, :N] = y
Z[:, :D, N] = xq
M, zq = Z @ Z.transpose(0, 2, 1), Z[:, :, -1]
kappa = 1.0 / N


def loss_and_grads(W, r):
    MWz = np.einsum("pab,hbc,pc->pha", M, W, zq)          # M W_i z_q
    err = kappa * np.einsum("ha,pha->p", r, MWz) - yq
    Mr = np.einsum("pab,hb->pha", M, r)                   # M r_i (M is symmetric)
    grad_r = 2 * kappa / P * np.einsum("p,pha->ha", err, MWz)
    grad_W = 2 * kappa / P * np.einsum("p,phb,pc->hbc", err, Mr, zq)
    return np.mean(err ** 2), grad_W, grad_r


W, r = W0.copy(), r0.copy()
lr, steps = spec.lr, round(spec.t_max / spec.lr)
losses = []
for step in range(steps + 1):
    loss, grad_W, grad_r = loss_and_grads(W, r)
    losses.append(loss)
    W -= lr * grad_W
    r -= lr * grad_r
mine = Trajectory.from_arrays(lr * np.arange(steps + 1), losses, spec=spec, kind="my-numpy-gd")
mine

# %% [markdown]
# ## The theory from the same weights and data, and the comparison
#
# On the gradient-flow axis a GD run after k steps at rate lr sits at t = lr k.

# %%
theory = rd.predict(spec, initial_weights={"W": W0, "r": r0}, training_set={"x": x, "y": y, "xq": xq, "yq": yq})
metrics = rd.compare(theory, mine)
fig, ax = plt.subplots(figsize=(5, 3.2))
theory.plot(ax=ax, label="reduced flow (LA-22)")
mine.plot(ax=ax, label="my NumPy GD", marker="o", linestyle="none", markevery=20, fillstyle="none")
print({k: theory.meta[k] for k in ("initial_weights", "training_set", "given_train_size")})     # where it came from
{k: round(v, 4) for k, v in metrics.items() if k.startswith(("drop_time", "final_loss", "max_abs"))}

# %% [markdown]
# The start is the loop's own: the theory's loss at t = 0 is the loop's first loss (the projection keeps
# everything of these weights that reaches the prediction). After training, the map the model computes,
# $B = \sum_i v_i U_i$ (LA-11), read off the loop's final weights, matches the theory's (observable `beta`:
# the diagonal of B in the eigenbasis of the input covariance, which for a given training set is the
# second-moment matrix of its inputs) to within 1 %.
#
# Weights off the invariant manifold are refused with a one-line error, as is the option for a family
# without the projection:

# %%
for model_spec, weights in ((spec, {"W": W0 + 1e-6, "r": r0}), (rd.spec("softmax"), {"W": W0, "r": r0})):
    try:
        rd.predict(model_spec, initial_weights=weights)
    except rd.SpecError as error:
        print(error)

# %%
B = np.einsum("h,hab->ab", r[:, D], W[:, :D, :D])
inputs = np.concatenate([x.reshape(-1, D), xq])
E = np.linalg.eigh(inputs.T @ inputs / len(inputs))[1][:, ::-1]     # eigenvectors, largest eigenvalue first
beta_mine = np.diag(E.T @ B @ E)
beta_mine, theory.observables["beta"][-1]

# %% [markdown]
# ## Check

# %%
assert abs(theory.loss[0] - mine.loss[0]) < 1e-12 * mine.loss[0]    # the same start on the same set
assert theory.meta["initial_weights"] == "given" and theory.meta["training_set"] == "given"
assert abs(metrics["drop_time_relative_gap"]) < 0.03, metrics["drop_time_relative_gap"]
assert abs(metrics["final_loss_relative_gap"]) < 0.02, metrics["final_loss_relative_gap"]
assert np.allclose(beta_mine, theory.observables["beta"][-1], rtol=0.03), beta_mine
print(f"drop time: theory {metrics['drop_time_theory']:.3f}, my GD {metrics['drop_time_reference']:.3f}")
