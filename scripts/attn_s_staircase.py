"""Figure (a) of issue 4: the rank-one attn-s staircase over six seeds, D = 4, N = 31, H = 5 (check C9 sizes:
c = N, the code's initialisation with sigma = 0.01, lr 0.02, t = 200). Theory (sample-moment reduced flow
(LA-29) on each seed's own training set, from the projected initial weights (LA-35)) as lines, gradient
descent on the full model as markers, the saddle ladder (LA-30) as dotted lines. ``quick``: two seeds, P = 1000.
"""
from __future__ import annotations

from pathlib import Path


from reduced_dynamics import figures, plotting
from reduced_dynamics.reference.linear_attention import simulate_separate
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as th

NAME = "attn_s_staircase"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    seeds = range(2) if quick else range(6)
    base = LinearSeparateSpec(train_size=1000 if quick else 5000)
    stem = Path(out_dir) / NAME
    fig, ax = plotting.figure(width=plotting.FULL_WIDTH, height=2.8)
    arrays, summary = {}, {"ladder": th.ladder(base), "seeds": {}}
    for k, seed in enumerate(seeds):
        spec = base.replace(seed=seed)
        theory, gd = th.predict(spec), simulate_separate(spec, progress=False)
        colour = plotting.COLOURS[k % len(plotting.COLOURS)]
        ax.plot(theory.t, theory.loss, color=colour, label=f"seed {seed}: flow")
        stride = plotting.thin_markers(len(gd.t), 80)
        ax.plot(gd.t[::stride], gd.loss[::stride], "o", color=colour, markerfacecolor="none", markersize=2.5,
                markeredgewidth=0.6)
        arrays.update({f"t_theory_{seed}": theory.t, f"loss_theory_{seed}": theory.loss,
                       f"t_gd_{seed}": gd.t, f"loss_gd_{seed}": gd.loss})
        if k == 0:
            arrays.update(t=theory.t, loss=theory.loss)
        summary["seeds"][seed] = {"theory": th.summarise(spec, theory), "gradient descent": th.summarise(spec, gd)}
    for m, level in enumerate(summary["ladder"]):
        ax.axhline(level, color="#777777", linestyle=":", linewidth=0.9)
        ax.text(base.final_time, level, f" L(M_{m})", fontsize=6, va="bottom", ha="right", color="#555555")
    ax.set_xlabel("gradient-flow time t = lr x step")
    ax.set_ylabel("training loss (MSE)")
    ax.set_title(f"attn-s: D={base.dim}, N={base.context}, H={base.heads}, R=1, P={base.sample_size}; "
                 "\nlines: reduced flow (sample moments), markers: GD (off-manifold blocks free)", fontsize=8)
    ax.legend(loc="upper right", ncol=2, fontsize=6)
    return figures.save(fig, stem, base, {"ladder": summary["ladder"], **arrays}, {**summary, "seed_list": list(seeds)})
