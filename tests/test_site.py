"""The documentation site (issue 24, item 3): it reads offline (MathJax served from the site, no MathJax URL on
the network), shows the notebooks, lists every public name and every model's spec fields.

The fast tests read the sources; the slow one builds the site as CI does (``mkdocs build --strict``) and reads
the HTML. CI runs the notebooks first (``notebooks/run.py --out docs/notebooks``) and sets
``RD_NOTEBOOKS_EXECUTED=1``: then every notebook page must show its figures.
"""
import dataclasses
import importlib.util
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import reduced_dynamics as rd
from reduced_dynamics.families import BUILT_IN, family

ROOT = Path(__file__).resolve().parent.parent


def hooks():
    spec = importlib.util.spec_from_file_location("site_hooks", ROOT / "docs" / "hooks" / "site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_spec_fields_page_has_every_field_of_every_model():
    page = hooks().spec_fields_markdown()
    for name in BUILT_IN:
        section = page.split(f"## `{name}`", 1)[1].split("\n## ", 1)[0]
        fields = dataclasses.fields(family(name).spec_class)
        rows = re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)
        assert rows == [f.name for f in fields], name          # all of them, in declaration order
        for f in fields:
            row = next(line for line in section.splitlines() if line.startswith(f"| `{f.name}` |"))
            assert f.metadata["help"].replace("|", "\\|") in row
            if f.metadata.get("choices"):
                assert all(f"`{c}`" in row for c in f.metadata["choices"])
            if f.default is not None and not isinstance(f.default, (bool, tuple)):
                assert f"| `{f.default}` |" in row
    assert "| `dim` | `4` | token dimension D | positive int |" in page


def test_api_page_names_every_public_name():
    """By name, or through a whole module on the page (the errors); the slow test finds each on the built page."""
    api = (ROOT / "docs" / "api.md").read_text()
    whole = set(re.findall(r"^::: (\S+)\n    options:\n      show_root_heading: false\n(?!      members)", api,
                           re.MULTILINE))
    for name in rd.__all__ + ["run_sweep", "SweepResult"]:
        module = getattr(getattr(rd, name, None), "__module__", None)
        assert re.search(rf"\b{re.escape(name)}\b", api) or module in whole, name


def public_ids():
    """The anchor mkdocstrings gives each public object (FAMILIES and __version__ are described in words)."""
    ids = {"reduced_dynamics.sweep.run_sweep", "reduced_dynamics.sweep.SweepResult"}
    for name in rd.__all__:
        obj = getattr(rd, name)
        if callable(obj):
            ids.add(f"reduced_dynamics.{name}" if obj.__module__ in ("reduced_dynamics", "reduced_dynamics.families")
                    else f"{obj.__module__}.{obj.__qualname__}")
    return ids


def test_no_network_script_in_the_site_configuration():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python", "#"))
    assert not [s for s in config["extra_javascript"] if "://" in str(s)]


def png_width(path):
    return struct.unpack(">I", path.read_bytes()[16:20])[0]


def test_gallery_images_share_one_resolution():
    widths = {p.name: png_width(p) for p in (ROOT / "docs" / "gallery").glob("*.png")}
    assert min(widths.values()) >= 1300, widths             # full width (7 in) at 200 dpi is 1400 px


@pytest.mark.slow
def test_built_site_reads_offline_and_shows_the_notebooks(tmp_path):
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "the docs extra: pip install -e '.[docs]'"
    site = tmp_path / "site"
    done = subprocess.run([mkdocs, "build", "--strict", "--site-dir", str(site)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    mathjax = site / "javascripts" / "mathjax"
    assert (mathjax / "tex-mml-chtml.js").stat().st_size > 500_000
    assert list((mathjax / "output" / "chtml" / "fonts" / "woff-v2").glob("MathJax_Main-Regular.woff"))
    pages = [p for p in site.rglob("*.html")]
    for page in pages:
        html = page.read_text()
        assert not re.search(r"https?://[^\"'\s>]*mathjax", html, re.IGNORECASE), page
        for src in re.findall(r"<script[^>]*\ssrc=\"([^\"]*)\"", html):
            assert "://" not in src, (page, src)               # every script is served by the site
    theory = (site / "theory" / "linear_attention" / "index.html").read_text()
    assert 'src="../../javascripts/mathjax/tex-mml-chtml.js"' in theory and 'class="arithmatex"' in theory
    api = (site / "api" / "index.html").read_text()
    assert not [i for i in public_ids() if f'id="{i}"' not in api]
    models = (site / "models" / "index.html").read_text()
    assert all(f"<code>{name}</code>" in models for name in BUILT_IN)
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    for name in notebooks:
        html = (site / "notebooks" / name / "index.html").read_text()
        assert "jp-Notebook" in html, name
        if os.environ.get("RD_NOTEBOOKS_EXECUTED") == "1":
            assert re.search(r'<img [^>]*src="data:image/png', html), name      # its figures
