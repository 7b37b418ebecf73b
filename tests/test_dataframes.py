"""Results as pandas and xarray objects: Trajectory.to_dataframe / to_xarray / from_arrays, sweep.load and
sweep.load_curves; a clear error naming the extra when pandas or xarray is missing."""
import concurrent.futures as cf
import json
import sys

import numpy as np
import pytest

import reduced_dynamics as rd
from reduced_dynamics import MissingExtraError, Trajectory
from reduced_dynamics.sweep import load, load_curves, run_sweep

pd = pytest.importorskip("pandas")
xr = pytest.importorskip("xarray")

SMALL = dict(dim=2, context=8, heads=2, train_size=200, t_max=20)


def user_run(n=50):
    t = np.linspace(0, 5, n)
    return Trajectory.from_arrays(t, np.exp(-t), observables={"v": np.outer(t, [1, 2]), "w": np.ones((n, 2, 3)),
                                                              "basis": np.eye(2)},
                                  spec=rd.spec("attn-m", **SMALL))


def test_to_dataframe_columns_index_and_attrs():
    traj = user_run()
    df = traj.to_dataframe()
    assert df.index.name == "t" and np.array_equal(df.index, traj.t)
    assert list(df.columns) == ["loss", "v[0]", "v[1]", "w[0,0]", "w[0,1]", "w[0,2]", "w[1,0]", "w[1,1]", "w[1,2]"]
    assert np.array_equal(df["v[1]"], 2 * traj.t) and np.array_equal(df["loss"], traj.loss)
    assert df.attrs["model"] == "attn-m" and df.attrs["kind"] == "user" and df.attrs["axis"] == "flow_time"


def test_to_xarray_dims_and_json_attrs():
    traj = user_run()
    ds = traj.to_xarray()
    assert ds["loss"].dims == ("t",) and ds["w"].dims == ("t", "w_dim_1", "w_dim_2")
    assert ds["basis"].dims == ("basis_dim_0", "basis_dim_1")
    assert json.loads(ds.attrs["spec"]) == rd.spec("attn-m", **SMALL).to_dict()
    assert "numpy" in json.loads(ds.attrs["versions"]) and ds.attrs["model"] == "attn-m"
    assert all(isinstance(v, str) for v in ds.attrs.values())         # writable with to_netcdf


def test_from_arrays_compares_with_the_theory_and_round_trips(tmp_path):
    s = rd.spec("attn-m", **SMALL)
    theory = rd.predict(s)
    mine = Trajectory.from_arrays(theory.t, theory.loss, spec=s.to_dict() | {"model": "attn-m"})
    assert mine.spec == s and mine.meta["kind"] == "user"
    assert rd.compare(theory, mine)["max_abs_gap"] == 0.0
    again = Trajectory.load(mine.save(tmp_path / "mine.npz"))
    assert np.array_equal(again.loss, mine.loss) and again.meta == json.loads(json.dumps(mine.meta))
    assert again.spec == s
    with pytest.raises(rd.SpecError, match="model"):
        Trajectory.from_arrays([0, 1], [1, 0], spec=s, model="attn-s")


def test_missing_pandas_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    monkeypatch.setitem(sys.modules, "xarray", None)
    # the package is on no index: the message names the extra's own requirements, which install from PyPI
    with pytest.raises(MissingExtraError, match=r"to_dataframe needs pandas: pip install 'pandas>=1.5' "
                                                r"'xarray>=2023.1' \(the 'data' extra\)$"):
        user_run().to_dataframe()
    with pytest.raises(ImportError, match=r"pip install 'pandas>=1.5' 'xarray>=2023.1'"):
        user_run().to_xarray()


def test_sweep_table_and_curves(tmp_path):
    with cf.ThreadPoolExecutor(2) as pool:
        run_sweep("attn-m", {"init_scale": [1e-4, 1e-3], "dim": [2, 3]}, ["drop_time", "final_loss"], tmp_path,
                  fixed={"context": 8, "heads": 2, "t_max": 30}, executor=pool, progress=False)
    df = load(tmp_path)
    assert len(df) == 4 and df["dim"].dtype.kind == "i" and df["drop_time"].dtype.kind == "f"
    assert df["centre_inputs"].dtype == bool and df["train_size"].isna().all()
    ds = load_curves(tmp_path)
    assert ds["loss"].dims == ("dim", "init_scale", "t") and ds.sizes["t"] == len(Trajectory.load(
        tmp_path / "points" / f"{df['point'][0]}.npz").t)
    row = df[(df["dim"] == 3) & (df["init_scale"] == 1e-4)].iloc[0]
    assert ds["drop_time"].sel(dim=3, init_scale=1e-4).item() == row["drop_time"]
    # the drop comes later from a smaller initial scale (LA-28)
    assert (ds["drop_time"].sel(init_scale=1e-4) > ds["drop_time"].sel(init_scale=1e-3)).all()
    grid = np.linspace(0, 30, 31)
    assert load_curves(tmp_path, t=grid).sizes["t"] == 31
