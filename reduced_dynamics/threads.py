"""How many BLAS threads a run uses: one, for the command line and the Python API alike.

With two threads OpenBLAS splits its sums differently and a gradient-descent curve changes in its last bits
(a result would depend on the core count); for the small matrices of these models one thread is also faster
on a shared machine: ``rd.simulate(rd.spec('attn-m', dim=4, heads=8, train_size=20000))`` took 22.6-23.3 s
of CPU on every thread of the 2-core machine against 4.9-5.0 s on one (issue 20), and the quick attn-m
reference 0.9-2.5 s against 0.3-0.4 s. ``benchmarks/api_threads.py`` measures the API against the CLI.
"""
from __future__ import annotations

import contextlib
from typing import Any, ContextManager

from .errors import SpecError


def one_blas_thread() -> ContextManager[Any]:
    """Context in which every loaded BLAS/OpenMP library runs on one thread."""
    return blas_limit(1)


def blas_limit(threads: int | None) -> ContextManager[Any]:
    """Context limiting BLAS to ``threads`` threads; ``None`` leaves the libraries as they are (the caller's
    own ``threadpoolctl`` limit, or every core)."""
    if threads is None:
        return contextlib.nullcontext()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise SpecError("blas_threads", "a positive integer, or None to leave BLAS as it is", threads)
    import scipy.linalg  # noqa: F401  (loads SciPy's own OpenBLAS now, so that the limit covers it too)
    from threadpoolctl import threadpool_limits
    return threadpool_limits(limits=threads)
