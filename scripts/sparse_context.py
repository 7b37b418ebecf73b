"""Figure: excess risk against context length n for trained multi-head models with h = 1, 2, 4 heads
(claim 1 of the note: more heads help), next to the tuned ridge, Lasso and 2-step PtO-inf / GD baselines.
Setting of SM-C19 except n: d = 8, s = 2, sigma = 0.1, N(0,1), L = 3, d_s = 0, §2.5 recipe.
Full mode: n in {12, 16, 24, 32}, 10k Adam steps per model (12 models, several hours on one shared core);
``quick``: n in {12, 24}, 300 steps, batch 128 (NOT converged; shows the pipeline only).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.reference.sparse_multihead import run_experiment
from reduced_dynamics.tasks.sparse_regression import NOTE_SETTINGS
from reduced_dynamics.theory.sparse import risk as risk

NAME = "sparse_context"
HEADS = (1, 2, 4)


def make_figure(out_dir: Path, quick: bool = False, progress: bool = False) -> list[Path]:
    contexts = (12, 24) if quick else (12, 16, 24, 32)
    base = NOTE_SETTINGS["c"].replace(layers=3, scratch=0, seed=0)
    base = base.replace(steps=300, batch=128) if quick else base.replace(steps=10_000)
    trained = np.zeros((len(HEADS), len(contexts), 2))
    baselines = {k: np.zeros((len(contexts), 2)) for k in ("ridge", "Lasso", "PtO-inf, T=2", "GD, T=2")}
    for j, n in enumerate(contexts):
        spec = base.replace(context=n)
        for i, h in enumerate(HEADS):
            trained[i, j] = run_experiment(spec.replace(heads=h), progress=progress).risk
        test, tune = risk.sample_test_and_tune(spec, spec.seed, 2000, 1500)
        for name, value in (("ridge", risk.ridge_risk(tune, test)), ("Lasso", risk.lasso_risk(tune, test)),
                            ("PtO-inf, T=2", risk.pto_steps_risk(tune, test, 2, "max")),
                            ("GD, T=2", risk.gd_steps_risk(tune, test, 2))):
            baselines[name][j] = (value.mean, value.stderr)
    fig, ax = plotting.figure()
    for i, h in enumerate(HEADS):
        ax.errorbar(contexts, trained[i, :, 0], yerr=trained[i, :, 1], marker="o", color=plotting.COLOURS[i],
                    label=f"trained, h={h}")
    for k, (name, values) in enumerate(baselines.items()):
        ax.plot(contexts, values[:, 0], linestyle=":", marker=".", color=("#555555", "#999999", "#333333",
                                                                           "#bbbbbb")[k], label=name)
    ax.set_yscale("log")
    ax.set_xlabel("context length n")
    ax.set_ylabel("excess risk")
    ax.set_title("quick: NOT converged" if quick else f"L=3, {base.steps} Adam steps")
    ax.legend(fontsize=6, loc="lower left", bbox_to_anchor=(1.0, 0.0))
    summary = {"quick": quick, "spec": base.to_dict(), "contexts": list(contexts), "heads": list(HEADS),
               "trained": trained.tolist(), "baselines": {k: v.tolist() for k, v in baselines.items()}}
    stem = Path(out_dir) / NAME
    arrays = {"context": np.array(contexts, dtype=float), "heads": np.array(HEADS, dtype=float),
              "trained_risk": trained[:, :, 0], "trained_stderr": trained[:, :, 1],
              **{k.replace(", ", "_").replace("=", "").replace("-", "_"): v[:, 0] for k, v in baselines.items()}}
    return figures.save(fig, stem, base, arrays, summary)
