"""Every notebook is committed clean and launchable: no outputs, badges on top, claims as asserts.

Outputs make diffs noisy and files large (a FigureWidget carries the whole plotly.js bundle), and
``metadata.widgets`` without its state stops GitHub from rendering the notebook. With outputs
stripped and execution counts null, ``pytest --nbval`` runs every cell and compares nothing: the
``assert`` cells are then what tests the notebook's claims.

These checks read what git would commit (the staged copy, ``git show :PATH``), not the working
copy: a notebook you ran and saved in JupyterLab does not fail them (nor nbval: see conftest.py)
until you ``git add`` it with its outputs. Outside a git checkout they read the files.
"""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
sys.path.insert(0, str(ROOT / "tools"))
import repository  # noqa: E402  (tools/repository.py: the address in pyproject.toml)

REPOSITORY = repository.configured()


def committed_text(path):
    """``path`` as git would commit it (its staged copy); the file itself when git has none."""
    try:
        shown = subprocess.run(["git", "show", f":{path.relative_to(ROOT).as_posix()}"], cwd=ROOT,
                               capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):  # no git here
        return path.read_text()
    return shown.stdout if shown.returncode == 0 else path.read_text()  # untracked, or no checkout


def source(cell):
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def code_cells(notebook):
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4, [p.name for p in NOTEBOOKS]


@pytest.fixture(params=NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def notebook(request):
    return request.param.name, json.loads(committed_text(request.param))


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
    assert REPOSITORY.colab(name) in top, f"{name}: no Colab badge for this notebook on top"
    assert REPOSITORY.binder(name) in top, f"{name}: no Binder badge for this notebook on top"


def test_installs_only_on_colab(notebook):
    name, nb = notebook
    first_code = source(code_cells(nb)[0])
    assert 'if "google.colab" in sys.modules:' in first_code, f"{name}: the first code cell installs on Colab only"
    # run_line_magic("pip", ...) is %pip spelled as Python: jupytext keeps it as is in the .py source
    # (an indented %pip inside the if would come back from the .py as a comment).
    assert 'run_line_magic("pip", f\'install' in first_code, f"{name}: install with %pip on Colab"
    assert "enable_custom_widget_manager()" in first_code, f"{name}: Colab's widget manager"


def test_asserts_its_claims(notebook):
    name, nb = notebook
    assert any(line.lstrip().startswith("assert ") for cell in code_cells(nb) for line in source(cell).splitlines()), \
        f"{name}: a notebook states its claims as assert cells"


def test_every_notebook_has_its_text_source_and_every_source_its_notebook():
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [p.stem for p in sources] == [p.stem for p in NOTEBOOKS], \
        "each notebooks/NN_name.ipynb is paired with notebooks/NN_name.py (jupytext)"


def test_notebook_is_its_text_source(notebook):
    # The .py (jupytext percent format) is what is edited and reviewed; the .ipynb is generated from
    # it (`jupytext --sync notebooks/*.py`). An edit made in one of the two only shows here.
    import jupytext

    name, nb = notebook
    paired = ROOT / "notebooks" / name.replace(".ipynb", ".py")
    text = jupytext.reads(committed_text(paired), fmt="py:percent")
    cells = [(c.cell_type, c.source) for c in text.cells]
    assert cells == [(c["cell_type"], source(c)) for c in nb["cells"]], \
        f"{name} and its .py source differ: edit the .py, then run jupytext --sync notebooks/*.py"
