"""Is in-context learning transient under weight decay (docs/theory/weight_decay.md §3, WD-9)? The events on
known curves, the flow's phases on the §12 mixture, and gradient descent against the flow from the same initial
weights on the same training and test sets (slow)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from reduced_dynamics.events import emergence_and_fade, transience_summary
from reduced_dynamics.reference.linear_attention import simulate_merged
from reduced_dynamics.theory.linear_attention import iwl

from reduced_dynamics.scripts.attn_m_transience import base_spec, flow_summary


def test_emergence_and_fade_on_known_curves():
    t = np.linspace(0.0, 10.0, 10001)
    dip = 1.0 - 0.8 * np.exp(-(t - 5.0) ** 2)               # falls to 0.2 at t = 5, back to 1: emerges, fades
    e, f = emergence_and_fade(t, dip)
    half = 5.0 - math.sqrt(math.log(2.0))                     # 0.8 exp(-(t-5)^2) = 0.4
    assert abs(e - half) < 1e-5 and abs(f - (10.0 - half)) < 1e-5
    falling = 0.2 + 0.8 * np.exp(-t)                            # persists
    e, f = emergence_and_fade(t, falling)
    level = 0.5 * (falling[0] + falling[-1])
    assert abs(e + math.log((level - 0.2) / 0.8)) < 1e-5 and math.isnan(f)
    assert all(math.isnan(x) for x in emergence_and_fade(t, 1.0 - 0.05 * np.sin(t) ** 2))   # a 5 % wobble
    s = transience_summary(t, dip, 0.2 + 0.8 * np.exp(-t))
    assert s["icl_phase"] == 2 and math.isnan(s["iwl_fade"])


def test_the_flow_learns_in_weight_first_and_never_fades_in_context_at_half():
    """p = 0.5 in the Fig. 14 setting: at lambda = 0 and 1 the in-weight route emerges first and fades when
    in-context learning arrives, which persists; at lambda = 10 in-context learning never emerges."""
    base = base_spec(quick=True)
    for lam in (0.0, 1.0):
        s = flow_summary(base.replace(icl=0.5, weight_decay=lam), moments="population", level="sector")
        assert s["icl_phase"] == 1 and s["iwl_emergence"] < s["icl_emergence"] < s["iwl_fade"]
        assert s["icl_lost_fraction"] < 0.05
    s = flow_summary(base.replace(icl=0.5, weight_decay=10.0), moments="population", level="sector")
    assert s["icl_phase"] == 0 and math.isnan(s["iwl_fade"])


@pytest.mark.slow
@pytest.mark.parametrize("lam", [0.0, 1.0])
def test_gd_and_flow_agree_on_the_mixture_at_half(lam):
    """GD (P = 500, lr 1e-3, t = 6, seed 10) against the flow on the same training and test sets from the same
    weights: the same phase (emerges and persists), emergence and in-weight fade times within 5 %."""
    spec = base_spec(quick=True).replace(icl=0.5, weight_decay=lam, t_max=6.0)
    gd = simulate_merged(spec, progress=False, test_size=500)
    g = transience_summary(gd.t, gd.observables["test_loss_in_context"], gd.observables["test_loss_in_weight"])
    tr = iwl.predict(spec, moments="sample", tests="sample", test_size=500, t_eval=np.linspace(0, 6.0, 3001))
    f = transience_summary(tr.t, tr.observables["test_loss_in_context"], tr.observables["test_loss_in_weight"])
    assert g["icl_phase"] == f["icl_phase"] == 1
    for key in ("icl_emergence", "iwl_emergence", "iwl_fade"):
        assert abs(g[key] / f[key] - 1) < 0.05, key
