"""A damaged Numba cache of the integrator kernels is rebuilt with a warning instead of breaking every run
(three processes in a private NUMBA_CACHE_DIR; the first compiles the kernels, ~10-20 s in all)."""
import os
import subprocess
import sys


def test_a_truncated_kernel_cache_file_is_rebuilt(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "numba"), REDUCED_DYNAMICS_CACHE=str(tmp_path / "rd"))
    argv = [sys.executable, "-m", "reduced_dynamics", "predict", "attn-m", "--dim", "2", "--heads", "2",
            "--out", str(tmp_path / "a.npz")]
    first = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert first.returncode == 0, first.stderr
    damaged = sorted((tmp_path / "numba").rglob("compiled._dop853-*.nbc"))
    assert damaged, "the kernels were not cached where NUMBA_CACHE_DIR says"
    for path in damaged:
        path.write_bytes(path.read_bytes()[:100])
    second = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert second.returncode == 0, second.stderr
    assert "cache" in second.stderr and "damaged" in second.stderr and "Traceback" not in second.stderr
    third = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    assert third.returncode == 0 and "damaged" not in third.stderr
