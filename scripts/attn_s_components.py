"""Figure (d) of issue 4: which principal component is learned when. Left: the loss (sample-moment reduced
flow as a line, gradient descent as markers, the ladder (LA-30) dotted). Right: the learned amount of each
principal component, beta_d / B*_dd (diagonal of B in the covariance eigenbasis relative to LA-20), for the
flow (lines) and for GD (markers), with the number of learned components and the held-out error of the model
against in-context PCR (LA-34) with that many components. Default spec (check C9 sizes); ``quick``: P = 1000.
"""
from __future__ import annotations

from pathlib import Path


from reduced_dynamics import figures, plotting
from reduced_dynamics.reference.linear_attention import simulate_separate
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.tasks import linear_attention as task
from reduced_dynamics.theory.linear_attention import separate as th

NAME = "attn_s_components"


def make_figure(out_dir: Path, quick: bool = False) -> list[Path]:
    spec = LinearSeparateSpec(train_size=1000 if quick else 5000)
    theory, gd = th.predict(spec), simulate_separate(spec, progress=False)
    cov = task.draw(spec, train=False).covariance
    bstar = th.population_b_star(spec, cov)
    gd_learned = gd.observables["beta"] / bstar
    stem = Path(out_dir) / NAME
    fig, (left, right) = plotting.figure(width=plotting.FULL_WIDTH, height=2.6, ncols=2)
    plotting.loss_axes(left, {"reduced flow (sample moments)": theory}, gd,
                       {f"L(M_{m})": v for m, v in enumerate(th.ladder(spec))})
    left.legend(loc="upper right", fontsize=5)
    stride = plotting.thin_markers(len(gd.t), 50)
    for d in range(spec.dim):
        colour = plotting.COLOURS[d % len(plotting.COLOURS)]
        right.plot(theory.t, theory.observables["learned"][:, d], color=colour, label=f"PC {d + 1}")
        right.plot(gd.t[::stride], gd_learned[::stride, d], "o", color=colour, markerfacecolor="none",
                   markersize=2.5, markeredgewidth=0.6)
    right.step(theory.t, theory.observables["components"] / spec.dim, color="#000000", linewidth=0.8,
               linestyle="--", where="post", label="components learned / D")
    right.set_xlabel("gradient-flow time t")
    right.set_ylabel("beta_d / B*_dd")
    right.legend(loc="upper left", fontsize=6)
    fig.suptitle(f"attn-s: D={spec.dim}, N={spec.context}, H={spec.heads}, R={spec.rank}, P={spec.sample_size}",
                 fontsize=8)
    arrays = {"t": theory.t, "loss": theory.loss, "learned": theory.observables["learned"],
              "components": theory.observables["components"], "test_loss": theory.observables["test_loss"],
              "pcr_test_loss": theory.observables["pcr_test_loss"], "t_gd": gd.t, "loss_gd": gd.loss,
              "learned_gd": gd_learned, "ladder": th.ladder(spec)}
    return figures.save(fig, stem, spec, arrays, {
        "theory": th.summarise(spec, theory), "gradient descent": th.summarise(spec, gd), "ladder": th.ladder(spec),
        "pcr_test_losses_by_m": theory.meta["pcr_test_losses"]})
