"""Every notebook is committed clean and launchable: no outputs, badges on top, claims as asserts.

Outputs make diffs noisy and files large (a FigureWidget carries the whole plotly.js bundle), and
``metadata.widgets`` without its state stops GitHub from rendering the notebook. With outputs
stripped and execution counts null, ``pytest --nbval`` runs every cell and compares nothing: the
``assert`` cells are then what tests the notebook's claims.
"""
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
COLAB = "https://colab.research.google.com/github/OWNER/ndarts_edu/blob/main/notebooks/{}"
BINDER = "https://mybinder.org/v2/gh/OWNER/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/{}"


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param.name, json.loads(request.param.read_text())


def test_committed_without_outputs(notebook):
    name, nb = notebook
    dirty = [i for i, cell in enumerate(nb["cells"]) if cell["cell_type"] == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, f"{name}: code cells {dirty} have outputs or an execution count (strip them)"


def test_committed_without_widget_state(notebook):
    name, nb = notebook
    assert "widgets" not in nb.get("metadata", {}), f"{name}: strip metadata.widgets"
    assert all("widgets" not in cell.get("metadata", {}) for cell in nb["cells"]), name


def test_runs_in_the_standard_kernel(notebook):
    # nbval starts the kernel named here; an unknown name fails every cell.
    name, nb = notebook
    assert nb["metadata"]["kernelspec"]["name"] == "python3", name


def test_opens_with_a_title_and_both_badges(notebook):
    name, nb = notebook
    first = nb["cells"][0]
    assert first["cell_type"] == "markdown" and source(first).startswith("# "), f"{name}: start with a title"
    top = source(first)
    assert COLAB.format(name) in top, f"{name}: no Colab badge for this notebook in the first cell"
    assert BINDER.format(name) in top, f"{name}: no Binder badge for this notebook in the first cell"


def test_installs_only_on_colab(notebook):
    name, nb = notebook
    first_code = source(code_cells(nb)[0])
    assert 'if "google.colab" in sys.modules:' in first_code, f"{name}: the first code cell installs on Colab only"
    assert "pip install" in first_code


def test_asserts_its_claims(notebook):
    name, nb = notebook
    assert any(line.lstrip().startswith("assert ") for cell in code_cells(nb) for line in source(cell).splitlines()), \
        f"{name}: a notebook states its claims as assert cells"


@pytest.mark.parametrize("number", ["00", "03", "04", "05"])
def test_notebook_is_what_its_builder_writes(number, tmp_path, monkeypatch, capsys):
    # These notebooks are generated (tools/build_notebook_NN.py): an edit made in one place only shows here.
    import runpy

    committed = next((ROOT / "notebooks").glob(f"{number}_*.ipynb"))
    out = tmp_path / committed.name
    monkeypatch.syspath_prepend(str(ROOT / "tools"))
    monkeypatch.setattr("sys.argv", ["build", str(out)])
    runpy.run_path(str(ROOT / "tools" / f"build_notebook_{number}.py"), run_name="__main__")
    assert json.loads(out.read_text()) == json.loads(committed.read_text()), \
        f"{committed.name} differs from what tools/build_notebook_{number}.py writes: rebuild it"
