"""A user's own initial weights and training set for the linear-attention theories (attn-m, attn-s):
``rd.predict(spec, initial_weights=..., training_set=...)`` (rule 18 of ``families.contract``).

``initial_weights`` is a mapping of NumPy arrays in the layout of the full models of §3, the one the
reference (``reduced_dynamics.reference.linear_attention``) and the family's draw hold, label coordinate last:

* attn-m: ``{"W": (H, D+1, D+1), "r": (H, D+1)}``, merged key-query matrices W_i and value rows r_i (LA-5);
* attn-s: ``{"K": (H, R, D+1), "Q": (H, R, D+1), "r": (H, D+1)}``, keys, queries, value rows (LA-6).

The theory starts from their projection (LA-35): v_i = r_i[D], U_i = W_i[:D, :D] (attn-m), K_i^x = K_i[:, :D],
Q_i^x = Q_i[:, :D] (attn-s). The projection drops two kinds of entries. Those that multiply the query's label
slot (W_i[:, D], Q_i[:, D]) never reach the prediction: dropping them loses nothing, any value is accepted.
The off-manifold blocks u_i = W_i[D, :D] (attn-m), k_i^y = K_i[:, D] (attn-s) and r_i^x = r_i[:D] do reach
it: the reduced flows (LA-22, LA-29) are the dynamics only on the invariant manifold where they vanish (§3),
and off it they form a second in-context route that the flow does not have (linear_attention_iwl.md §12.3).
A start with any of them non-zero is therefore refused (``SpecError``), not projected: the curve would be
the theory of another start. Zero them, as the reference's initialisation (§8) does.

``training_set`` is a mapping (or a ``tasks.linear_attention.TrainingSet``) with ``x`` (P, N, D) contexts,
``y`` (P, N) context labels, ``xq`` (P, D) queries and ``yq`` (P,) query targets, N = ``spec.context`` and
D = ``spec.dim``; the theory then uses the sample moments (§5) of exactly that set, as it is (the spec's
``centre_inputs`` and ``whiten_tasks`` describe the spec's own draw and do not touch a given set). The
observables written in the covariance eigenbasis then use the eigenbasis of the set's own inputs
(``covariance``), since a set from elsewhere need not follow the spec's covariance.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ...errors import SpecError
from ...tasks import linear_attention as task
from .flow import Moments, moments_for, sample_moments

OPTIONS = ("initial_weights", "training_set")


def supported(spec: Any, options: dict) -> None:
    """The projection (LA-35) is onto the invariant manifold of linear attention at icl = 1; the softmax
    expansion and the §12 flows have no such start: a given option there is a SpecError naming it."""
    for name in OPTIONS:
        if options.get(name) is not None and (spec.attention != "linear" or spec.icl != 1.0
                                              or getattr(spec, "all_weights", False)):
            raise SpecError(name, "attention='linear', icl=1 and all_weights off (the projection LA-35 onto the "
                                  "invariant manifold of §3)", f"attention={spec.attention!r}, icl={spec.icl}, "
                                  f"all_weights={getattr(spec, 'all_weights', False)}")


def layout(spec: Any) -> dict[str, tuple[int, ...]]:
    """Name -> shape of the full weights of the spec's model (module docstring)."""
    H, D = spec.heads, spec.dim
    if spec.model == "attn-s":
        R = spec.rank
        return {"K": (H, R, D + 1), "Q": (H, R, D + 1), "r": (H, D + 1)}
    return {"W": (H, D + 1, D + 1), "r": (H, D + 1)}


def _array(option: str, key: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    where = f"{option}[{key!r}]"
    try:
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise SpecError(where, f"a real array of shape {shape}", type(value).__name__) from None
    if array.shape != shape:
        raise SpecError(where, f"shape {shape}", array.shape)
    if not np.all(np.isfinite(array)):
        raise SpecError(where, "finite entries", "NaN or inf")
    return array.copy()


def weights(spec: Any, given: Any) -> dict[str, np.ndarray]:
    """The checked full weights (copies, float): shapes of ``layout``, the off-manifold blocks exactly zero."""
    shapes = layout(spec)
    names = ", ".join(f"{k!r}: {v}" for k, v in shapes.items())
    if not isinstance(given, Mapping) or set(given) != set(shapes):
        got = sorted(given) if isinstance(given, Mapping) else type(given).__name__
        raise SpecError("initial_weights", f"a mapping {{{names}}} for {spec.model}", got)
    out = {key: _array("initial_weights", key, given[key], shape) for key, shape in shapes.items()}
    D = spec.dim
    route = ("K", "[:, :, D] (k_i^y)", out["K"][:, :, D]) if "K" in out else ("W", "[:, D, :D] (u_i)", out["W"][:, D, :D])
    blocks = [route, ("r", "[:, :D] (r_i^x)", out["r"][:, :D])]
    for key, block, values in blocks:
        if np.any(values != 0.0):
            raise SpecError(f"initial_weights[{key!r}]{block}",
                            "zeros: off the invariant manifold of §3 the reduced flow is not the dynamics "
                            "(zero the block, as the reference's initialisation does)",
                            f"max |entry| {float(np.max(np.abs(values))):.3g}")
    return out


def training_set(spec: Any, given: Any) -> task.TrainingSet:
    """The checked training set (float copies): x (P, N, D), y (P, N), xq (P, D), yq (P,)."""
    fields = ("x", "y", "xq", "yq")
    missing = [f for f in fields if (f not in given if isinstance(given, Mapping) else not hasattr(given, f))]
    if missing:
        raise SpecError("training_set", "a mapping with x (P, N, D), y (P, N), xq (P, D), yq (P,)",
                        f"no {', '.join(missing)}")
    N, D = spec.context, spec.dim
    yq = np.asarray(_field(given, "yq"))
    P = yq.shape[0] if yq.ndim == 1 and yq.shape[0] > 0 else -1
    if P < 1:
        raise SpecError("training_set['yq']", "shape (P,) with P >= 1", yq.shape)
    shapes = {"x": (P, N, D), "y": (P, N), "xq": (P, D), "yq": (P,)}
    arrays = {f: _array("training_set", f, _field(given, f), shapes[f]) for f in fields}
    return task.TrainingSet(**arrays, w=None)       # the tasks w are not needed by the sample moments (§5)


def _field(given: Any, name: str) -> Any:
    """An array of a given training set, a mapping or a ``TrainingSet``."""
    return given[name] if isinstance(given, Mapping) else getattr(given, name)


def covariance(data: task.TrainingSet) -> task.Covariance:
    """The given set's input law as far as the set shows it: the eigen-decomposition (decreasing) of the
    second-moment matrix of all its inputs (contexts and queries). Observables written "in the covariance
    eigenbasis" (``beta``; for attn-s also ``learned`` and the held-out prompts) use it in place of the
    spec's covariance, which a set from elsewhere need not follow."""
    D = data.xq.shape[1]
    X = np.concatenate([data.x.reshape(-1, D), data.xq])
    eigenvalues, basis = np.linalg.eigh(X.T @ X / len(X))
    return task.Covariance(eigenvalues[::-1].copy(), basis[:, ::-1].copy())


def moments(spec: Any, problem: task.Problem, given_set: task.TrainingSet | None, kind: str | None) -> Moments:
    """The spec's moments (``moments_for``) or, with a given set, the sample moments of that set."""
    if given_set is None:
        return moments_for(spec, problem, kind)
    if kind not in (None, "sample"):
        raise SpecError("moments", "'sample' (or nothing) with a given training_set", kind)
    return sample_moments(spec, given_set)


def meta(initial_weights: Any, given_set: Any) -> dict:
    """Meta entries saying where the start and the moments came from (only when the user gave something,
    so that the default path's meta is unchanged). ``given_set`` as the user gave it, already checked by
    ``training_set`` (in ``setup``)."""
    if initial_weights is None and given_set is None:
        return {}
    out = {"initial_weights": "given" if initial_weights is not None else "drawn from the spec's seed",
           "training_set": "given" if given_set is not None else "none given (the spec's moments)"}
    if given_set is not None:
        out["given_train_size"] = int(np.shape(_field(given_set, "yq"))[0])
    return out
