"""The compiled DOP853 integration of the linear-attention flows against SciPy's ``solve_ivp`` DOP853 run on the
generated NumPy right-hand side (an independent evaluation of the same derived system), its compiled
pieces against the generated functions, and its guards."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reduced_dynamics.integrate import compiled as compiled_flow
from reduced_dynamics.integrate import IntegrationError
from reduced_dynamics.specs import LinearMergedSpec, LinearSeparateSpec
from reduced_dynamics.theory.linear_attention import merged as merged
from reduced_dynamics.theory.linear_attention import separate as separate


def both_ways(flow, y0, t_max, t_eval=None):
    compiled = flow.solve(y0, t_max, t_eval=t_eval)
    scipy = flow.solve(y0, t_max, method="DOP853", t_eval=t_eval)
    return compiled, scipy


@pytest.mark.parametrize("spec", [
    LinearMergedSpec(),                                                      # C6 sizes, population
    LinearMergedSpec(covariance="identity", lr=0.002, steps=1500),           # C5
    LinearMergedSpec(dim=3, heads=4, t_max=20.0, train_size=300),            # sample moments
], ids=["c6", "c5", "sample"])
def test_compiled_dop853_takes_scipys_steps_on_attn_m(spec):
    """Same method, same step-size control: the same number of right-hand-side evaluations and the same
    states to rounding (the sums are ordered differently), at every output time."""
    flow, y0, _ = merged.setup(spec)
    compiled, scipy = both_ways(flow, y0, spec.final_time)
    assert compiled.nfev == scipy.nfev
    np.testing.assert_array_equal(compiled.t, scipy.t)
    scale = np.max(np.abs(scipy.y))
    assert np.max(np.abs(compiled.y - scipy.y)) <= 1e-10 * scale
    np.testing.assert_allclose(flow.loss(compiled.y), flow.loss(scipy.y), rtol=1e-10, atol=1e-13)


def test_compiled_dop853_agrees_with_scipy_on_attn_s():
    """Saddle to saddle: each escape amplifies rounding differences (the two evaluate sums in other orders),
    so here the runs may take slightly different steps; both must stay within the integration error,
    measured against a run at rtol 1e-12."""
    spec = LinearSeparateSpec(dim=4, heads=5, rank=2, t_max=300.0)
    flow, y0, _ = separate.setup(spec)
    t_eval = np.linspace(0.0, 300.0, 301)
    compiled, scipy = both_ways(flow, y0, spec.final_time, t_eval=t_eval)
    accurate = flow.loss(flow.solve(y0, spec.final_time, t_eval=t_eval, rtol=1e-12).y)
    assert abs(compiled.nfev - scipy.nfev) <= 0.02 * scipy.nfev
    error_scipy = np.max(np.abs(flow.loss(scipy.y) - accurate))
    error_compiled = np.max(np.abs(flow.loss(compiled.y) - accurate))
    assert error_scipy < 1e-5 and error_compiled < max(2 * error_scipy, 1e-9)


def random_state(flow, rng, scale):
    return scale * rng.normal(size=flow.n * flow.heads)


@given(dim=st.integers(1, 4), heads=st.integers(1, 6), seed=st.integers(0, 2 ** 16),
       scale=st.floats(0.01, 1.0), moments=st.sampled_from(["population", "sample"]))
def test_compiled_rhs_and_b_equal_the_generated_functions(dim, heads, seed, scale, moments):
    """The kernels evaluate the tabulated polynomials; the generated NumPy source is the other evaluation."""
    spec = LinearMergedSpec(dim=dim, heads=heads, seed=seed, train_size=50 if moments == "sample" else None,
                            eigenvalues=None if dim > 1 else (1.0,), covariance="linear" if dim > 1 else "identity")
    flow, _, _ = merged.setup(spec)
    rng = np.random.default_rng(seed)
    ys = np.stack([random_state(flow, rng, scale) for _ in range(3)])
    generated_b = flow._head_b(flow.theta(ys)).sum(axis=1)                   # (D^2, T)
    np.testing.assert_allclose(flow.b_vector(ys), generated_b, rtol=1e-12, atol=1e-14)
    packed = flow.head_flow.packed
    dy = np.empty(flow.n * heads)
    Z = np.empty((flow.n + dim * dim + 1, heads))
    Bh = np.empty((dim * dim, heads))
    for y in ys:
        compiled_flow.flow_rhs(y, packed, dy, Z, Bh)
        G = flow.G(y)
        generated = flow._head_rhs(flow.theta(y), np.repeat(G[:, None], heads, axis=1)).reshape(-1)
        np.testing.assert_allclose(dy, generated, rtol=1e-11, atol=1e-13 * np.max(np.abs(generated)))


@given(dim=st.integers(2, 4), heads=st.integers(1, 5), rank=st.integers(1, 4), seed=st.integers(0, 2 ** 16))
def test_compiled_rhs_equals_the_generated_one_for_attn_s(dim, heads, rank, seed):
    rank = min(rank, dim)
    spec = LinearSeparateSpec(dim=dim, heads=heads, rank=rank, seed=seed)
    flow, _, _ = separate.setup(spec)
    y = 0.3 * np.random.default_rng(seed).normal(size=flow.n * heads)
    dy = np.empty_like(y)
    compiled_flow.flow_rhs(y, flow.head_flow.packed, dy, np.empty((flow.n + dim * dim + 1, heads)),
                           np.empty((dim * dim, heads)))
    expected = flow._head_rhs(flow.theta(y), np.repeat(flow.G(y)[:, None], heads, axis=1)).reshape(-1)
    np.testing.assert_allclose(dy, expected, rtol=1e-11, atol=1e-13 * np.max(np.abs(expected)))


def unstable_flow():
    """One scalar head with B = v u and a loss whose Hessian is negative: the flow runs away."""
    flow, _, _ = merged.setup(LinearMergedSpec(dim=1, heads=1, covariance="identity"))
    head = flow.head_flow
    return compiled_flow.HeadFlow(head.n, head.heads, np.ones(1), -np.eye(1), head.head_b, head.head_rhs)


def test_a_blow_up_stops_with_a_message():
    """x' = x + x^3 (v = u = x) leaves any ball, then becomes singular in finite time (t* = ln(101)/2)."""
    with pytest.raises(IntegrationError, match="blew up"):
        compiled_flow.solve(unstable_flow(), np.array([0.1, 0.1]), 100.0, blowup=10.0)
    with pytest.raises(IntegrationError, match="blows up in finite time") as caught:
        compiled_flow.solve(unstable_flow(), np.array([0.1, 0.1]), 100.0)
    t_stop = float(str(caught.value).split("t = ")[1].split()[0])
    assert abs(t_stop - np.log(101.0) / 2) < 1e-3


def test_an_exhausted_budget_stops_with_a_message():
    flow, y0, _ = merged.setup(LinearMergedSpec())
    with pytest.raises(IntegrationError, match="step budget exhausted"):
        compiled_flow.solve(flow.head_flow, y0, 40.0, max_evals=100)


@pytest.mark.parametrize("y0, t_eval, message", [
    (np.array([np.nan, 0.1]), None, "NaN"),
    (np.array([0.1, 0.1, 0.1]), None, "y0: expected shape"),
    (np.array([0.1, 0.1]), np.array([0.0, 2.0, 1.0]), "t_eval: expected increasing"),
    (np.array([0.1, 0.1]), np.array([0.0, 20.0]), "t_eval: expected increasing"),
])
def test_bad_inputs_are_named(y0, t_eval, message):
    flow, _, _ = merged.setup(LinearMergedSpec(dim=1, heads=1, covariance="identity"))
    with pytest.raises((ValueError, IntegrationError), match=message):
        compiled_flow.solve(flow.head_flow, y0, 10.0, t_eval=t_eval)


@given(dim=st.integers(1, 4), heads=st.integers(1, 5), seed=st.integers(0, 2 ** 16),
       scale=st.floats(1e-3, 0.3), t_max=st.floats(1.0, 60.0))
def test_compiled_and_scipy_runs_agree_within_the_integration_error(dim, heads, seed, scale, t_max):
    """Over random attn-m problems: both DOP853 runs at rtol 1e-8 stay within the integration error of a run at
    rtol 1e-12, and within each other by no more (rounding may flip a step's acceptance, never the curve)."""
    spec = LinearMergedSpec(dim=dim, heads=heads, seed=seed, init_scale=scale, t_max=t_max,
                            covariance="linear" if dim > 1 else "identity")
    flow, y0, _ = merged.setup(spec)
    t_eval = np.linspace(0.0, t_max, 201)
    compiled, scipy = both_ways(flow, y0, t_max, t_eval=t_eval)
    accurate = flow.loss(flow.solve(y0, t_max, t_eval=t_eval, rtol=1e-12).y)
    error_scipy = np.max(np.abs(flow.loss(scipy.y) - accurate))
    error_compiled = np.max(np.abs(flow.loss(compiled.y) - accurate))
    assert error_compiled <= max(2 * error_scipy, 1e-10)
    assert np.max(np.abs(flow.loss(compiled.y) - flow.loss(scipy.y))) <= max(2 * error_scipy, 1e-10)


@pytest.mark.parametrize("family, spec", [
    (separate, LinearSeparateSpec(dim=4, heads=3, rank=2, seed=1)),
    (separate, LinearSeparateSpec(dim=3, heads=2, rank=1, train_size=200)),
    (merged, LinearMergedSpec(dim=3, heads=2)),
    (merged, LinearMergedSpec(dim=2, heads=3, train_size=200)),
], ids=["attn-s-pop", "attn-s-sample", "attn-m-pop", "attn-m-sample"])
def test_compiled_jacobian_equals_the_numpy_one(family, spec):
    """The kernel (pairs of head_jac monomials per entry of vec B, plus the curvature table) against the NumPy
    assembly -J^T Hess J + blockdiag(curvature) of ``ReducedFlow.jacobian``."""
    flow, y0, _ = family.setup(spec)
    y = y0 + 0.2 * np.random.default_rng(0).normal(size=y0.size)
    expected = flow.jacobian(0.0, y)
    got = compiled_flow.jacobian_function(flow.head_flow)(0.0, y)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13 * np.max(np.abs(expected)))


def test_stiff_method_agrees_with_dop853_on_a_long_staircase():
    """attn-s, D = 6, H = 7, to t = 20000 (six drops, the last plateaus thousands of time units long): LSODA with
    the compiled Jacobian ("stiff") against the compiled DOP853 reference: the same drop times to 1e-4 and the
    same final loss, with far fewer right-hand-side evaluations."""
    from reduced_dynamics.events import staircase
    spec = LinearSeparateSpec(dim=6, heads=7, seed=0, t_max=20000.0)
    flow, y0, _ = separate.setup(spec)
    reference, stiff = flow.solve(y0, spec.final_time), flow.solve(y0, spec.final_time, method="stiff")
    ladder = separate.ladder(spec)
    drops = [staircase(s.t, flow.loss(s.y), ladder, **separate.STAIRCASE)["drop_times"] for s in (reference, stiff)]
    assert len(drops[0]) >= 5
    np.testing.assert_allclose(drops[1], drops[0], rtol=1e-4)
    assert flow.loss(stiff.y[-1]) == pytest.approx(flow.loss(reference.y[-1]), rel=1e-9)
    assert stiff.nfev < reference.nfev / 5


def test_the_first_compilation_is_announced_once(capsys):
    """The notice listens to Numba's compile event (fired only on a cache miss) and prints one line, once."""
    from numba import njit
    from reduced_dynamics.integrate import first_compile
    notice = first_compile.FirstCompileNotice((__name__,))
    from numba.core import event
    event.register("numba:compile", notice)
    try:
        njit(lambda x: x + 1)(1)
        njit(lambda x: x + 2)(1)
    finally:
        event.unregister("numba:compile", notice)
    err = capsys.readouterr().err
    assert err.count("compiling the integrator kernels") == 1
