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
# # A sweep as a DataFrame and an xarray Dataset: the attn-m drop time against the initial scale
#
# The merged-key-query model (attn-m) sits on a plateau until its weights have grown from the initial scale
# $\sigma$, then drops abruptly. The logistic course of the theory (LA-28) puts the drop at a time that grows
# like $\ln(1/\sigma^2) / (4c\lVert\Lambda^2\rVert_F)$: logarithmic in $\sigma$, with slope
# $1/(2c\lVert\Lambda^2\rVert_F)$ against $\ln(1/\sigma)$. A sweep of the reduced flow over $\sigma$ and the
# dimension $D$ checks it. `run_sweep` writes one file per point and a table `sweep.csv`;
# `reduced_dynamics.sweep.load` reads the table as a pandas DataFrame and `load_curves` the curves as an
# xarray Dataset (`pip install '.[data]'` in a clone). Rerunning the cell skips finished points.

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from reduced_dynamics.sweep import load, load_curves, run_sweep
from reduced_dynamics.tasks.linear_attention import eigenvalues_for

out = tempfile.mkdtemp(prefix="sweep-attn-m-")
result = run_sweep("attn-m", {"init_scale": [1e-5, 1e-4, 1e-3, 1e-2], "dim": [2, 3]}, ["drop_time", "final_loss"],
                   out, fixed={"context": 16, "heads": 2, "t_max": 40}, side="theory", workers=2, progress=False)
len(result.computed), len(result.skipped)

# %%
table = load(out)
table[["dim", "init_scale", "drop_time", "final_loss", "seconds"]]

# %% [markdown]
# The same table, pivoted: one row per initial scale, one column per dimension.

# %%
table.pivot(index="init_scale", columns="dim", values="drop_time")

# %% [markdown]
# The curves share one time grid, so they stack into a Dataset with dims `dim`, `init_scale` and `t`:

# %%
curves = load_curves(out)
curves

# %%
curves["loss"].sel(dim=3).plot.line(x="t", hue="init_scale", figsize=(5, 3.2));

# %% [markdown]
# ## Drop time against the initial scale, with the scaling law of (LA-28)
#
# For each dimension: the measured drop times, and the law's slope $1/(2c\lVert\Lambda^2\rVert_F)$
# (here $c = 1$, $\lambda_d \propto d$ with trace one) through their mean.

# %%
def law_slope(dim, c=1.0):
    lam = eigenvalues_for("linear", dim)
    return 1.0 / (2 * c * np.sqrt(np.sum(lam ** 4)))


fig, ax = plt.subplots(figsize=(5, 3.2))
fits = {}
for k, dim in enumerate(curves["dim"].values):
    sigma = curves["init_scale"].values
    drop = curves["drop_time"].sel(dim=dim).values
    x = np.log(1 / sigma)
    fits[int(dim)] = np.polyfit(x, drop, 1)[0]
    law = drop.mean() + law_slope(dim) * (x - x.mean())
    ax.plot(sigma, drop, "o", color=f"C{k}", label=f"reduced flow, D = {dim}")
    ax.plot(sigma, law, "-", color=f"C{k}", alpha=0.6, label=f"(LA-28) slope {law_slope(dim):.3f}")
ax.set_xscale("log")
ax.set_xlabel("initial scale sigma")
ax.set_ylabel("drop time")
ax.legend(fontsize=8);
{dim: (round(fit, 4), round(law_slope(dim), 4)) for dim, fit in fits.items()}

# %% [markdown]
# ## Check
# The drop time is logarithmic in the initial scale with the slope of (LA-28), to 2 %, in both dimensions.

# %%
for dim, fit in fits.items():
    assert abs(fit / law_slope(dim) - 1) < 0.02, (dim, fit, law_slope(dim))
assert (np.diff(curves["drop_time"].values, axis=1) < 0).all()      # a larger sigma drops earlier
print({dim: f"fitted {fit:.3f} vs law {law_slope(dim):.3f}" for dim, fit in fits.items()})
