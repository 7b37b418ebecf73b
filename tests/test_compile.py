"""The compile cache: round trip, corrupt entries rebuilt (never trusted), keys that follow the sizes."""
import json

import numpy as np
import pytest
import sympy as sp

from reduced_dynamics.derivations import linear_merged as lm
from reduced_dynamics import compile as compiler
from reduced_dynamics.compile import compile_system, generate_source


def evaluate(system):
    params = np.array([0.5, 0.3, 9.0, 1.0])
    b = np.arange(4.0)
    return system["G"](b, params), system["loss"](b, params)


def test_second_build_comes_from_the_cache_and_agrees(tmp_path):
    first = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path)
    second = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path)
    assert not first.from_cache and second.from_cache
    assert first.cache_path == second.cache_path
    for a, b in zip(evaluate(first), evaluate(second)):
        np.testing.assert_array_equal(a, b)


def test_other_sizes_get_another_entry(tmp_path):
    a = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path)
    b = compile_system(lm, "block_system", {"D": 3, "moments": "population"}, tmp_path)
    assert a.cache_path != b.cache_path


HEADS = ("head_b", "head_rhs")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "tampered", "wrong key", "not python", "bad table"])
def test_a_corrupt_entry_is_rebuilt(tmp_path, damage):
    good = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path, HEADS)
    expected = evaluate(good)
    path = good.cache_path
    text = path.read_text()
    if damage == "garbage":
        path.write_bytes(b"\x00\xffnot json")
    elif damage == "truncated":
        path.write_text(text[: len(text) // 2])
    else:
        payload = json.loads(text)
        if damage == "tampered":        # a plausible but wrong function, checksum left stale
            payload["sources"]["G"] = payload["sources"]["G"].replace("return", "return 2*")
        elif damage == "wrong key":
            payload["key"] = "0" * 64
        elif damage == "not python":    # checksum made consistent, but the source does not compile
            payload["sources"]["G"] = "def G(:\n"
            payload["sha256"] = compiler._digest(payload["sources"], payload["polynomials"])
        else:                           # checksum made consistent, but a monomial reads past the arguments
            payload["polynomials"]["head_b"]["slots"][0][0] = 99
            payload["sha256"] = compiler._digest(payload["sources"], payload["polynomials"])
        path.write_text(json.dumps(payload))
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path, HEADS)
    assert not rebuilt.from_cache
    for a, b in zip(evaluate(rebuilt), expected):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(rebuilt.polynomials["head_b"].slots, good.polynomials["head_b"].slots)
    assert compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path, HEADS).from_cache


def test_polynomial_tables_equal_the_generated_functions_and_survive_the_cache(tmp_path):
    """The tables the compiled integrator evaluates hold the same polynomials as the generated source."""
    built = compile_system(lm, "block_system", {"D": 3, "moments": "population"}, tmp_path, HEADS)
    cached = compile_system(lm, "block_system", {"D": 3, "moments": "population"}, tmp_path, HEADS)
    assert cached.from_cache
    rng = np.random.default_rng(1)
    theta, G = rng.normal(size=10), rng.normal(size=9)
    for system in (built, cached):
        np.testing.assert_allclose(system.polynomials["head_b"](theta, n_out=9), system["head_b"](theta),
                                   rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(system.polynomials["head_rhs"](theta, G, n_out=10),
                                   system["head_rhs"](theta, G), rtol=1e-14, atol=1e-15)


def test_a_non_polynomial_function_is_not_tabulated():
    x, a = sp.symbols("x a")
    with pytest.raises(ValueError, match="not a polynomial"):
        compiler.polynomial_table([[x]], [sp.sin(x)])
    with pytest.raises(ValueError, match="non-numeric coefficients"):
        compiler.polynomial_table([[x]], [a * x ** 2])


def test_generated_functions_broadcast_over_trailing_axes():
    x, y = sp.symbols("x y")
    namespace = {}
    from reduced_dynamics import compile as compiler
    exec(generate_source("f", [[x, y]], [x * y, sp.Integer(3), sp.sin(x) + y]), {"numpy": np, "_stack": compiler._stack},
         namespace)
    f = namespace["f"]
    out = f(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(out, [[3.0, 8.0], [3.0, 3.0], [np.sin(1) + 3, np.sin(2) + 4]])
    assert f(np.array([1.0, 3.0])).shape == (3,)


def test_the_key_follows_the_modules_a_derivation_builds_on(tmp_path, monkeypatch):
    """attn-s builds on attn-m's derivation: a change there must not leave a stale attn-s cache entry."""
    from reduced_dynamics.derivations import linear_separate
    from reduced_dynamics import compile as compiler
    before = compiler.derivation_hash(linear_separate)
    real = compiler.derivation_source
    monkeypatch.setattr(compiler, "derivation_source",
                        lambda m: real(m).replace("def loss_in_b(", "def loss_in_b_changed("))
    assert compiler.derivation_hash(linear_separate) != before


def test_a_derivations_key_covers_its_own_source_and_what_it_imports(tmp_path, monkeypatch):
    """The cache key (and the recorded derivation hash) changes with the derivation's own file and with the
    files of its package it imports, and not with an unrelated derivation beside it."""
    import importlib
    import os
    import time

    from reduced_dynamics import compile as compiler
    package = tmp_path / "dpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "base.py").write_text("X = 1\n")
    (package / "uses_base.py").write_text("from .base import X\nY = X\n")
    (package / "other.py").write_text("Z = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    uses, other = importlib.import_module("dpkg.uses_base"), importlib.import_module("dpkg.other")
    before = compiler.derivation_hash(uses), compiler.derivation_hash(other)

    def edit(name, text):
        path = package / name
        path.write_text(text)
        stamp = time.time_ns() + 10 ** 9            # a new modification time, whatever the clock's resolution
        os.utime(path, ns=(stamp, stamp))

    edit("other.py", "Z = 4\n")
    assert compiler.derivation_hash(uses) == before[0] and compiler.derivation_hash(other) != before[1]
    edit("base.py", "X = 2\n")
    assert compiler.derivation_hash(uses) != before[0]
