"""The Python API runs gradient descent on one BLAS thread, as the command line does (issue 20: on every
thread it cost 4.5x the CPU); ``blas_threads=None`` leaves the caller's setting. The CPU comparison of the
API against the CLI is a benchmark (benchmarks/simulate_cpu.py), not a timed test."""
import pytest
from threadpoolctl import threadpool_limits

import reduced_dynamics as rd
from reduced_dynamics.families import family
from reduced_dynamics.sweep import blas_threads


@pytest.fixture
def seen(monkeypatch):
    """The largest BLAS thread count inside each call of the attn-m face's simulate."""
    face = family("attn-m").face
    original, counts = face.simulate, []

    def spy(spec, progress=None):
        counts.append(max(blas_threads().values()))
        return original(spec, progress=progress)

    monkeypatch.setattr(face, "simulate", spy)
    return counts


def test_simulate_runs_on_one_blas_thread_and_restores_the_callers_setting(seen):
    small = rd.spec("attn-m", dim=2, heads=2, train_size=100, steps=20)
    with threadpool_limits(limits=2):           # the session fixture pins one thread: lift it here
        before = max(blas_threads().values())
        if before < 2:
            pytest.skip("BLAS cannot run two threads here")
        rd.simulate(small)
        after = max(blas_threads().values())
        rd.simulate(small, blas_threads=None)
        rd.run_comparison(rd.spec("attn-m", dim=2, heads=2, train_size=100, steps=20, t_max=1.0))
    assert seen[0] == 1 and after == before
    assert seen[1] == before                    # left as the caller set it
    assert seen[2] == 1                         # the comparison's reference too


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_a_bad_thread_count_is_a_spec_error(bad):
    with pytest.raises(rd.SpecError, match="blas_threads"):
        rd.simulate(rd.spec("attn-m", dim=2), blas_threads=bad)
