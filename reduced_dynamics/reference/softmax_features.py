"""NumPy gradient-descent witness of the FULL one-layer softmax attention model (note §2-§4).

Works on token matrices X (B x N x d), labels and queries drawn by :mod:`reduced_dynamics.tasks.softmax_features`;
the trained d x d key-query block Q starts at zero (SF-10). The gradient is the hand-written (SF-11), checked
against finite differences in the tests. This module never imports ``derivations`` or ``reduced_dynamics.theory``.

Loss convention (SF-9): L = (1/2) E[(yhat - y_q)^2], flow time t = lr * step.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from ..errors import DivergenceError
from ..specs import SoftmaxFeaturesSpec, SpecError
from ..tasks.softmax_features import Prompts, check_probabilities, curve_events, draw, sample_prompts
from ..trajectory import Trajectory, provenance


def attention(Q: np.ndarray, prompts: Prompts, include_query_token: bool = False
              ) -> tuple[np.ndarray, np.ndarray | None]:
    """Softmax weights over the context tokens, logits s_i = x_i^T Q x_q (SF-6).

    Returns (alpha, alpha_q): alpha is B x N; with ``include_query_token`` the query column competes with logit
    x_q^T Q x_q and value 0 (the note's [convention] variant) and alpha_q (B) is its weight, else None.
    """
    keyed = prompts.query @ Q.T                                  # rows Q x_q
    logits = np.matmul(prompts.tokens, keyed[:, :, None])[:, :, 0]
    if include_query_token:
        q_logit = np.sum(prompts.query * keyed, axis=1)
        top = np.maximum(logits.max(axis=1), q_logit)
        e = np.exp(logits - top[:, None])
        eq = np.exp(q_logit - top)
        total = e.sum(axis=1) + eq
        return e / total[:, None], eq / total
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True), None


def predict(Q: np.ndarray, prompts: Prompts, include_query_token: bool = False) -> np.ndarray:
    """yhat = sum_i alpha_i y_i, the bottom-right entry of F(E) (SF-5, SF-6)."""
    alpha, _ = attention(Q, prompts, include_query_token)
    return np.einsum("bn,bn->b", alpha, prompts.labels)


def loss_and_grad(Q: np.ndarray, prompts: Prompts, include_query_token: bool = False
                  ) -> tuple[float, np.ndarray]:
    """Batch mean of (1/2)(yhat - y_q)^2 (SF-9) and its gradient in Q (SF-11).

    Per prompt: r = yhat - y_q, dloss/ds_i = r alpha_i (y_i - yhat), grad_Q = sum_i dloss/ds_i x_i x_q^T; the
    query token (if included) adds r alpha_q (0 - yhat) x_q x_q^T.
    """
    alpha, alpha_q = attention(Q, prompts, include_query_token)
    yhat = np.einsum("bn,bn->b", alpha, prompts.labels)
    r = yhat - prompts.target
    ds = r[:, None] * alpha * (prompts.labels - yhat[:, None])
    grad = np.matmul(ds[:, None, :], prompts.tokens)[:, 0, :].T @ prompts.query
    if include_query_token:
        dq = r * alpha_q * (-yhat)
        grad = grad + (dq[:, None] * prompts.query).T @ prompts.query
    B = prompts.target.shape[0]
    return 0.5 * float(np.mean(r ** 2)), grad / B


def task_averaged_losses(Q: np.ndarray, prompts: Prompts, include_query_token: bool = False) -> np.ndarray:
    """Per-prompt loss of the full model with the task vector averaged exactly (SF-9 convention).

    yhat - y_q = <w, sum_i alpha_i x_i - x_q> and w ~ N(0, I_d), so E_w (1/2)(yhat - y_q)^2 =
    (1/2) ||sum_i alpha_i x_i - x_q||^2. Returns an array of length B.
    """
    alpha, _ = attention(Q, prompts, include_query_token)
    residual = np.matmul(alpha[:, None, :], prompts.tokens)[:, 0, :] - prompts.query
    return 0.5 * np.sum(residual ** 2, axis=1)


def per_feature_losses(Q: np.ndarray, prompts: Prompts, features: np.ndarray, include_query_token: bool = False,
                       with_attention: bool = False):
    """Estimate of L_k for every feature k on the contexts of ``prompts``, each paired with the query x_q = v_k.

    Every context is used once per query feature (stratified over the query, whose feature is independent of the
    context by SF-2), and the task vector is averaged exactly (:func:`task_averaged_losses`). Returns length K;
    with ``with_attention`` also the K x K matrix of mean attention masses (row n = token feature, column k =
    query feature), summed over the context tokens of feature n.
    """
    K = features.shape[0]
    out = np.empty(K)
    masses = np.zeros((K, K))
    B = prompts.tokens.shape[0]
    for k, v in enumerate(features):
        query = np.broadcast_to(v, (B, v.size))
        with_query = Prompts(prompts.tokens, prompts.labels, query, prompts.target, prompts.context_ids,
                             np.full(B, k), prompts.task)
        alpha, _ = attention(Q, with_query, include_query_token)
        residual = np.matmul(alpha[:, None, :], with_query.tokens)[:, 0, :] - query
        out[k] = 0.5 * np.mean(np.sum(residual ** 2, axis=1))
        if with_attention:
            masses[:, k] = np.bincount(prompts.context_ids.ravel(), weights=alpha.ravel(), minlength=K) / B
    return (out, masses) if with_attention else out


# The loss of this model is bounded (yhat is a convex combination of the labels), so a too large lr does not blow
# it up: Q saturates the softmax. GD counts as diverged when Q turns non-finite or the evaluation loss climbs above
# DIVERGENCE_FACTOR times its starting value (attention locked on the wrong features; descent never does that).
DIVERGENCE_FACTOR = 2.0


@dataclass
class GDRun:
    """Record of a gradient-descent run: steps, flow times t = lr * step, M = V Q V^T (K x K per record),
    per-feature losses ``loss_k`` (task-averaged, on the evaluation prompts), the total loss sum_k p_k L_k, and the
    final Q."""

    steps: np.ndarray
    t: np.ndarray
    M: np.ndarray
    loss_k: np.ndarray
    attention: np.ndarray
    loss: np.ndarray
    Q: np.ndarray
    features: np.ndarray
    info: dict = field(default_factory=dict)


def decay_gradient(Q: np.ndarray, weight_decay: float) -> np.ndarray:
    """Gradient of the penalty (lambda/2) |Q|_F^2: lambda Q (WD-1), kept apart from the loss gradient."""
    return weight_decay * Q


def train(features: np.ndarray, probabilities, context: int, lr: float, steps: int, batch: int,
          rng: np.random.Generator, fresh_batches: bool = True, include_query_token: bool = False,
          eval_prompts: int = 20000, record_every: int = 1, progress: bool | None = None,
          eval_rng: np.random.Generator | None = None, Q0: np.ndarray | None = None,
          weight_decay: float = 0.0) -> GDRun:
    """Gradient descent from Q = 0 (SF-10) on the full model, gradient (SF-11) averaged over the batch.

    ``fresh_batches``: draw a new batch of ``batch`` prompts every step, else one fixed batch for the whole run.
    Every ``record_every`` steps (and at the last step) records M = V Q V^T and the per-feature loss on a fixed
    set of ``eval_prompts`` contexts drawn once from ``eval_rng``, each paired with every query feature
    (task averaged exactly, see :func:`per_feature_losses`). ``rng`` draws the training prompts only;
    ``eval_rng=None`` draws the evaluation contexts from ``rng`` first (one stream for both, as in small
    tests); :func:`simulate` passes the separate streams of the problem draw. ``Q0`` defaults to zero. A tqdm
    bar is shown for runs of more than 200 steps unless ``progress`` is False. Raises DivergenceError if Q
    becomes non-finite or the evaluation loss climbs above :data:`DIVERGENCE_FACTOR` times its starting value.
    """
    features = np.asarray(features, dtype=float)
    p = check_probabilities(probabilities)
    K, d = features.shape
    if K != p.size:
        raise SpecError("features", f"a K x d matrix with K = {p.size}", features.shape)
    for name, value in (("context", context), ("steps", steps), ("batch", batch), ("eval_prompts", eval_prompts),
                        ("record_every", record_every)):
        if int(value) != value or value < 1:
            raise SpecError(name, "a positive integer", value)
    if not np.isfinite(lr) or lr <= 0:
        raise SpecError("lr", "a positive finite number", lr)
    evaluation = sample_prompts(features, p, eval_prompts, context, rng if eval_rng is None else eval_rng)
    fixed = None if fresh_batches else sample_prompts(features, p, batch, context, rng)
    Q = np.zeros((d, d)) if Q0 is None else np.array(Q0, dtype=float)
    record_steps, Ms, losses, masses = [], [], [], []

    def record(step: int) -> None:
        loss_k, mass = per_feature_losses(Q, evaluation, features, include_query_token, with_attention=True)
        loss = float(loss_k @ p)
        if not np.isfinite(loss) or (losses and loss > DIVERGENCE_FACTOR * float(losses[0] @ p)):
            raise DivergenceError("softmax", step, loss, f"lower --lr (now {lr:g})")
        record_steps.append(step)
        Ms.append(features @ Q @ features.T)
        losses.append(loss_k)
        masses.append(mass)

    show = steps > 200 if progress is None else progress
    record(0)
    for step in tqdm(range(1, steps + 1), disable=not show, desc="softmax GD", leave=False):
        prompts = fixed if fixed is not None else sample_prompts(features, p, batch, context, rng)
        _, grad = loss_and_grad(Q, prompts, include_query_token)
        if weight_decay:                                         # Q <- Q - lr (grad L + lambda Q) (WD-1)
            grad = grad + decay_gradient(Q, weight_decay)
        Q = Q - lr * grad
        if not np.all(np.isfinite(Q)):
            raise DivergenceError("softmax", step, float("nan"), f"lower --lr (now {lr:g}); Q became non-finite")
        if step % record_every == 0 or step == steps:
            record(step)
    steps_arr = np.array(record_steps)
    loss_k = np.array(losses)
    return GDRun(steps=steps_arr, t=lr * steps_arr, M=np.array(Ms), loss_k=loss_k, attention=np.array(masses),
                 loss=loss_k @ p, Q=Q,
                 features=features, info={"eval_prompts": eval_prompts, "batch": batch,
                                          "fresh_batches": fresh_batches,
                                          "include_query_token": include_query_token})


def simulate(spec: SoftmaxFeaturesSpec, progress: bool | None = None) -> Trajectory:
    """Gradient descent on the full model for a spec (SF-10, SF-11), as a Trajectory on t = lr * step.

    Features, starting point and streams come from the problem draw
    (:func:`reduced_dynamics.tasks.softmax_features.draw`): the evaluation contexts and the training prompts
    have separate streams, so ``eval_prompts`` does not change the training run. ``loss`` = sum_k p_k L_k with the factor 1/2 (SF-9), each L_k
    estimated on the evaluation contexts with the task vector averaged exactly. Observables as in the theory:
    ``loss_k``, ``A``, ``M`` = V Q V^T, ``attention``, ``own_attention``; events from the same function
    (:func:`reduced_dynamics.tasks.softmax_features.curve_events`).
    """
    problem = draw(spec)
    run = train(problem.features, problem.probabilities, spec.context, spec.lr, spec.gd_steps, spec.batch,
                problem.training, fresh_batches=spec.fresh_batches, include_query_token=spec.include_query_token,
                eval_prompts=spec.eval_prompts, record_every=spec.record_every, progress=progress,
                eval_rng=problem.evaluation, Q0=problem.initial_Q, weight_decay=spec.weight_decay)
    keep = run.t <= spec.final_time + 1e-12
    t, loss_k, M, att = run.t[keep], run.loss_k[keep], run.M[keep], run.attention[keep]
    events = curve_events(t, loss_k, M, att, spec.p, spec.levels)
    meta = provenance("softmax", spec, "reference-gd", probabilities=list(spec.p), thresholds=list(spec.levels),
                      loss="L = (1/2) E[(yhat - y_q)^2] = sum_k p_k L_k (SF-9, factor 1/2); L_k on "
                           f"{spec.eval_prompts} evaluation contexts x K queries, task averaged exactly",
                      time="t = lr * step", column_sum_max=float(np.abs(M.sum(axis=1)).max()))
    return Trajectory(t=t, loss=loss_k @ np.asarray(spec.p), events=events, meta=meta,
                      observables={"loss_k": loss_k, "A": np.einsum("tkk->tk", M), "M": M, "attention": att,
                                   "own_attention": np.einsum("tkk->tk", att)})
