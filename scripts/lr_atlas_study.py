"""Measurements of docs/theory/lr_atlas.md §4: for attn-m (unfrozen, default GD) at a size and over seeds, the
run's bound eta_max (LRA-2) and GD at 0.9 eta_max; the atlas on a 1 % geometric grid and its first divergent rate
against full GD's on the same grid (GD at every grid rate from 0.9 of the atlas's first divergent rate up to it);
the coarse regime labels of the atlas and of GD at 8 rates from 0.5 to 1.2 times the divergent rate, and the
catapult peaks where both catapult.

    python -m reduced_dynamics.scripts.lr_atlas_study SIZE SEEDS     (SIZE: small or c6)
    python -m reduced_dynamics.scripts.lr_atlas_study s-small SEEDS  (attn-s: the bound and GD at 0.9 of it only;
                                                                     s-default: attn-s at its defaults)
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

import reduced_dynamics as rd
from reduced_dynamics.scripts.lr_atlas import SMALL, gd_outcome, gd_outcome_separate
from reduced_dynamics.theory import lr_atlas

SIZES = {"small": SMALL, "c6": {}}
SEPARATE = {"s-small": dict(dim=3, heads=2, rank=2, context=7, init_scale=0.3, init_rule="normal",
                            output_scale="paper", train_size=300, t_max=30.0), "s-default": {}}


def safety_separate(size: str, seed: int) -> dict:
    """attn-s: the run's bound (LRA-2, LRA-8) and full GD at 0.9 of it."""
    spec = rd.spec("attn-s", **SEPARATE[size], seed=seed)
    bound = lr_atlas.run_bound(spec)
    out = gd_outcome_separate(spec.replace(lr=0.9 * bound["eta_max"]))
    manifold = lr_atlas.run_bound(spec.replace(freeze_off_manifold=True))["eta_max"]
    return {"size": size, "seed": seed, "eta_max": bound["eta_max"], "manifold_eta_max": manifold,
            "gd_at_0.9": out["label"], "gd_final_at_0.9": out["final"], "flow_final": bound["final_loss"],
            "steps": spec.replace(lr=0.9 * bound["eta_max"]).gd_steps}


def study(size: str, seed: int) -> dict:
    spec = rd.spec("attn-m", **SIZES[size], seed=seed)
    bound = lr_atlas.run_bound(spec)
    eta = bound["eta_max"]
    safe = gd_outcome(spec.replace(lr=0.9 * eta))
    grid = eta * 1.01 ** np.arange(-70, 160)          # 0.5 to 4.9 eta_max in steps of 1 %
    start = time.perf_counter()
    at = lr_atlas.atlas(spec, grid, lyapunov=False)
    atlas_seconds = time.perf_counter() - start
    d = at.first_divergent()
    j = int(np.argmin(np.abs(grid - d)))
    window = list(range(max(j - 10, 0), j + 1))
    gd_window = {int(i): gd_outcome(spec.replace(lr=float(grid[i]))) for i in window}
    gd_first = next((grid[i] for i in window if gd_window[i]["label"] == "divergent"), float("nan"))
    coarse_idx = sorted(set(int(np.argmin(np.abs(grid - f * d))) for f in np.linspace(0.5, 1.2, 8)))
    gd_coarse = {i: gd_window.get(i) or gd_outcome(spec.replace(lr=float(grid[i]))) for i in coarse_idx}
    checked = {**gd_window, **gd_coarse}
    labels = [(float(grid[i]), at.coarse_labels[i], out["label"]) for i, out in sorted(checked.items())]
    peaks = [(float(grid[i]), float(at.peak[i]), out["peak"]) for i, out in sorted(checked.items())
             if at.coarse_labels[i] == "catapult" and out["label"] == "catapult"]
    return {"size": size, "seed": seed, "eta_max": eta, "system": bound["system"], "at_minimum": bound["at_minimum"],
            "along_path": bound["along_path"], "gd_at_0.9": safe["label"], "gd_final_at_0.9": safe["final"],
            "flow_final": bound["final_loss"], "atlas_first_divergent": d, "gd_first_divergent_in_window": float(gd_first),
            "ratio_divergent_to_bound": d / eta, "labels": labels,
            "labels_equal": all(a == g for _, a, g in labels), "catapult_peaks": peaks, "atlas_seconds": atlas_seconds,
            "atlas_rates": len(grid)}


if __name__ == "__main__":
    size, seeds = sys.argv[1], int(sys.argv[2])
    for seed in range(seeds):
        print(json.dumps(safety_separate(size, seed) if size in SEPARATE else study(size, seed)), flush=True)
