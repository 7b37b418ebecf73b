"""The compiled path for any derived flow (integrate.derived): the lowered program equals the emitted NumPy
function, the compiled DOP853 takes SciPy's steps on it, and the lowering refuses what the emitter refuses."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, strategies as st

from reduced_dynamics.integrate import DerivedFlow, integrate
from reduced_dynamics.integrate.derived import lower
from reduced_dynamics.programs import ProgramError, function_program, load_function
from reduced_dynamics.theory.softmax.features import large_n_flow, large_n_system
from reduced_dynamics.theory.sparse.restricted_flow import system as restricted_system


def softmax_flow(K=3):
    p = np.array([0.5, 0.3, 0.2])[:K] / np.array([0.5, 0.3, 0.2])[:K].sum()
    return DerivedFlow.of(large_n_system(K), "rhs", p), np.zeros(K * K), 200.0


def restricted_flow():
    return DerivedFlow.of(restricted_system(), "rhs", (3.0, 15.0)), np.array([0.3, 0.2, 0.4, 0.1]), 30.0


@pytest.mark.parametrize("make", [softmax_flow, restricted_flow], ids=["softmax-large-n", "sparse-restricted"])
def test_kernel_equals_the_emitted_function_and_takes_scipys_steps(make):
    """At random states the kernel's RHS equals the emitted NumPy RHS to 1e-13 (relative to its size); the
    compiled DOP853 on it makes SciPy's number of evaluations, and its solution differs from SciPy's by no more
    than roundoff does: at most twice SciPy's own change under a 1e-15 shift of the start (the restricted flow
    amplifies such a shift to 1.8e-9 in its fast transition near t = 27; softmax keeps it near 1e-12)."""
    flow, y0, t_max = make()
    rng = np.random.default_rng(0)
    for _ in range(5):
        y = rng.normal(size=flow.size)
        expected = flow.python_rhs(0.0, y)
        assert np.max(np.abs(flow(y) - expected)) <= 1e-13 * max(1.0, np.max(np.abs(expected)))
    t = np.linspace(0.0, t_max, 101)
    fast = integrate(flow, y0, t_max, method="compiled", t_eval=t, rtol=1e-10, atol=1e-12)
    slow = integrate(flow.python_rhs, y0, t_max, t_eval=t, rtol=1e-10, atol=1e-12)
    shifted = integrate(flow.python_rhs, y0 + 1e-15 * np.maximum(1.0, np.abs(y0)), t_max, t_eval=t, rtol=1e-10,
                        atol=1e-12)
    assert fast.nfev == slow.nfev
    roundoff = np.max(np.abs(shifted.y - slow.y))
    assert 0.0 < roundoff < 1e-8
    assert np.max(np.abs(fast.y - slow.y)) <= 2.0 * roundoff


def test_softmax_large_n_curve_on_the_compiled_path_is_the_scipy_curve():
    """large_n_flow (compiled) against the same flow through SciPy (its modified flow at lr -> 0 path is the
    NumPy RHS): the per-feature losses agree to 1e-9 (K = 3)."""
    p = np.array([0.5, 0.3, 0.2])
    t = np.linspace(0.0, 150.0, 61)
    compiled = large_n_flow(p, t)
    rhs = large_n_system(3)["rhs"]
    ys = integrate(lambda _, y: np.asarray(rhs(y, p), float).ravel(), np.zeros(9), 150.0, t_eval=t, rtol=1e-10,
                   atol=1e-12).y
    np.testing.assert_allclose(compiled.M.reshape(len(t), -1), ys, rtol=0, atol=1e-9)
    assert compiled.loss_k[-1].max() < 0.5 * compiled.loss_k[0].min()      # the flow did move: a real check


x, y, z = sp.symbols("x y z", real=True)
LEAVES = [x, y, z, sp.Integer(2), sp.Rational(1, 3), sp.Float(0.7)]


def expressions():
    leaf = st.sampled_from(LEAVES)
    return st.recursive(leaf, lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda ab: ab[0] + ab[1]),
        st.tuples(inner, inner).map(lambda ab: ab[0] * ab[1]),
        st.tuples(inner, st.integers(-3, 3)).map(lambda ae: (1 + ae[0] ** 2) ** ae[1]),
        inner.map(lambda a: sp.exp(-a ** 2)),
        inner.map(lambda a: sp.sqrt(1 + a ** 2)),
        inner.map(lambda a: (2 + a ** 2) ** sp.Float(0.3)),
    ), max_leaves=8)


@given(st.lists(expressions(), min_size=2, max_size=2), st.lists(st.floats(-1.5, 1.5), min_size=3, max_size=3))
def test_lowered_square_program_equals_emitted_function(exprs, point):
    """Property: for random expressions in the emitter's whitelist (sums, products, integer and rational
    powers, a float power, exp, sqrt, numbers) as the two outputs of a flow on (x, y) with z fixed, the
    register machine and the emitted NumPy function agree."""
    program = function_program([[x, y], [z]], exprs)
    function, _ = load_function(program, "f")
    expected = np.asarray(function(np.array(point[:2]), np.array(point[2:])), float).ravel()
    got = DerivedFlow(program, (np.array(point[2:]),))(np.array(point[:2]))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def good_program():
    return function_program([[x, y], [z]], [x * y + z, sp.exp(-x)])


@pytest.mark.parametrize("mutate, why", [
    (lambda p: p["outputs"].__setitem__(0, ["call", 0]), "unknown node kind"),
    (lambda p: p["outputs"].__setitem__(0, 999), "undefined variable"),
    (lambda p: p["outputs"].__setitem__(0, ["exp", 0, 1]), "wrong number"),
    (lambda p: p["outputs"].__setitem__(0, ["float", "__import__('os')"]), "finite"),
    (lambda p: p["outputs"].__setitem__(0, ["int", 10 ** 400]), "300 digits"),
    (lambda p: p["unpack"].__setitem__(0, [0, 7]), "range"),
    (lambda p: p.__setitem__("form", "matrix"), "elementwise"),
    (lambda p: p["outputs"].append(["int", 1]), "shape"),
])
def test_lowering_refuses_what_the_emitter_refuses(mutate, why):
    program = good_program()
    lower(program)                                   # the unmutated program lowers
    mutate(program)
    with pytest.raises(ProgramError, match=why):
        lower(program)


def test_parameters_must_match_the_program_groups():
    with pytest.raises(ProgramError, match="parameters"):
        DerivedFlow(good_program(), (np.zeros(2),)).packed


def test_integrate_names_the_methods_a_derived_flow_takes():
    flow, y0, _ = restricted_flow()
    from reduced_dynamics.errors import IntegrationError
    with pytest.raises(IntegrationError, match="compiled, or one of"):
        integrate(flow, y0, 1.0, method="stiff")


def test_decay_is_minus_lambda_times_the_state_on_both_paths():
    """(WD-2) in the kernel: DerivedFlow(decay=l) is the program minus l y, on the compiled and the SciPy path."""
    flow, _, _ = restricted_flow()
    decayed = DerivedFlow.of(restricted_system(), "rhs", (3.0, 15.0), decay=0.25)
    y = np.random.default_rng(3).normal(size=flow.size)
    np.testing.assert_allclose(decayed(y), flow(y) - 0.25 * y, rtol=0, atol=1e-15)
    np.testing.assert_allclose(decayed.python_rhs(0.0, y), flow.python_rhs(0.0, y) - 0.25 * y, rtol=0, atol=1e-15)
