"""docs/cluster.md, run as written: its Python blocks with a local Dask cluster standing in for SLURMCluster
(2 worker processes, one thread each), its command line through that cluster's scheduler address, and the
job script that SLURMCluster builds from the page's parameters (no Slurm needed). The code is read from the
page itself, so the page and this test cannot drift apart; only the sizes are swapped for tiny ones."""
import ast
import re
import shlex
import socket
import sys
import time
import types
from pathlib import Path

import pytest

from reduced_dynamics import sweep
from reduced_dynamics.cli import main

PAGE = Path(__file__).resolve().parents[1] / "docs" / "cluster.md"
MEASURES = ["drop_time", "final_loss"]
TINY_FIXED = {"dim": 2, "context": 5, "heads": 2, "t_max": 20.0}
# 36 points: enough for several points per task on 2 worker threads (sweep.chunk_size_for(36, 2) == 2)
TINY_GRID = {"init_scale": [0.2, 0.1, 0.05, 0.02], "seed": list(range(9))}


def page_block(language, marker):
    """The one ``language`` code block of the page that contains ``marker``."""
    found = [b for b in re.findall(rf"```{language}\n(.*?)```", PAGE.read_text(), flags=re.S) if marker in b]
    assert len(found) == 1, f"docs/cluster.md: expected one {language} block with {marker!r}, found {len(found)}"
    return found[0]


def exact(rows):
    """The table without the per-point wall times, which vary from run to run."""
    return [{k: v for k, v in row.items() if k not in sweep.TIMING_COLUMNS} for row in rows]


def slurm_arguments():
    """The keyword arguments of the page's ``SLURMCluster(...)`` call, as Python values."""
    tree = ast.parse(page_block("python", "SLURMCluster("))
    [call] = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "SLURMCluster"]
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords}


@pytest.fixture(scope="module")
def pool_table(tmp_path_factory):
    """The tiny grid on the default executor (a process pool of 2 spawned workers). The tests request it
    before ``page_cluster``, so the pool runs and shuts down before the local Dask cluster's worker processes
    exist: with both alive in this process, one CI run hung in the pool's shutdown after a worker was lost."""
    result = sweep.run_sweep("attn-m", TINY_GRID, MEASURES, tmp_path_factory.mktemp("pool"), fixed=TINY_FIXED,
                             workers=2)
    assert not result.failed and len(result.computed) == 36
    return exact(sweep.read_table(result.csv_path))


@pytest.fixture(scope="module")
def page_cluster():
    """The namespace of the page's cluster block, run with ``dask_jobqueue.SLURMCluster`` replaced by a
    LocalCluster that takes (and keeps) the Slurm arguments and starts 2 local workers whatever it is
    asked to scale to."""
    distributed = pytest.importorskip("distributed")

    class LocalSlurm(distributed.LocalCluster):
        def __init__(self, **slurm):
            self.slurm = slurm
            super().__init__(n_workers=0, threads_per_worker=1, processes=True, dashboard_address=None)

        def scale(self, n=0, jobs=None, **kwargs):
            return super().scale(2 if jobs else n)      # close() scales to 0

        def adapt(self, *args, **kwargs):
            return super().scale(2)

    fake = types.ModuleType("dask_jobqueue")
    fake.SLURMCluster = LocalSlurm
    namespace = {"__name__": "cluster_docs"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "dask_jobqueue", fake)
        exec(compile(page_block("python", "SLURMCluster("), "docs/cluster.md", "exec"), namespace)
    cluster = namespace["cluster"]
    assert isinstance(cluster, LocalSlurm) and cluster.slurm == slurm_arguments()
    yield namespace
    cluster.close()


def tiny_command(address, out):
    """The page's ``reduced-dynamics sweep`` command as CLI arguments, with the tiny sizes, this cluster's
    address and a temporary folder in place of the page's."""
    argv = shlex.split(page_block("bash", "reduced-dynamics sweep").replace("\\\n", " "))
    assert argv[:3] == ["reduced-dynamics", "sweep", "attn-m"]
    replace = {"--scheduler": address, "--out": str(out),
               **{f"--{k.replace('_', '-')}": repr(v) for k, v in TINY_FIXED.items()}}
    tiny, seen, rest = [], set(), iter(argv[1:])
    for arg in rest:
        if arg == "--grid":
            next(rest)                                  # the page's grid: replaced below
        elif arg in replace:
            next(rest)
            tiny += [arg, replace[arg]]
            seen.add(arg)
        else:
            tiny.append(arg)
    assert {"--scheduler", "--out", "--dim", "--context", "--heads"} <= seen, "the page's command changed shape"
    tiny += [x for k in sorted(set(replace) - seen) for x in (k, replace[k])]
    tiny += [x for k, values in TINY_GRID.items()
             for x in ("--grid", f"{k.replace('_', '-')}=" + ",".join(map(repr, values)))]
    return tiny + ["--no-progress"]


def test_page_command_through_the_scheduler_address_chunks_and_matches_the_pool(pool_table, page_cluster,
                                                                                  tmp_path, capsys):
    argv = tiny_command(page_cluster["cluster"].scheduler_address, tmp_path)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "36 computed" in out and "0 failed" in out
    per_task = int(re.search(r"(\d+) point\(s\) per task", out).group(1))
    assert per_task > 1
    assert exact(sweep.read_table(tmp_path / "sweep.csv")) == pool_table      # every digit of every drop time


class _Tiny(ast.NodeTransformer):
    """The page's sweep block with the tiny grid, a temporary folder, and waiting for our 2 workers."""

    def __init__(self, out):
        self.values = {"GRID": TINY_GRID, "FIXED": TINY_FIXED, "OUT": str(out)}
        self.done = set()

    def visit_Assign(self, node):
        [target] = node.targets
        if isinstance(target, ast.Name) and target.id in self.values:
            node.value = ast.parse(repr(self.values[target.id]), mode="eval").body
            self.done.add(target.id)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute) and node.func.attr == "wait_for_workers":
            node.args, node.keywords = [ast.Constant(2)], []
            self.done.add("wait_for_workers")
        return node


def test_page_python_sweep_with_the_client_chunks_and_matches_the_pool(pool_table, page_cluster, tmp_path):
    tree = ast.parse(page_block("python", "run_sweep("))
    tiny = _Tiny(tmp_path)
    tree = ast.fix_missing_locations(tiny.visit(tree))
    assert tiny.done == {"GRID", "FIXED", "OUT", "wait_for_workers"}, "the page's sweep block changed shape"
    namespace = dict(page_cluster)
    exec(compile(tree, "docs/cluster.md", "exec"), namespace)
    result = namespace["result"]
    assert len(result.computed) == 36 and not result.failed
    assert result.chunk_size == sweep.chunk_size_for(36, 2) > 1                 # sized by the 2 threads
    assert exact(sweep.read_table(result.csv_path)) == pool_table
    assert all(sweep.read_point(tmp_path, p)["blas_threads"] == 1 for p in result.points)


def test_slurm_job_script_asks_for_the_page_resources(tmp_path, monkeypatch):
    jobqueue = pytest.importorskip("dask_jobqueue", reason="dask-jobqueue is not installed (the cluster extra): "
                                                           "the page's SLURMCluster job script is not checked")
    from dask.utils import parse_bytes
    page = slurm_arguments()
    monkeypatch.chdir(tmp_path)               # a log_directory, if the page ever sets one, lands here
    with jobqueue.SLURMCluster(**page, scheduler_options={"dashboard_address": ":0"}) as cluster:
        script = cluster.job_script()
    lines = script.splitlines()
    for line in (f"#SBATCH -A {page['account']}", f"#SBATCH -p {page['queue']}", f"#SBATCH -t {page['walltime']}",
                 f"#SBATCH --cpus-per-task={page['cores']}", *(f"#SBATCH {d}" for d in page["job_extra_directives"])):
        assert line in lines, f"{line!r} not in the job script:\n{script}"
    [mem] = [line.split("=", 1)[1] for line in lines if line.startswith("#SBATCH --mem=")]
    assert 0.9 * parse_bytes(page["memory"]) <= parse_bytes(mem) <= parse_bytes(page["memory"])
    [worker] = [i for i, line in enumerate(lines) if "distributed.cli.dask_worker" in line]
    for command in page["job_script_prologue"]:
        assert command in lines[:worker], f"prologue {command!r} does not run before the worker"
    assert f"--nworkers {page['processes']}" in lines[worker]
    assert f"--nthreads {page['cores'] // page['processes']}" in lines[worker]
    assert "--nanny" in lines[worker]         # the nanny pins BLAS to one thread, as the page says


def test_an_unreachable_scheduler_is_one_line_and_exit_2_within_the_timeout(tmp_path, monkeypatch, capfd):
    pytest.importorskip("distributed")
    monkeypatch.setattr(sweep, "SCHEDULER_TIMEOUT", 2.0)
    with socket.socket() as probe:            # a port nobody listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    out = tmp_path / "out"
    start = time.perf_counter()
    code = main(["sweep", "attn-m", "--grid", "seed=0,1", "--measure", "drop_time", "--no-progress",
                 "--out", str(out), "--scheduler", f"tcp://127.0.0.1:{port}"])
    elapsed = time.perf_counter() - start
    err = capfd.readouterr().err
    assert code == 2 and elapsed < sweep.SCHEDULER_TIMEOUT + 5
    assert err.startswith("reduced-dynamics: error: scheduler: no Dask scheduler answered at "
                          f"'tcp://127.0.0.1:{port}' within 2 s") and err.count("\n") == 1, err
    assert not out.exists()                   # refused before anything was written
