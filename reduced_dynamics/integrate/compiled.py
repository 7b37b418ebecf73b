"""The linear-attention reduced flows (LA-22, LA-29) integrated by DOP853 in compiled code (Numba).

Why: a theory curve must cost a small fraction of the gradient-descent run it is held against. Through
``scipy.integrate.solve_ivp`` the attn-m curve (425 right-hand-side calls at the C6 sizes) spends its time in
Python overhead per call and per step, not in arithmetic; here the whole integration runs in machine code.

What is compiled is the *derived* system, nothing typed by hand:

* the loss is quadratic in vec B (LA-19, or the §5 sample form), so G(B) = -dL/dB = G0 - Hess vec B
  (LA-18) with G0 and Hess evaluated once from the compiled derivation for the spec's moments;
* each head's contribution vec B_i(theta_i) (LA-11) and its pull-back (dB_i/dtheta_i)^T G, one head's share
  of (LA-22) or (LA-29), are SymPy polynomials of ``reduced_dynamics.derivations.linear_merged.block_pieces``, tabulated
  monomial by monomial (``reduced_dynamics.compile.PolynomialTable``).

The stepper is the Dormand-Prince 8(5,3) method with the step-size control, initial-step rule and 7th-order
dense output of SciPy's ``DOP853`` (its coefficient tables are imported from SciPy, not copied), so at equal
tolerances it takes the same steps as ``solve_ivp(method="DOP853")``; a test holds the two together.
"""
from __future__ import annotations

import functools
import pickle
import warnings
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from numba import njit, types
from numba.extending import overload

try:    # SciPy's own DOP853 tableau: a private module, so guarded (the SciPy backend needs none of it)
    from scipy.integrate._ivp import dop853_coefficients as tableau
except ImportError:  # pragma: no cover - depends on the SciPy release
    tableau = None

from ..compile import PolynomialTable
from ..errors import IntegrationError
from . import first_compile
from .derived import program_rhs
from .common import Solution, blowup_message, budget_message, check_start, default_atol, output_times

NOTICE = first_compile.install(__name__)     # one line on stderr when the kernels below are compiled
CACHE_DAMAGE = (EOFError, pickle.UnpicklingError)   # what Numba raises on a truncated or garbled cache file


def recovering(kernel, *args):
    """Call a compiled kernel; if Numba's on-disk cache of this module is damaged (a truncated or garbled file
    in ``__pycache__``), remove this module's cache files, warn, and call again: Numba then compiles afresh
    and writes a good cache (a damaged cache used to break every run until deleted by hand)."""
    try:
        return kernel(*args)
    except CACHE_DAMAGE as exc:
        import os
        custom = os.environ.get("NUMBA_CACHE_DIR")
        folder = Path(custom) if custom else Path(__file__).with_name("__pycache__")
        pattern = f"{Path(__file__).stem}.*.nb[ic]"
        files = folder.rglob(pattern) if custom else folder.glob(pattern)
        removed = [path for path in files if (custom is None or path.parent.name.startswith("integrate")) and _unlink(path)]
        warnings.warn(f"the compiled-kernel cache in {folder} was damaged ({type(exc).__name__}); removed "
                      f"{len(removed)} file(s), compiling afresh", RuntimeWarning, stacklevel=2)
        return kernel(*args)


def _unlink(path: Path) -> bool:
    try:
        path.unlink()
        return True
    except OSError:
        return False

SAFETY, MIN_FACTOR, MAX_FACTOR = 0.9, 0.2, 10.0     # SciPy's RungeKutta step-size control
ERROR_EXPONENT = -1.0 / 8.0                         # -1 / (error estimator order 7 + 1)
OK, BLOWUP, BUDGET, TOO_SMALL = 0, 1, 2, 3
TABLEAU_MISSING = ("this SciPy has no scipy.integrate._ivp.dop853_coefficients, which the compiled integrator "
                   "takes its tableau from: use method='DOP853' (SciPy's own integrator)")


@dataclass(frozen=True)
class HeadFlow:
    """A flow dtheta_i/dt = (dB_i/dtheta_i)^T (G0 - Hess sum_j vec B_j) over H heads of n numbers each;
    the state is theta of shape (n, H) flattened row-major, as in ``theory.linear_attention.flow.ReducedFlow``."""
    n: int
    heads: int
    G0: np.ndarray                  # (D^2,)
    hessian: np.ndarray             # (D^2, D^2), or (D^2, 1) for a diagonal Hessian
    head_b: PolynomialTable         # theta -> vec B_i
    head_rhs: PolynomialTable       # (theta, G) -> (dB_i/dtheta_i)^T G
    python_rhs: Callable | None = field(default=None, compare=False, repr=False)   # the same flow in NumPy
    python_jac: Callable | None = field(default=None, compare=False, repr=False)   # and its Jacobian
    head_jac: PolynomialTable | None = field(default=None, compare=False, repr=False)    # theta -> dB_i/dtheta_i
    head_curv: PolynomialTable | None = field(default=None, compare=False, repr=False)   # (theta, G) -> curvature

    @property
    def size(self) -> int:
        """Length of the state: n numbers for each of H heads."""
        return self.n * self.heads

    @functools.cached_property
    def packed(self) -> tuple:
        """Arguments of the compiled kernels. Slot layout of the work vector z: theta (n), G (D^2), 1."""
        one = self.n + self.G0.size
        if self.head_b.size != self.n or self.head_rhs.size != one:
            raise ValueError(f"polynomial tables do not match n = {self.n}, D^2 = {self.G0.size}")
        b_slots = np.where(self.head_b.slots == self.head_b.size, one, self.head_b.slots)
        return (self.n, self.heads, np.ascontiguousarray(self.G0, dtype=float),
                np.ascontiguousarray(self.hessian, dtype=float), self.head_b.coef, self.head_b.out,
                np.ascontiguousarray(b_slots), self.head_rhs.coef, self.head_rhs.out,
                np.ascontiguousarray(self.head_rhs.slots))


    @functools.cached_property
    def packed_jacobian(self) -> tuple:
        """Arguments of ``flow_jacobian``: the head_jac monomials sorted by the entry ab of vec B they belong to
        (with row pointers), so that J^T Hess J for a diagonal Hessian runs over the pairs of monomials that
        share an entry; and the head_curv table."""
        if self.head_jac is None or self.head_curv is None:
            raise ValueError("this HeadFlow carries no head_jac / head_curv tables (needed for the Jacobian)")
        jac, curv = self.head_jac, self.head_curv
        entry = jac.out // self.n
        order = np.argsort(entry, kind="stable")
        pointers = np.searchsorted(entry[order], np.arange(self.G0.size + 1))
        one = self.n + self.G0.size
        return (jac.coef[order], np.ascontiguousarray(jac.out[order] % self.n),
                np.ascontiguousarray(np.where(jac.slots[order] == jac.size, one, jac.slots[order])), pointers,
                curv.coef, curv.out, np.ascontiguousarray(curv.slots))


@njit(cache=True)
def _accumulate(Z, coef, out, slots, target, value):
    """target[out[m], h] += coef[m] prod_k Z[slots[m, k], h] for every monomial m and head h (value: work
    array of length H). Degrees 2 and 3 (attn-m, attn-s) get loops the compiler can unroll."""
    H = Z.shape[1]
    degree = slots.shape[1]
    for m in range(coef.shape[0]):
        r, c = out[m], coef[m]
        if degree == 2:
            a, b = slots[m, 0], slots[m, 1]
            for h in range(H):
                target[r, h] += c * Z[a, h] * Z[b, h]
        elif degree == 3:
            a, b, d = slots[m, 0], slots[m, 1], slots[m, 2]
            for h in range(H):
                target[r, h] += c * Z[a, h] * Z[b, h] * Z[d, h]
        else:
            for h in range(H):
                value[h] = c
            for k in range(degree):
                f = slots[m, k]
                for h in range(H):
                    value[h] *= Z[f, h]
            for h in range(H):
                target[r, h] += value[h]


@njit(cache=True)
def flow_rhs(y, flow, dy, Z, Bh):
    """dy = RHS(y) of the head flow. Work arrays: Z (n + D^2 + 1, H) holds every head's theta, then G
    broadcast over heads, then ones; Bh (D^2, H) each head's vec B_i."""
    n, H, G0, hessian, b_coef, b_out, b_slots, r_coef, r_out, r_slots = flow
    D2 = G0.shape[0]
    # Plain loops throughout: reshapes, slice assignments and axis sums pull in Numba's error-message
    # formatting, which multiplies the first (uncached) compilation time.
    for j in range(n):
        for h in range(H):
            Z[j, h] = y[j * H + h]
    for h in range(H):
        Z[n + D2, h] = 1.0
    for i in range(D2):
        for h in range(H):
            Bh[i, h] = 0.0
    value = np.empty(H)
    _accumulate(Z, b_coef, b_out, b_slots, Bh, value)
    b = np.zeros(D2)                # vec B = sum over heads (a loop: Bh.sum(axis=1) costs seconds to compile)
    for i in range(D2):
        for h in range(H):
            b[i] += Bh[i, h]
    if hessian.shape[1] == 1:       # diagonal Hessian (population moments in the eigenbasis): O(D^2)
        for i in range(D2):
            for h in range(H):
                Z[n + i, h] = G0[i] - hessian[i, 0] * b[i]
    else:                           # dense (sample moments): O(D^4)
        for i in range(D2):
            g = G0[i]
            for j in range(D2):
                g -= hessian[i, j] * b[j]
            for h in range(H):
                Z[n + i, h] = g
    target = np.zeros((n, H))
    _accumulate(Z, r_coef, r_out, r_slots, target, value)
    for j in range(n):
        for h in range(H):
            dy[j * H + h] = target[j, h]


@njit(cache=True)
def flow_jacobian(y, flow, jac_flow, out):
    """out = d RHS / d y (n H, n H) of the head flow: -J^T Hess J + blockdiag(curvature), J = d vec B / d y.
    State index of (slot j, head h) is j H + h, as in the state vector."""
    n, H, G0, hessian = flow[0], flow[1], flow[2], flow[3]
    j_coef, j_col, j_slots, pointers, c_coef, c_out, c_slots = jac_flow
    D2 = G0.shape[0]
    Z = np.empty((n + D2 + 1, H))
    Bh = np.empty((D2, H))
    dy = np.empty(n * H)
    flow_rhs(y, flow, dy, Z, Bh)                    # fills Z with theta, G(B) and ones
    M = j_coef.shape[0]
    values = np.empty((M, H))                       # every head_jac monomial at every head
    for m in range(M):
        for h in range(H):
            v = j_coef[m]
            for k in range(j_slots.shape[1]):
                v *= Z[j_slots[m, k], h]
            values[m, h] = v
    out[:] = 0.0
    if hessian.shape[1] == 1:                       # diagonal: pairs of monomials of the same entry
        for e in range(D2):
            w = hessian[e, 0]
            for m1 in range(pointers[e], pointers[e + 1]):
                for m2 in range(pointers[e], pointers[e + 1]):
                    for h1 in range(H):
                        row = j_col[m1] * H + h1
                        a = w * values[m1, h1]
                        for h2 in range(H):
                            out[row, j_col[m2] * H + h2] -= a * values[m2, h2]
    else:                                           # dense: J (D^2, n H) explicitly
        J = np.zeros((D2, n * H))
        for e in range(D2):
            for m in range(pointers[e], pointers[e + 1]):
                for h in range(H):
                    J[e, j_col[m] * H + h] += values[m, h]
        out -= J.T @ (hessian @ J)
    degree = c_slots.shape[1]
    for m in range(c_coef.shape[0]):
        i, j = c_out[m] // n, c_out[m] % n
        for h in range(H):
            v = c_coef[m]
            for k in range(degree):
                v *= Z[c_slots[m, k], h]
            out[i * H + h, j * H + h] += v


def jacobian_function(flow: HeadFlow) -> Callable[[float, np.ndarray], np.ndarray]:
    """The head flow's Jacobian as a Python callable ``jac(t, y)`` evaluated by the compiled kernel."""
    packed, jac_flow = flow.packed, flow.packed_jacobian
    size = flow.n * flow.heads

    def jac(t: float, y: np.ndarray) -> np.ndarray:
        out = np.empty((size, size))
        recovering(flow_jacobian, np.ascontiguousarray(y, dtype=float), packed, jac_flow, out)
        return out
    return jac


def rhs_function(flow: HeadFlow) -> Callable[[float, np.ndarray], np.ndarray]:
    """The head flow's right-hand side as a Python callable ``rhs(t, y)`` evaluated by the compiled kernel
    (for the SciPy stiff methods, which call it step by step)."""
    packed = flow.packed
    D2 = flow.G0.size
    Z, Bh = np.empty((flow.n + D2 + 1, flow.heads)), np.empty((D2, flow.heads))

    def rhs(t: float, y: np.ndarray) -> np.ndarray:
        dy = np.empty(y.size)
        recovering(flow_rhs, np.ascontiguousarray(y, dtype=float), packed, dy, Z, Bh)
        return dy
    return rhs


def b_vectors(ys, flow):
    """vec B = sum_i vec B_i(theta_i) (LA-11) at every row of ys (T, n H): shape (D^2, T)."""
    return recovering(_b_vectors, ys, flow)


@njit(cache=True)
def _b_vectors(ys, flow):
    """Kernel of ``b_vectors``."""
    n, H, G0 = flow[0], flow[1], flow[2]
    Z = np.ones((n + G0.size + 1, H))
    Bh = np.empty((G0.size, H))
    value = np.empty(H)
    b = np.empty((G0.size, ys.shape[0]))
    for t in range(ys.shape[0]):
        for j in range(n):              # loops, not reshapes (see flow_rhs)
            for h in range(H):
                Z[j, h] = ys[t, j * H + h]
        for i in range(G0.size):
            for h in range(H):
                Bh[i, h] = 0.0
        _accumulate(Z, flow[4], flow[5], flow[6], Bh, value)
        for i in range(G0.size):
            total = 0.0
            for h in range(H):
                total += Bh[i, h]
            b[i, t] = total
    return b


def _work(flow):
    """Work arrays of a packed system's right-hand side (typed by ``_overload_work``)."""
    raise NotImplementedError


def _system_rhs(y, flow, dy, work):
    """dy = RHS(y) of a packed system: a ``HeadFlow`` (its first entry the integer n) or a
    ``derived.DerivedFlow`` (its first entry the register template); chosen when Numba types the call."""
    raise NotImplementedError


def _is_head_flow(flow) -> bool:
    return isinstance(flow, types.BaseTuple) and isinstance(flow[0], types.Integer)


@overload(_work)
def _overload_work(flow):
    if _is_head_flow(flow):
        def head_work(flow):
            n, H, G0 = flow[0], flow[1], flow[2]
            return np.empty((n + G0.size + 1, H)), np.empty((G0.size, H))
        return head_work
    return lambda flow: (flow[0].copy(),)


@overload(_system_rhs)
def _overload_system_rhs(y, flow, dy, work):
    if _is_head_flow(flow):
        return lambda y, flow, dy, work: flow_rhs(y, flow, dy, work[0], work[1])
    return lambda y, flow, dy, work: program_rhs(y, flow, dy, work[0])


@njit(cache=True)
def _guarded_rhs(y, flow, dy, work, blowup):
    """The system's RHS, and False if the state has left the ball of radius ``blowup`` or the RHS is not finite
    (the guard that ``integrate.integrate`` applies to every evaluation)."""
    for k in range(y.size):
        if not abs(y[k]) < blowup:
            return False
    _system_rhs(y, flow, dy, work)
    for k in range(dy.size):
        if not np.isfinite(dy[k]):
            return False
    return True


@njit(cache=True)
def _combine(y, h, weights, K, stages, out):
    """out = y + h sum_{j < stages} weights[j] K[j] (the sum taken in order of j)."""
    for k in range(y.size):
        out[k] = 0.0
    for j in range(stages):
        w, row = weights[j], K[j]
        for k in range(y.size):
            out[k] += w * row[k]
    for k in range(y.size):
        out[k] = y[k] + h * out[k]


@njit(cache=True)
def _rms(x):
    return np.sqrt(np.sum(x * x) / x.size)


@njit(cache=True)
def _dop853(y0, t_eval, t_end, rtol, atol, max_evals, blowup, flow, A, B, E3, E5, Dd):
    """DOP853 as SciPy runs it; the flow is autonomous, so the stage times (the nodes C) are not needed."""
    n_state = y0.size
    work = _work(flow)
    K = np.empty((16, n_state))
    ys = np.empty((t_eval.size, n_state))
    F = np.empty((7, n_state))
    weights = np.empty(7)
    err5 = np.empty(n_state)
    err3 = np.empty(n_state)
    stage = np.empty(n_state)
    y_new = np.empty(n_state)
    y = y0.copy()
    f = np.empty(n_state)
    nfev = 1
    if not _guarded_rhs(y, flow, f, work, blowup):
        return ys, 0, nfev, BLOWUP, 0.0, np.max(np.abs(y))

    # Initial step: Hairer, Norsett & Wanner II.4, as SciPy's select_initial_step (order 7).
    scale = atol + np.abs(y) * rtol
    d0, d1 = _rms(y / scale), _rms(f / scale)
    h0 = 1e-6 if (d0 < 1e-5 or d1 < 1e-5) else 0.01 * d0 / d1
    h0 = min(h0, t_end)
    nfev += 1
    if not _guarded_rhs(y + h0 * f, flow, stage, work, blowup):
        return ys, 0, nfev, BLOWUP, h0, np.max(np.abs(y))
    d2 = _rms((stage - f) / scale) / h0
    if d1 <= 1e-15 and d2 <= 1e-15:
        h1 = max(1e-6, h0 * 1e-3)
    else:
        h1 = (0.01 / max(d1, d2)) ** (1.0 / 8.0)
    h_abs = min(100.0 * h0, h1, t_end)

    t = 0.0
    i_out = 0
    while t < t_end:
        min_step = 10.0 * np.abs(np.nextafter(t, np.inf) - t)
        h_abs = max(h_abs, min_step)
        rejected = False
        while True:
            if h_abs < min_step:
                return ys, i_out, nfev, TOO_SMALL, t, np.max(np.abs(y))
            if nfev + 16 > max_evals:
                return ys, i_out, nfev, BUDGET, t, np.max(np.abs(y))
            t_new = min(t + h_abs, t_end)
            h = t_new - t
            h_abs = abs(h)
            for k in range(n_state):
                K[0, k] = f[k]
            for s in range(1, 13):
                if s < 12:
                    _combine(y, h, A[s], K, s, stage)
                else:
                    _combine(y, h, B, K, 12, y_new)
                nfev += 1
                if not _guarded_rhs(stage if s < 12 else y_new, flow, K[s], work, blowup):
                    return ys, i_out, nfev, BLOWUP, t + h, np.max(np.abs(y))
            for k in range(n_state):
                err5[k] = 0.0
                err3[k] = 0.0
            for j in range(13):
                w5, w3, row = E5[j], E3[j], K[j]
                for k in range(n_state):
                    err5[k] += w5 * row[k]
                    err3[k] += w3 * row[k]
            e5 = 0.0
            e3 = 0.0
            for k in range(n_state):
                scale = atol + max(abs(y[k]), abs(y_new[k])) * rtol
                e5 += (err5[k] / scale) ** 2
                e3 += (err3[k] / scale) ** 2
            if e5 == 0.0 and e3 == 0.0:
                error_norm = 0.0
            else:
                error_norm = h_abs * e5 / np.sqrt((e5 + 0.01 * e3) * n_state)
            if error_norm < 1.0:
                factor = MAX_FACTOR if error_norm == 0.0 else min(MAX_FACTOR, SAFETY * error_norm ** ERROR_EXPONENT)
                if rejected:
                    factor = min(1.0, factor)
                h_abs *= factor
                break
            h_abs *= max(MIN_FACTOR, SAFETY * error_norm ** ERROR_EXPONENT)
            rejected = True

        # Dense output for the requested times in (t, t_new] (and t = 0 on the first step).
        if i_out < t_eval.size and t_eval[i_out] <= t_new:
            for s in range(13, 16):
                _combine(y, h, A[s], K, s, stage)
                if not _guarded_rhs(stage, flow, K[s], work, blowup):
                    return ys, i_out, nfev, BLOWUP, t + h, np.max(np.abs(y))
            nfev += 3
            for k in range(n_state):
                delta = y_new[k] - y[k]
                F[0, k] = delta
                F[1, k] = h * K[0, k] - delta
                F[2, k] = 2.0 * delta - h * (K[12, k] + K[0, k])
            for r in range(4):
                _combine(np.zeros(n_state), h, Dd[r], K, 16, F[3 + r])
            # SciPy's Dop853DenseOutput nests y_old + (((F6 x + F5)(1 - x) + F4) x + ...) x; the weight of F_j is
            # the product of the factors from its position outwards.
            while i_out < t_eval.size and t_eval[i_out] <= t_new:
                x = (t_eval[i_out] - t) / h
                weight = 1.0
                for j in range(7):
                    weight *= x if j % 2 == 0 else 1.0 - x
                    weights[j] = weight
                row = ys[i_out]
                for k in range(n_state):
                    row[k] = y[k]
                for j in range(7):
                    w, coefficients = weights[j], F[j]
                    for k in range(n_state):
                        row[k] += w * coefficients[k]
                i_out += 1
        t = t_new
        for k in range(n_state):
            y[k] = y_new[k]
            f[k] = K[12, k]
    return ys, i_out, nfev, OK, t, np.max(np.abs(y))


def solve(flow, y0: np.ndarray, t_max: float, *, rtol: float = 1e-8, atol: float | None = None,
          t_eval: np.ndarray | None = None, max_evals: int = 2_000_000, blowup: float = 1e8) -> Solution:
    """Integrate a compiled system (a ``HeadFlow`` or a ``derived.DerivedFlow``) on [0, t_max] with the
    tolerances and guards of the SciPy backend; raise ``IntegrationError`` with the same advice on blow-up or
    stall."""
    if tableau is None:
        raise IntegrationError(TABLEAU_MISSING)
    y0 = np.ascontiguousarray(y0, dtype=float)
    if y0.shape != (flow.size,):
        raise IntegrationError(f"y0: expected shape ({flow.size},), got {y0.shape}")
    t_eval = output_times(t_max) if t_eval is None else np.ascontiguousarray(t_eval, dtype=float)
    check_start(y0, t_eval, t_max)
    atol = default_atol(y0) if atol is None else atol
    ys, filled, nfev, status, t_stop, y_max = recovering(
        _dop853,
        y0, t_eval, float(t_max), float(rtol), float(atol), int(max_evals), float(blowup), flow.packed,
        tableau.A, tableau.B, tableau.E3, tableau.E5, tableau.D)
    if status == BLOWUP:
        raise IntegrationError(blowup_message(t_stop, y_max))
    if status == BUDGET:
        raise IntegrationError(budget_message(max_evals, t_stop, t_max))
    if status == TOO_SMALL:
        raise IntegrationError(
            f"integration stopped at t = {t_stop:.6g} (|y| max {y_max:.3g}): the step size fell below the spacing "
            f"of floating-point numbers, so the solution blows up in finite time or the flow is singular there; "
            f"lower the initial scale or the output scale, or check the spec")
    return Solution(t=t_eval[:filled].copy(), y=ys[:filled], nfev=int(nfev))
