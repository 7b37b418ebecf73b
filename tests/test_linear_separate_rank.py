"""§7.6 at small size: with rank-R heads the long plateaus sit only at m in {0, R, 2R, ...} (D = 4, H = 5,
c = N, the code's initialisation with sigma = 0.01, population flow from the projected weights (LA-35));
the full D = 8, H = 9 sweep is figure (b), ``scripts/attn_s_rank_sweep.py``."""
import pytest

from reduced_dynamics.specs import LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import separate as th


@pytest.mark.parametrize("rank", [2, 4])
def test_plateaus_only_at_multiples_of_the_rank(rank):
    spec = LinearSeparateSpec(dim=4, heads=5, rank=rank, seed=0, t_max=300.0)
    summary = th.summarise(spec, th.predict(spec, test_size=50))
    steps = summary["plateau_steps"]
    print(rank, steps, summary["plateaus"])
    assert steps[0] == 0 and steps[-1] == 4 and len(steps) >= 2      # starts at the saddle, ends at L*
    assert all(m % rank == 0 for m in steps)
    ladder = th.ladder(spec)
    for m, level in zip(steps, summary["plateaus"]):
        assert abs(level - ladder[m]) / ladder[m] < 0.015


def test_rank_one_heads_rest_on_intermediate_steps():
    """The contrast: with R = 1 the same draw rests on a step that is not a multiple of 2 (here m = 3)."""
    spec = LinearSeparateSpec(dim=4, heads=5, rank=1, seed=0, t_max=600.0)        # m = 3 is reached at t ~ 400
    steps = th.summarise(spec, th.predict(spec, test_size=50))["plateau_steps"]
    assert any(m % 2 == 1 for m in steps)
