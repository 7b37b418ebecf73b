"""The index-form derivations (``index_system``: generic entry / generic head term derived once, sizes
instantiated by integer index arrays) against the expanded block route (``block_system``: every entry
symbolic) of linear_attention.md §5-§7, for both families and both kinds of moments, to 1e-12."""
import numpy as np
import pytest

from reduced_dynamics.derivations import linear_merged as lm
from reduced_dynamics.derivations import linear_separate as ls
from reduced_dynamics.compile import compile_system
from reduced_dynamics.theory.linear_attention.flow import Moments, loss_pieces

CASES = [(lm, {"D": 1}), (lm, {"D": 2}), (lm, {"D": 3}), (ls, {"D": 2, "R": 1}), (ls, {"D": 3, "R": 2}),
         (ls, {"D": 2, "R": 2})]


def moments_values(kind, D, rng):
    if kind == "population":
        return np.concatenate([np.sort(rng.uniform(0.1, 1.0, D))[::-1], [7.0, 3.0]])
    n = D * D
    X = rng.standard_normal((40, n))
    A = X.T @ X / 40
    return np.concatenate([A[np.triu_indices(n)], rng.standard_normal(n), [1.3]])


@pytest.mark.parametrize("kind", ["population", "sample"])
@pytest.mark.parametrize("module, sizes", CASES, ids=[f"{m.__name__.split('_')[-1]}-{s}" for m, s in CASES])
def test_index_route_equals_expanded_block_route(module, sizes, kind, tmp_path):
    D, R = sizes["D"], sizes.get("R")
    n = 1 + D * D if R is None else 1 + 2 * R * D
    block = compile_system(module, "block_system", {**sizes, "moments": kind}, tmp_path)
    index = compile_system(module, "index_system", {**sizes, "moments": kind}, tmp_path)
    rng = np.random.default_rng(D + 10 * (R or 0))
    values = moments_values(kind, D, rng)
    L0, G0, hess = loss_pieces(index.functions, Moments(kind, values, np.eye(D), 0.0), D)
    dense = np.diag(hess) if hess.ndim == 1 else hess
    np.testing.assert_allclose(dense, block["hessian"](values), rtol=1e-12, atol=1e-12)
    H = 3
    theta = rng.standard_normal((n, H))
    G = rng.standard_normal((D * D, H))
    for name, args in [("head_b", (theta,)), ("head_jac", (theta,)), ("head_rhs", (theta, G)),
                       ("head_curv", (theta, G))]:
        np.testing.assert_allclose(index[name](*args), block[name](*args), rtol=1e-12, atol=1e-12, err_msg=name)
    b = rng.standard_normal(D * D)
    np.testing.assert_allclose(G0 - dense @ b, block["G"](b, values), rtol=1e-12, atol=1e-12)
    loss = L0 - G0 @ b + 0.5 * b @ dense @ b            # exact: the loss is quadratic in B
    assert loss == pytest.approx(block["loss"](b, values)[0], rel=1e-12, abs=1e-12)


def test_index_tables_grow_like_the_number_of_monomials(tmp_path):
    """The attn-s pull-back has 3 R D^2 monomials (one per (a, b, r) and factor): the tables are instantiated,
    not expanded symbolically, so D = 32 builds at once."""
    system = compile_system(ls, "index_system", {"D": 32, "R": 2, "moments": "population"}, tmp_path,
                            ("head_b", "head_rhs"))
    assert system.polynomials["head_rhs"].coef.size == 3 * 2 * 32 ** 2
    assert system.polynomials["head_b"].coef.size == 2 * 32 ** 2


def test_index_system_round_trips_through_the_cache(tmp_path):
    sizes = {"D": 3, "R": 2, "moments": "sample"}
    built = compile_system(ls, "index_system", sizes, tmp_path)
    cached = compile_system(ls, "index_system", sizes, tmp_path)
    assert not built.from_cache and cached.from_cache
    rng = np.random.default_rng(3)
    theta, G = rng.standard_normal((13, 2)), rng.standard_normal((9, 2))
    for name in ("head_rhs", "head_curv"):
        np.testing.assert_array_equal(built[name](theta, G), cached[name](theta, G))
    A = rng.standard_normal((9, 9))
    np.testing.assert_array_equal(cached["hessian"](A), A + A.T)


def test_numeric_ladder_equals_the_symbolic_one():
    """theory.separate.ladder (derived step Delta_d lambdified once, partial sums numerically) against (LA-30)
    built symbolically for the size, D = 8 (check C3's second line)."""
    import sympy as sp
    from reduced_dynamics.specs import LinearSeparateSpec
    from reduced_dynamics.tasks import linear_attention as task
    from reduced_dynamics.theory.linear_attention import separate
    spec = LinearSeparateSpec(dim=8, heads=9)
    lam_values = task.eigenvalues_for(spec.covariance, spec.dim, spec.eigenvalues)
    lam = sp.symbols("lam1:9", positive=True)
    subs = {**dict(zip(lam, lam_values)), ls.N_SYM: spec.context}
    expected = [float(e.xreplace(subs)) for e in ls.ladder(lam)]
    np.testing.assert_allclose(separate.ladder(spec), expected, rtol=1e-13)
    np.testing.assert_allclose(expected, [1, 0.81126, 0.64898, 0.51301, 0.40318, 0.31917, 0.26045, 0.22601, 0.21335],
                               atol=6e-6)
