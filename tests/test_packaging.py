"""The installed layout (issue 13, item 7): derivations/ and scripts/ ship as ``reduced_dynamics.derivations`` and
``reduced_dynamics.scripts``; setup.cfg lists the packages by hand (find: cannot map folders), so these tests
keep that list equal to the tree."""
import configparser
import importlib.util
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIG = configparser.ConfigParser()
CONFIG.read(ROOT / "setup.cfg")
MAPPED = {"reduced_dynamics.derivations": "derivations", "reduced_dynamics.scripts": "scripts"}


def listed(section, key):
    return {line.strip() for line in CONFIG[section][key].splitlines() if line.strip()}


def test_every_package_of_the_tree_is_in_the_wheel_list():
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "reduced_dynamics").rglob("__init__.py")}
    found |= {name + "".join("." + part for part in p.parent.relative_to(ROOT / folder).parts)
              for name, folder in MAPPED.items() for p in (ROOT / folder).rglob("__init__.py")}
    assert listed("options", "packages") == found
    mapping = {k.strip(): v.strip() for k, v in
               (line.split("=") for line in CONFIG["options"]["package_dir"].splitlines() if line.strip())}
    assert mapping == MAPPED


def test_installed_names_live_under_the_package():
    assert importlib.util.find_spec("reduced_dynamics.derivations.linear_merged") is not None
    assert importlib.util.find_spec("reduced_dynamics.scripts.attn_m_loss") is not None
    outside = subprocess.run([sys.executable, "-c", "import importlib.util as u; "
                              "print(u.find_spec('derivations'), u.find_spec('scripts'))"],
                             cwd="/", capture_output=True, text=True, timeout=60)
    assert outside.stdout.split() == ["None", "None"], outside.stdout + outside.stderr


def test_the_wheel_has_one_top_level_name(tmp_path):
    """Build the wheel as pip would, offline (the installed setuptools, setuptools-scm and wheel), from a copy
    of the sources so that the checkout gets no build/ folder, and read its file list: nothing but
    ``reduced_dynamics/`` and its dist-info."""
    for needed in ("setuptools_scm", "wheel"):
        pytest.importorskip(needed, reason="the test extra installs it to build the wheel offline")
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", "build", "site", "*.egg-info",
                                                                 "__pycache__", ".hypothesis", "examples", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(source)], check=True, timeout=300, capture_output=True)
    (wheel,) = tmp_path.glob("reduced_dynamics-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names if ".dist-info/" not in n} == {"reduced_dynamics"}
    assert "reduced_dynamics/derivations/linear_merged.py" in names
    assert "reduced_dynamics/scripts/attn_m_loss.py" in names
    assert "reduced_dynamics/py.typed" in names
    (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    fields = [line.split(": ", 1) for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
              if ": " in line and not line.startswith(" ")]
    assert ["License-Expression", "MIT"] in fields and ["License-File", "LICENSE"] in fields
    assert not any(k == "License" for k, _ in fields)             # the legacy field is gone (PEP 639)
    assert ["Author", "The reduced_dynamics contributors"] in fields
    assert ["Home-page", CONFIG["metadata"]["url"].strip()] in fields
    urls = dict(v.split(", ", 1) for k, v in fields if k == "Project-URL")
    assert set(urls) == {"Documentation", "Source", "Changelog"}
    assert sum(k == "Classifier" for k, _ in fields) >= 8
    assert ["Provides-Extra", "sparse"] in fields
    requires = [v for k, v in fields if k == "Requires-Dist"]
    assert not any(r.startswith("scikit-learn") and "extra" not in r for r in requires)


def test_citation_file_is_valid_and_matches_the_changelog():
    """CITATION.cff passes cffconvert's schema check; its version and date are the changelog's newest
    release, its repository the one setup.cfg names."""
    import yaml
    cffconvert = shutil.which("cffconvert", path=str(Path(sys.executable).parent))
    assert cffconvert, "cffconvert is part of the test extra"
    done = subprocess.run([cffconvert, "--validate", "-i", str(ROOT / "CITATION.cff")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    release = re.search(r"^## \[(\d+\.\d+\.\d+)\] - (\d{4}-\d{2}-\d{2})$", (ROOT / "CHANGELOG.md").read_text(),
                        re.MULTILINE)
    assert release, "CHANGELOG.md has a numbered release (Keep a Changelog: '## [X.Y.Z] - YYYY-MM-DD')"
    assert (citation["version"], str(citation["date-released"])) == release.groups()
    assert citation["repository-code"] == CONFIG["metadata"]["url"].strip()


def test_changelog_follows_keep_a_changelog():
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[0] == "[Unreleased]"
    assert all(re.fullmatch(r"\[\d+\.\d+\.\d+\] - \d{4}-\d{2}-\d{2}", h) for h in headings[1:]), headings
    sections = set(re.findall(r"^### (.+)$", text, re.MULTILINE))
    assert sections <= {"Added", "Changed", "Deprecated", "Removed", "Fixed", "Security"}, sections
    assert not re.search(r"issue \d+", text, re.IGNORECASE)    # no internal tracker numbers
    for heading in headings:
        assert f"\n[{heading.split(']')[0][1:]}]: " in text       # every version links somewhere
