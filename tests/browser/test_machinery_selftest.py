"""Self-test of the browser machinery on a small generated notebook (in JupyterLab).

Proves server start/stop, run-all, plot reading, slider dragging and a Run/Stop live
thread independently of the course notebooks (see nbdrive.write_selftest_notebook, which
uses the same CSS classes as ndarts_edu.widgets). When a course-notebook test fails and
this one passes, look at the notebook, not at the machinery.
"""

import time

import pytest

import nbdrive

pytestmark = pytest.mark.browser

NAME = "_selftest/selftest.ipynb"


def test_selftest_lab(lab_server, open_notebook, report):
    t0 = time.monotonic()
    nb = open_notebook(lab_server, NAME, "selftest-lab")
    t_open = time.monotonic() - t0
    nb.run_all(timeout=120)
    t_run = time.monotonic() - t0 - t_open
    result = nbdrive.check_all(nb)
    result.update(open_s=round(t_open, 1), run_all_s=round(t_run, 1),
                  total_s=round(time.monotonic() - t0, 1))
    report("selftest-lab", result)

