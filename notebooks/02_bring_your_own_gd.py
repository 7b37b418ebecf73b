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
# of **the very training set** it trains on.
#
# The package draws a spec's initial weights and training set from named seed streams
# (`reduced_dynamics.tasks.linear_attention`); `rd.predict(spec)` starts from those. So the loop below takes
# its weights and data from the same draws. (A run whose weights and data come from elsewhere is projected by
# hand below, with `theory.linear_attention.merged.projection` and `pack`; the package has no public
# `rd.predict(spec, initial_weights=..., training_set=...)` yet.)

# %%
import matplotlib.pyplot as plt
import numpy as np

import reduced_dynamics as rd
from reduced_dynamics import Trajectory
from reduced_dynamics.tasks import linear_attention as task

spec = rd.spec("attn-m", dim=3, context=16, heads=2, train_size=4000, init_scale=1e-3, lr=0.05, t_max=40)
rngs = task.streams(spec.seed)
cov = task.spec_covariance(spec, rngs)                                    # Lambda: spectrum and basis
W0, r0 = task.merged_initial_weights(spec.dim, spec.heads, spec.init_scale, rngs["init"])
data = task.draw_training_set(cov, spec.context, spec.train_size, rngs["data"])
W0.shape, r0.shape, data.x.shape

# %% [markdown]
# ## The user's model and training loop (nothing from the package)

# %%
P, N, D = data.x.shape
Z = np.zeros((P, D + 1, N + 1))                # one column per token, the query last
Z[:, :D, :N] = data.x.transpose(0, 2, 1)
Z[:, D, :N] = data.y
Z[:, :D, N] = data.xq
M, zq, yq = Z @ Z.transpose(0, 2, 1), Z[:, :, -1], data.yq
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
theory = rd.predict(spec)              # sample moments of spec's training set, projection of spec's weights
metrics = rd.compare(theory, mine)
fig, ax = plt.subplots(figsize=(5, 3.2))
theory.plot(ax=ax, label="reduced flow (LA-22)")
mine.plot(ax=ax, label="my NumPy GD", marker="o", linestyle="none", markevery=20, fillstyle="none")
{k: round(v, 4) for k, v in metrics.items() if k.startswith(("drop_time", "final_loss", "max_abs"))}

# %% [markdown]
# ## Projecting weights by hand
#
# The reduced state of a head is $(v_i, U_i) = (r_i[D], W_i[{:}D, {:}D])$ (LA-35). `projection` reads it off
# full weights, `pack` lays it out in the flow's basis; the flow's own initial state is exactly that of
# this loop's weights, and integrating from the projection of the loop's weights gives the same curve.

# %%
from reduced_dynamics.theory.linear_attention import merged

flow, y0, _ = merged.setup(spec)
v, U = merged.projection(W0, r0)
y_mine = merged.pack(v, U, flow.moments.basis)
solution = flow.solve(y_mine, spec.final_time)
projected_loss = flow.loss_of_b(flow.b_vector(solution.y))
np.abs(y_mine - y0).max(), abs(projected_loss[-1] - theory.loss[-1])

# %% [markdown]
# After training, the map the model computes, $B = \sum_i v_i U_i$ (LA-11), read off the loop's final weights,
# matches the theory's diagonal of B in the covariance eigenbasis (observable `beta`) to about 10 % (the
# weakest direction, last to be learned, is the furthest off at this time), and the loop reproduces the
# package's own reference run `rd.simulate(spec)` to rounding.

# %%
B = np.einsum("h,hab->ab", r[:, D], W[:, :D, :D])
beta_mine = np.diag(cov.basis.T @ B @ cov.basis)
reference = rd.simulate(spec, progress=False)
beta_mine, theory.observables["beta"][-1], np.abs(reference.loss - mine.loss).max()

# %% [markdown]
# ## Check

# %%
assert np.array_equal(y_mine, y0)                                   # the same initial state
assert abs(projected_loss[-1] - theory.loss[-1]) < 1e-8
assert abs(metrics["drop_time_relative_gap"]) < 0.03, metrics["drop_time_relative_gap"]
assert abs(metrics["final_loss_relative_gap"]) < 0.02, metrics["final_loss_relative_gap"]
assert np.allclose(beta_mine, theory.observables["beta"][-1], rtol=0.1), beta_mine
assert np.abs(reference.loss - mine.loss).max() < 1e-10
print(f"drop time: theory {metrics['drop_time_theory']:.3f}, my GD {metrics['drop_time_reference']:.3f}")
