"""Every install line the README, the docs and the notebooks show works as written (issue 24, item 1).

The package is on no index, so the documented forms are: from a clone (``pip install '.[data]'``, with or without
``-e``), from git (``pip install 'reduced_dynamics[data] @ git+URL'``, the URL written once in setup.cfg) and from
a wheel built in a clone. The fast tests hold every line to one of these forms, with extras that exist; the slow
test runs each form in a fresh virtual environment (the git form against a local clone, ``git+file://``, since
the machine has no network but the package registries), then imports the package and the extra's modules.
"""
import configparser
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = configparser.ConfigParser()
CONFIG.read(ROOT / "setup.cfg")
URL = CONFIG["metadata"]["url"].strip()
EXTRAS = set(CONFIG["options.extras_require"])
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "notebooks").glob("*.py"))]
LINE = re.compile(r"pip install (?:-q )?(?:-e )?(?:'[^'\n]*'|\"[^\"\n]*\"|[^\s`'\"]+)")


def documented():
    found = []
    for page in PAGES:
        for match in LINE.finditer(page.read_text()):
            found.append((page.relative_to(ROOT).as_posix(), match.group(0)))
    return found


def form(line):
    """('clone', extras) | ('git', extras) | ('wheel', extras) | ('example', path), or None if unknown."""
    target = shlex.split(line)[-1]
    if m := re.fullmatch(r"\.(?:\[([\w,]+)\])?", target):
        return "clone", set(filter(None, (m.group(1) or "").split(",")))
    if m := re.fullmatch(r"reduced_dynamics\[([\w,]+)\] @ git\+(\S+)", target):
        assert m.group(2) == URL, f"{line}: the project's URL is {URL} (setup.cfg)"
        return "git", set(m.group(1).split(","))
    if m := re.fullmatch(r"\$\(ls dist/reduced_dynamics-\*\.whl\)\[([\w,]+)\]", target):
        return "wheel", set(m.group(1).split(","))
    if target == "examples/deep_linear":
        return "example", set()
    return None


def test_every_documented_install_line_has_a_known_form_and_real_extras():
    lines = documented()
    assert len(lines) >= 10, lines
    kinds = set()
    for page, line in lines:
        kind = form(line)
        assert kind is not None, f"{page}: `{line}` is none of the forms that work (clone, git, wheel)"
        assert kind[1] <= EXTRAS, f"{page}: `{line}` names an extra setup.cfg does not define"
        kinds.add(kind[0])
    assert {"clone", "git", "wheel"} <= kinds


BLOCK_SKLEARN = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "sklearn":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
"""


def test_the_package_works_without_scikit_learn():
    """scikit-learn is the sparse extra: importing the package and the attn-m default run never need it, and
    the sparse family's Lasso says in one line what to install."""
    code = BLOCK_SKLEARN + textwrap.dedent("""
        import numpy as np
        import reduced_dynamics as rd
        theory = rd.predict(rd.spec("attn-m"))
        assert np.isfinite(theory.loss).all() and "sklearn" not in sys.modules
        from reduced_dynamics.theory.sparse.algorithms import lasso
        try:
            lasso(np.ones((1, 4, 2)), np.ones((1, 4)), [0.1])
        except rd.MissingExtraError as error:
            print(error)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == (
        "the sparse family's Lasso needs sklearn: pip install 'scikit-learn>=1.2' (the 'sparse' extra)")


def install_block():
    """The lines of the README's bash block under '## Install', comments dropped."""
    text = (ROOT / "README.md").read_text().split("## Install", 1)[1]
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("  #")[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readme_install_block_has_the_three_forms():
    assert [form(LINE.search(line).group(0)) for line in install_block()] == [
        ("clone", {"data"}), ("git", {"data"}), ("wheel", {"data"})]


@pytest.fixture(scope="module")
def clone(tmp_path_factory):
    """A clone of the committed tree: what a user clones (the wheel line builds its wheel there)."""
    where = tmp_path_factory.mktemp("install")
    clone = where / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    return where, clone


@pytest.mark.slow
def test_each_documented_install_form_works_in_a_fresh_venv(clone):
    """The README's install block, each line as written (its comment dropped), each in its own fresh venv; the
    three run at once (most of the time is waiting on the package index). PIP_NO_COMPILE only skips writing
    .pyc files, which the check below does not need."""
    where, clone = clone
    runs = {}
    for line in install_block():
        kind = form(LINE.search(line).group(0))[0]
        # pip's URL parser wants a host in a file URL: file://localhost/path is the local clone
        command = line.replace(f"git+{URL}", f"git+file://localhost{clone}")
        venv = where / f"venv-{kind}"
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}", VIRTUAL_ENV=str(venv), PIP_NO_COMPILE="1")
        source = where / f"source-{kind}"          # each its own clone, so that the wheel line's dist/ is its own
        subprocess.run(["git", "clone", "-q", str(clone), str(source)], check=True, timeout=120)
        runs[kind] = (line, venv, subprocess.Popen(["bash", "-c", command], cwd=source, env=env, text=True,
                                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
    failed = []
    for kind, (line, venv, process) in runs.items():
        output, _ = process.communicate(timeout=1500)
        print(f"{kind}: `{line}` exit {process.returncode}")
        if process.returncode != 0:
            failed.append(f"{kind}: {output[-2000:]}")
            continue
        check = ("import reduced_dynamics as rd, pandas, xarray, importlib.util as u; "
                 "assert u.find_spec('sklearn') is None; print(rd.__version__, rd.__file__)")
        done = subprocess.run([str(venv / "bin" / "python"), "-c", check], cwd="/", capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0 or str(venv) not in done.stdout:      # the installed copy, not the checkout
            failed.append(f"{kind}: {done.stdout} {done.stderr[-2000:]}")
    assert not failed, "\n".join(failed)


def test_the_project_address_is_the_one_in_setup_cfg_everywhere():
    """The address is written in setup.cfg; every other mention of a repository host names the same one."""
    files = [ROOT / name for name in ("README.md", "CHANGELOG.md", "CITATION.cff", "setup.cfg", "mkdocs.yml")]
    files += sorted((ROOT / "docs").glob("*.md"))
    host = URL.split("/")[2]
    for path in files:
        for found in re.findall(rf"https://{re.escape(host)}/[\w./-]*", path.read_text()):
            assert found.startswith(URL), f"{path.name}: {found} is not {URL}"
