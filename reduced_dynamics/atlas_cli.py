"""``reduced-dynamics atlas MODEL --lr-range A B --points K [spec flags]``: the lr atlas (docs/theory/lr_atlas.md,
LRA-4) of the run the spec describes, one row per rate on a geometric grid from A to B, written as CSV, JSON and
npz (``--out-dir``, default out/MODEL-atlas.{csv,json,npz}). Only families with a map that equals their run
(attn-m and attn-s with linear attention; softmax, exact finite N) are accepted; others get a one-line error naming the model."""
from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import numpy as np

from .costs import FLOAT, Estimate, enforce
from .errors import SpecError
from .families import family
from .files import (all_or_nothing, atomic_save_npz, atomic_write_json, atomic_write_text, check_target, exclusive,
                    to_json)

MODELS = ("attn-m", "attn-s", "softmax")


def run(argv: list[str]) -> int:
    from .arguments import UsageError, _Parser, add_spec_arguments, spec_from_arguments
    if not argv or argv[0].startswith("-"):
        if argv and argv[0] in ("-h", "--help"):
            print("usage: reduced-dynamics atlas MODEL --lr-range A B --points K [spec flags] [--out-dir DIR] [--yes]")
            return 0
        raise UsageError(f"atlas: missing MODEL (one of {', '.join(MODELS)})")
    fam = family(argv[0])
    parser = _Parser(prog=f"reduced-dynamics atlas {fam.name}", description=f"lr atlas for {fam.title}")
    add_spec_arguments(parser, fam.spec_class)
    parser.add_argument("--lr-range", nargs=2, required=True, metavar=("A", "B"), help="smallest and largest rate")
    parser.add_argument("--points", default="100", metavar="K", help="rates on the geometric grid (default 100)")
    parser.add_argument("--no-lyapunov", action="store_true", help="skip the tangent map (no 'chaotic' label)")
    parser.add_argument("--out-dir", default="out", metavar="DIR", help="folder for MODEL-atlas.{csv,json,npz}")
    parser.add_argument("--yes", action="store_true", help="run even if the estimate exceeds the time budget")
    args = parser.parse_args(argv[1:])
    if fam.name not in MODELS:
        raise SpecError("model", f"one of {', '.join(MODELS)} (a family whose GD map equals its run)", fam.name)
    spec = spec_from_arguments(fam.spec_class, args)
    lo, hi, points = _rates(args.lr_range, args.points)
    enforce(fam.name, "atlas", estimate(spec, lo, points), confirm_time=True, yes=args.yes)
    stem = Path(args.out_dir) / f"{fam.name}-atlas"
    targets = [check_target(stem.with_suffix(s), writable=True) for s in (".csv", ".json", ".npz")]
    with exclusive(stem.parent / f".{stem.name}.lock", f"{stem}: another atlas ({{holder}}) is writing these outputs "
                   f"now; wait for it to finish or choose another --out-dir", holder=f"pid {os.getpid()}"):
        return _compute_and_write(fam, spec, lo, hi, points, not args.no_lyapunov, targets)


# Measured on the 2-core machine under load: the C6 atlas over 200 rates (800 steps at the smallest rate, with
# the Lyapunov tangent map) took 22-55 s, i.e. about 1.4e-4 s per rate and step; two arrays of (steps, rates).
SECONDS_PER_RATE_STEP = 1.4e-4


def estimate(spec, smallest_rate: float, points: int) -> Estimate:
    """Memory and time of an atlas before anything is allocated: the longest run (at the smallest rate) sets the
    steps S of the (S + 1) x K loss and step-length arrays that ``lr_atlas.iterate`` holds."""
    steps = spec.replace(lr=smallest_rate).gd_steps if spec.steps is None else spec.steps
    advice = (f"raise the smallest rate A of --lr-range ({smallest_rate:g}: {steps:.3g} steps) or lower --points "
              f"({points})")
    return Estimate.of({advice: 2.0 * (steps + 1) * points * FLOAT}, {advice: steps * points * SECONDS_PER_RATE_STEP},
                       {"atlas": f"{points} rates, up to {steps:.3g} steps each"})


def _compute_and_write(fam, spec, lo, hi, points, lyapunov, targets) -> int:
    from .theory import lr_atlas
    result = lr_atlas.atlas(spec, np.geomspace(lo, hi, points), lyapunov=lyapunov)
    table = result.table()
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(list(table))
    writer.writerows(zip(*table.values()))
    record = {"model": fam.name, "spec": spec.to_dict(), "system": result.system,
              "first_divergent": _none(result.first_divergent()), "rows": table}
    with all_or_nothing():
        written = [atomic_write_text(targets[0], text.getvalue()), atomic_write_json(targets[1], record),
                   atomic_save_npz(targets[2], meta=np.array(to_json({k: v for k, v in record.items() if k != "rows"})),
                                   rates=result.rates, losses=result.losses, peak=result.peak, minimum=result.minimum,
                                   final=result.final, sharpness=result.sharpness, lyapunov=result.lyapunov,
                                   labels=np.array(result.labels))]
    counts = {label: result.labels.count(label) for label in dict.fromkeys(result.labels)}
    print(f"{fam.name} atlas over {points} rates {lo:g} to {hi:g} ({result.system}): "
          + ", ".join(f"{k} {v}" for k, v in counts.items())
          + f"; first divergent rate {result.first_divergent():.6g}")
    for path in written:
        print(f"  {path}")
    return 0


def _rates(texts, points_text):
    values = []
    for name, text in (("lr_range", texts[0]), ("lr_range", texts[1])):
        try:
            x = float(text)
        except ValueError:
            raise SpecError(name, "two positive rates A < B", " ".join(texts)) from None
        values.append(x)
    lo, hi = values
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise SpecError("lr_range", "two positive rates A < B", " ".join(texts))
    try:
        points = int(points_text)
    except ValueError:
        raise SpecError("points", "an integer >= 2", points_text) from None
    if points < 2:
        raise SpecError("points", "an integer >= 2", points_text)
    return lo, hi, points


def _none(x: float):
    return None if not math.isfinite(x) else x
