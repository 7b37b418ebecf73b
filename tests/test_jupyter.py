"""In a real Jupyter kernel (nbclient, ipykernel): importing and using the package leaves the notebook's
inline backend and the user's rcParams alone, so a figure made after ``rd.compare(...)`` still shows, and
``Trajectory.plot`` / ``Report.plot`` / ``_repr_html_`` display inline."""
import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("ipykernel")

CELLS = [
    """\
%matplotlib inline
import matplotlib, matplotlib.pyplot as plt
backend, before = matplotlib.get_backend(), dict(matplotlib.rcParams)
import reduced_dynamics as rd
s = rd.spec("attn-m", dim=2, context=8, heads=2, train_size=200, t_max=20)
theory, reference = rd.predict(s), rd.simulate(s, progress=False)
metrics = rd.compare(theory, reference)
report = rd.run_comparison(s, progress=False)
assert matplotlib.get_backend() == backend, (backend, matplotlib.get_backend())
changed = [k for k, v in matplotlib.rcParams.items() if str(before[k]) != str(v)]
assert not changed, changed""",
    "plt.plot([0, 1, 2], [2, 1, 0.5]);",          # the user's own figure, after rd.compare
    "theory.plot(); reference.plot(marker='o', linestyle='none');",
    "report.plot();",
    "theory",
]


def test_figures_stay_inline_after_compare_in_a_real_kernel(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [cell.outputs for cell in notebook.cells]
    assert not any(o.get("output_type") == "error" for cell in outputs for o in cell)
    for k in (1, 2, 3):
        assert any("image/png" in o.get("data", {}) for o in outputs[k]), (CELLS[k], outputs[k])
    html = [o["data"]["text/html"] for o in outputs[4] if "text/html" in o.get("data", {})]
    assert html and "<table" in html[0] and "attn-m" in html[0]


def test_project_style_is_a_context_and_a_user_style_goes_on_top():
    import matplotlib

    import reduced_dynamics as rd
    from reduced_dynamics import plotting
    before = {k: str(v) for k, v in matplotlib.rcParams.items()}
    fig, ax = plotting.figure(style={"axes.labelsize": 11})
    traj = rd.Trajectory.from_arrays([0.0, 1.0, 2.0], [1.0, 0.5, 0.25], model="attn-m")
    plotting.loss_axes(ax, {"mine": traj}, style={"lines.linewidth": 3.0})
    traj.plot(ax=ax, label="default style")
    assert ax.lines[0].get_linewidth() == 3.0 and ax.xaxis.label.get_fontsize() == 11
    assert ax.lines[1].get_linewidth() == plotting.STYLE["lines.linewidth"]
    assert fig.get_figwidth() == plotting.COLUMN_WIDTH and type(fig).__name__ == "Figure"
    assert {k: str(v) for k, v in matplotlib.rcParams.items()} == before


def test_a_fresh_kernel_shows_progress_widgets_and_report_tables(tmp_path):
    """The notebooks extra brings ipywidgets: tqdm.auto's bar is a widget, with no "IProgress not found"
    warning; a report displays as an HTML table and its plain text stays under 1 KB."""
    pytest.importorskip("ipywidgets", reason="part of the notebooks extra")
    cells = ["import reduced_dynamics as rd\n"
             "s = rd.spec('attn-m', dim=2, context=8, heads=2, train_size=200, t_max=20)\n"
             "reference = rd.simulate(s, progress=True)",
             "rd.run_comparison(s, progress=False)"]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    first, second = (cell.outputs for cell in notebook.cells)
    text = "".join(o.get("text", "") for o in first if o.get("output_type") == "stream")
    assert "IProgress not found" not in text and "TqdmWarning" not in text, text
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in first), first
    (shown,) = [o["data"] for o in second if o.get("output_type") == "execute_result"]
    assert "<table>" in shown["text/html"] and "<th>gap</th>" in shown["text/html"]
    assert len(shown["text/plain"].encode()) <= 1024
