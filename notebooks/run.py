"""Execute the notebooks of this folder in a real Jupyter kernel (the CI step): each jupytext percent file is
read as a notebook, run top to bottom with nbclient (the last cell of each asserts a scientific check) and
timed. Outputs are not written back: the repository keeps the notebooks as text, without outputs.

    python notebooks/run.py [NAME.py ...] [--out DIR]    (--out: also save the executed .ipynb files there)

Needs the ``notebooks`` extra (jupytext, nbclient, ipykernel, pandas, xarray).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    import jupytext
    import nbclient

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: every NN_*.py here)")
    parser.add_argument("--out", help="folder for the executed .ipynb files")
    args = parser.parse_args(argv)
    paths = [HERE / n for n in args.names] or sorted(HERE.glob("[0-9][0-9]_*.py"))
    failed = []
    for path in paths:
        notebook = jupytext.read(path)
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as work:
            try:
                nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3",
                                        resources={"metadata": {"path": work}}).execute()
                status = "ok"
            except nbclient.exceptions.CellExecutionError as exc:
                status = f"FAILED\n{exc}"
                failed.append(path.name)
        print(f"{path.name}: {status} ({time.perf_counter() - start:.1f} s)", flush=True)
        if args.out:
            Path(args.out).mkdir(parents=True, exist_ok=True)
            jupytext.write(notebook, Path(args.out) / path.with_suffix(".ipynb").name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
