"""Test fixtures of our four families for the common suite (``reduced_dynamics.testing``): small sizes,
the bad inputs each must reject with the parameter named, and the start tolerance. They were fields of the
production registry; they live with the tests now."""
from reduced_dynamics.testing import FamilyCase

nan = float("nan")

ATTN_M = FamilyCase(
    "attn-m",
    small_spec={"dim": 2, "context": 5, "heads": 2, "init_scale": 0.1, "train_size": 200, "lr": 0.05,
                   "t_max": 20.0},
    bad_inputs=(({"dim": 0}, "dim"), ({"dim": 2.5}, "dim"), ({"context": -1}, "context"),
                    ({"heads": 0}, "heads"), ({"train_size": 0}, "train_size"), ({"steps": 0}, "steps"),
                    ({"init_scale": 0.0}, "init_scale"), ({"init_scale": nan}, "init_scale"),
                    ({"lr": -0.1}, "lr"), ({"t_max": nan}, "t_max"),
                    ({"eigenvalues": (1.0, -1.0, 1.0, 1.0)}, "eigenvalues"),
                    ({"eigenvalues": (1.0, 1.0)}, "eigenvalues"), ({"covariance": "diagonal"}, "covariance"),
                    ({"output_scale": "half"}, "output_scale"), ({"all_weights": "yes"}, "all_weights")),
)

# softmax: lr 0.5 keeps the O(lr) GD-flow gap (SF-10) near 1 % (at lr 1 it is about 2 % at these sizes).
# GD's loss at step 0 is estimated on eval_prompts sampled contexts: at M = 0 (K = 3, N = 10) one feature's
# loss has a relative standard error of 0.41 % with 10000 contexts; a start tolerance of 2 % is about 5 of them.
SOFTMAX = FamilyCase(
    "softmax",
    small_spec={"features": 3, "dim": 4, "context": 10, "lr": 0.5, "steps": 80, "batch": 5000,
                   "eval_prompts": 10000, "record_every": 2, "thresholds": (0.2, 0.1, 0.07)},
    bad_inputs=(({"features": 1}, "features"), ({"dim": 3}, "dim"), ({"context": 0}, "context"),
                    ({"probabilities": (0.5, 0.6, -0.1, 0.0)}, "probabilities"),
                    ({"probabilities": (0.4, 0.3, 0.2, 0.2)}, "probabilities"),
                    ({"probabilities": (0.5, 0.5)}, "probabilities"),
                    ({"dominant": 1.5}, "dominant"), ({"dominant": 0.6, "balanced": True}, "balanced"),
                    ({"lr": 0.0}, "lr"), ({"batch": 0}, "batch"), ({"limit": "infinite"}, "limit"),
                    ({"t_max": nan}, "t_max"), ({"thresholds": (0.1, -0.1)}, "thresholds")),
    start_tolerance=0.02,
)

ATTN_S = FamilyCase(
    "attn-s",
    small_spec={"dim": 2, "context": 5, "heads": 2, "rank": 1, "init_scale": 0.1, "init_rule": "normal",
                   "output_scale": "paper", "train_size": 200, "lr": 0.05, "t_max": 60.0,
                   "freeze_off_manifold": True},
    bad_inputs=(({"dim": 0}, "dim"), ({"rank": 0}, "rank"), ({"rank": -1}, "rank"), ({"rank": 5}, "rank"),
                    ({"rank": 1.5}, "rank"), ({"heads": 0}, "heads"), ({"context": 0}, "context"),
                    ({"init_rule": "xavier"}, "init_rule"), ({"init_scale": -1.0}, "init_scale"),
                    ({"init_scale": nan}, "init_scale"), ({"train_size": 0}, "train_size"),
                    ({"lr": 0.0}, "lr"), ({"steps": 2.5}, "steps"), ({"t_max": -3.0}, "t_max"),
                    ({"eigenvalues": (1.0, 2.0)}, "eigenvalues"), ({"covariance": "wishart"}, "covariance"),
                    ({"output_scale": "half"}, "output_scale"), ({"freeze_off_manifold": "yes"},
                                                                 "freeze_off_manifold")),
)

# sparse: both sides start at the null predictor: risk s exactly (theory, +-1 nonzeros) against the
# initialised network (init 0.05: |w_theta| ~ 1e-3) on different prompts, hence 2 %.
SPARSE = FamilyCase(
    "sparse",
    small_spec={"dim": 4, "sparsity": 2, "noise": 0.1, "context": 8, "nonzero_law": "rademacher",
                   "layers": 2, "heads": 2, "steps": 20, "batch": 64, "test_prompts": 300, "tune_prompts": 300,
                   "depth_points": 9, "depth_max": 64.0},
    bad_inputs=(({"dim": 4, "sparsity": 5}, "sparsity"), ({"sparsity": 0}, "sparsity"),
                    ({"context": 0}, "context"), ({"noise": -0.1}, "noise"),
                    ({"nonzero_law": "laplace"}, "nonzero_law"), ({"dim": 2.5}, "dim"),
                    ({"heads": 0}, "heads"), ({"layers": 0}, "layers"), ({"noise": nan}, "noise"),
                    ({"optimizer": "sgd"}, "optimizer"), ({"depth_min": 2.0, "depth_max": 1.0}, "depth_max")),
    start_tolerance=0.02,
)

CASES = {case.name: case for case in (ATTN_M, SOFTMAX, ATTN_S, SPARSE)}
