"""The issue-12 audit, kept, and the issue-20 cases added (NEW_CASES): one command line per failure class a new
user or a hostile tester hits (divergence, blow-up, budgets, sizes that cannot fit, output paths, nonsense
values, unknown names; a failing sweep point, outputs at one path, unwritable locations, another grid's rows,
cost flags, budgets, echoes, cache locations), each with the exit code it must end in: 2 with exactly one line
naming what to change (warnings aside), or 0 for what is legal; no stderr line over 1000 characters.
Slow (one process per case; timings in the issue-20 report): ``python -m pytest -m slow
tests/test_cli_audit.py``. The fast, randomised counterpart that runs in CI is tests/test_cli_fuzz.py."""
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

# Issue 20 (round three): one new case per way a new or hostile user met a wrong result or a late failure.
# A third element, where given, is text the error (stderr) must contain, or, prefixed "!", must not. Cases
# run in the order listed: the three s4 sweeps build on each other (another grid's rows kept, then a clash).
QUICK_SWEEP = "--dim 2 --heads 2 --train-size 200 --steps 20 --measure final_loss"
MANY = ",".join(["0.1"] * 20000)
NEW_CASES = [
    # a failing point is recorded by its parameters; the others finish (pool, chunks, local Dask)
    (f"sweep attn-m --side reference --grid lr=100,0.05,0.02,0.01 {QUICK_SWEEP} --out {{tmp}}/f1", 2,
     "1 of 4 points failed: lr=100.0"),
    (f"sweep attn-m --side reference --grid lr=100,0.05,0.02,0.01 {QUICK_SWEEP} --chunk-size 2 --out {{tmp}}/f2", 2,
     "1 of 4 points failed: lr=100.0"),
    (f"sweep attn-m --side reference --grid lr=100,0.05,0.02,0.01 {QUICK_SWEEP} --dask local --out {{tmp}}/f3", 2,
     "1 of 4 points failed: lr=100.0"),
    (f"sweep attn-m --side reference --grid seed=0,1 {QUICK_SWEEP} --out {{tmp}}/f4", 0),
    # two outputs at one path; a trailing / is a folder
    ("predict attn-m --out {tmp}/r.npz --json {tmp}/r.npz", 2, "--out and --json"),
    ("predict attn-m --out {tmp}/r.pdf --plot {tmp}/r", 2, "--out and --plot"),
    ("predict attn-m --json {tmp}/r.png --plot {tmp}/r.pdf", 2, "--json and --plot"),
    ("predict attn-m --out {tmp}/a/../r2.npz --json {tmp}/r2.npz", 2, "--out and --json"),
    ("simulate attn-m --out {tmp}/o.npz --json {tmp}/o.npz", 2, "--out and --json"),
    ("compare attn-m --steps 40 --out-dir {tmp}/c1 --out {tmp}/c1/attn-m-compare.npz", 2, "--out-dir and --out"),
    ("compare attn-m --steps 40 --out-dir {tmp}/c2 --json {tmp}/c2/attn-m-compare.json", 2, "--out-dir and --json"),
    ("compare attn-m --steps 40 --out-dir {tmp}/c3 --plot {tmp}/c3/attn-m-compare", 2, "--out-dir and --plot"),
    ("predict attn-m --out {tmp}/newdir/", 0), ("predict attn-m --json {tmp}/jdir/", 0),
    ("predict attn-m --out {tmp}/folder/", 0),
    ("sweep attn-m --grid seed=0 --measure drop_time --out {tmp}/s5/", 0),
    ("sweep attn-m --grid seed=0,1 --measure drop_time --yes --out {tmp}/s6", 0),
    # an output that cannot be written is found before any work
    ("compare attn-m --out-dir /proc/rd-out", 2, "cannot write there"),
    ("figures attn_m_loss --quick --out /proc/rd-out", 2, "cannot write there"),
    ("sweep attn-m --grid seed=0,1 --measure drop_time --out /proc/rd-out", 2, "cannot write there"),
    ("predict attn-m --json /proc/rd.json", 2, "cannot write there"),
    ("predict attn-m --plot /proc/rd-plot", 2, "cannot write there"),
    ("simulate attn-m --out-dir /sys/rd-out", 2, "cannot write there"),
    ("predict attn-m --out {tmp}/file.txt/x.npz", 2, "is a file, not a folder"),
    ("figures attn_m_loss --quick --out {tmp}/file.txt", 2, "is a file, not a folder"),
    ("figures attn_m_loss --quick --out {tmp}/file.txt/sub", 2, "is a file, not a folder"),
    ("sweep attn-m --grid seed=0,1 --measure drop_time --out {tmp}/fifo", 2),
    ("compare attn-m --out-dir {tmp}/file.txt/sub", 2, "is a file, not a folder"),
    ("predict attn-m --out {tmp}/link/x.npz", 2, "not a folder"),
    # another grid in the same sweep folder: every row kept, or refused naming the folder
    ("sweep attn-m --grid seed=0,1 --dim 2 --heads 2 --measure drop_time --out {tmp}/s4", 0),
    ("sweep attn-m --grid init_scale=0.05 --dim 2 --heads 2 --measure drop_time --out {tmp}/s4", 0),
    ("sweep attn-m --grid seed=5 --dim 2 --heads 2 --measure final_loss --out {tmp}/s4", 2, "holds a sweep with other"),
    # costs: every size flag, messages naming the flag, budgets, grid points, echoed values
    ("simulate attn-m --heads 1e7 --steps 1", 2, "lower --heads"),
    ("simulate attn-s --heads 1e7 --steps 1", 2, "lower --heads"),
    ("predict attn-m --heads 1e7", 2, "--heads"), ("predict attn-s --heads 1e9", 2, "--heads"),
    ("predict attn-s --dim 1e4", 2, "--dim"),
    ("simulate attn-m --context 1e8", 2, "--context"), ("simulate softmax --context 1e8", 2, "--context"),
    ("simulate softmax --eval-prompts 1e9", 2, "lower --eval-prompts"),
    ("simulate softmax --eval-prompts 1e7", 2, "--eval-prompts"),
    ("simulate attn-m --lr 1e-300", 2, "raise --lr"), ("simulate attn-m --lr 1e-6", 2, "raise --lr"),
    ("simulate sparse --batch 1e9", 2, "--batch"), ("simulate sparse --heads 1e6", 2, "--heads"),
    ("simulate sparse --layers 1e5", 2, "--layers"), ("simulate sparse --context 1e8", 2, "--context"),
    ("predict sparse --test-prompts 1e9", 2, "--test-prompts"), ("predict sparse --depth-points 1e8", 2, "--depth-points"),
    ("compare attn-m --heads 1e7", 2, "--heads"), ("compare softmax --eval-prompts 1e9", 2, "--eval-prompts"),
    ("compare sparse --steps 1e9", 2, "--steps"),
    ("sweep attn-m --side reference --grid heads=1e7 --measure drop_time --out {tmp}/s8", 2, "--heads"),
    ("sweep attn-m --side reference --grid seed=" + ",".join(map(str, range(400))) + " --measure drop_time "
     "--out {tmp}/s9", 2, "sweep fewer points"),
    ("sweep attn-m --grid seed=" + ",".join(map(str, range(1000))) + " --grid context="
     + ",".join(map(str, range(1, 1001))) + " --measure drop_time --out {tmp}/s10", 2, "grid: 1e+06 points"),
    ("REDUCED_DYNAMICS_TIME_BUDGET=nan simulate attn-m --lr 1e-6", 2, "REDUCED_DYNAMICS_TIME_BUDGET"),
    ("REDUCED_DYNAMICS_TIME_BUDGET=inf simulate attn-m --lr 1e-6", 2, "REDUCED_DYNAMICS_TIME_BUDGET"),
    ("REDUCED_DYNAMICS_TIME_BUDGET=-1 predict attn-m", 2, "REDUCED_DYNAMICS_TIME_BUDGET"),
    ("REDUCED_DYNAMICS_TIME_BUDGET=abc predict attn-m", 2, "REDUCED_DYNAMICS_TIME_BUDGET"),
    ("REDUCED_DYNAMICS_TIME_BUDGET=0.001 simulate attn-m", 2, "over the budget"),
    (f"predict attn-m --eigenvalues {MANY}", 2, "characters)"),
    (f"predict softmax --probabilities {MANY}", 2, "characters)"),
    # unusable cache locations: one warning, the run goes on uncached
    ("REDUCED_DYNAMICS_CACHE={tmp}/file.txt/cache predict attn-m --dim 3 --out {tmp}/h1.npz", 0, "cannot be used"),
    ("REDUCED_DYNAMICS_CACHE=/proc/rd-cache predict attn-m --dim 3 --out {tmp}/h2.npz", 0, "cannot be used"),
    # first contact
    ("predict attn-m --t-max 1e12", 2, "!Radau"), ("predict attn-m --help", 0), ("sweep attn-m --help", 0),
    ("compare attn-m --help", 0), ("figures --help", 0),
]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audit")
    (folder / "folder").mkdir()
    (folder / "file.txt").write_text("keep me\n")
    os.mkfifo(folder / "fifo")
    (folder / "link").symlink_to(folder / "file.txt")
    return folder


ALL = [(command, code, "") for command, code in CASES] + [(c[0], c[1], c[2] if len(c) > 2 else "") for c in NEW_CASES]


@pytest.mark.parametrize("command, code, expect", ALL, ids=[c[:100] for c, _, _ in ALL])
def test_audit_case(command, code, expect, tmp):
    words = command.format(tmp=tmp).split()
    env = dict(os.environ)
    while words and "=" in words[0] and words[0].split("=")[0].isupper():     # VARIABLE=value prefixes
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    result = subprocess.run([sys.executable, "-m", "reduced_dynamics", *words],
                            capture_output=True, text=True, timeout=300, cwd=tmp, env=env)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines()
             if line.strip() and "warning:" not in line and "compil" not in line.lower() and "%|" not in line]
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("reduced-dynamics: error: "), result.stderr
    assert all(len(line) < 1000 for line in result.stderr.splitlines()), "an echo was not cut"
    if expect.startswith("!"):
        assert expect[1:] not in result.stderr, result.stderr
    elif expect:
        assert expect in result.stderr, result.stderr
    assert (tmp / "file.txt").read_text() == "keep me\n" and (tmp / "link").is_symlink()
    assert not list(tmp.rglob("*.tmp")), "a temporary file was left behind"
