"""The claim ledger over seeds: every claim about gradient descent measured at several seeds, as a distribution.

A *study* is one setting (a spec) run at one seed: the reference GD once, then each theory curve the ledger
holds against it; it returns, per *claim*, the theory's and the reference's value of one measure (a number,
or a list of numbers, e.g. one threshold time per feature). A claim's row in the ledger is that comparison
over the seeds 0 .. n-1: the relative gap ``reference / theory - 1`` per seed (for a list, the entry of largest
magnitude), shown as mean ± sd and min–max in percent, and the verdict counts the seeds whose gap lies in the
claim's band ("within 1 % at 8/8 seeds"; a signed claim, "escape after the expansion", counts the sign).
Beside it, the gap of the seeds' mean (reference averaged over the seeds against the theory averaged likewise):
what a claim about the mean curve rests on when single seeds scatter by their batch noise.

The studies are independent tasks (study, seed), run on any ``concurrent.futures.Executor``: the process pool
of ``reduced_dynamics.sweep`` by default, or a Dask cluster's executor (``sweep.dask_executor``), so a
ledger runs where a sweep runs. Each finished task is written as JSON into the output folder as it completes
(``<study>-seed<k>.json``, with its spec and versions); a rerun skips them, so an interrupted ledger loses
nothing. The table goes to ``ledger.csv`` and ``ledger.json`` and, as Markdown, to ``ledger.md``.

    python -m reduced_dynamics.ledger [--quick] [--study NAME] [--seeds N] [--out DIR] [--workers N]
                                      [--write-into README.md]

``--quick`` runs each study at small sizes and two seeds (CI); the numbers of the full run are the ledger's.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .errors import ReducedDynamicsError, SpecError

__all__ = ["CLAIMS", "STUDIES", "Claim", "Study", "main", "markdown", "row_of", "run_ledger", "write_into"]


@dataclass(frozen=True)
class Claim:
    """One ledger row: which study and comparison it reads, what it claims, and the band of its verdict:
    the gap in percent must lie in [low, high] (a signed claim sets one side to +-inf)."""
    study: str
    key: str
    family: str
    claim: str
    low: float
    high: float

    def verdict(self, gaps: Sequence[float]) -> str:
        good = sum(self.low <= g <= self.high for g in gaps if math.isfinite(g))
        band = (f"within {self.high:g} %" if self.low == -self.high else
                f"gap >= {self.low:g} %" if math.isinf(self.high) else
                f"gap <= {self.high:g} %" if math.isinf(self.low) else f"gap in [{self.low:g}, {self.high:g}] %")
        return f"{band} at {good}/{len(gaps)} seeds"


@dataclass(frozen=True)
class Study:
    """A setting: ``fields`` of the model's spec (``quick`` overrides them for CI) and ``run(spec)`` returning
    {claim key: (theory value, reference value)} for one seed."""
    name: str
    model: str
    fields: dict
    quick: dict
    run: Callable[[Any], dict]


def _attn_m_c6(spec) -> dict:
    """C6 (unfrozen GD, the default run): GD's midpoint drop time against the sample-moment flow (LA-22 on the
    reference's own set) and against the all-weights modified flow (LA-44, LR-9)."""
    import reduced_dynamics as rd
    gd = rd.family("attn-m").summarise(spec, rd.simulate(spec, progress=False))["drop_time"]
    flow = rd.predict(spec.replace(discretisation="flow"))
    modified = rd.predict(spec.replace(all_weights=True, discretisation="modified"))
    drop = rd.family("attn-m").summarise
    return {"sample flow": (drop(spec, flow)["drop_time"], gd),
            "all-weights modified flow": (drop(spec, modified)["drop_time"], gd)}


def _softmax_balanced(spec) -> dict:
    """Balanced features: GD's per-feature threshold times against the exact finite-N flow (SF-13) and against
    its modified flow at the run's rate (LR-5), which carries GD's O(lr) step."""
    import reduced_dynamics as rd
    summarise = rd.family("softmax").summarise
    gd = summarise(spec, rd.simulate(spec, progress=False))["threshold_times"]
    modified = rd.predict(spec.replace(discretisation="modified"))
    return {"exact-N flow": (summarise(spec, rd.predict(spec))["threshold_times"], gd),
            "modified exact-N flow": (summarise(spec, modified)["threshold_times"], gd)}


def _softmax_expansion_escape(spec) -> dict:
    """C21: softmax-attention GD (attn-m) against the small-score expansion (LA-51) on the same set: the time
    each crosses the midpoint between L(0) and the expansion's last ladder level (the sample centred optimum)."""
    import reduced_dynamics as rd
    from .events import first_crossing_below
    gd = rd.simulate(spec, progress=False)
    theory = rd.predict(spec)
    level = 0.5 * (gd.loss[0] + theory.meta["ladder"][-1])
    return {"escape": (first_crossing_below(theory.t, theory.loss, level),
                       first_crossing_below(gd.t, gd.loss, level))}


def _attn_s_staircase(spec) -> dict:
    """The default attn-s comparison: GD's drop times against the sample-moment flow's (LA-29)."""
    import reduced_dynamics as rd
    summarise = rd.family("attn-s").summarise
    gd = summarise(spec, rd.simulate(spec, progress=False))["drop_times"]
    flow = summarise(spec, rd.predict(spec.replace(train_size=spec.sample_size)))["drop_times"]
    return {"sample flow": (flow, gd)}


def _attn_s_mixture(spec) -> dict:
    """attn-s on the §12 mixture: GD's two test-loss drops and final test losses (LA-38, on GD's own test sets)
    against the all-weights flow (LA-54) on the reference's own training set."""
    import reduced_dynamics as rd
    from .tasks import linear_attention as task
    from .theory.linear_attention import iwl_separate
    gd = rd.simulate(spec, progress=False)
    flow = iwl_separate.predict(spec, moments="sample", tests="sample", test_size=task.TEST_SIZE, t_eval=gd.t)
    out = {key: (flow.events.get(key, math.nan), gd.events.get(key, math.nan))
           for key in ("in_weight_drop_time", "in_context_drop_time")}
    for key in ("test_loss_in_context", "test_loss_in_weight"):
        out[key] = (float(flow.observables[key][-1]), float(gd.observables[key][-1]))
    return out


STUDIES = {s.name: s for s in (
    Study("attn-m-c6", "attn-m", {"train_size": 20000}, {"dim": 2, "heads": 2, "train_size": 2000, "t_max": 30.0},
          _attn_m_c6),
    Study("softmax-balanced", "softmax", {"features": 4, "context": 30, "balanced": True, "lr": 1.0},
          {"features": 2, "dim": 2, "context": 10, "batch": 500, "eval_prompts": 500, "t_max": 60.0},
          _softmax_balanced),
    Study("attn-m-softmax-c21", "attn-m",
          {"dim": 4, "context": 15, "heads": 4, "train_size": 2000, "init_scale": 0.02, "lr": 0.1, "steps": 600,
           "attention": "softmax"},
          {"dim": 2, "context": 7, "heads": 2, "train_size": 400, "steps": 300, "lr": 0.2}, _softmax_expansion_escape),
    Study("attn-s-default", "attn-s", {}, {"dim": 2, "heads": 2, "train_size": 2000, "t_max": 100.0},
          _attn_s_staircase),
    Study("attn-s-mixture", "attn-s",
          {"dim": 3, "context": 15, "heads": 2, "init_scale": 0.1, "lr": 0.002, "train_size": 2000, "icl": 0.5,
           "t_max": 20.0},
          {"dim": 2, "context": 7, "train_size": 500, "t_max": 10.0}, _attn_s_mixture),
)}

CLAIMS = (
    Claim("attn-m-c6", "sample flow", "attn-m", "the sample-moment flow (LA-22) predicts GD's drop (C6)", -1, 1),
    Claim("attn-m-c6", "all-weights modified flow", "attn-m",
          "unfrozen GD follows the all-weights modified flow (LA-44, LR-9) (C6)", -0.1, 0.1),
    Claim("softmax-balanced", "exact-N flow", "softmax",
          "balanced features: GD follows the exact finite-N flow (K = 4, N = 30, lr 1)", -2, 2),
    Claim("softmax-balanced", "modified exact-N flow", "softmax",
          "balanced features: GD follows the modified exact-N flow at its rate (LR-5)", -2, 2),
    Claim("attn-m-softmax-c21", "escape", "attn-m (softmax)",
          "softmax GD escapes after the small-score expansion (C21)", 0, math.inf),
    Claim("attn-s-default", "sample flow", "attn-s", "GD's drops follow the sample-moment flow (LA-29)", -1, 1),
    Claim("attn-s-mixture", "in_weight_drop_time", "attn-s (icl 0.5)",
          "the in-weight drop of GD follows the all-weights flow (LA-54) on the same set", -1, 1),
    Claim("attn-s-mixture", "in_context_drop_time", "attn-s (icl 0.5)",
          "the in-context drop of GD follows the all-weights flow (LA-54) on the same set", -1, 1),
    Claim("attn-s-mixture", "test_loss_in_context", "attn-s (icl 0.5)",
          "final in-context test loss (LA-38) of GD = the flow's (LA-54)", -1, 1),
    Claim("attn-s-mixture", "test_loss_in_weight", "attn-s (icl 0.5)",
          "final in-weight test loss (LA-38) of GD = the flow's (LA-54)", -1, 1),
)


def _gap(theory: Any, reference: Any) -> float:
    """reference / theory - 1 in percent; for lists, the entry of largest magnitude; NaN when either side lacks
    the event (a drop that did not happen) or the lists differ in length (a staircase with another step count)."""
    th, ref = np.atleast_1d(np.asarray(theory, float)), np.atleast_1d(np.asarray(reference, float))
    if th.shape != ref.shape or th.size == 0 or not (np.all(np.isfinite(th)) and np.all(np.isfinite(ref))):
        return math.nan
    gaps = 100.0 * (ref / th - 1.0)
    return float(gaps[np.argmax(np.abs(gaps))])


def study_fields(name: str, seed: int, quick: bool) -> dict:
    """The spec fields of a study at one seed (the quick sizes over the full ones)."""
    study = STUDIES[name]
    return {**study.fields, **(study.quick if quick else {}), "seed": seed}


def _still_valid(record: dict, name: str, seed: int, quick: bool) -> bool:
    """A stored record is reused only if it was run with the study's present fields and holds every claim
    the ledger now reads from that study (a study given a new comparison, or new sizes, is run again)."""
    keys = {c.key for c in CLAIMS if c.study == name}
    return (record.get("spec") == json.loads(json.dumps(study_fields(name, seed, quick)))
            and keys <= set(record.get("values", {})))


def run_study(name: str, seed: int, quick: bool) -> dict:
    """One task: the study at one seed (runs in a worker; BLAS pinned to one thread by the pool)."""
    import reduced_dynamics as rd
    study = STUDIES[name]
    fields = study_fields(name, seed, quick)
    spec = rd.spec(study.model, **fields)
    values = study.run(spec)
    return {"study": name, "seed": seed, "quick": quick, "spec": fields, "version": rd.__version__,
            "values": {key: [_plain(th), _plain(ref)] for key, (th, ref) in values.items()}}


def _plain(value: Any) -> Any:
    array = np.asarray(value, float)
    return [None if not math.isfinite(v) else float(v) for v in array.ravel()] if array.ndim else (
        None if not math.isfinite(float(array)) else float(array))


def _number(value: Any) -> Any:
    if isinstance(value, list):
        return [math.nan if v is None else v for v in value]
    return math.nan if value is None else value


def row_of(claim: Claim, records: Sequence[dict]) -> dict:
    """A claim's ledger row from its study's per-seed records; a record holding an ``error`` (a run that
    failed) is counted in ``failed`` and named in the verdict, never dropped."""
    failed = sorted(r["seed"] for r in records if "values" not in r)
    records = [r for r in records if "values" in r]
    seeds = sorted(r["seed"] for r in records)
    pairs = {r["seed"]: r["values"][claim.key] for r in records}
    gaps = [_gap(_number(pairs[s][0]), _number(pairs[s][1])) for s in seeds]
    finite = [g for g in gaps if math.isfinite(g)]
    stats = (np.mean(finite), np.std(finite, ddof=1) if len(finite) > 1 else math.nan, min(finite), max(finite)) \
        if finite else (math.nan,) * 4
    return {"family": claim.family, "claim": claim.claim, "study": claim.study, "comparison": claim.key,
            "seeds": len(seeds), "gap_mean_pct": stats[0], "gap_sd_pct": stats[1], "gap_min_pct": stats[2],
            "gap_max_pct": stats[3], "gaps_pct": gaps, "no_event": len(gaps) - len(finite),
            "gap_of_mean_pct": _gap_of_mean([pairs[s] for s in seeds]), "failed": failed,
            "verdict": claim.verdict(gaps) + (f"; run failed at seeds {failed}" if failed else "")}


def _gap_of_mean(pairs: Sequence[Sequence[Any]]) -> float:
    """The gap between the seeds' mean reference value and the mean theory value (entry by entry for lists,
    the largest in magnitude): what is left when the seed-to-seed noise averages out. NaN if any seed lacks
    an event or the shapes differ."""
    try:
        theory = np.mean([np.asarray(_number(p[0]), float) for p in pairs], axis=0)
        reference = np.mean([np.asarray(_number(p[1]), float) for p in pairs], axis=0)
    except ValueError:                        # lists of different lengths across seeds
        return math.nan
    return _gap(theory, reference)


def run_ledger(out_dir: str | Path, studies: Sequence[str] | None = None, seeds: int = 8, quick: bool = False,
               executor: cf.Executor | None = None, workers: int | None = None, progress: bool | None = None) -> list[dict]:
    """Run every (study, seed) not yet in ``out_dir`` on ``executor`` (default: the sweep's process pool),
    write each as it completes, then the table; return the rows."""
    from tqdm.auto import tqdm
    from .files import atomic_write_json, atomic_write_text
    from .sweep import process_pool
    names = list(studies or STUDIES)
    unknown = [n for n in names if n not in STUDIES]
    if unknown:
        raise SpecError("study", f"one of {', '.join(STUDIES)}", unknown[0])
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise SpecError("seeds", "a positive integer", seeds)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = "-quick" if quick else ""
    path = {(n, s): out / f"{n}{tag}-seed{s}.json" for n in names for s in range(seeds)}
    stored = {k: json.loads(p.read_text()) for k, p in path.items() if p.exists()}
    records = {k: r for k, r in stored.items() if _still_valid(r, k[0], k[1], quick)}
    pending = [k for k in path if k not in records]
    own = executor is None and pending
    pool = process_pool(workers or 2) if own else executor
    try:
        futures = {pool.submit(run_study, n, s, quick): (n, s) for n, s in pending}
        for future in tqdm(cf.as_completed(futures), total=len(futures), disable={True: False, False: True, None: None}[progress],
                           desc="ledger", unit="run", leave=False):
            key = futures[future]
            try:
                records[key] = future.result()
            except ReducedDynamicsError as exc:        # a failed run is a ledger fact, not a crash
                records[key] = {"study": key[0], "seed": key[1], "error": str(exc).splitlines()[0]}
                continue
            atomic_write_text(path[key], json.dumps(records[key], sort_keys=True) + "\n")
    finally:
        if own:
            pool.shutdown(cancel_futures=True)
    rows = [row_of(c, [r for (n, _), r in sorted(records.items()) if n == c.study]) for c in CLAIMS if c.study in names]
    atomic_write_json(out / f"ledger{tag}.json", rows)              # strict JSON: a missing number is null
    atomic_write_text(out / f"ledger{tag}.md", markdown(rows))
    return rows


def markdown(rows: Sequence[dict]) -> str:
    """The rows as a Markdown table (the form README and docs include)."""
    lines = ["| family | claim | seeds | gap % mean ± sd | gap % min – max | gap % of the seed mean | verdict |",
             "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
    def signed(x: float) -> str:
        return f"{x:+.2f}" if math.isfinite(x) else "n/a"

    for r in rows:
        sd = "n/a" if not math.isfinite(r["gap_sd_pct"]) else f"{r['gap_sd_pct']:.2f}"
        lines.append(f"| {r['family']} | {r['claim']} | {r['seeds']} | {signed(r['gap_mean_pct'])} ± {sd} "
                     f"| {signed(r['gap_min_pct'])} – {signed(r['gap_max_pct'])} | {signed(r['gap_of_mean_pct'])} | {r['verdict']}"
                     + (f"; no event at {r['no_event']}" if r["no_event"] else "") + " |")
    return "\n".join(lines) + "\n"


BEGIN, END = "<!-- seeds:start -->", "<!-- seeds:end -->"


def write_into(path: str | Path, table: str) -> Path:
    """Replace the block between the markers ``<!-- seeds:start -->`` and ``<!-- seeds:end -->`` of a Markdown
    file (the README's ledger) with ``table``; ``OutputError`` if the file lacks exactly one such block."""
    from .errors import OutputError
    from .files import atomic_write_text
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise OutputError(f"{path}: cannot read it ({exc.strerror})") from None
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise OutputError(f"{path}: expected one block between {BEGIN} and {END}")
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return atomic_write_text(path, f"{head}{BEGIN}\n{table}{END}{tail}")


def main(argv: Sequence[str] | None = None, prog: str = "python -m reduced_dynamics.ledger") -> int:
    """Run the ledger from the command line (``reduced-dynamics ledger`` calls this); bad input: one line,
    exit code 2."""
    import sys
    from .arguments import UsageError, _Parser
    from .errors import one_line
    parser = _Parser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--study", action="append", choices=list(STUDIES), help="run only this study (repeatable)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0 .. N-1 (default 8; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes for CI")
    parser.add_argument("--out", default="ledger-out", help="output folder (default ledger-out)")
    parser.add_argument("--workers", type=int, default=None, help="process-pool workers (default 2)")
    parser.add_argument("--write-into", metavar="FILE", help="also replace the table between the seeds markers of "
                        "this Markdown file (README.md)")
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        seeds = args.seeds if args.seeds is not None else (2 if args.quick else 8)
        if args.workers is not None and args.workers < 1:
            raise SpecError("workers", "a positive integer", args.workers)
        rows = run_ledger(args.out, args.study, seeds, args.quick, workers=args.workers)
        if args.write_into:
            write_into(args.write_into, markdown(rows))
    except (ReducedDynamicsError, UsageError) as exc:
        print(f"{prog}: error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(markdown(rows), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
