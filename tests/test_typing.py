"""Release checks. The public API type-checks with mypy (the files and options of setup.cfg's [mypy] section), and the
package ships its py.typed marker, so a user's own mypy run reads our annotations."""
from pathlib import Path

import pytest

import reduced_dynamics

ROOT = Path(__file__).resolve().parent.parent


def test_py_typed_marker_ships():
    assert (Path(reduced_dynamics.__file__).parent / "py.typed").exists()


def test_public_api_passes_mypy(tmp_path, monkeypatch):
    api = pytest.importorskip("mypy.api")
    monkeypatch.chdir(ROOT)                       # setup.cfg names the files relative to the repository
    out, err, status = api.run(["--config-file", str(ROOT / "setup.cfg"), "--cache-dir", str(tmp_path)])
    assert status == 0, out + err


def test_version_is_exposed():
    assert reduced_dynamics.__version__ and reduced_dynamics.__version__[0].isdigit()
    from reduced_dynamics.trajectory import versions
    assert versions()["reduced_dynamics"] == reduced_dynamics.__version__


def test_cli_prints_the_version(capsys):
    from reduced_dynamics.cli import main
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"reduced-dynamics {reduced_dynamics.__version__}"
