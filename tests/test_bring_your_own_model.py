"""docs/bring-your-own-model.md: its mapping from the linear-attention authors' PyTorch layout (attnM) to our
weights, run on weights in that layout with the PyTorch forward pass written out in NumPy (no PyTorch needed).
The two models must predict the same, and the reduced flow started from the mapped weights on the same set
must start at the PyTorch model's loss."""
import re
from pathlib import Path

import numpy as np
import pytest

import reduced_dynamics as rd

PAGE = Path(__file__).resolve().parent.parent / "docs" / "bring-your-own-model.md"


def page_code():
    section = PAGE.read_text().split("## The mapping in code", 1)[1]
    (code,) = re.findall(r"```python\n(.*?)```", section, re.DOTALL)[:1]
    namespace = {}
    exec(compile(code, str(PAGE), "exec"), namespace)
    return namespace


def torch_layout(rng, D, H, sigma):
    """Weights as nn.Linear(D+1, H*(D+1)) holds them, zeroed where the authors' initialisation zeroes them."""
    E = D + 1
    kq, value = sigma * rng.standard_normal((H * E, E)), sigma * rng.standard_normal((H * E, E))
    for h in range(H):
        kq[h * E:h * E + D, -1] = 0.0
        value[(h + 1) * E - 1, :D] = 0.0
    return kq, value


def torch_forward(kq, value, x, H, forward_scale):
    """Attention_Merge.forward in NumPy: a linear layer is x @ weight.T; the label entry of the query's output."""
    B, T, E = x.shape
    KQ = (x @ kq.T).reshape(B, T, H, E).transpose(0, 2, 1, 3)        # (B, H, T, E)
    V = (x @ value.T).reshape(B, T, H, E).transpose(0, 2, 1, 3)
    attn = x[:, None] @ KQ.transpose(0, 1, 3, 2)                      # (B, H, T, T)
    out = (attn @ V).sum(axis=1) * forward_scale                      # (B, T, E)
    return out[:, -1, E - 1]


def data(rng, P, N, D):
    inputs = rng.standard_normal((P, N + 1, D)) * np.sqrt([0.5, 0.3, 0.2][:D])
    labels = np.einsum("pnd,pd->pn", inputs, rng.standard_normal((P, D)))
    x = np.concatenate([inputs, labels[..., None]], axis=-1)
    y = x.copy()
    x[:, -1, D] = 0.0
    return x, y


@pytest.mark.parametrize("forward_scale", ["1", "1/N"])
def test_the_page_maps_the_pytorch_model_onto_ours(forward_scale):
    code = page_code()
    rng = np.random.default_rng(3)
    D, N, H, P = 3, 8, 2, 300
    c = 1.0 if forward_scale == "1" else 1.0 / N
    kq, value = torch_layout(rng, D, H, sigma=0.3)
    x, y = data(rng, P, N, D)
    weights, rate_factor = code["from_torch_layout"](kq, value, heads=H, context=N, forward_scale=c)
    assert rate_factor == pytest.approx(c * N)
    Z = x.transpose(0, 2, 1)                                            # our layout: tokens as columns
    ours = np.einsum("ha,pab,hbc,pc->p", weights["r"], Z @ Z.transpose(0, 2, 1), weights["W"], Z[:, :, -1]) / N
    theirs = torch_forward(kq, value, x, H, c)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    assert np.allclose(weights["W"][:, D, :D], 0) and np.allclose(weights["r"][:, :D], 0)   # on the manifold

    training_set = code["training_set_from_tokens"](x, y)
    spec = rd.spec("attn-m", dim=D, context=N, heads=H, lr=0.05, t_max=1)
    theory = rd.predict(spec, initial_weights=weights, training_set=training_set)
    torch_loss = np.mean((theirs - y[:, -1, D]) ** 2)
    assert theory.loss[0] == pytest.approx(torch_loss, rel=1e-10)
