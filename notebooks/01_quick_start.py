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
# # Quick start: theory against gradient descent, in a notebook
#
# `rd.predict` integrates the reduced gradient flow of a model family, `rd.simulate` trains the full model by
# gradient descent, `rd.compare` puts their metrics side by side. Results are `Trajectory` objects: they show
# as a small table, plot with `.plot(ax=...)`, and turn into pandas or xarray objects
# (`pip install '.[data]'` in a clone). Sizes here are small so that the notebook runs in seconds.

# %%
import matplotlib.pyplot as plt

import reduced_dynamics as rd

# %% [markdown]
# ## attn-m: merged key-query linear attention, one abrupt drop
#
# The theory starts from the projection (LA-35) of the very initial weights gradient descent starts from, and
# with `train_size` uses the sample moments of the very training set it trains on.

# %%
spec_m = rd.spec("attn-m", dim=3, context=16, heads=2, train_size=4000, t_max=40)
theory_m = rd.predict(spec_m)
gd_m = rd.simulate(spec_m, progress=False)
theory_m

# %%
metrics_m = rd.compare(theory_m, gd_m)
{k: round(v, 4) for k, v in metrics_m.items() if k.startswith(("drop_time", "final_loss", "max_abs"))}

# %%
fig, ax = plt.subplots(figsize=(5, 3.2))
theory_m.plot(ax=ax, label="reduced flow (LA-22)")
gd_m.plot(ax=ax, label="gradient descent", marker="o", linestyle="none", markevery=15, fillstyle="none")
ax.axvline(theory_m.events["drop_time"], color="grey", linestyle=":");

# %% [markdown]
# The whole comparison (theory, the population flow, the closed form (LA-27), gradient descent and the
# levels) is one `Report`, which also draws itself:

# %%
report_m = rd.run_comparison(spec_m, progress=False)
print(report_m.text())
report_m.plot();

# %% [markdown]
# Observables as a DataFrame: `beta` is the diagonal of B in the covariance eigenbasis (one column per
# direction), `v` the value weights, `balance` the conserved quantity of (LA-36).

# %%
df = theory_m.to_dataframe()
df.iloc[::200]

# %% [markdown]
# ## attn-s: separate key and query, a staircase of plateaus

# %%
spec_s = rd.spec("attn-s", dim=3, context=8, heads=2, train_size=300)
theory_s = rd.predict(spec_s)
gd_s = rd.simulate(spec_s, progress=False)
metrics_s = rd.compare(theory_s, gd_s)
ax = theory_s.plot(label="reduced flow (LA-29)")
gd_s.plot(ax=ax, label="gradient descent", linestyle="--")
ax.set_xscale("log")
metrics_s["plateaus_theory"], metrics_s["plateaus_reference"]

# %% [markdown]
# ## Check
# The reduced flow is the small-learning-rate limit of gradient descent on the same weights and data: the
# drop times and final losses agree to a few per cent, and the loss falls by more than half.

# %%
assert abs(metrics_m["drop_time_relative_gap"]) < 0.03, metrics_m["drop_time_relative_gap"]
assert abs(metrics_m["final_loss_relative_gap"]) < 0.02, metrics_m["final_loss_relative_gap"]
assert gd_m.loss[-1] < 0.5 * gd_m.loss[0]
assert abs(metrics_s["final_loss_relative_gap"]) < 0.05, metrics_s["final_loss_relative_gap"]
print("attn-m drop time gap", f"{metrics_m['drop_time_relative_gap']:+.2%}",
      "| attn-s final loss gap", f"{metrics_s['final_loss_relative_gap']:+.2%}")
