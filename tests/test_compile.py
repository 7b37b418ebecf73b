"""The compile cache: round trip, corrupt entries rebuilt (never trusted), keys that follow the sizes; entries
are programs (data) that a trusted emitter validates and writes as source, never code run because its checksum
matches."""
import json
import sys

import numpy as np
import pytest
import sympy as sp

from reduced_dynamics.derivations import linear_merged as lm
from reduced_dynamics import compile as compiler
from reduced_dynamics import programs
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


@pytest.mark.parametrize("damage", ["garbage", "truncated", "tampered", "wrong key", "not a program", "bad table"])
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
            payload["programs"]["G"]["outputs"][0] = ["mul", ["int", 2], payload["programs"]["G"]["outputs"][0]]
        elif damage == "wrong key":
            payload["key"] = "0" * 64
        elif damage == "not a program":  # checksum made consistent, but the program is not in the accepted form
            payload["programs"]["G"]["steps"] = "x0 = 1"
            payload["sha256"] = compiler._digest(payload["programs"], payload["polynomials"])
        else:                           # checksum made consistent, but a monomial reads past the arguments
            payload["polynomials"]["head_b"]["slots"][0][0] = 99
            payload["sha256"] = compiler._digest(payload["programs"], payload["polynomials"])
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
    exec(generate_source("f", [[x, y]], [x * y, sp.Integer(3), sp.exp(x) + y]), {"numpy": np, "_stack": programs._stack},
         namespace)
    f = namespace["f"]
    out = f(np.array([[1.0, 2.0], [3.0, 4.0]]))
    np.testing.assert_allclose(out, [[3.0, 8.0], [3.0, 3.0], [np.exp(1) + 3, np.exp(2) + 4]])
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


# ---------------------------------------------------------------------------------------------------------
# Programs: the data an entry stores, and the trusted emitter that turns it into source.

def printed_source(name, arg_groups, outputs):
    """The source the cache stored before programs (CODEGEN_VERSION 3): SymPy's NumPyPrinter over the CSE'd
    expressions. Kept here as the reference the emitter must agree with."""
    from sympy.printing.numpy import NumPyPrinter
    printer = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})
    params = ", ".join(f"arg{g}" for g in range(len(arg_groups)))
    if isinstance(outputs, sp.MatrixExpr) and not isinstance(outputs, sp.MatrixBase):
        rename = {group: sp.MatrixSymbol(f"arg{g}", *group.shape) for g, group in enumerate(arg_groups)}
        return f"def {name}({params}):\n    return numpy.asarray({printer.doprint(outputs.xreplace(rename))})\n"
    shape, flat = (tuple(outputs.shape), list(outputs)) if isinstance(outputs, sp.MatrixBase) else \
        ((len(list(outputs)),), list(outputs))
    rename, lines = {}, [f"def {name}({params}):"]
    for g, group in enumerate(arg_groups):
        for k, symbol in enumerate(group):
            rename[symbol] = sp.Symbol(f"a{g}_{k}")
            lines.append(f"    a{g}_{k} = arg{g}[{k}]")
    replacements, reduced = sp.cse([sp.sympify(e).xreplace(rename) for e in flat], symbols=sp.numbered_symbols("x"))
    lines += [f"    {symbol} = {printer.doprint(expr)}" for symbol, expr in replacements]
    lines.append(f"    return _stack([{', '.join(printer.doprint(e) for e in reduced)}], {shape!r})")
    return "\n".join(lines) + "\n"


def run_source(source, name):
    namespace = {}
    exec(compile(source, "<test>", "exec"), {"numpy": np, "_stack": programs._stack}, namespace)
    return namespace[name]


def deep_linear():
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parents[1] / "examples" / "deep_linear"))
    try:
        from rd_deep_linear.derivations import deep_linear as module
    finally:
        sys.path.pop(0)
    return module


def builders():
    """Every builder the project compiles (library, benchmarks, example), at small sizes."""
    from reduced_dynamics.derivations import linear_separate as ls, modified_flow as mf
    from reduced_dynamics.derivations import softmax_features as sf, sparse_multihead as sm
    cases = [(lm, "index_system", dict(D=2, moments="population")), (lm, "index_system", dict(D=2, moments="sample")),
             (lm, "block_system", dict(D=2, moments="population")), (lm, "block_system", dict(D=2, moments="sample")),
             (lm, "full_system", dict(D=2, H=2, moments="population")),
             (lm, "full_system", dict(D=2, H=2, moments="sample", jacobian=False)),
             (ls, "index_system", dict(D=2, R=1, moments="sample")), (ls, "block_system", dict(D=2, R=1)),
             (ls, "full_system", dict(D=2, H=2, R=1)),
             (mf, "hvp_pieces", dict(family="attn-m", D=2)), (mf, "hvp_pieces", dict(family="attn-s", D=2, R=1)),
             (mf, "full_modified_system", dict(family="attn-m", D=2, H=2)),
             (sf, "compiled_large_n", dict(n_features=3)), (sm, "restricted_system", {})]
    return cases + [(deep_linear(), "compiled_modes", dict(modes=2)),
                    (deep_linear(), "compiled_matrix", dict(n_in=2, hidden=2, n_out=2))]


def random_arguments(arg_groups, rng, batch=3, n=4):
    """Positive arguments (state, moments, probabilities: all the derivations' denominators stay away from 0)
    with a trailing batch axis; a matrix argument of symbolic size gets size n."""
    out = []
    for group in arg_groups:
        if isinstance(group, sp.MatrixSymbol):
            rows = n if not group.shape[0].is_number else int(group.shape[0])
            cols = n if not group.shape[1].is_number else int(group.shape[1])
            out.append(rng.uniform(0.2, 1.0, size=(rows, cols)))
        else:
            out.append(rng.uniform(0.2, 1.0, size=(len(group), batch)))
    return out


@pytest.mark.parametrize("case", range(len(builders())))
def test_the_emitted_functions_compute_what_the_printed_source_did(case):
    """For every builder the project uses: the program -> emitter path gives the numbers of the old printed
    source (to rounding: the operations are the same, the order of a sum or product may differ) and of
    sympy.lambdify on the original expressions."""
    module, builder, sizes = builders()[case]
    rng = np.random.default_rng(case)
    for name, item in getattr(module, builder)(**sizes).items():
        if hasattr(item, "arg_index"):
            continue                                    # index-form maps are tables, not programs
        arg_groups, outputs = item
        args = random_arguments(arg_groups, rng)
        new = run_source(programs.emit_source(programs.function_program(arg_groups, outputs)), "generated")(*args)
        old = run_source(printed_source(name, arg_groups, outputs), name)(*args)
        if isinstance(outputs, sp.MatrixExpr) and not isinstance(outputs, sp.MatrixBase):
            ref = sp.lambdify(list(arg_groups), outputs, "numpy")(*args)
        else:
            flat = list(outputs)
            values = sp.lambdify([s for group in arg_groups for s in group], flat, "numpy")(
                *[row for a in args for row in a])
            ref = np.stack(np.broadcast_arrays(*[np.asarray(v, dtype=float) for v in values]))
            ref = ref.reshape(old.shape)
        scale = max(np.abs(old).max(), 1.0)
        assert new.shape == old.shape == np.shape(ref)
        np.testing.assert_allclose(new, old, rtol=1e-12, atol=1e-12 * scale, err_msg=f"{builder} {name}")
        np.testing.assert_allclose(new, ref, rtol=1e-10, atol=1e-10 * scale, err_msg=f"{builder} {name}")


def test_cold_build_and_warm_load_give_identical_functions(tmp_path):
    """The emitter is deterministic: a warm load writes the very source of the cold build and computes the
    same numbers, for the elementwise and the matrix form."""
    from reduced_dynamics.derivations import softmax_features as sf
    rng = np.random.default_rng(0)
    for module, builder, sizes in [(sf, "compiled_large_n", {"n_features": 3}),
                                   (lm, "index_system", {"D": 2, "moments": "sample"})]:
        cold = compile_system(module, builder, sizes, tmp_path)
        compiler._LOADED.clear()                      # read, check and emit from the file again
        warm = compile_system(module, builder, sizes, tmp_path)
        assert not cold.from_cache and warm.from_cache
        assert warm.sources == cold.sources and warm.programs == cold.programs
        derived = getattr(module, builder)(**sizes)
        for name, source in cold.sources.items():
            args = random_arguments(derived[name][0], rng)
            np.testing.assert_array_equal(warm[name](*args), cold[name](*args))


def sentinel_code(path):
    return f"__import__('pathlib').Path({str(path)!r}).write_text('ran')"


ATTACKS = {
    # a node kind that is Python code
    "node kind": lambda p, code: p["steps"].__setitem__(0, [code, 0]),
    # a variable reference that is a name with Python syntax after it
    "reference": lambda p, code: p["outputs"].__setitem__(0, ["add", f"a0_0 + {code}", 0]),
    # a literal that is source text
    "literal": lambda p, code: p["outputs"].__setitem__(0, ["float", code]),
    # a whole step given as a line of source
    "source line": lambda p, code: p["steps"].__setitem__(0, f"x0 = {code}"),
    # a program replaced by the old form: the source itself
    "source": lambda p, code: (p.clear(), p.update({"source": f"def G(arg0, arg1):\n    return {code}\n"})),
}


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_entry_edited_to_run_code_is_rebuilt_and_the_code_never_runs(tmp_path, attack):
    """Issue 12, item 5: someone who can write the cache folder puts code into an entry and recomputes the
    checksum the way the cache does. The entry is refused (rebuilt with a warning) and the code never runs."""
    sentinel = tmp_path / "attack-ran"
    folder = tmp_path / "cache"
    good = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, folder)
    expected = evaluate(good)
    payload = json.loads(good.cache_path.read_text())
    ATTACKS[attack](payload["programs"]["G"], sentinel_code(sentinel))
    payload["sha256"] = compiler._digest(payload["programs"], payload["polynomials"])
    good.cache_path.write_text(json.dumps(payload))
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, folder)
    assert not rebuilt.from_cache
    for a, b in zip(evaluate(rebuilt), expected):
        np.testing.assert_array_equal(a, b)
    assert sentinel_code(sentinel) not in rebuilt.cache_path.read_text()
    assert not sentinel.exists()


def test_an_old_entry_with_source_and_a_matching_old_checksum_is_never_run(tmp_path):
    """The old form under the current key: source with a checksum computed as the old code did. It is not a
    program, so it is rebuilt; the source never runs."""
    import hashlib
    sentinel = tmp_path / "attack-ran"
    good = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path / "cache")
    payload = json.loads(good.cache_path.read_text())
    sources = {"G": f"def G(arg0, arg1):\n    {sentinel_code(sentinel)}\n    return arg0\n"}
    old = {"key": payload["key"], "sources": sources, "polynomials": payload["polynomials"],
           "sha256": hashlib.sha256(json.dumps([sources, payload["polynomials"]], sort_keys=True).encode()).hexdigest()}
    good.cache_path.write_text(json.dumps(old))
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = compile_system(lm, "block_system", {"D": 2, "moments": "population"}, tmp_path / "cache")
    rebuilt["G"](np.arange(4.0), np.array([0.5, 0.3, 9.0, 1.0]))
    assert not sentinel.exists()


def small_program():
    x, y = sp.symbols("x y")
    return programs.function_program([[x, y], [sp.Symbol("z")]], [x * y + sp.exp(-x * y) / 2, (x * y) ** 3 - x])


def test_a_valid_program_is_written_from_its_numbers_and_names_only():
    program = small_program()
    assert json.loads(json.dumps(program)) == program          # plain JSON data
    source = programs.emit_source(program, "f")
    assert program["steps"] == [["mul", 0, 1]]                 # x*y, a common subexpression
    assert run_source(source, "f")(np.array([1.0, 2.0]), np.zeros(1)).tolist() == pytest.approx(
        [2 + np.exp(-2) / 2, 7.0])
    assert "arg1" in source.splitlines()[0] and "a1_0" not in source     # z is an argument but unused


def damaged(change):
    program = small_program()
    change(program)
    return program


REFUSED = {
    "unknown node kind": lambda p: p["outputs"].__setitem__(0, ["system", 0]),
    "function not in the whitelist": lambda p: p["outputs"].__setitem__(0, ["sin", 0]),
    "string literal": lambda p: p["outputs"].__setitem__(0, ["float", "1.0"]),
    "string integer": lambda p: p["outputs"].__setitem__(0, ["int", "__import__('os')"]),
    "boolean literal": lambda p: p["outputs"].__setitem__(0, ["int", True]),
    "huge integer literal": lambda p: p["outputs"].__setitem__(0, ["pow", 0, ["int", -10 ** 400]]),
    "non-finite float": lambda p: p["outputs"].__setitem__(0, ["float", float("nan")]),
    "zero denominator": lambda p: p["outputs"].__setitem__(0, ["rat", 1, 0]),
    "string reference": lambda p: p["outputs"].__setitem__(0, "a0_0"),
    "huge reference": lambda p: p["outputs"].__setitem__(0, 10 ** 12),
    "negative reference": lambda p: p["outputs"].__setitem__(0, -1),
    "forward reference": lambda p: p["steps"].__setitem__(0, len(p["unpack"]) + 5),
    "huge argument index": lambda p: p["unpack"].__setitem__(0, [0, 10 ** 12]),
    "argument group out of range": lambda p: p["unpack"].__setitem__(0, [7, 0]),
    "string group length": lambda p: p["groups"].__setitem__(0, "2"),
    "wrong arity": lambda p: p["outputs"].__setitem__(0, ["pow", 0]),
    "empty node": lambda p: p["outputs"].__setitem__(0, []),
    "too deep": lambda p: p["outputs"].__setitem__(0, __import__("functools").reduce(
        lambda t, _: ["exp", t], range(500), 0)),
    "shape and outputs disagree": lambda p: p["shape"].__setitem__(0, 3),
    "unknown form": lambda p: p.__setitem__("form", "source"),
    "matrix node in a scalar program": lambda p: p["outputs"].__setitem__(0, ["transpose", 0]),
}


@pytest.mark.parametrize("defect", sorted(REFUSED))
def test_the_emitter_refuses_a_program_out_of_its_form(defect):
    with pytest.raises(programs.ProgramError):
        programs.emit_source(damaged(REFUSED[defect]))


@pytest.mark.parametrize("output", [["marg", 1], ["matmul", ["marg", 0], ["float", "2"]], ["exp", ["marg", 0]],
                                    ["matadd", "arg0"], ["transpose"]])
def test_the_emitter_refuses_a_matrix_program_out_of_its_form(output):
    with pytest.raises(programs.ProgramError):
        programs.emit_source({"form": "matrix", "groups": 1, "output": output})


def test_a_function_name_must_be_an_identifier():
    with pytest.raises(programs.ProgramError):
        programs.emit_source(small_program(), "f(): pass\nimport os\ndef g")
