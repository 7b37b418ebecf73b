"""Trained multi-head linear attention on sparse regression: SM-C19, SM-C20 (and SM-C21 recorded, not asserted).

Setting of sparse_multihead.md §9: d = 8, s = 2, sigma = 0.1, n = 24, N(0,1) nonzeros, L = 3, d_s = 0, the §2.5
recipe (Adam 1e-3, batch 512, init N(0, 0.05^2), clip 1.0, 10k steps, 4000 evaluation prompts).
Minutes per run: marked slow; run with `pytest -m slow tests/test_sparse_trained_slow.py -s`.
"""
import numpy as np
import pytest

from reduced_dynamics.reference import sparse_multihead as ref
from reduced_dynamics.specs import SparseSpec

SETTING = SparseSpec(dim=8, sparsity=2, noise=0.1, context=24, nonzero_law="gaussian", layers=3, heads=4,
                     scratch=0, steps=10_000, seed=0)


@pytest.fixture(scope="module")
def four_heads():
    return ref.run_experiment(SETTING, progress=True)


@pytest.fixture(scope="module")
def one_head():
    return ref.run_experiment(SETTING.replace(heads=1), progress=True)


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="NOT reproduced (seed 0, this recipe): R(h=4) = 0.0065 ± 0.0001 and "
                   "R(h=1) = 0.0069 ± 0.0001, ratio 0.94 (note: 0.029 vs 0.091). Both models train to near the "
                   "tuned-ridge level 0.0054, so at d = 8, n = 24 one head per layer already suffices")
def test_sm_c19_multi_head_beats_single_head(four_heads, one_head):
    r4, r1 = four_heads.risk[0], one_head.risk[0]
    print(f"\nSM-C19: R(h=4) = {r4:.4f} ± {four_heads.risk[1]:.4f}, R(h=1) = {r1:.4f} ± {one_head.risk[1]:.4f}, "
          f"ratio {r4 / r1:.3f}")
    assert r4 < 0.6 * r1


@pytest.mark.slow
def test_sm_c20_single_first_layer_head_is_catastrophic(four_heads):
    """Measured (seed 0): 0.183 with only the top layer-1 head vs 0.0065 full (ratio 28; note: 12.1, ratio 400)."""
    full, top = four_heads.risk[0], four_heads.top_first_risk[0]
    print(f"\nSM-C20: top layer-1 head only {top:.4f} vs full {full:.4f} (ratio {top / full:.1f})")
    assert top > 20 * full


@pytest.mark.slow
def test_sm_c21_pruning_recorded_not_asserted(four_heads):
    """The paper's pruning claim (R(pruned) ~ R(full)) is NOT reproduced in linear attention (note §6); this
    test records the numbers and checks only that the evaluation is finite and the masks are well formed.
    Measured (seed 0): pruned 0.158 vs full 0.0065 (ratio 24; note: 0.68 vs 0.029, ratio 23)."""
    pruned, full = four_heads.pruned_risk[0], four_heads.risk[0]
    print(f"\nSM-C21: pruned {pruned:.4f} vs full {full:.4f} (ratio {pruned / full:.1f})")
    print("raw Delta per layer:\n" + np.array2string(four_heads.deltas, precision=4))
    print("relative importance per layer:\n" + np.array2string(four_heads.importance, precision=3))
    assert np.isfinite(pruned) and np.all(np.isfinite(four_heads.deltas))
    assert ref.pruning_mask(four_heads.deltas).sum() == SETTING.heads + SETTING.layers - 1
