"""Figure: excess risk against continuous depth tau for the GD, PtO and PtO-inf flows (SM-23, SM-30) in the
note's settings (a)-(c) of SM-C12, with the Marchenko-Pastur GD curve (SM-37) dashed and tuned ridge and
Lasso levels dotted. Shaded bands are ± 1 standard error over prompts. Full mode: 2000 test and 1500 tuning
prompts, tau on 0.25..4096 (29 points), seed 0; ``quick``: 400 / 400 prompts, 15 points.
The continuous-depth flows are our construction (note §0, §7).
"""
from __future__ import annotations

from pathlib import Path


from reduced_dynamics import figures, plotting
from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS
from reduced_dynamics.theory.sparse.multihead import predict

NAME = "sparse_depth"
CURVES = (("gd_flow", "GD flow"), ("pto_flow", "PtO flow"), ("pto_inf_flow", "PtO-inf flow"))


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    sizes = dict(test_prompts=400, tune_prompts=400, depth_points=15) if quick else {}
    fig, axes = plotting.figure(width=plotting.FULL_WIDTH, height=2.6, ncols=3)
    arrays, summary = {}, {}
    for ax, (key, base) in zip(axes, NOTE_SETTINGS.items()):
        spec = base.replace(layers=1, **sizes)  # layers=1: no step levels needed here
        traj = predict(spec)
        obs = traj.observables
        tau = obs["depth"][1:]
        for k, (name, label) in enumerate(CURVES):
            mean, se = obs[name][1:], obs[name + "_stderr"][1:]
            colour = plotting.COLOURS[k]
            ax.plot(tau, mean, color=colour, label=label)
            ax.fill_between(tau, mean - se, mean + se, color=colour, alpha=0.2, linewidth=0)
        ax.plot(tau, obs["gd_flow_mp"][1:], color=plotting.COLOURS[0], linestyle="--", linewidth=0.9,
                label="GD flow, MP limit (SM-37)")
        for name, style in (("ridge", ":"), ("lasso", "-.")):
            ax.axhline(obs[name][0], color="#555555", linestyle=style, linewidth=1.0, label=f"tuned {name}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("continuous depth τ")
        ax.set_title(f"({key}) d={spec.dim}, s={spec.sparsity}, n={spec.context}\n"
                     f"σ={spec.noise}, {'±1' if spec.nonzero_law == 'rademacher' else 'N(0,1)'}")
        for name, value in obs.items():
            arrays[f"{key}_{name}"] = value
        summary[key] = {"spec": spec.to_dict(), "minima": traj.meta["minima"],
                        "ridge": float(obs["ridge"][0]), "lasso": float(obs["lasso"][0]),
                        "tuned": traj.meta["tuned_hyper_parameters"]}
    axes[0].set_ylabel("excess risk")
    axes[1].legend(loc="lower left", bbox_to_anchor=(0.0, 0.06), fontsize=6)
    stem = Path(out_dir) / NAME
    specs = {key: base.replace(layers=1, **sizes) for key, base in NOTE_SETTINGS.items()}
    return figures.save(fig, stem, specs, arrays, {"quick": quick, "settings": summary})
