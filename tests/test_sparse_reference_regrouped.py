"""The regrouped forward and backward pass of the sparse witness (one D^2 x D^2 head tensor per layer) against
a saved copy of the earlier head-by-head formulas (SM-9, SM-14 applied per head, as in the reference before
the speed-up of issue 12 item 7). Both must give the same layers, loss and gradient to 1e-12 relative."""
import numpy as np
import pytest

from reduced_dynamics.reference import sparse_multihead as ref
from reduced_dynamics.specs import SparseSpec
from reduced_dynamics.tasks.sparse_regression import sample_prompts


# --- saved copy of the head-by-head formulas (head layout (h, D, B, N), batch layout (B, D, h N)) -----------

def _to_batch(X):
    h, D, B, N = X.shape
    return np.transpose(X, (2, 1, 0, 3)).reshape(B, D, h * N)


def _to_heads(X, h):
    B, D, hN = X.shape
    return np.transpose(X.reshape(B, D, h, hN // h), (2, 1, 0, 3))


def _apply_heads(M, X):
    h, D, _ = M.shape
    if X.ndim == 3:
        return (M.reshape(h * D, D) @ X.reshape(D, -1)).reshape((h, D) + X.shape[1:])
    return np.matmul(M, X.reshape(h, D, -1)).reshape(X.shape)


def old_forward(P, Q, Z0, n, mask):
    h = P.shape[1]
    Zs, As, QZs = [Z0], [], []
    Z = Z0
    for l in range(P.shape[0]):
        ctx = Z[:, :, :n]
        A = ctx @ np.transpose(ctx, (0, 2, 1)) / n
        QZ = _apply_heads(Q[l], np.transpose(Z, (1, 0, 2)))
        AQZ = _to_heads(A @ _to_batch(QZ), h)
        heads = _apply_heads(P[l] * mask[l][:, None, None], AQZ)
        Z = Z + np.transpose(heads.sum(axis=0), (1, 0, 2))
        As.append(A)
        QZs.append(QZ)
        Zs.append(Z)
    return Zs, As, QZs


def old_loss_and_grad(P, Q, prompts, scratch, mask):
    n, d = prompts.X.shape[1], prompts.X.shape[2]
    Zs, As, QZs = old_forward(P, Q, ref.tokens(prompts, scratch, "prompt"), n, mask)
    B = prompts.count
    resid = -Zs[-1][:, d, -1] - prompts.yq
    loss = 0.5 * float(np.mean(resid ** 2))
    G = np.zeros_like(Zs[-1])
    G[:, d, -1] = -resid / B
    dP, dQ = np.zeros_like(P), np.zeros_like(Q)
    h, D = P.shape[1], P.shape[2]
    for l in reversed(range(P.shape[0])):
        Z, A, QZ = Zs[l], As[l], QZs[l]
        m = mask[l][:, None, None]
        G2 = np.transpose(G, (1, 0, 2)).reshape(D, -1)
        AQZ = _to_heads(A @ _to_batch(QZ), h).reshape(h, D, -1)
        dP[l] = (G2 @ np.transpose(AQZ, (0, 2, 1))) * m
        PtG = np.matmul(np.transpose(P[l] * m, (0, 2, 1)), G2)
        PtG_b = _to_batch(PtG.reshape(QZ.shape))
        APtG = _to_heads(A @ PtG_b, h)
        Z2 = np.transpose(Z, (1, 0, 2)).reshape(D, -1)
        dQ[l] = APtG.reshape(h, D, -1) @ Z2.T
        direct = Q[l].reshape(h * D, D).T @ APtG.reshape(h * D, -1)
        H = PtG_b @ np.transpose(_to_batch(QZ), (0, 2, 1))
        through_A = np.zeros_like(Z)
        through_A[:, :, :n] = (H + np.transpose(H, (0, 2, 1))) @ Z[:, :, :n] / n
        G = G + np.transpose(direct.reshape(D, Z.shape[0], -1), (1, 0, 2)) + through_A
    return loss, dP, dQ


# --- the comparison ------------------------------------------------------------------------------------------

CASES = [  # dim, context, layers, heads, scratch, masked head or None, batch
    (4, 9, 3, 2, 2, (1, 0), 7),
    (8, 24, 3, 4, 0, None, 64),
    (5, 7, 1, 3, 3, (0, 2), 11),
    (3, 6, 4, 1, 0, None, 9),
    (6, 10, 2, 5, 4, (1, 4), 13),
]


@pytest.mark.parametrize("dim,context,layers,heads,scratch,masked,batch", CASES)
def test_regrouped_pass_equals_head_by_head_formulas(dim, context, layers, heads, scratch, masked, batch):
    spec = SparseSpec(dim=dim, sparsity=min(2, dim), context=context, layers=layers, heads=heads,
                      scratch=scratch, init_scale=0.3)
    rng = np.random.default_rng(dim + 10 * layers)
    params = ref.init_params(spec, rng)
    prompts = sample_prompts(spec, batch, rng)
    mask = np.ones((layers, heads))
    if masked is not None:
        mask[masked] = 0.0

    for query in ("prompt", "both"):
        Z0 = ref.tokens(prompts, scratch, query)
        new = ref.forward(params, Z0, context, mask).Zs
        old = old_forward(params.P, params.Q, Z0, context, mask)[0]
        for a, b in zip(new, old):
            assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b))

    # read-outs with the last layer on the query columns only (SM-11, SM-12)
    old_w = -old_forward(params.P, params.Q, ref.tokens(prompts, scratch, "basis"), context, mask)[0][-1][:, dim, -dim:]
    assert np.max(np.abs(ref.task_estimate(params, prompts, mask) - old_w)) <= 1e-12 * np.max(np.abs(old_w))
    old_y = -old_forward(params.P, params.Q, ref.tokens(prompts, scratch), context, mask)[0][-1][:, dim, -1]
    assert np.max(np.abs(ref.predict_query(params, prompts, mask) - old_y)) <= 1e-12 * np.max(np.abs(old_y))

    loss, grad = ref.loss_and_grad(params, prompts, mask)
    old_loss, old_dP, old_dQ = old_loss_and_grad(params.P, params.Q, prompts, scratch, mask)
    assert abs(loss - old_loss) <= 1e-12 * abs(old_loss)
    for a, b in ((grad.P, old_dP), (grad.Q, old_dQ)):
        assert np.max(np.abs(a - b)) <= 1e-12 * np.max(np.abs(b))
        if masked is not None:
            assert np.all(a[masked] == 0)
