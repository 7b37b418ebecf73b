"""Figure: large-N flow against the exact finite-N flow for several N (softmax_features.md SF-23). Balanced K = 4
on the symmetric subspace: the exact flow of A by the 1-D binomial sum (SF-19b) for N = 20 ... 640 and the
large-N flow (SF-21). Left: L_k against flow time. Right: sup_{t <= 300} |A_N - A_inf| against N on log-log axes
with the fitted slope (the note predicts -1, i.e. an O(1/N) error, with N sup|...| about 3.9).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from reduced_dynamics import figures, plotting
from reduced_dynamics.specs import SoftmaxFeaturesSpec
from reduced_dynamics.theory.softmax.features import large_n_error, predict

NAME = "softmax_large_n"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    sizes = (20, 40, 80, 160) if quick else (20, 40, 80, 160, 320, 640)
    t = np.linspace(0.0, 300.0, 601)
    big_spec = SoftmaxFeaturesSpec(limit="large-n", t_max=300.0)
    big = predict(big_spec, t_eval=t)
    study = large_n_error(4, sizes, t)
    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=2.6, ncols=2)
    for j, N in enumerate(sizes):
        left.plot(t, study["loss"][j], color=plotting.COLOURS[j % len(plotting.COLOURS)], label=f"N = {N}")
    left.plot(t, big.observables["loss_k"][:, 0], "k--", linewidth=1.0, label="large N (SF-21)")
    left.set_yscale("log")
    left.set_xlabel("gradient-flow time t")
    left.set_ylabel("L_k (balanced, K = 4)")
    left.legend(loc="upper right")
    right.loglog(sizes, study["sup_error"], "o", color=plotting.COLOURS[0], label="sup_t |A_N - A_inf|")
    fit = np.exp(study["intercept"]) * np.asarray(sizes, float) ** study["slope"]
    right.loglog(sizes, fit, "-", color=plotting.COLOURS[1], label=f"fit: slope {study['slope']:.3f}")
    right.set_xlabel("context length N")
    right.set_ylabel("largest gap of A over t <= 300")
    right.legend(loc="upper right")
    fig.suptitle("softmax: exact finite N against the large-N flow")
    stem = Path(out_dir) / NAME
    arrays = {"t": t, "loss": big.loss, "sizes": np.asarray(sizes, float), "loss_n": study["loss"],
              "A_n": study["A"], "A_large_n": study["A_inf"], "sup_error": study["sup_error"]}
    return figures.save(fig, stem, big_spec, arrays, {
        "sizes": list(sizes), "sup_error": study["sup_error"].tolist(),
        "N_times_sup_error": (np.asarray(sizes) * study["sup_error"]).tolist(), "slope": study["slope"],
        "threshold_time_0.05": study["threshold_times"], "threshold_time_0.05_large_n": study["threshold_time_inf"]})
