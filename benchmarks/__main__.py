"""Every benchmark in one run: each family's ``benchmarks/<family>.py`` (found by file name), then the sweep
scaling (``benchmarks/sweep.py``). Each prints its own table of times and ratios.

    python -m benchmarks                  # everything
    python -m benchmarks --only sweep     # one of them (a module name: attn_m, sweep, ...)
"""
from __future__ import annotations

import argparse
import importlib
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERIC = ("scaling", "sweep")     # run after the family modules, the sweep last


def names() -> list[str]:
    """Family benchmarks (every module here but the package files and the generic ones), then the generic."""
    families = sorted(p.stem for p in HERE.glob("*.py") if not p.stem.startswith("_") and p.stem not in GENERIC)
    return families + list(GENERIC)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=names(), help="run only this benchmark (repeatable)")
    args = parser.parse_args(argv)
    for name in args.only or names():
        print(f"=== benchmarks.{name}")
        start = time.perf_counter()
        importlib.import_module(f"benchmarks.{name}").main([])
        print(f"=== benchmarks.{name}: {time.perf_counter() - start:.0f} s\n", flush=True)


if __name__ == "__main__":
    main()
