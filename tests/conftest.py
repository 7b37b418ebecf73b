"""Test configuration: a deterministic hypothesis profile for CI, and a private compile cache per session."""
import os

import pytest
from hypothesis import HealthCheck, settings
from threadpoolctl import threadpool_limits

settings.register_profile("ci", derandomize=True, deadline=None, max_examples=20, print_blob=True,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, max_examples=20)
# Deterministic unless asked otherwise (HYPOTHESIS_PROFILE=dev explores new random examples), so that the
# README's test command gives the same verdict on every machine.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Compiled derivations go to a fresh folder, so tests never depend on a user's cache."""
    path = tmp_path_factory.mktemp("compile-cache")
    old = os.environ.get("REDUCED_DYNAMICS_CACHE")
    os.environ["REDUCED_DYNAMICS_CACHE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("REDUCED_DYNAMICS_CACHE", None)
    else:
        os.environ["REDUCED_DYNAMICS_CACHE"] = old


@pytest.fixture(scope="session", autouse=True)
def one_blas_thread():
    """The arrays here are small: on a shared 2-core machine multi-threaded BLAS made GD steps and batched
    eigh calls 10-60x slower (measured), so the whole session runs BLAS on one thread."""
    with threadpool_limits(limits=1):
        yield
