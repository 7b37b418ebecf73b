"""Figure (c) of issue 4: the initial-scale sweep, from plateau-dominated (small sigma: long saddle plateaus,
escape times ~ 1/sigma by LA-33) to nearly exponential decay (large sigma: the heads start far from the
saddles). Population reduced flow (LA-29), D = 4, N = 31, H = 5, R = 1, c = N, the normal initialisation rule
(§8) with sigma from 1e-3 to 1, log time; the ladder (LA-30) dotted. ``quick``: three scales, t = 300.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as th

NAME = "attn_s_init_scale"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    scales = (1e-3, 3e-2, 0.3) if quick else (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3)
    base = LinearSeparateSpec(init_rule="normal", seed=0, t_max=300.0 if quick else 2000.0)
    stem = Path(out_dir) / NAME
    fig, ax = plotting.figure(width=plotting.FULL_WIDTH, height=2.8)
    t_eval = np.concatenate([[0.0], np.geomspace(base.final_time * 1e-5, base.final_time, 3000)])
    arrays, summary = {}, {"ladder": th.ladder(base), "scales": {}}
    for k, sigma in enumerate(scales):
        traj = th.predict(base.replace(init_scale=sigma), t_eval=t_eval)
        summary["scales"][str(sigma)] = th.summarise(base, traj)
        ax.plot(traj.t[1:], traj.loss[1:], color=plotting.COLOURS[k % len(plotting.COLOURS)],
                label=f"sigma = {sigma:g}")
        arrays.update({f"t_sigma{k}": traj.t, f"loss_sigma{k}": traj.loss})
        if k == 0:
            arrays.update(t=traj.t, loss=traj.loss)
    for level in summary["ladder"]:
        ax.axhline(level, color="#777777", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("gradient-flow time t")
    ax.set_ylabel("population loss")
    ax.set_title(f"attn-s initial-scale sweep: D={base.dim}, H={base.heads}, R=1, c=N={base.context}", fontsize=8)
    ax.legend(loc="lower left", fontsize=6)
    return figures.save(fig, stem, base, {"ladder": summary["ladder"], "scales": scales, **arrays}, summary)
