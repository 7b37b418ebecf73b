"""attn-m speed table, measured in one run: warm theory curve, cold derive + compile, cache hit, reference
gradient descent to the same final time, and their ratios. Defaults are the C6 sizes of the theory note.

    python -m benchmarks.attn_m [--repeat 5] [--full-route]

``--full-route`` also times the all-symbolic route (substituting B = sum v_i U_i and differentiating the
whole H-head loss, Jacobian included), which the index route replaces.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks._table import best_of, print_speed_table

from reduced_dynamics.derivations import linear_merged as derivation
from reduced_dynamics import compile as compiler
from reduced_dynamics.compile import compile_system
from reduced_dynamics.reference.linear_attention import simulate_merged
from reduced_dynamics.specs import LinearMergedSpec
from reduced_dynamics.theory.linear_attention import merged as theory
from reduced_dynamics.theory.linear_attention.flow import HEAD_POLYNOMIALS


def rows(spec: LinearMergedSpec, repeat: int, full_route: bool) -> list[tuple[str, float]]:
    out = []
    with tempfile.TemporaryDirectory() as folder:
        cache = Path(folder)
        start = time.perf_counter()
        compile_system(derivation, "index_system", {"D": spec.dim, "moments": "population"}, cache,
                       HEAD_POLYNOMIALS)
        out.append(("cold derive + compile (index route, population)", time.perf_counter() - start))
        def from_disk():
            compiler._LOADED.clear()          # forget this process's loaded systems: read, check, compile
            compile_system(derivation, "index_system", {"D": spec.dim, "moments": "population"}, cache,
                           HEAD_POLYNOMIALS)
        out.append(("cache hit", best_of(repeat, from_disk)))
        out.append(("  cache hit within one process (file re-read and hashed)", best_of(repeat, lambda: compile_system(
            derivation, "index_system", {"D": spec.dim, "moments": "population"}, cache, HEAD_POLYNOMIALS))))
        theory.predict(spec, cache_dir=cache)
        out.append(("warm theory curve (population flow, to t_max)",
                    best_of(repeat, lambda: theory.predict(spec, cache_dir=cache))))
        flow, y0, _ = theory.setup(spec, cache_dir=cache)
        out.append(("  of which: integration alone (compiled DOP853)",
                    best_of(repeat, lambda: flow.solve(y0, spec.final_time))))
        out.append(("  the same integration through solve_ivp (DOP853)",
                    best_of(repeat, lambda: flow.solve(y0, spec.final_time, method="DOP853"))))
        if full_route:
            start = time.perf_counter()
            compile_system(derivation, "full_system", {"D": spec.dim, "H": spec.heads, "moments": "population"}, cache)
            out.append((f"cold derive + compile (full symbolic route, H = {spec.heads})", time.perf_counter() - start))
    gd_spec = spec.replace(train_size=spec.sample_size)
    out.append((f"reference GD, P = {gd_spec.sample_size}, {gd_spec.gd_steps} steps",
                best_of(1, lambda: simulate_merged(gd_spec, progress=False))))
    return out


CONFIGS = {
    "C6 (anisotropic, lr 0.05, t = 40)": LinearMergedSpec(),
    "C5 (white, lr 0.002, t = 3)": LinearMergedSpec(covariance="identity", lr=0.002, steps=1500),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--full-route", action="store_true")
    args = parser.parse_args(argv)
    for label, spec in CONFIGS.items():
        table = dict(rows(spec, args.repeat, args.full_route))
        print_speed_table(f"attn-m {label}: D={spec.dim}, N={spec.context}, H={spec.heads}", table)

if __name__ == "__main__":
    main()
