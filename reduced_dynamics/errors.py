"""The project's exceptions: every failure a user can cause is one of these.

The CLI prints ``reduced-dynamics: error: <message>`` (one line) and exits with code 2 for any
``ReducedDynamicsError``; the Python API raises them as they are. Messages name what to change.

    ReducedDynamicsError
      SpecError            a parameter outside what the model accepts (names the parameter)
      IntegrationError     a reduced flow blew up, stalled or exhausted its evaluation budget
      DivergenceError      gradient descent diverged (names the learning rate to lower)
      FamilyError          a model family breaks the extension contract (families/contract.py)
      ResultFileError      a result file is missing, damaged or not ours (names the file)
      OutputError          an output path cannot be written (names the path)
      ClusterError         a Dask scheduler cannot be reached or lost its workers
      CostError            a run would need more memory than is free (or, unconfirmed, more time than the budget)
      MissingExtraError    an optional dependency is not installed (names the extra to install)

Each is also a subclass of the built-in exception a caller would have caught before (``ValueError`` for
bad values, ``RuntimeError`` for a failed run, ``OSError`` for files), so older ``except`` clauses keep
working.

Every one of them pickles and unpickles to an equal error (type, message, attributes): a sweep's worker
sends its error back to the driver that way, and an error that cannot be rebuilt there used to break the
whole process pool (every point then failed as ``BrokenProcessPool``).
"""
from __future__ import annotations

from typing import Any


class ReducedDynamicsError(Exception):
    """Base of every error this package raises on purpose."""

    def __reduce__(self):
        # The default pickles ``args`` (the one message) and unpickles by calling ``cls(*args)``, which fails
        # for the subclasses whose constructor takes several arguments (SpecError, DivergenceError ...).
        # Rebuild without the constructor instead: the message and the attributes as they are.
        return _rebuild, (type(self), self.args, dict(self.__dict__))


def _rebuild(cls: type, args: tuple, state: dict) -> "ReducedDynamicsError":
    base = cls                    # the built-in base whose memory layout the class has (Exception, OSError ...):
    while base.__module__ != "builtins":          # its __new__ is the one Python accepts for the class
        base = base.__base__ or Exception         # (never None below a built-in: ``or`` is for the type checker)
    error = base.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class SpecError(ReducedDynamicsError, ValueError):
    """A parameter had a value outside what the model accepts."""

    def __init__(self, parameter: str, expected: str, got: Any):
        self.parameter = parameter
        self.expected = expected
        super().__init__(f"{parameter}: expected {expected}, got {shorten(repr(got))}")


class IntegrationError(ReducedDynamicsError, RuntimeError):
    """The integration of a reduced flow blew up or stalled; the message says what to change."""


class DivergenceError(ReducedDynamicsError, RuntimeError):
    """Gradient descent left every sensible range (non-finite or exploding loss)."""

    def __init__(self, model: str, step: int, loss: float, advice: str = "lower --lr"):
        self.model, self.step, self.loss = model, step, loss
        super().__init__(f"{model}: gradient descent diverged at step {step} (loss {loss:.3g}); {advice}")


class FamilyError(ReducedDynamicsError, TypeError):
    """A model family does not meet the extension contract (missing hook, wrong signature, bad name)."""


class ResultFileError(ReducedDynamicsError, OSError):
    """A result file cannot be read as a result of this package."""

    def __init__(self, path: Any, why: str):
        self.path = path
        super().__init__(f"{path}: {why}")


class OutputError(ReducedDynamicsError, OSError):
    """An output cannot be written where it was asked to go."""


class ClusterError(ReducedDynamicsError, RuntimeError):
    """A Dask cluster could not be reached or failed."""


class CostError(ReducedDynamicsError, MemoryError):
    """A run was refused before it started: its estimated memory or time is out of reach."""


class MissingExtraError(ReducedDynamicsError, ImportError):
    """An optional dependency (pandas, xarray ...) is missing; the message names the extra that brings it."""

    def __init__(self, what: str, module: str, extra: str):
        self.module, self.extra = module, extra
        command = "pip install " + " ".join(f"'{r}'" for r in extra_requirements(extra))
        super().__init__(f"{what} needs {module}: {command} (the '{extra}' extra)")


def extra_requirements(extra: str) -> list[str]:
    """The requirements of one extra as the installed metadata lists them (``["pandas>=1.5", ...]``).

    The package is on no index, so ``pip install 'reduced_dynamics[data]'`` would fail; the requirements
    themselves install from PyPI wherever the package was installed from. Without metadata (sources on the
    path, not installed) the module's own distribution name stands in."""
    from importlib import metadata
    try:
        listed = metadata.requires("reduced_dynamics") or []
    except metadata.PackageNotFoundError:
        listed = []
    marker = f'extra == "{extra}"'
    found = [r.split(";")[0].strip() for r in listed if r.split(";", 1)[-1].strip() == marker]
    return found or _DISTRIBUTIONS.get(extra, [extra])


_DISTRIBUTIONS = {"sparse": ["scikit-learn"], "data": ["pandas", "xarray"]}


ECHO_LIMIT = 200          # characters of a user's value echoed in a message (a 20000-item list is not)


def shorten(text: str, limit: int = ECHO_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def one_line(exc: BaseException | str) -> str:
    """The message of an error on one line (a multi-line message is joined with '; ')."""
    return "; ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def optional_import(module: str, what: str, extra: str = "data") -> Any:
    """Import an optional dependency at first use; ``MissingExtraError`` naming the extra when missing."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(what, module, extra) from None
