"""What attn-m and attn-s share: the moments of the loss as a quadratic in B, and the reduced flow on the
invariant manifold for a given head map.

Both families' losses are the same quadratic in B = sum_i B_i (LA-19 with population moments LA-16 to
LA-18, or the §5 sample form); they differ only in the head map B_i(theta_i): v_i U_i for attn-m (LA-11,
flow LA-22), v_i (K_i^x)^T Q_i^x for attn-s (flow LA-29). ``ReducedFlow`` takes the compiled derivation of
either (``reduced_dynamics.derivations.linear_merged`` or ``reduced_dynamics.derivations.linear_separate``, both built by ``index_system``;
``block_system`` is the expanded route the tests hold it to).
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
from scipy import sparse

from ... import compile as compiler
from ...integrate import Solution, integrate
from ...integrate.compiled import HeadFlow, b_vectors
from ...specs import LinearAttentionSpec
from ...tasks import linear_attention as task

HEAD_POLYNOMIALS = ("head_b", "head_rhs", "head_jac", "head_curv")   # index-form tables (compile.indexed_table)


@dataclass(frozen=True)
class Moments:
    """Parameters of the loss as a quadratic in B, in the argument order of the compiled ``G``/``loss``.

    ``basis`` is the orthogonal matrix whose columns span the coordinates B is written in: the covariance
    eigenbasis (population) or the identity (sample moments, original basis)."""
    kind: str               # "population" or "sample"
    values: np.ndarray
    basis: np.ndarray
    minimum: float          # L* of (LA-21), or the minimum of the sample quadratic


def population_moments(spec: LinearAttentionSpec, cov: task.Covariance) -> Moments:
    lam = cov.eigenvalues
    N, c = spec.context, spec.c
    lstar = float(np.sum(lam * (lam + lam.sum()) / ((N + 1) * lam + lam.sum())))     # (LA-21)
    return Moments("population", np.array([*lam, N, c], dtype=float), cov.basis, lstar)


def sample_moments(spec: LinearAttentionSpec, data: task.TrainingSet) -> Moments:
    """A = mean(phi phi^T), g = mean(phi y_q), mean(y_q^2), phi = c vec(h x_q^T) (§5, LA-4), and the
    minimum of the resulting quadratic (reachable: B is unconstrained for H >= 1)."""
    D = spec.dim
    h = np.einsum("pn,pnd->pd", data.y, data.x) / spec.context
    phi = spec.c * (h[:, :, None] * data.xq[:, None, :]).reshape(len(h), D * D)
    A = phi.T @ phi / len(h)
    g = phi.T @ data.yq / len(h)
    yy = float(np.mean(data.yq ** 2))
    upper = A[np.triu_indices(D * D)]      # the order of derivations.linear_merged.loss_in_b("sample")
    values = np.concatenate([upper, g, [yy]])
    minimum = float(yy - g @ np.linalg.lstsq(A, g, rcond=None)[0])     # A is singular when P < D^2
    return Moments("sample", values, np.eye(D), minimum)


class ReducedFlow:
    """Gradient flow of the H-head reduced model for given moments and a derived head map: (LA-22) for
    attn-m (``reduced_dynamics.derivations.linear_merged``, n = 1 + D^2 numbers per head: v_i, U_i row-major) and (LA-29) for
    attn-s (``reduced_dynamics.derivations.linear_separate``, n = 1 + 2RD: v_i, K_i^x, Q_i^x row-major).

    Built from the index-form derivation (``index_system``): the loss pieces L(0), G(0) (LA-18) and the
    Hessian, diagonal for population moments in the eigenbasis (LA-19 has no cross terms) and dense for the
    §5 sample moments, and the per-head tables of B_i, its pull-back, Jacobian and curvature. The loss is
    quadratic in B, so G(B) = G(0) - Hess vec B and L(B) = L(0) - <G(0), B> + 1/2 <B, Hess B> exactly.

    State vector: theta of shape (n, H) flattened row-major; column i is head i's numbers, the D-dimensional
    factors written in ``moments.basis``.
    """

    def __init__(self, derivation, sizes: dict, n: int, dim: int, heads: int, moments: Moments, cache_dir=None,
                 decay: float = 0.0):
        self.dim, self.heads, self.moments, self.n = dim, heads, moments, n
        self.decay = float(decay)       # weight decay lambda (WD-2): the flow of L + (lambda/2)|theta|^2
        self.system = compiler.compile_system(derivation, "index_system", {**sizes, "moments": moments.kind},
                                              cache_dir, polynomials=HEAD_POLYNOMIALS)
        f = self.system.functions
        self._head_b, self._head_rhs = f["head_b"], f["head_rhs"]
        self._head_jac, self._head_curv = f["head_jac"], f["head_curv"]
        self._L0, self._G0, self._hessian = loss_pieces(f, moments, dim)

    def theta(self, y: np.ndarray) -> np.ndarray:
        """(n, H) for one state, (n, H, T) for states stacked as the rows of a (T, n H) array."""
        y = np.asarray(y)
        return y.reshape(self.n, self.heads) if y.ndim == 1 else y.T.reshape(self.n, self.heads, -1)

    @property
    def diagonal(self) -> bool:
        """True when the Hessian is stored as its diagonal (D^2,) (population moments)."""
        return self._hessian.ndim == 1

    def hess_times(self, b: np.ndarray) -> np.ndarray:
        """Hess vec B for vec B (D^2,) or stacked (D^2, T)."""
        if self.diagonal:
            return self._hessian.reshape((-1,) + (1,) * (b.ndim - 1)) * b
        return self._hessian @ b

    def b_vector(self, y: np.ndarray) -> np.ndarray:
        """vec B = sum_i vec B_i (D^2,), or (D^2, T) for stacked states, from the derived head map (LA-11)
        evaluated in compiled code."""
        y = np.asarray(y, dtype=float)
        b = b_vectors(np.ascontiguousarray(y.reshape(-1, self.n * self.heads)),
                                   self.head_flow.packed)
        return b[:, 0] if y.ndim == 1 else b

    def loss(self, y: np.ndarray) -> np.ndarray:
        """Reduced loss at one state (scalar array) or at stacked states (T,)."""
        return self.loss_of_b(self.b_vector(y))

    def loss_of_b(self, b: np.ndarray) -> np.ndarray:
        """Loss (LA-19 or §5) at vec B (D^2,) or at stacked (D^2, T): L(0) - <G(0), B> + 1/2 <B, Hess B>."""
        b = np.asarray(b, dtype=float)
        return np.asarray(self._L0 - self._G0 @ b + 0.5 * np.sum(b * self.hess_times(b), axis=0))

    def G(self, y: np.ndarray) -> np.ndarray:
        """G = -dL/dB (LA-18) at the state(s) y."""
        b = self.b_vector(y)
        return self._G0.reshape((-1,) + (1,) * (b.ndim - 1)) - self.hess_times(b)

    def rhs(self, t: float, y: np.ndarray) -> np.ndarray:
        """dtheta_i/dt = (dB_i/dtheta_i)^T G(B) for every head (LA-22 via the derived head pull-back)."""
        G = self.G(y)
        out = self._head_rhs(self.theta(y), np.repeat(G[:, None], self.heads, axis=1)).reshape(-1)
        return out - self.decay * np.asarray(y) if self.decay else out     # (WD-2): orthonormal coordinates

    def jacobian(self, t: float, y: np.ndarray) -> np.ndarray:
        """d rhs / d theta = -J^T Hess J + blockdiag(sum_ab G_ab d^2 B_ab / dtheta^2), with J = d vec B / d theta
        assembled sparse from the head_jac table (each column has at most a few entries per instance), so its
        cost follows the number of monomials, not (n H)^2 D^2."""
        th = self.theta(y)
        G = self.G(y)
        J = self.b_jacobian(th)
        HJ = J.multiply(self._hessian[:, None]).tocsr() if self.diagonal else sparse.csr_matrix(self._hessian @ J)
        out = -(J.T @ HJ).toarray()
        curv = self._head_curv(th, np.repeat(G[:, None], self.heads, axis=1))     # (n, n, H)
        heads = np.arange(self.heads)
        out.reshape(self.n, self.heads, self.n, self.heads)[:, heads, :, heads] += curv.transpose(2, 0, 1)
        out[np.diag_indices_from(out)] -= self.decay                      # (WD-2)
        return out

    def b_jacobian(self, th: np.ndarray) -> sparse.csr_matrix:
        """d vec B / d theta (D^2, n H) at theta (n, H), sparse, from the derived head_jac table."""
        table = self.system.polynomials["head_jac"]
        z = np.vstack([th, np.ones((1, self.heads))])
        values = table.coef[:, None] * np.prod(z[table.slots], axis=1)          # (M, H)
        rows = np.repeat(table.out // self.n, self.heads)
        cols = (table.out % self.n)[:, None] * self.heads + np.arange(self.heads)
        return sparse.csr_matrix((values.ravel(), (rows, cols.ravel())), shape=(self.dim ** 2, self.n * self.heads))

    @functools.cached_property
    def head_flow(self) -> HeadFlow:
        """The same flow in the form the compiled integrator takes."""
        p = self.system.polynomials
        hessian = self._hessian[:, None] if self.diagonal else self._hessian      # (D^2, 1): diagonal
        return HeadFlow(self.n, self.heads, self._G0, hessian, p["head_b"], p["head_rhs"], python_rhs=self.rhs,
                        python_jac=self.jacobian, head_jac=p["head_jac"], head_curv=p["head_curv"])

    def solve(self, y0: np.ndarray, t_max: float, method: str = "compiled", **options) -> Solution:
        """Integrate from y0 to t_max through ``integrate``: ``method="compiled"`` (default, the reference) runs
        DOP853 in machine code on ``head_flow``; ``method="stiff"`` runs LSODA (Adams while the flow is not stiff,
        BDF on the long late plateaus of attn-s, where the relaxation of the learned components limits any
        explicit step) on the compiled right-hand side and the compiled Jacobian -J^T Hess J + curvature; a SciPy
        method name (``"DOP853"``, ``"Radau"`` ...) runs ``rhs`` (and ``jacobian``) in NumPy. With weight decay
        (WD-2) the compiled kernels, which carry no decay term, are replaced by the same methods on the NumPy
        right-hand side and Jacobian (DOP853 for "compiled", LSODA for "stiff")."""
        if self.decay and method in ("compiled", "stiff"):
            method = {"compiled": "DOP853", "stiff": "LSODA"}[method]
        return integrate(self.head_flow, y0, t_max, method=method, **options)


def loss_pieces(functions: dict, moments: Moments, dim: int):
    """(L(0), G(0), Hessian) as arrays for the moments' values, from the index-form derivation: population
    entries instantiated at (lambda_a, lambda_b, [a == b]) for every entry ab of vec B (Hessian returned as its
    diagonal, shape (D^2,)), sample moments unpacked from their upper-triangle order (dense (D^2, D^2))."""
    n = dim * dim
    if moments.kind == "population":
        lam, N, c = moments.values[:dim], moments.values[dim], moments.values[dim + 1]
        a, b = np.divmod(np.arange(n), dim)
        args = np.stack([lam[a], lam[b], (a == b).astype(float), np.full(n, lam.sum()), np.full(n, N),
                         np.full(n, c)])
        L_entry, G0, hess = functions["entry_moments"](args)
        return float(lam.sum() + L_entry.sum()), G0, hess
    m = n * (n + 1) // 2
    A = np.zeros((n, n))
    A[np.triu_indices(n)] = moments.values[:m]
    A = A + np.triu(A, 1).T
    g, yy = moments.values[m:m + n], moments.values[m + n:]
    return (float(functions["L0"](yy)[0]), functions["G0"](g[:, None]).reshape(n),
            np.ascontiguousarray(functions["hessian"](A)))


def eigen_diagonal(b: np.ndarray, to_eigen: np.ndarray) -> np.ndarray:
    """Diagonal of E^T B E for vec B (row-major) stacked as the columns of b (D^2, T): (T, D)."""
    weights = np.einsum("ad,bd->abd", to_eigen, to_eigen).reshape(-1, to_eigen.shape[1])
    return b.T @ weights


def moments_for(spec: LinearAttentionSpec, problem: task.Problem, moments: str | None = None) -> Moments:
    """Population moments (LA-16) of the problem's covariance, or the §5 sample moments of the very training set
    the reference trains on (the family's draw; default: sample when ``spec.train_size`` is given). Shared by
    attn-m and attn-s."""
    kind = moments or ("sample" if spec.train_size is not None else "population")
    if kind == "population":
        ignored = [flag for flag in ("centre_inputs", "whiten_tasks") if getattr(spec, flag)]
        if ignored and moments is None:
            warnings.warn(f"{', '.join(ignored)} act on a training set; the population flow (no train_size) ignores "
                          f"them: give --train-size to use the normalised sample moments", stacklevel=2)
        return population_moments(spec, problem.covariance)
    data = problem.train if problem.train is not None else task.draw(spec, train=True).train
    return sample_moments(spec, data)


