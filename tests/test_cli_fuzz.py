"""Hostile command lines: hypothesis builds argument lists for every verb and family (valid flags with hostile
values, unknown flags, odd paths); every run must end with exit 0 or 2 within its budget, print no traceback,
and leave no temporary file behind. Each example is a fresh process (the CLI as a user meets it); the time
budget of the cost check is set to 5 s, so that a valid but long run is refused rather than started."""
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import reduced_dynamics as rd

MODELS = [name for name in rd.FAMILIES if name != "sparse"] + ["sparse", "attn-x", ""]
HOSTILE = ["0", "-1", "2.5", "nan", "inf", "-inf", "1e300", "1e-300", "1e9", "", "abc", "0.4,,0.3", "none",
           "true", "3", "1", "0.5"]
SMALL = {"attn-m": ["--dim", "2", "--heads", "2", "--context", "4", "--t-max", "5", "--train-size", "200"],
         "attn-s": ["--dim", "2", "--heads", "2", "--context", "4", "--t-max", "5", "--train-size", "200"],
         "softmax": ["--features", "2", "--dim", "2", "--context", "4", "--steps", "5", "--batch", "50",
                     "--eval-prompts", "50", "--limit", "large-n"],
         "sparse": ["--dim", "2", "--sparsity", "1", "--context", "4", "--layers", "1", "--heads", "1", "--steps",
                    "3", "--batch", "8", "--test-prompts", "20", "--tune-prompts", "20", "--depth-points", "3"]}


def flags_of(model):
    if model not in rd.FAMILIES:
        return ["--dim", "--lr"]
    import dataclasses
    return ["--" + f.name.replace("_", "-") for f in dataclasses.fields(rd.family(model).spec_class)]


@st.composite
def command_lines(draw, folder):
    verb = draw(st.sampled_from(["predict", "simulate", "compare", "sweep", "figures", "models", "bogus"]))
    if verb in ("models", "bogus"):
        return [verb]
    if verb == "figures":
        return ["figures", draw(st.sampled_from(["nonexistent_figure", "--list", "attn_m_loss"])), "--out",
                draw(st.sampled_from(["/dev/null", "/", str(folder / "file.txt"), str(folder / "new")]))]
    model = draw(st.sampled_from(MODELS))
    argv = [verb, model] + SMALL.get(model, [])
    for flag in draw(st.lists(st.sampled_from(flags_of(model) + ["--no-such-flag"]), max_size=3)):
        argv += [flag, draw(st.sampled_from(HOSTILE))]
    if verb == "sweep":
        argv += ["--grid", draw(st.sampled_from(["dim=2,3", "seed=0,1", "dim=", "nosuch=1", "lr=0,1"])),
                 "--measure", draw(st.sampled_from(["final_loss", "drop_time,drop_time", "nope"])),
                 "--workers", "1", "--out", draw(st.sampled_from([str(folder / "sweep"), str(folder / "file.txt")]))]
    else:
        argv += ["--out-dir", str(folder / "out")]
        argv += draw(st.sampled_from([[], ["--out", "/dev/null"], ["--json", str(folder)],
                                      ["--plot", str(folder / "file.txt" / "x")], ["--out", str(folder / "a.npz")]]))
    return argv


FOLDER = Path(os.environ.get("PYTEST_FUZZ_DIR", "/tmp")) / f"rd-fuzz-{os.getpid()}"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=command_lines(FOLDER))
def test_every_command_line_ends_in_exit_0_or_2_without_a_traceback(argv):
    FOLDER.mkdir(exist_ok=True)
    (FOLDER / "file.txt").write_text("a file where a folder is expected\n")
    env = dict(os.environ, REDUCED_DYNAMICS_TIME_BUDGET="5")
    run = subprocess.run([sys.executable, "-m", "reduced_dynamics", *argv], capture_output=True, text=True,
                         timeout=120, env=env, cwd=FOLDER)
    assert run.returncode in (0, 2), (argv, run.returncode, run.stderr[-2000:])
    assert "Traceback" not in run.stderr, (argv, run.stderr[-2000:])
    if run.returncode == 2:
        errors = [line for line in run.stderr.splitlines() if line.startswith("reduced-dynamics: error:")]
        assert len(errors) == 1, (argv, run.stderr)
    leftovers = [p for p in FOLDER.rglob("*") if p.name.endswith(".tmp")]
    assert not leftovers, (argv, leftovers)
