"""One line on stderr when Numba compiles the integrator kernels, so that the first run after installing (or
after a change to the kernels) is not silent.

The kernels are compiled with ``cache=True``: the machine code is written next to the sources and loaded by
every later process. Numba emits its ``numba:compile`` event only on a cache miss, just before it compiles,
so a listener for that event sees exactly the compilations that cost time; it prints once per process.
"""
from __future__ import annotations

import sys

from numba.core import event

# Measured (attn-m default predict, empty NUMBA_CACHE_DIR): 8.6 s of CPU time, 17-20 s wall on 2 busy cores;
# 40-55 s was seen on a heavily loaded machine. The notice gives the CPU time and says that load stretches it.
MESSAGE = ("reduced_dynamics: compiling the integrator kernels with Numba (first use after installing or "
           "updating; cached afterwards; about 10 s of CPU time, up to a minute on a busy machine) ...")


class FirstCompileNotice(event.Listener):
    """Prints ``MESSAGE`` the first time a kernel of one of ``modules`` starts compiling."""

    def __init__(self, modules: tuple[str, ...]):
        self.modules, self.done = modules, False

    def on_start(self, ev) -> None:
        dispatcher = (ev.data or {}).get("dispatcher")
        module = getattr(getattr(dispatcher, "py_func", None), "__module__", "")
        if not self.done and module in self.modules:
            self.done = True
            print(MESSAGE, file=sys.stderr, flush=True)

    def on_end(self, ev) -> None:
        pass


def install(*modules: str) -> FirstCompileNotice:
    """Register the notice for the kernels defined in ``modules`` (module names)."""
    listener = FirstCompileNotice(modules)
    event.register("numba:compile", listener)
    return listener
