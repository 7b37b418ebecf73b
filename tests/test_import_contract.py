"""The scientific separation. The NumPy reference (the independent witness) never imports the theory or the
derivations: import-linter (contract in setup.cfg) for the theory, parsed imports for the derivations, which
import-linter cannot see (they are mapped from derivations/ into reduced_dynamics.derivations by package_dir).
The derivations are SymPy only: they import nothing of the package but one another."""
import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def imported_names(path):
    """Absolute module names imported by the file (relative imports as ``.name``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names.add("." * node.level + (node.module or ""))
    return names


def test_import_contracts_hold():
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert command, "import-linter is part of the test extra: pip install -e '.[test]'"
    result = subprocess.run([command, "--config", str(ROOT / "setup.cfg")], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout, result.stdout


def test_the_reference_never_imports_the_derivations():
    files = sorted((ROOT / "reduced_dynamics" / "reference").glob("*.py"))
    assert files
    for path in files:
        bad = {n for n in imported_names(path) if "derivations" in n or "theory" in n}
        assert not bad, (path.name, bad)


def test_derivations_import_only_sympy_numpy_and_one_another():
    allowed = {"sympy", "numpy", "__future__", "functools", "itertools", "math", "typing", "dataclasses",
               "collections", "fractions"}
    files = sorted((ROOT / "derivations").glob("*.py"))
    assert len(files) >= 6
    for path in files:
        for name in imported_names(path):
            if name.startswith("."):
                assert name == "." or (ROOT / "derivations" / f"{name[1:].split('.')[0]}.py").exists(), (path.name, name)
                continue
            assert name.split(".")[0] in allowed, (path.name, name)
