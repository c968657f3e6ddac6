"""A notebook that was run and saved with its outputs still passes ``pytest --nbval``.

Done for real, in a copy of the repository's layout: each notebook is executed in a Jupyter kernel
(nbclient, as ``jupyter nbconvert --execute`` does: outputs, execution counts, widget state),
saved, and then tested by ``pytest --nbval`` in a fresh process. The notebooks are the course's
index and one whose outputs change on every run (a timing, a FigureWidget, a plotly figure). The
control run without the repository's conftest.py shows that strict nbval would fail on it.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

VARYING = [
    "import time\nprint(f'finished in {time.perf_counter():.6f} s')",
    "from ndarts_edu import viz\nfrom ndarts_edu.experiments import load_sweep\n"
    "live = viz.LiveFigure(viz.sweep_view(load_sweep(), 0.0), mode='widget')\nlive.figure",
    "import plotly.graph_objects as go\ngo.Figure(go.Scatter(y=[time.perf_counter(), 1.0]))",
    "assert live.figure.data[0].type == 'scatter'",
]


def executed(path, notebook):
    """``notebook`` run in a real kernel in ``path``'s folder, written to ``path`` with outputs."""
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(notebook, path)
    return path


def nbval(folder, *paths):
    command = [sys.executable, "-m", "pytest", "--nbval", "-q", "-p", "no:cacheprovider", *paths]
    return subprocess.run(list(map(str, command)), cwd=folder, capture_output=True, text=True,
                          timeout=900, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkout")
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "notebooks", folder / "notebooks",  # the index checks the course is there
                    ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints", "__pycache__"))
    index = nbformat.read(ROOT / "notebooks" / "00_index.ipynb", as_version=4)
    varying = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in VARYING])
    varying.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                      "language": "python"}
    return folder, [executed(folder / "notebooks" / "00_index.ipynb", index),
                    executed(folder / "notebooks" / "varying.ipynb", varying)]


def test_saved_with_outputs(saved):
    _, paths = saved
    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert all(cell.execution_count is not None for cell in code), path.name
        assert any(cell.outputs for cell in code), path.name


def test_a_run_and_saved_notebook_passes_nbval(saved):
    folder, paths = saved
    run = nbval(folder, *paths)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "passed" in run.stdout


def test_without_the_conftest_strict_nbval_fails_on_what_varies(saved):
    folder, paths = saved
    (folder / "conftest.py").rename(folder / "conftest.py.off")
    try:
        run = nbval(folder, paths[1])
    finally:
        (folder / "conftest.py.off").rename(folder / "conftest.py")
    assert run.returncode == 1 and "Cell outputs differ" in run.stdout, run.stdout[-3000:]
