"""Figure: minibatch SGD of attn-m against its predicted band (docs/theory/sgd.md, SGD-5). For each batch size,
left: the training loss of every seed of minibatch order (thin lines; the same initial weights and training set,
``batch_seed`` 0, 1, ...) over the Monte-Carlo band of the reduced SGD model (5-95 % and 25-75 % of the loss at
each t, shaded; its mean dashed); right: the seeds' drop times (histogram) with the density of the predicted
drop times. Full size: check C6 (P = 20000, lr 0.05), B = 64 and 256 with replacement, 16 seeds, 512 paths.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

import reduced_dynamics as rd
from reduced_dynamics import figures, plotting
from reduced_dynamics.reference import linear_attention as ref

NAME = "sgd_band"

FULL = dict(spec=dict(), batches=(64, 256), seeds=16, paths=512)
QUICK = dict(spec=dict(dim=2, heads=2, context=7, init_scale=0.01, train_size=2000, t_max=16.0),
             batches=(32,), seeds=8, paths=128)


def band_and_seeds(spec, seeds: int) -> dict:
    """The predicted band (rd.predict with batch_size) and ``seeds`` reference runs over batch_seed 0..seeds-1."""
    band = rd.predict(spec)
    runs = [ref.simulate_merged(spec.replace(batch_seed=k), progress=False, test_size=0) for k in range(seeds)]
    drops = np.array([run.events["drop_time"] for run in runs])
    predicted = np.array(band.meta["drop_times"], dtype=float)
    return {"t": band.t, "mean": band.loss, "quantiles": np.array([band.observables[k] for k in sorted(band.observables)]),
            "seed_losses": np.array([run.loss for run in runs]), "seed_drops": drops, "predicted_drops": predicted}


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    size = QUICK if quick else FULL
    base = rd.spec("attn-m", **size["spec"], sampling="replacement", paths=size["paths"])
    results = {B: band_and_seeds(base.replace(batch_size=B), size["seeds"]) for B in size["batches"]}
    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=2.3 * len(results), ncols=2, nrows=len(results))
    axes = np.atleast_2d(axes)
    summary = {}
    for row, (B, res) in zip(axes, results.items()):
        left, right = row
        q = res["quantiles"]                                   # loss_q05, q25, q50, q75, q95
        left.fill_between(res["t"], q[0], q[4], color=plotting.COLOURS[0], alpha=0.18, lw=0, label="predicted 5-95 %")
        left.fill_between(res["t"], q[1], q[3], color=plotting.COLOURS[0], alpha=0.35, lw=0, label="predicted 25-75 %")
        left.plot(res["t"], res["mean"], "--", color=plotting.COLOURS[0], lw=1.0, label="predicted mean")
        for k, loss in enumerate(res["seed_losses"]):
            left.plot(res["t"], loss, color=plotting.COLOURS[1], lw=0.4, alpha=0.8,
                      label="SGD, one seed of order" if k == 0 else None)
        left.set_xlabel("t = lr * step")
        left.set_ylabel("training loss")
        left.set_title(f"attn-m, B = {B} of P = {base.sample_size} (with replacement)", fontsize=8)
        left.legend(fontsize=6)
        pred, seeds = res["predicted_drops"], res["seed_drops"]
        pred = pred[np.isfinite(pred)]
        lo, hi = np.min(np.r_[pred, seeds]), np.max(np.r_[pred, seeds])
        bins = np.linspace(lo, hi, 13)
        right.hist(seeds, bins=bins, density=True, color=plotting.COLOURS[1], alpha=0.6,
                   label=f"{seeds.size} seeds: {seeds.mean():.3f} +- {seeds.std(ddof=1):.3f}")
        density, edges = np.histogram(pred, bins=np.linspace(lo, hi, 25), density=True)
        right.step(0.5 * (edges[1:] + edges[:-1]), density, where="mid", color=plotting.COLOURS[0],
                   label=f"predicted ({pred.size} paths): {pred.mean():.3f} +- {pred.std(ddof=1):.3f}")
        right.set_xlabel("drop time")
        right.set_ylabel("density")
        right.legend(fontsize=6)
        summary[str(B)] = {"seed_drop_times": seeds.tolist(), "seed_mean": float(seeds.mean()),
                           "seed_sd": float(seeds.std(ddof=1)), "predicted_mean": float(pred.mean()),
                           "predicted_sd": float(pred.std(ddof=1)), "paths": int(pred.size),
                           "seed_percentiles": [float(np.mean(pred < x)) for x in seeds]}   # where each seed falls
    arrays = {f"B{B}_{key}": value for B, res in results.items() for key, value in res.items()}
    specs = {f"B = {B}": base.replace(batch_size=B) for B in results}
    return figures.save(fig, Path(out_dir) / NAME, specs, arrays, summary)
