"""notebooks/01_skip_domination.ipynb in Notebook 7 (``jupyter notebook``), headless Chromium.

The slider check: run the cells above the live run (Run > Run All Above Selected Cell, with
the ``LiveComparison`` cell selected: the live search is covered by the JupyterLab test and
would cost another minute here), then the sweep plot is drawn and dragging the noise slider
from 0 to its high end lowers the plotted skip weight.
"""

import time

import pytest

import nbdrive

pytestmark = pytest.mark.browser

NAME = "01_skip_domination.ipynb"
LABEL = "nb01-nb7"
LIVE_CELL = "LiveComparison("  # run the cells above the first cell that has this


def test_notebook7_slider(require_notebook, nb7_server, open_notebook, report):
    require_notebook(NAME)
    t0 = time.monotonic()
    nb = open_notebook(nb7_server, NAME, LABEL)
    nb.screenshot("opened")
    summary = nb.run_all(timeout=180, upto=LIVE_CELL)
    plot = nbdrive.check_sweep_rendered(nb)
    result = {"cells_run": summary["ran"], "run_s": summary["seconds"],
              "sweep_points": nbdrive.n_points(plot)}
    result["slider"] = nbdrive.check_slider(nb)
    result["total_s"] = round(time.monotonic() - t0, 1)
    report(f"{LABEL} slider", result)
