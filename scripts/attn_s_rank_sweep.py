"""Figure (b) of issue 4: the rank sweep, D = 8, H = 9, R in {1, 2, 4, 8}, testing §7.6 (long plateaus only at
m in {0, R, 2R, ...}). Measured (seed 0, t = 3000): R = 2 rests at m = 0, 2, 4, 6, 8 and R = 4 at m = 0, 4, 8,
as stated; R = 8 shows, besides m = 0 and 8, a shoulder at L(M_7) (t ~ 330-480): the weakest direction
(lambda_8 = 1/36) grows exponentially at a rate ~ lambda_8^2, 64 times slower than the first, so it is learned
last even inside one head. Population reduced flow (LA-29) from the projected initial weights (LA-35) of one draw
(c = N, the code's initialisation with sigma = 0.01), log time, the ladder (LA-30) dotted; the detected
plateaus and their ladder steps are written to the .json. ``quick``: D = 4, H = 5, R in {1, 2, 4}, t = 600.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as th

NAME = "attn_s_rank_sweep"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    if quick:
        base, ranks = LinearSeparateSpec(dim=4, heads=5, seed=0, t_max=600.0), (1, 2, 4)
    else:
        base, ranks = LinearSeparateSpec(dim=8, heads=9, seed=0, t_max=3000.0), (1, 2, 4, 8)
    stem = Path(out_dir) / NAME
    fig, ax = plotting.figure(width=plotting.FULL_WIDTH, height=2.8)
    t_eval = np.concatenate([[0.0], np.geomspace(base.final_time * 1e-4, base.final_time, 3000)])
    arrays, summary = {}, {"ladder": th.ladder(base), "ranks": {}}
    for k, R in enumerate(ranks):
        spec = base.replace(rank=R)
        traj = th.predict(spec, t_eval=t_eval)
        st = th.summarise(spec, traj)
        summary["ranks"][R] = {"plateaus": st["plateaus"], "plateau_steps": st["plateau_steps"],
                               "drop_times": st["drop_times"],
                               "only_multiples_of_R": all(m % R == 0 or m == len(summary["ladder"]) - 1
                                                          for m in st["plateau_steps"])}
        ax.plot(traj.t[1:], traj.loss[1:], color=plotting.COLOURS[k], label=f"R = {R}: plateaus at m = "
                + ",".join(str(m) for m in st["plateau_steps"]))
        arrays.update({f"t_R{R}": traj.t, f"loss_R{R}": traj.loss})
        if k == 0:
            arrays.update(t=traj.t, loss=traj.loss)
    for m, level in enumerate(summary["ladder"]):
        ax.axhline(level, color="#777777", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("gradient-flow time t")
    ax.set_ylabel("population loss")
    ax.set_title(f"attn-s rank sweep: D={base.dim}, H={base.heads}, N={base.context}, population flow", fontsize=8)
    ax.legend(loc="lower left", fontsize=6)
    return figures.save(fig, stem, base, {"ladder": summary["ladder"], **arrays}, {**summary, "rank_list": list(ranks)})
