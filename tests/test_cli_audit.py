"""The issue-12 audit, kept: one command line per failure class a new user or a hostile tester hits (divergence,
blow-up, budgets, sizes that cannot fit, output paths, nonsense values, unknown names), each with the exit
code it must end in: 2 with exactly one line naming what to change (warnings aside), or 0 for what is legal.
Slow (about 2 minutes, one process per case): ``python -m pytest -m slow tests/test_cli_audit.py``. The fast,
randomised counterpart that runs in CI is tests/test_cli_fuzz.py."""
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

CASES = [
    # divergence, blow-up, exhausted budget, singular problems
    ("simulate attn-m --lr 100", 2), ("simulate attn-m --lr 100 --t-max 1000", 2),
    ("simulate attn-m --lr 1e300 --t-max 1e301", 2), ("simulate attn-s --lr 50 --t-max 5000", 2),
    ("predict attn-m --init-scale 1e10", 2), ("predict attn-m --t-max 1e12", 2), ("predict attn-m --train-size 1", 0),
    ("simulate attn-m --lr 1e-300", 2), ("simulate sparse --optimizer gd --lr 100", 2),
    ("simulate deep-linear --lr 100", 2),
    # sizes that cannot fit, work over the time budget (refused with the estimate before allocating)
    ("predict attn-m --dim 1e9", 2), ("simulate attn-m --train-size 1e9", 2), ("predict attn-m --train-size 1e9", 2),
    ("simulate attn-m --context 1e8", 2), ("predict attn-m --heads 1e9", 2),
    ("predict softmax --features 200 --dim 200", 2), ("simulate softmax --features 200 --dim 200", 2),
    ("simulate softmax --batch 1e9", 2), ("simulate softmax --eval-prompts 1e9", 2), ("simulate sparse --dim 1e6", 2),
    ("simulate sparse --steps 1e9", 2), ("simulate attn-m --lr 1e-6", 2), ("simulate attn-s --dim 16", 2),
    ("predict softmax --context 1e6", 0), ("predict attn-m --dim 60", 0),
    # output paths: never replace anything but a regular file
    ("predict attn-m --out {tmp}/folder", 2), ("predict attn-m --json {tmp}/folder", 2),
    ("predict attn-m --out {tmp}/fifo", 2), ("predict attn-m --out {tmp}/link", 2), ("predict attn-m --out /dev/null", 2),
    ("compare attn-m --out-dir {tmp}/file.txt --steps 40", 2), ("predict attn-m --out /proc/version.npz", 2),
    ("sweep attn-m --grid init_scale=0.001,0.002 --measure drop_time --out {tmp}/file.txt", 2),
    ("sweep attn-m --grid init_scale=0.001 --measure drop_time --scheduler tcp://127.0.0.1:9 --out {tmp}/s1", 2),
    # validation that says no
    ("compare attn-m --steps 5 --t-max 100", 2), ("predict attn-m --eigenvalues 0.4,,0.3,0.1", 2),
    ("simulate sparse --init-scale 0", 2), ("predict softmax --dominant 0.1", 2),
    ("sweep attn-m --grid init_scale=0.001 --measure drop_time,drop_time --out {tmp}/s2", 2),
    ("predict attn-m --dim -1", 2), ("predict attn-m --dim 2.5", 2), ("predict attn-m --dim nan", 2),
    ("predict attn-m --lr inf", 2), ("predict attn-m --seed -3", 2), ("predict attn-m --bogus 1", 2),
    ("predict nomodel", 2), ("predict", 2), ("frobnicate", 2), ("predict attn-s --rank 9", 2),
    ("predict softmax --probabilities 0.5,0.6", 2), ("predict softmax --features 1", 2), ("simulate sparse --heads 0", 2),
    ("predict attn-m --steps 0", 2), ("predict attn-m --t-max -1", 2), ("predict attn-m --discretisation euler", 2),
    ("predict sparse --max-lr", 2), ("figures no_such_figure", 2),
    # legal, with a one-line warning where a flag does nothing or the request is trimmed
    ("predict attn-m --centre-inputs", 0), ("simulate attn-s --lr 100", 0),
    ("sweep attn-m --grid init_scale=0.001,0.002 --measure drop_time --workers 1000 --out {tmp}/s3", 0),
    ("predict attn-m --lr 0.05 --discretisation map", 0), ("predict attn-m --max-lr", 0), ("--version", 0),
    ("models", 0), ("figures --list", 0),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    (folder / "folder").mkdir()
    (folder / "file.txt").write_text("keep me\n")
    os.mkfifo(folder / "fifo")
    (folder / "link").symlink_to(folder / "file.txt")
    return folder


@pytest.mark.parametrize("command, code", CASES, ids=[c for c, _ in CASES])
def test_audit_case(command, code, tmp):
    result = subprocess.run([sys.executable, "-m", "reduced_dynamics", *command.format(tmp=tmp).split()],
                            capture_output=True, text=True, timeout=300, cwd=tmp)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "warning:" not in line and "compil" not in line.lower() and "%|" not in line]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("reduced-dynamics: error: "), result.stderr
    assert (tmp / "file.txt").read_text() == "keep me\n" and (tmp / "link").is_symlink()
    assert not list(tmp.rglob("*.tmp")), "a temporary file was left behind"
