"""attn-s on the §12 mixture over seeds: the attn-s reference (GD) against the all-weights flow (LA-54) on GD's own
training set and test sets, and against the population flow (docs/theory/linear_attention_iwl_separate.md).

    python -m reduced_dynamics.scripts.attn_s_mixture_seeds ICL SEEDS LR T_MAX [TRAIN_SIZE] > rows.jsonl

One JSON line per seed: for each drop time (training-loss midpoint, t_IW, t_IC of §12.11) the triple (GD, flow on
the sample moments, population flow) (NaN: no drop in the window), the final training and test losses (same
triple) and the largest pointwise relative gap of each curve, flow vs GD. Sizes: D = 3, N = 15, H = 2, R = 1,
code scale and initialisation with sigma = 0.1, GD's test sets of 1000 prompts. The ledger's study
``attn-s-mixture`` (``python -m reduced_dynamics.ledger --study attn-s-mixture``) is the p = 0.5 case with 5000.
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

from reduced_dynamics.events import midpoint_drop_time
from reduced_dynamics.reference import linear_attention as ref
from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import iwl_separate

TEST_SIZE = 1000


def row(spec: LinearSeparateSpec) -> dict:
    start = time.process_time()
    gd = ref.simulate_separate(spec, progress=False, test_size=TEST_SIZE)
    gd_time = time.process_time() - start
    emp = iwl_separate.predict(spec, moments="sample", tests="sample", test_size=TEST_SIZE, t_eval=gd.t)
    pop = iwl_separate.predict(spec, moments="population", t_eval=gd.t)
    out = {"seed": spec.seed, "icl": spec.icl, "gd_cpu_s": gd_time}
    gd_events = {**gd.events, "drop_time": midpoint_drop_time(gd.t, gd.loss)}
    for key in ("drop_time", "in_weight_drop_time", "in_context_drop_time"):
        out[key] = [gd_events.get(key, float("nan")), emp.events.get(key, float("nan")), pop.events.get(key, float("nan"))]
    curves = {"loss": (gd.loss, emp.loss, pop.loss)}
    for key in ("test_loss_in_context", "test_loss_in_weight"):
        curves[key] = (gd.observables[key], emp.observables[key], pop.observables[key])
    for key, (g, e, p) in curves.items():
        out[key + "_final"] = [float(g[-1]), float(e[-1]), float(p[-1])]
        out[key + "_gap_max_rel"] = float(np.max(np.abs(e / g - 1.0)))
    return out


def main(argv: list[str]) -> None:
    icl, seeds, lr, t_max = float(argv[0]), int(argv[1]), float(argv[2]), float(argv[3])
    train_size = int(argv[4]) if len(argv) > 4 else 2000
    for seed in range(seeds):
        spec = LinearSeparateSpec(dim=3, context=15, heads=2, icl=icl, init_scale=0.1, lr=lr, t_max=t_max,
                                  train_size=train_size, seed=seed)
        print(json.dumps(row(spec)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
