"""Figure: balanced features, two phases (softmax_features.md §8.1). Left: per-feature loss L_k against flow time (log-log),
exact finite-N flow (SF-13, SF-19a) as a line, large-N flow (SF-21) dashed, full-model gradient descent as
markers; phase-1 end (own attention 1/2, SF-28) dotted. Right: A_k and B_{k,n} (theory lines, GD markers).
Default sizes are check 10 of the note's §11 (K = 4, d = 6, N = 30, lr 1, 300 steps, B = 4000).
"""
from __future__ import annotations

from pathlib import Path


from reduced_dynamics import figures, plotting
from reduced_dynamics.comparison import run
from reduced_dynamics.specs import SoftmaxFeaturesSpec

NAME = "softmax_balanced"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = SoftmaxFeaturesSpec(steps=120 if quick else 300, batch=2000 if quick else 4000)
    report = run(spec, progress=False)
    th, ref, big = report.theory, report.reference, report.extras["large-N flow"]
    stride = plotting.thin_markers(len(ref.t))
    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=3.4, ncols=2)
    for k in range(spec.features):
        colour = plotting.COLOURS[k % len(plotting.COLOURS)]
        left.plot(th.t, th.observables["loss_k"][:, k], color=colour, label=f"exact N, L_{k + 1}" if k == 0 else None)
        left.plot(ref.t[::stride], ref.observables["loss_k"][::stride, k], "o", color=colour, markerfacecolor="none",
                  markeredgewidth=0.6, label="GD" if k == 0 else None)
    left.plot(big.t, big.observables["loss_k"][:, 0], "--", color="#555555", linewidth=1.0, label="large N")
    t1 = th.events["half_attention_times"][0]
    left.axvline(t1, color="#999999", linestyle=":", linewidth=1.0, label=f"own attention 1/2 (t={t1:.1f})")
    left.set_yscale("log")
    left.set_xscale("log")       # phase 2 decays like 1/t (SF-27): a straight line on these axes
    left.set_xlim(left=1.0)
    left.set_xlabel("gradient-flow time t")
    left.set_ylabel("L_k (factor 1/2, SF-9)")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=6)
    M_th, M_ref = th.observables["M"], ref.observables["M"]
    for label, (n, k), colour in (("A_1", (0, 0), plotting.COLOURS[0]), ("B_{1,2}", (1, 0), plotting.COLOURS[1])):
        right.plot(th.t, M_th[:, n, k], color=colour, label=f"{label} exact N")
        right.plot(ref.t[::stride], M_ref[::stride, n, k], "o", color=colour, markerfacecolor="none",
                   markeredgewidth=0.6, label=f"{label} GD")
        right.plot(big.t, big.observables["M"][:, n, k], "--", color=colour, linewidth=1.0, label=f"{label} large N")
    right.set_xlabel("gradient-flow time t")
    right.set_ylabel("attention weight")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2, fontsize=6)
    fig.suptitle(f"softmax, balanced: K={spec.features}, d={spec.dim}, N={spec.context}, lr={spec.lr}, B={spec.batch}")
    stem = Path(out_dir) / NAME
    arrays = {"t": th.t, "loss": th.loss, "loss_k": th.observables["loss_k"], "M": M_th, "t_reference": ref.t,
              "loss_reference": ref.loss, "loss_k_reference": ref.observables["loss_k"], "M_reference": M_ref,
              "t_large_n": big.t, "loss_k_large_n": big.observables["loss_k"], "M_large_n": big.observables["M"]}
    return figures.save(fig, stem, spec, arrays, report.to_dict())
