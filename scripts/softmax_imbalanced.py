"""Figure: one dominant feature, stage-wise convergence (softmax_features.md §8.2, SF-29, SF-30). Left: L_1
(dominant) and L_2 (under-represented) against flow time, exact finite-N flow as lines, large-N flow dashed, GD
markers. Right: attention masses of a query of feature 2: on its own feature, on the dominant feature, on
another minor feature, and the dominant query's own attention; the note's phase boundaries E1-E4 (§8.2) of the
exact-N flow as dotted lines. Default sizes are check 11 of the note's §11 (K = 4, d = 4, N = 50,
p = (0.6, 0.4/3 x 3), lr 2, 200 steps, B = 4000).
"""
from __future__ import annotations

from pathlib import Path

from reduced_dynamics import figures, plotting
from reduced_dynamics.comparison import run
from reduced_dynamics.specs import SoftmaxFeaturesSpec

NAME = "softmax_imbalanced"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = SoftmaxFeaturesSpec(features=4, dim=4, context=50, dominant=0.6, lr=2.0, steps=60 if quick else 200,
                               batch=2000 if quick else 4000)
    report = run(spec, progress=False)
    th, ref, big = report.theory, report.reference, report.extras["large-N flow"]
    stride = plotting.thin_markers(len(ref.t))
    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=3.4, ncols=2)
    for k, name in ((0, "dominant L_1"), (1, "minor L_2")):
        colour = plotting.COLOURS[k]
        left.plot(th.t, th.observables["loss_k"][:, k], color=colour, label=f"{name} exact N")
        left.plot(big.t, big.observables["loss_k"][:, k], "--", color=colour, linewidth=1.0, label=f"{name} large N")
        left.plot(ref.t[::stride], ref.observables["loss_k"][::stride, k], "o", color=colour, markerfacecolor="none",
                  markeredgewidth=0.6, label=f"{name} GD")
    left.set_yscale("log")
    left.set_xlabel("gradient-flow time t")
    left.set_ylabel("L_k (factor 1/2, SF-9)")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=6)
    a_th, a_ref = th.observables["attention"], ref.observables["attention"]
    curves = (("minor query: own", (1, 1)), ("minor query: on dominant", (0, 1)),
              ("minor query: on other minor", (2, 1)), ("dominant query: own", (0, 0)))
    for j, (label, (n, k)) in enumerate(curves):
        colour = plotting.COLOURS[j]
        right.plot(th.t, a_th[:, n, k], color=colour, label=label)
        right.plot(ref.t[::stride], a_ref[::stride, n, k], "o", color=colour, markerfacecolor="none",
                   markeredgewidth=0.6)
    for j, (name, value) in enumerate(th.events["phases"].get("feature_2", {}).items()):
        if value == value:
            right.axvline(value, color="#999999", linestyle=":", linewidth=0.8)
            right.text(value, 1.0 - 0.06 * (j % 2), name, fontsize=6, ha="center", va="bottom")
    right.set_xlabel("gradient-flow time t")
    right.set_ylabel("attention mass")
    right.set_ylim(0, 1.05)
    right.set_title("lines: exact N; markers: GD", fontsize=7)
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=6)
    fig.suptitle(f"softmax, dominant p1={spec.dominant}: K={spec.features}, N={spec.context}, lr={spec.lr}, "
                 f"B={spec.batch}")
    stem = Path(out_dir) / NAME
    arrays = {"t": th.t, "loss": th.loss, "loss_k": th.observables["loss_k"], "attention": a_th,
              "M": th.observables["M"], "t_reference": ref.t, "loss_reference": ref.loss,
              "loss_k_reference": ref.observables["loss_k"], "attention_reference": a_ref,
              "M_reference": ref.observables["M"], "t_large_n": big.t, "loss_k_large_n": big.observables["loss_k"]}
    return figures.save(fig, stem, spec, arrays, {**report.to_dict(), "phases_theory": th.events["phases"],
                                                  "phases_reference": ref.events["phases"]})
