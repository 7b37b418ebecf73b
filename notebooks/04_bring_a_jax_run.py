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
# # Bring a JAX run: merged linear attention trained in JAX, held against the theory
#
# Merged key-query linear attention (attn-m) written and trained in JAX the way such code is usually
# laid out (the layout of the linear-attention authors' PyTorch model, `docs/bring-your-own-model.md`):
# tokens are the **rows** of a (P, N+1, D+1) array, the query row last with its label slot zero; per head
# $h$ a key-query matrix $A_h$ and a value matrix, stored stacked as two (H(D+1), D+1) weights (a linear
# layer's weight, output rows first); the prediction is the label entry of the query's output,
#
# $$\hat y = \sum_{h=1}^H \sum_{n=1}^{N+1} (x_q^\top A_h z_n)\,(b_h^\top z_n),$$
#
# with $b_h$ the value matrix's label row and **no 1/N**; the loss is the mean squared error, trained by
# full-batch gradient descent. Then the run is mapped onto ours through the public API and compared with
# the reduced flow (LA-22) from the same start, on the same training set.
#
# **The mapping.** Ours is $\hat y = \kappa \sum_i r_i^\top Z Z^\top W_i z_q$ with $\kappa = 1/N$ (LA-5), the
# tokens the columns of $Z$. Term by term, $z_n^\top W_i z_q = x_q^\top A_i z_n$, so $W_i \propto A_i^\top$,
# and $r_i \propto b_i$. The missing 1/N is a rescaling: with $W_i = \sqrt N A_i^\top$, $r_i = \sqrt N b_i$
# both models compute the same function, and gradient descent on $(A, b)$ at rate $\eta$ moves
# $(W, r)$ as gradient descent at rate $N\eta$ (each factor $\sqrt N$ enters once through the chain rule
# and once through the map). So step $k$ of the JAX run sits at flow time $t = N \eta k$. Needs the `jax`
# extra (`pip install '.[jax]'`, CPU wheels).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import reduced_dynamics as rd
from reduced_dynamics import Trajectory

jax.config.update("jax_enable_x64", True)      # float64, like the package's reference

D, N, H, P = 3, 16, 2, 4000
E = D + 1                                      # embedding: input coordinates, then the label
spec = rd.spec("attn-m", dim=D, context=N, heads=H, init_scale=1e-3, lr=0.02, t_max=40)
key_data, key_task, key_kq, key_value = jax.random.split(jax.random.PRNGKey(7), 4)

# my own data: anisotropic inputs, one task vector per prompt, the query's label slot zero
cov_root = jnp.linalg.qr(jax.random.normal(key_data, (D, D)))[0] * jnp.sqrt(jnp.array([0.5, 0.3, 0.2]))
inputs = jax.random.normal(jax.random.fold_in(key_data, 1), (P, N + 1, D)) @ cov_root.T
tasks = jax.random.normal(key_task, (P, D))
labels = jnp.einsum("pnd,pd->pn", inputs, tasks)
tokens = jnp.concatenate([inputs, labels[..., None]], axis=-1).at[:, N, D].set(0.0)   # (P, N+1, E)
targets = labels[:, N]

# my own initialisation, with the two blocks that must start at zero (the invariant manifold): in each
# head's key-query matrix the label column of the input rows, and the input part of the value's label row
sigma = spec.init_scale / np.sqrt(N)
kq = sigma * jax.random.normal(key_kq, (H * E, E))
value = sigma * jax.random.normal(key_value, (H * E, E))
for h in range(H):
    kq = kq.at[h * E:h * E + D, D].set(0.0)
    value = value.at[h * E + D, :D].set(0.0)
params0 = {"kq": kq, "value": value}
tokens.shape, {k: v.shape for k, v in params0.items()}

# %% [markdown]
# ## The JAX model and its training loop (nothing from the package)

# %%
def forward(params, tokens):
    A = params["kq"].reshape(H, E, E)                    # rows h*E ... (h+1)*E - 1: head h
    b = params["value"].reshape(H, E, E)[:, D, :]        # the value matrix's label row, per head
    scores = jnp.einsum("pe,hef,pnf->phn", tokens[:, -1], A, tokens)
    values = jnp.einsum("he,pne->phn", b, tokens)
    return (scores * values).sum(axis=(1, 2))


def loss_fn(params):
    return jnp.mean((forward(params, tokens) - targets) ** 2)


eta = spec.lr / N                                        # the JAX run's own rate: t = N * eta * step
steps = round(spec.t_max / spec.lr)


@jax.jit
def train(params):
    def step(params, _):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        return jax.tree_util.tree_map(lambda p, g: p - eta * g, params, grads), loss
    final, losses = jax.lax.scan(step, params, None, length=steps + 1)
    return final, losses


params_final, losses = train(params0)
mine = Trajectory.from_arrays(N * eta * np.arange(steps + 1), np.asarray(losses), spec=spec, kind="jax-gd")
mine

# %% [markdown]
# ## Mapped onto ours, and the theory from the same start
#
# `initial_weights` takes our layout, `W` (H, D+1, D+1) and `r` (H, D+1); `training_set` the contexts,
# their labels, the queries and the targets, read straight off the token array.

# %%
def to_ours(params):
    A = np.asarray(params["kq"]).reshape(H, E, E)
    b = np.asarray(params["value"]).reshape(H, E, E)[:, D, :]
    return {"W": np.sqrt(N) * A.transpose(0, 2, 1), "r": np.sqrt(N) * b}


training_set = {"x": np.asarray(tokens[:, :N, :D]), "y": np.asarray(tokens[:, :N, D]),
                "xq": np.asarray(tokens[:, N, :D]), "yq": np.asarray(targets)}
theory = rd.predict(spec, initial_weights=to_ours(params0), training_set=training_set)
metrics = rd.compare(theory, mine)
fig, ax = plt.subplots(figsize=(5, 3.2))
theory.plot(ax=ax, label="reduced flow (LA-22)")
mine.plot(ax=ax, label="JAX gradient descent", marker="o", linestyle="none", markevery=50, fillstyle="none")
{k: round(v, 4) for k, v in metrics.items() if k.startswith(("drop_time", "final_loss", "max_abs"))}

# %% [markdown]
# The map is exact before training: our model's loss on the mapped weights is the JAX model's first loss.
# After training, the linear map the model computes, $B = \sum_i v_i U_i$ (LA-11), read off the mapped
# final JAX weights, matches the theory's observable `beta` (the diagonal of B in the eigenbasis of the
# training inputs' second moments).

# %%
final = to_ours(params_final)
B = np.einsum("h,hab->ab", final["r"][:, D], final["W"][:, :D, :D])
flat = np.concatenate([training_set["x"].reshape(-1, D), training_set["xq"]])
basis = np.linalg.eigh(flat.T @ flat / len(flat))[1][:, ::-1]
beta_jax = np.diag(basis.T @ B @ basis)
beta_jax, theory.observables["beta"][-1]

# %% [markdown]
# ## Check

# %%
assert abs(theory.loss[0] - mine.loss[0]) < 1e-10 * mine.loss[0]        # the same start on the same set
assert abs(metrics["drop_time_relative_gap"]) < 0.02, metrics["drop_time_relative_gap"]
assert abs(metrics["final_loss_relative_gap"]) < 0.02, metrics["final_loss_relative_gap"]
assert np.allclose(beta_jax, theory.observables["beta"][-1], rtol=0.03), beta_jax
print(f"drop time: theory {metrics['drop_time_theory']:.3f}, JAX GD {metrics['drop_time_reference']:.3f} "
      f"({100 * metrics['drop_time_relative_gap']:+.2f} %)")
