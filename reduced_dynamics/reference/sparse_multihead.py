"""NumPy witness of the sparse family: multi-layer, multi-head linear attention with hand-written gradients.

Implements §2 and §3 of the theory note ``sparse_multihead.md``:

* tokens (SM-7) with ``d_s`` zero scratch rows, width D = d + 1 + d_s; extra query columns (SM-12);
* layers Z_l = Z_{l-1} + sum_k m_{l,k} P_{l,k} A(Z_{l-1}) Q_{l,k} Z_{l-1}, A(Z) = Z M Z^T / n (SM-8, SM-9);
* read-out y_q = -e_y^T Z_L e_q (SM-11), exact per-prompt risk through d basis query columns (SM-12, SM-6);
* the loss (SM-13) and its hand-written gradient (SM-14), checked against central differences (SM-C1);
* Adam with gradient-norm clipping (the §2.5 recipe) or plain GD (needed when comparing with a flow);
* head importance by masking (SM-15, SM-16), pruning (SM-17), read-out and preprocessing probes (SM-18, SM-19).

This module NEVER imports ``derivations`` or ``reduced_dynamics.theory``: it is the independent witness. It
only shares the neutral problem definition of ``reduced_dynamics.tasks.sparse_regression`` (prompt sampler,
initial-weight law, the problem draw) and the spec. Its
own small T-step GD baseline for the preprocessing probe (SM-19) is written here for that reason.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from ..errors import DivergenceError
from ..specs import SparseSpec, SpecError
from ..tasks.sparse_regression import Prompts, draw, excess_risk, initial_weights, mean_and_stderr, sample_prompts


# ---------------------------------------------------------------------------------------------------------
# parameters

@dataclass
class Params:
    """P and Q of shape (L, h, D, D) each (SM-9); ``scratch`` is d_s, so D = d + 1 + d_s."""

    P: np.ndarray
    Q: np.ndarray
    dim: int
    scratch: int

    @property
    def layers(self) -> int:
        return self.P.shape[0]

    @property
    def heads(self) -> int:
        return self.P.shape[1]

    @property
    def width(self) -> int:
        return self.P.shape[2]

    def copy(self) -> "Params":
        return Params(self.P.copy(), self.Q.copy(), self.dim, self.scratch)

    def flat(self) -> np.ndarray:
        return np.concatenate([self.P.ravel(), self.Q.ravel()])


def init_params(spec: SparseSpec, rng: np.random.Generator, heads: int | None = None) -> Params:
    """Entrywise N(0, init_scale^2) initialisation (§2.5). ``heads`` overrides spec.heads (e.g. the h = 1
    comparison model of SM-C19). The law is the problem's (:func:`reduced_dynamics.tasks.sparse_regression.initial_weights`)."""
    return Params(*initial_weights(spec, rng, heads), spec.dim, spec.scratch)


def full_mask(params: Params) -> np.ndarray:
    """All heads on: the (L, h) mask m of SM-9."""
    return np.ones((params.layers, params.heads))


def _check_mask(params: Params, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return full_mask(params)
    mask = np.asarray(mask, dtype=float)
    if mask.shape != (params.layers, params.heads) or not np.all((mask == 0) | (mask == 1)):
        raise SpecError("mask", f"a 0/1 array of shape {(params.layers, params.heads)}", mask)
    return mask


# ---------------------------------------------------------------------------------------------------------
# tokens and forward pass

def tokens(prompts: Prompts, scratch: int, query: str = "prompt") -> np.ndarray:
    """Token matrix Z_0 (SM-7), shape (B, D, n + Nq). Context columns 0..n-1. Query columns (masked by M):
    ``query="prompt"`` -> the prompt's x_q (Nq = 1); ``"basis"`` -> e_1..e_d (Nq = d, SM-12);
    ``"both"`` -> x_q followed by e_1..e_d (Nq = d + 1)."""
    B, n, d = prompts.X.shape
    cols = {"prompt": [prompts.xq[:, :, None]],
            "basis": [np.broadcast_to(np.eye(d), (B, d, d))],
            "both": [prompts.xq[:, :, None], np.broadcast_to(np.eye(d), (B, d, d))]}
    if query not in cols:
        raise SpecError("query", "one of prompt, basis, both", query)
    xq = np.concatenate(cols[query], axis=2)
    Z = np.zeros((B, d + 1 + scratch, n + xq.shape[2]))
    Z[:, :d, :n] = np.transpose(prompts.X, (0, 2, 1))
    Z[:, d, :n] = prompts.y
    Z[:, :d, n:] = xq
    return Z


@dataclass
class Forward:
    """Cached forward pass: Zs[l] = Z_l (B, D, N) for l = 0..L; per layer A(Z_{l-1}) (B, D, D) and the
    per-prompt layer matrix W_l = sum_k m_{l,k} P_{l,k} A(Z_{l-1}) Q_{l,k} (B, D, D)."""

    Zs: list = field(default_factory=list)
    As: list = field(default_factory=list)
    Ws: list = field(default_factory=list)
    n: int = 0


# SM-9 regrouped: per prompt the heads of layer l sum to one D x D matrix W = sum_k m_k P_k A Q_k, and
# Z_l = Z_{l-1} + W Z_{l-1}. W is linear in A: W[i, m] = sum_{j,c} R[i, m, j, c] A[j, c] with the layer's
# D^2 x D^2 head tensor R[i, m, j, c] = sum_k m_k P_k[i, j] Q_k[c, m]. So all heads and all prompts of a
# layer enter through one GEMM, (B, D^2) @ R^T, and the only per-prompt products left are the D x N ones
# (A, W Z and, in the backward pass, G Z^T, W^T G, (dA + dA^T) Z). Per layer this costs O(B D^4 + B D^2 N)
# instead of O(B h D^2 N) with fewer, larger products; the earlier head-by-head form is kept in
# tests/test_sparse_reference_regrouped.py, which checks that both agree to 1e-12.

def _heads_tensor(params: Params, mask: np.ndarray, l: int) -> np.ndarray:
    """R[i, m, j, c] = sum_k m_{l,k} P_{l,k}[i, j] Q_{l,k}[c, m] as a (D^2, D^2) matrix, rows (i, m), columns (j, c)."""
    D = params.width
    Pm = params.P[l] * mask[l][:, None, None]
    return np.einsum("kij,kcm->imjc", Pm, params.Q[l]).reshape(D * D, D * D)


def forward(params: Params, Z0: np.ndarray, n: int, mask: np.ndarray | None = None,
            queries_only: bool = False) -> Forward:
    """Layers (SM-8, SM-9): Z_l = Z_{l-1} + sum_k m_{l,k} P_{l,k} A Q_{l,k} Z_{l-1}, A = Z M Z^T / n,
    evaluated as Z_l = Z_{l-1} + W_l Z_{l-1} with the per-prompt W_l = sum_k m_{l,k} P_{l,k} A Q_{l,k}.

    ``queries_only``: the last layer is applied to the query columns only (nothing reads its context
    columns: the read-out SM-11 and SM-12 takes query columns), so Zs[-1] is (B, D, N - n)."""
    mask = _check_mask(params, mask)
    B, D = Z0.shape[0], params.width
    out = Forward(Zs=[Z0], n=n)
    Z = Z0
    for l in range(params.layers):
        ctx = Z[:, :, :n]
        A = ctx @ np.transpose(ctx, (0, 2, 1)) / n                          # (B, D, D), symmetric (SM-8)
        W = (A.reshape(B, D * D) @ _heads_tensor(params, mask, l).T).reshape(B, D, D)
        if queries_only and l == params.layers - 1:
            Z = Z[:, :, n:]
        WZ = W @ Z
        WZ += Z                                                            # SM-9: Z_l = Z_{l-1} + W Z_{l-1}
        Z = WZ
        out.As.append(A)
        out.Ws.append(W)
        out.Zs.append(Z)
    return out


def predict_query(params: Params, prompts: Prompts, mask: np.ndarray | None = None) -> np.ndarray:
    """y_q = -e_y^T Z_L e_q for the prompt's own query (SM-11); shape (B,)."""
    Z0 = tokens(prompts, params.scratch, "prompt")
    return -forward(params, Z0, prompts.X.shape[1], mask, queries_only=True).Zs[-1][:, params.dim, -1]


def task_estimate(params: Params, prompts: Prompts, mask: np.ndarray | None = None) -> np.ndarray:
    """w_theta with w_theta_j = y_q(x_q = e_j), from d basis query columns in one pass (SM-12); (B, d)."""
    Z0 = tokens(prompts, params.scratch, "basis")
    return -forward(params, Z0, prompts.X.shape[1], mask, queries_only=True).Zs[-1][:, params.dim, -params.dim:]


def risk(params: Params, prompts: Prompts, mask: np.ndarray | None = None) -> tuple[float, float]:
    """Exact per-prompt excess risk ||w_theta - w*||^2 (SM-6 via SM-12), mean and standard error."""
    mean, se = mean_and_stderr(excess_risk(task_estimate(params, prompts, mask), prompts.w))
    return float(mean), float(se)


# ---------------------------------------------------------------------------------------------------------
# loss and hand-written gradient

def loss_and_grad(params: Params, prompts: Prompts, mask: np.ndarray | None = None) -> tuple[float, Params]:
    """Loss (SM-13) 1/2 mean_b (y_q - y_q*)^2 and its gradient (SM-14) by back-propagation.

    With A = A(Z_{l-1}), G = dL/dZ_l and W = sum_k m_k P_k A Q_k (see :func:`forward`), dW = G Z_{l-1}^T per
    prompt. SM-14 summed over the heads, dP_k = m_k sum_b dW (A Q_k)^T and dQ_k = sum_b A (m_k P_k)^T dW, is
    read off one D^2 x D^2 matrix dR[i, m, j, c] = sum_b dW[i, m] A[j, c] (the gradient of the head tensor
    R of :func:`forward`): dP_k[i, j] = m_k sum_{c,m} dR[i, m, j, c] Q_k[c, m], dQ_k[c, m] = sum_{i,j}
    m_k P_k[i, j] dR[i, m, j, c]. dZ_{l-1} gets W^T G directly and (dA + dA^T) Z M / n through A, with
    dA = sum_k m_k P_k^T dW Q_k^T (the H of SM-14 summed over the heads), dA[j, c] = sum_{i,m} dW[i, m]
    R[i, m, j, c]. Masked heads get zero gradient and pass no gradient back."""
    mask = _check_mask(params, mask)
    n, d = prompts.X.shape[1], params.dim
    fw = forward(params, tokens(prompts, params.scratch, "prompt"), n, mask, queries_only=True)
    B = prompts.count
    resid = -fw.Zs[-1][:, d, -1] - prompts.yq          # y_hat - y
    loss = 0.5 * float(np.mean(resid ** 2))
    G = np.zeros_like(fw.Zs[-1])                        # the last layer's query column only
    G[:, d, -1] = -resid / B                            # G_L = -(y_hat - y)/B e_y e_q^T
    dP = np.zeros_like(params.P)
    dQ = np.zeros_like(params.Q)
    D = params.width
    for l in reversed(range(params.layers)):
        Z, A, W = fw.Zs[l], fw.As[l], fw.Ws[l]
        Zout = Z[:, :, Z.shape[2] - G.shape[2]:]                            # the columns G refers to
        Pm = params.P[l] * mask[l][:, None, None]
        dW = (G @ np.transpose(Zout, (0, 2, 1))).reshape(B, D * D)          # rows (i, m)
        dR = (dW.T @ A.reshape(B, D * D)).reshape(D, D, D, D)               # dR[i, m, j, c]
        dP[l] = np.einsum("imjc,kcm->kij", dR, params.Q[l]) * mask[l][:, None, None]
        dQ[l] = np.einsum("kij,imjc->kcm", Pm, dR)
        if l == 0:
            break                                                           # dL/dZ_0 is not needed
        dA = (dW @ _heads_tensor(params, mask, l)).reshape(B, D, D)          # sum_k m_k P_k^T dW Q_k^T
        direct = np.transpose(W, (0, 2, 1)) @ G                             # residual: G + W^T G
        direct += G
        if direct.shape[2] == Z.shape[2]:
            G = direct
        else:                                                               # G_L: query columns only
            G = np.zeros_like(Z)
            G[:, :, Z.shape[2] - direct.shape[2]:] = direct
        sym = dA + np.transpose(dA, (0, 2, 1))
        sym /= n
        G[:, :, :n] += sym @ Z[:, :, :n]                                    # through A: (dA + dA^T) Z M / n
    return loss, Params(dP, dQ, params.dim, params.scratch)


# ---------------------------------------------------------------------------------------------------------
# training (§2.5)

@dataclass
class TrainResult:
    params: Params
    steps: np.ndarray          # step indices at which the evaluation risk was recorded
    risk: np.ndarray           # exact evaluation risk (SM-12) at those steps
    risk_stderr: np.ndarray
    train_loss: np.ndarray     # mini-batch loss (SM-13) at every step


# A mini-batch loss above this factor times max(first loss, 1) counts as divergence (as in the linear reference).
DIVERGENCE_FACTOR = 1e6


def train(spec: SparseSpec, rng: np.random.Generator, eval_prompts: Prompts, heads: int | None = None,
          mask: np.ndarray | None = None, record_every: int | None = None, progress: bool | None = False,
          init: Params | None = None) -> TrainResult:
    """Train on fresh prompts each step (batch ``spec.batch``) with Adam (lr ``spec.lr``, betas 0.9/0.999,
    eps 1e-8) or plain GD, global gradient-norm clip ``spec.clip`` (0 = off), for ``spec.steps`` steps (§2.5).

    Starts from ``init`` (default: drawn from ``rng`` by :func:`init_params`), then draws the batches from
    ``rng``. A plain-GD run after k steps sits at gradient-flow time t = lr * k for the loss SM-13. Raises
    DivergenceError if the loss becomes non-finite or exceeds DIVERGENCE_FACTOR * max(first loss, 1).
    ``progress``: tqdm bar on (True), off (False) or only on a terminal (None)."""
    params = init_params(spec, rng, heads) if init is None else init.copy()
    mask = _check_mask(params, mask)
    record_every = record_every or max(1, spec.steps // 50)
    m1 = np.zeros_like(params.flat())
    m2 = np.zeros_like(m1)
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    size = params.P.size
    rec_steps, rec_risk, rec_se, losses = [], [], [], np.empty(spec.steps)
    with threadpool_limits(limits=1, user_api="blas"):
        for k in tqdm(range(spec.steps + 1), disable=None if progress is None else not progress,
                      desc="train sparse", unit="step", mininterval=1.0, leave=False):
            if k % record_every == 0 or k == spec.steps:
                mean, se = risk(params, eval_prompts, mask)
                rec_steps.append(k)
                rec_risk.append(mean)
                rec_se.append(se)
            if k == spec.steps:
                break
            with np.errstate(over="ignore", invalid="ignore"):
                loss, grad = loss_and_grad(params, sample_prompts(spec, spec.batch, rng), mask)
            if not np.isfinite(loss) or loss > DIVERGENCE_FACTOR * max(losses[0] if k else loss, 1.0):
                raise DivergenceError("sparse", k, loss, f"lower --lr (now {spec.lr:g})")
            losses[k] = loss
            g = grad.flat()
            norm = float(np.linalg.norm(g))
            if spec.clip > 0 and norm > spec.clip:
                g = g * (spec.clip / norm)
            if spec.optimizer == "adam":
                m1 = beta1 * m1 + (1 - beta1) * g
                m2 = beta2 * m2 + (1 - beta2) * g * g
                step = spec.lr * (m1 / (1 - beta1 ** (k + 1))) / (np.sqrt(m2 / (1 - beta2 ** (k + 1))) + eps)
            else:
                step = spec.lr * g
            params = Params(params.P - step[:size].reshape(params.P.shape),
                            params.Q - step[size:].reshape(params.Q.shape), params.dim, params.scratch)
    return TrainResult(params, np.array(rec_steps), np.array(rec_risk), np.array(rec_se), losses)


# ---------------------------------------------------------------------------------------------------------
# head importance, pruning (§3.1, §3.2)

def head_deltas(params: Params, prompts: Prompts) -> np.ndarray:
    """Raw importance Delta_{l,k} = R(m_{l,k} = 0) - R(all on) on one fixed prompt set (SM-15); (L, h)."""
    base = risk(params, prompts)[0]
    out = np.zeros((params.layers, params.heads))
    for l in range(params.layers):
        for k in range(params.heads):
            mask = full_mask(params)
            mask[l, k] = 0
            out[l, k] = risk(params, prompts, mask)[0] - base
    return out


def relative_importance(deltas: np.ndarray) -> np.ndarray:
    """iota_{l,k} = max(Delta, 0) / sum_k' max(Delta, 0) within each layer (SM-16); a layer where no head
    helps gets NaN (there is nothing to normalise)."""
    pos = np.maximum(deltas, 0.0)
    total = pos.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, pos / np.where(total > 0, total, 1.0), np.nan)


def pruning_mask(deltas: np.ndarray) -> np.ndarray:
    """SM-17: keep every head of layer 1 and only the top head (largest Delta) of each later layer."""
    mask = np.zeros_like(deltas)
    mask[0] = 1.0
    mask[np.arange(1, deltas.shape[0]), np.argmax(deltas[1:], axis=1)] = 1.0
    return mask


def top_first_layer_mask(deltas: np.ndarray) -> np.ndarray:
    """Companion ablation of §3.2 (SM-C20): keep only the top head of layer 1, all heads elsewhere."""
    mask = np.ones_like(deltas)
    mask[0] = 0.0
    mask[0, np.argmax(deltas[0])] = 1.0
    return mask


# ---------------------------------------------------------------------------------------------------------
# probes (§3.3; both procedures are ours)

def readout_probe(params: Params, fit: Prompts, test: Prompts) -> np.ndarray:
    """Read-out probe per layer (SM-18): least squares c_l on h_l = Z_l e_q (fit prompts, target y_q); returns
    R_probe(l) = mean (c_l^T h_l - <w*, x_q>)^2 on the test prompts for l = 0..L, shape (L + 1, 2) holding
    (mean, stderr). Needs fit.count >= 10 D (§3.3)."""
    D = params.width
    if fit.count < 10 * D:
        raise SpecError("probe fit prompts", f"at least 10 D = {10 * D}", fit.count)
    n = fit.X.shape[1]
    hs_fit = [Z[:, :, -1] for Z in forward(params, tokens(fit, params.scratch), n).Zs]
    hs_test = [Z[:, :, -1] for Z in forward(params, tokens(test, params.scratch), n).Zs]
    target = np.einsum("bd,bd->b", test.xq, test.w)
    out = []
    for h_fit, h_test in zip(hs_fit, hs_test):
        c, *_ = np.linalg.lstsq(h_fit, fit.yq, rcond=None)
        out.append(mean_and_stderr((h_test @ c - target) ** 2))
    return np.array(out)


def preprocessed_features(params: Params, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
    """Layer-1 output on x-rows and scratch rows (Pi Z_1) for context and query (§3.3); (B, n, d + d_s), (B, d + d_s)."""
    n, d = prompts.X.shape[1], params.dim
    Z1 = forward(params, tokens(prompts, params.scratch), n).Zs[1]
    rows = [i for i in range(params.width) if i != d]
    feats = Z1[:, rows, :]
    return np.transpose(feats[:, :, :n], (0, 2, 1)), feats[:, :, n]


def _gd_prediction(X: np.ndarray, y: np.ndarray, xq: np.ndarray, eta: float, steps: int) -> np.ndarray:
    """T plain GD steps from 0 on (X, y) for the loss (1/2n)||y - X v||^2, then <v, x_q>."""
    n = X.shape[1]
    v = np.zeros(X.shape[::2])
    for _ in range(steps):
        v = v - eta * np.einsum("bni,bn->bi", X, np.einsum("bni,bi->bn", X, v) - y) / n
    return np.einsum("bi,bi->b", v, xq)


def preprocessing_gain(params: Params, tune: Prompts, test: Prompts, steps: int,
                       etas: np.ndarray = np.geomspace(1e-3, 10.0, 41)) -> dict[str, float]:
    """Preprocessing probe (SM-19): gain(T) = R_GD,T(raw x) - R_GD,T(x~), each with one step size tuned on
    the ``tune`` prompts (grid ``etas``), labels always the raw y. Risks are mean (prediction - <w*, x_q>)^2."""
    def risks(p: Prompts, raw: bool, eta_values) -> np.ndarray:
        X, xq = (p.X, p.xq) if raw else preprocessed_features(params, p)
        target = np.einsum("bd,bd->b", p.xq, p.w)
        with np.errstate(over="ignore", invalid="ignore"):
            r = np.array([np.mean((_gd_prediction(X, p.y, xq, e, steps) - target) ** 2) for e in eta_values])
        return np.where(np.isfinite(r), r, np.inf)

    out = {}
    for name, raw in (("raw", True), ("preprocessed", False)):
        eta = float(etas[np.argmin(risks(tune, raw, etas))])
        out[name] = float(risks(test, raw, [eta])[0])
        out[name + "_eta"] = eta
    out["gain"] = out["raw"] - out["preprocessed"]
    return out


# ---------------------------------------------------------------------------------------------------------
# one complete experiment (the core of `simulate sparse`)

EVAL_PROMPTS = 4000  # §2.5: evaluation on a fixed set of >= 4000 prompts


@dataclass
class Experiment:
    """A trained model with its masking, pruning and ablation results (§3.1, §3.2), all on one evaluation set."""

    training: TrainResult
    risk: tuple[float, float]            # full model (mean, stderr)
    deltas: np.ndarray                   # raw Delta_{l,k} (SM-15)
    importance: np.ndarray               # iota_{l,k} (SM-16)
    pruned_risk: tuple[float, float]     # SM-17 mask
    top_first_risk: tuple[float, float]  # only the top layer-1 head kept (SM-C20)
    eval_prompts: Prompts
    probe: np.ndarray | None = None      # read-out probe risk per layer l = 0..L, (mean, stderr) (SM-18)
    gain: dict | None = None             # preprocessing probe at T = L - 1 GD steps (SM-19)


def run_experiment(spec: SparseSpec, heads: int | None = None, progress: bool | None = False,
                   probes: bool = False) -> Experiment:
    """Train the model of ``spec`` (or with ``heads`` heads) and assess its heads by masking and pruning;
    with ``probes``, also run the read-out probe (SM-18) and the preprocessing probe (SM-19, T = L - 1 GD
    steps, or 1 if L = 1) on fresh prompts from the evaluation stream. Initial weights and streams come from
    the problem draw (:func:`reduced_dynamics.tasks.sparse_regression.draw`)."""
    problem = draw(spec if heads is None else spec.replace(heads=heads))
    eval_rng = problem.evaluation
    eval_prompts = sample_prompts(spec, EVAL_PROMPTS, eval_rng)
    init = Params(*problem.init, spec.dim, spec.scratch)
    result = train(spec, problem.train, eval_prompts, heads=heads, progress=progress, init=init)
    params = result.params
    with threadpool_limits(limits=1, user_api="blas"):
        deltas = head_deltas(params, eval_prompts)
        probe = gain = None
        if probes:
            fit = sample_prompts(spec, max(2000, 10 * params.width), eval_rng)
            probe = readout_probe(params, fit, eval_prompts)
            tune, test = sample_prompts(spec, 1500, eval_rng), sample_prompts(spec, 2000, eval_rng)
            gain = preprocessing_gain(params, tune, test, max(1, spec.layers - 1))
        return Experiment(training=result, risk=risk(params, eval_prompts), deltas=deltas,
                          importance=relative_importance(deltas),
                          pruned_risk=risk(params, eval_prompts, pruning_mask(deltas)),
                          top_first_risk=risk(params, eval_prompts, top_first_layer_mask(deltas)),
                          eval_prompts=eval_prompts, probe=probe, gain=gain)


def simulate(spec: SparseSpec, progress: bool | None = None):
    """Train the multi-head model of ``spec`` and assess its heads (the ``simulate sparse`` command).

    Returns a Trajectory with t = lr * step (for Adam only an axis; for ``optimizer="gd"`` gradient-flow
    time of the loss SM-13) and loss = exact evaluation risk (SM-12) on 4000 fixed prompts. Observables:
    ``risk_stderr``; ``head_deltas`` and ``head_importance`` of shape (L, h) (SM-15, SM-16);
    ``masked_risk`` (L, h) = risk with that one head masked; ``pruned_risk`` and ``top_first_risk`` as
    (mean, stderr) (SM-17 and the layer-1 ablation of §3.2); ``train_loss`` per step (SM-13); ``probe_risk``
    (L + 1, 2), the read-out probe per layer (SM-18). ``meta["preprocessing_probe"]`` holds SM-19 at T = L - 1.
    ``progress``: a tqdm bar over the training steps, on (True), off (False) or only on a terminal (None).
    """
    from ..trajectory import Trajectory, provenance

    exp = run_experiment(spec, progress=progress, probes=True)
    tr = exp.training
    observables = {
        "risk_stderr": tr.risk_stderr, "train_loss": tr.train_loss,
        "head_deltas": exp.deltas, "head_importance": exp.importance,
        "masked_risk": exp.risk[0] + exp.deltas,
        "pruned_risk": np.array(exp.pruned_risk), "top_first_risk": np.array(exp.top_first_risk),
        "probe_risk": exp.probe,
    }
    meta = provenance(
        "sparse", spec, f"reference-{spec.optimizer}",
        time_axis=("t = lr * step" + (" (Adam: an axis only, not a gradient-flow time)"
                                      if spec.optimizer == "adam" else " (plain GD on SM-13)")),
        loss="loss = exact excess risk of the trained network (SM-6 via SM-12) on 4000 fixed prompts",
        final_risk=list(exp.risk), pruned_risk=list(exp.pruned_risk), top_first_risk=list(exp.top_first_risk),
        pruning_mask=pruning_mask(exp.deltas).tolist(), preprocessing_probe=exp.gain,
        probes_status="both probes are our procedures (note §3.3); whether they are the paper's P-probing is unknown")
    return Trajectory(t=spec.lr * tr.steps.astype(float), loss=tr.risk, observables=observables, meta=meta)
