"""The deep-linear spec: every field a CLI flag, validated once (one-line SpecError naming the field)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from reduced_dynamics.errors import SpecError
from reduced_dynamics.specs import (Spec, TrainingTime, consistent_duration, float_tuple, nonnegative_float,
                                    nonnegative_int, one_of, param, positive_float, positive_int, weight_decay_param)

INITS = ("aligned", "random")


@dataclass(frozen=True)
class DeepLinearSpec(TrainingTime, Spec):
    """Two-layer linear network W2 W1 on whitened data, E[x x^T] = I, E[y x^T] = U S V^T (DL-1).

    Defaults: 8 inputs, 3 hidden units, 6 outputs, S = (3, 2, 1, 0.5): the network has fewer hidden units
    than modes, so the fourth mode is never learnt and the loss settles at the rank-3 floor s_4^2 / 2
    (a level both sides reach, which makes the final loss a meaningful metric)."""

    model: ClassVar[str] = "deep-linear"

    in_dim: int = param(8, "input dimension")
    hidden: int = param(3, "hidden units")
    out_dim: int = param(6, "output dimension")
    singular_values: tuple[float, ...] = param((3.0, 2.0, 1.0, 0.5),
                                               "singular values s1>=s2>=... of E[y x^T] (at most min(in, out))")
    init_scale: float = param(0.01, "aligned: a = b = init_scale per mode (u0 = init_scale^2); "
                                    "random: entry standard deviation")
    init: str = param("aligned", "initial weights: balanced and aligned with the modes, or random", INITS)
    noise: float = param(0.0, "label noise standard deviation (the theory uses population moments)")
    train_size: int = param(256, "training samples P for gradient descent (exactly whitened, P >= in_dim)")
    lr: float = param(0.005, "gradient-descent learning rate (t = lr * step)")
    steps: int | None = param(None, "gradient-descent steps (default: t_max / lr)")
    t_max: float | None = param(None, "final gradient-flow time (default: lr * steps, or 15)")
    seed: int = param(0, "random seed (mode bases, initial weights, training set)")
    weight_decay: float = weight_decay_param()

    default_t_max: ClassVar[float] = 15.0

    def _validate(self) -> dict[str, Any]:
        out = {name: positive_int(name, getattr(self, name)) for name in ("in_dim", "hidden", "out_dim")}
        s = float_tuple("singular_values", self.singular_values)
        if not s or len(s) > min(out["in_dim"], out["out_dim"]) or min(s) <= 0 or list(s) != sorted(s)[::-1]:
            raise SpecError("singular_values", f"1 to {min(out['in_dim'], out['out_dim'])} positive numbers, "
                            "largest first", self.singular_values)
        out.update(singular_values=s, init_scale=positive_float("init_scale", self.init_scale),
                   init=one_of("init", self.init, INITS), noise=nonnegative_float("noise", self.noise),
                   train_size=positive_int("train_size", self.train_size), lr=positive_float("lr", self.lr),
                   seed=nonnegative_int("seed", self.seed))
        if out["train_size"] < out["in_dim"]:
            raise SpecError("train_size", f"at least in_dim = {out['in_dim']} (the inputs are whitened)",
                            self.train_size)
        if self.steps is not None:
            out["steps"] = positive_int("steps", self.steps)
        if self.t_max is not None:
            out["t_max"] = positive_float("t_max", self.t_max)
        consistent_duration(self)
        return out

    @property
    def modes(self) -> int:
        return len(self.singular_values)
