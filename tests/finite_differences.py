"""Central differences of a loss over a dict of parameter arrays (used by the reference-gradient tests)."""
import numpy as np


def central_gradient(loss, params: dict, eps: float = 1e-6) -> dict:
    """d loss / d params[name][idx] by central differences, entry by entry, for every array in ``params``."""
    out = {}
    for name, value in params.items():
        grad = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            up = {k: v.copy() for k, v in params.items()}
            down = {k: v.copy() for k, v in params.items()}
            up[name][idx] += eps
            down[name][idx] -= eps
            grad[idx] = (loss(up) - loss(down)) / (2 * eps)
        out[name] = grad
    return out
