"""Versions of this package (from git, by setuptools-scm) and of the libraries a result depends on: recorded in
every result's ``meta`` and every figure's JSON."""
from __future__ import annotations

import functools
import platform
from importlib import metadata as importlib_metadata


FALLBACK_VERSION = "0.1.0+unknown"     # not installed (run from a source tree without package metadata)


def package_version() -> str:
    """This package's version: set from git by setuptools-scm when installed (``0.1.devN+gHASH`` between
    tags; setuptools-scm's fallback outside a git checkout), ``FALLBACK_VERSION`` when not installed."""
    try:
        return importlib_metadata.version("reduced_dynamics")
    except importlib_metadata.PackageNotFoundError:
        return FALLBACK_VERSION


@functools.lru_cache(maxsize=1)
def _versions() -> tuple[tuple[str, str], ...]:
    out = {"python": platform.python_version(), "reduced_dynamics": package_version()}
    for name in ("numpy", "scipy", "sympy", "numba", "scikit-learn", "matplotlib"):
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = "not installed"
    return tuple(out.items())


def versions() -> dict[str, str]:
    """Versions of Python, this package and the libraries a result depends on (looked up once per process:
    the package-metadata look-up cost 12-15 ms a call)."""
    return dict(_versions())
