"""mkdocs hooks: what the site needs that is not a hand-written page (mkdocs.yml lists this file under hooks).

* ``models.md``, one table per model family of its spec fields (name, default, meaning, check), written from
  the spec classes themselves (``spec_fields_markdown``), so that the page cannot drift from the code;
* ``notebooks/NN_*.ipynb``, the notebooks for mkdocs-jupyter: the executed copies that
  ``python notebooks/run.py --out docs/notebooks`` writes (CI runs it before the build), or, where none is newer
  than its source, the source converted without outputs (said in the build log);
* MathJax served from the site itself: a pinned copy of the npm package ``mathjax``, fetched once with
  ``npm pack`` (the npm registry) into a cache folder and copied into ``site/javascripts/mathjax/``; the
  pages load no script from the network.

The generated files are git-ignored; they are rewritten only when their content changes (``mkdocs serve``
watches docs/).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
MATHJAX_VERSION = "3.2.2"
# the parts of the package's es5/ folder that tex-mml-chtml.js loads: itself, TeX extensions loaded on demand,
# the CommonHTML fonts, the menu and the accessibility components the menu can switch on
MATHJAX_PARTS = ("tex-mml-chtml.js", "input", "output/chtml", "output/chtml.js", "ui", "a11y", "sre")
log = logging.getLogger("mkdocs.hooks.site")


# ---------------------------------------------------------------------------------------------------------
# The spec fields of every model

def check_text(f: dataclasses.Field) -> str:
    """The field's declared check in words: its choices, or the name of its check function."""
    choices, check = f.metadata.get("choices"), f.metadata.get("check")
    if choices:
        return "one of " + ", ".join(f"`{c}`" for c in choices)
    if check is not None:
        return getattr(check, "__name__", repr(check)).replace("_", " ")
    return ""


def default_text(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, tuple):
        return "`" + ",".join(str(v) for v in value) + "`"
    return f"`{str(value).lower() if isinstance(value, bool) else value}`"


def spec_fields_markdown() -> str:
    """The page: for each family (built-in and installed plug-ins), its spec class's docstring summary and a
    table of its fields, in declaration order, with the CLI flag each one is."""
    from reduced_dynamics.families import FAMILIES, family

    out = ["# Models and their spec fields", "",
           "Generated at build time from the spec classes (`reduced_dynamics.specs`): each field's default, "
           "meaning and check are declared once, there, and are the same in `rd.spec(model, **fields)`, in "
           "`reduced-dynamics MODEL --help` (field `foo_bar` is the flag `--foo-bar`) and in a sweep's grid. "
           "Rules that tie several fields together are checked when the spec is built.", ""]
    for name in FAMILIES:
        cls = family(name).spec_class
        summary = (cls.__doc__ or "").strip().split("\n\n")[0].replace("\n", " ")
        out += [f"## `{name}`", "", f"`{cls.__module__}.{cls.__qualname__}`: {summary}", "",
                "| field | default | meaning | check |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            meaning = f.metadata.get("help", "").replace("|", "\\|")
            out.append(f"| `{f.name}` | {default_text(f.default)} | {meaning} | {check_text(f)} |")
        out.append("")
    return "\n".join(out)


def write_if_changed(path: Path, text: str | bytes) -> None:
    data = text.encode() if isinstance(text, str) else text
    if not path.exists() or path.read_bytes() != data:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


# ---------------------------------------------------------------------------------------------------------
# Notebooks

def prepare_notebooks() -> None:
    import jupytext

    for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
        target = DOCS / "notebooks" / source.with_suffix(".ipynb").name
        if target.exists() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        log.info("%s: no executed copy newer than the source, shown without outputs "
                 "(python notebooks/run.py --out docs/notebooks)", source.name)
        write_if_changed(target, jupytext.writes(jupytext.read(source), fmt="ipynb"))


# ---------------------------------------------------------------------------------------------------------
# MathJax

def mathjax_folder() -> Path:
    """The unpacked npm package (its es5/ folder), fetched once per version with ``npm pack``."""
    cache = Path(os.environ.get("REDUCED_DYNAMICS_CACHE", Path.home() / ".cache" / "reduced_dynamics"))
    folder = cache / f"mathjax-{MATHJAX_VERSION}"
    if (folder / "es5" / "tex-mml-chtml.js").exists():
        return folder / "es5"
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("building the site needs npm (Node.js) once, to fetch MathJax from the npm registry")
    with tempfile.TemporaryDirectory() as work:
        subprocess.run([npm, "pack", f"mathjax@{MATHJAX_VERSION}", "--pack-destination", work, "--silent"],
                       check=True, capture_output=True, timeout=300)
        (tarball,) = Path(work).glob("mathjax-*.tgz")
        unpacked = Path(work) / "unpacked"
        with tarfile.open(tarball) as archive:
            if hasattr(tarfile, "data_filter"):            # Python >= 3.10.12 / 3.11.4: refuse odd members
                archive.extractall(unpacked, filter="data")
            else:
                archive.extractall(unpacked)
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=cache))
        shutil.copytree(unpacked / "package", staging, dirs_exist_ok=True)
        try:
            staging.rename(folder)               # whole or not at all
        except OSError:                          # another build got there first
            shutil.rmtree(staging)
    return folder / "es5"


def copy_mathjax(site_dir: Path) -> None:
    source, target = mathjax_folder(), site_dir / "javascripts" / "mathjax"
    for part in MATHJAX_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, target / part, dirs_exist_ok=True)
        else:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / part, target / part)
    shutil.copy2(source.parent / "LICENSE", target / "LICENSE")


# ---------------------------------------------------------------------------------------------------------
# mkdocs events

def on_pre_build(config, **kwargs) -> None:
    write_if_changed(DOCS / "models.md", spec_fields_markdown())
    prepare_notebooks()


def on_post_build(config, **kwargs) -> None:
    copy_mathjax(Path(config["site_dir"]))
