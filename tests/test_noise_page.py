"""The noise slider as a page that needs no kernel (``python -m ndarts_edu page``): what its frames
hold must be the sweep's numbers, and the committed page must be the one the shipped sweep makes.

The page in a real browser, from disk with the network blocked, is tests/browser/test_noise_page_browser.py.
"""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ndarts_edu import derive, viz
from ndarts_edu.errors import ConfigError
from ndarts_edu.experiments import load_sweep

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = ROOT / "docs" / "noise_slider.html"


@pytest.fixture(scope="module")
def sweep():
    return load_sweep()


@pytest.fixture(scope="module")
def figure(sweep):
    return viz.noise_page_figure(sweep)


def test_one_frame_and_one_slider_step_per_noise_level(sweep, figure):
    names = [f"{lam:g}" for lam in sweep["noise_lambdas"]]
    assert [frame.name for frame in figure.frames] == names
    steps = figure.layout.sliders[0].steps
    assert [step.label for step in steps] == names
    assert [list(step.args[0]) for step in steps] == [[name] for name in names]
    assert all(step.method == "animate" and step.args[1]["frame"]["redraw"] for step in steps)


def test_each_frame_holds_that_noise_levels_numbers(sweep, figure):
    for lam, frame in zip(sweep["noise_lambdas"], figure.frames):
        runs = viz.sweep_runs(sweep, lam)
        marker, seed_lines, heatmap = frame.data[3], frame.data[5:5 + len(runs)], frame.data[-1]
        assert list(marker.x) == [lam]
        assert math.isclose(marker.y[0], sum(r["skip_share"] for r in runs) / len(runs))
        assert [list(line.y) for line in seed_lines] == [r["skip_weight_steps"] for r in runs]
        cells = [r["weights"]["normal"] for r in runs]
        mean_weights = [[sum(v) / len(v) for v in zip(*edge)] for edge in zip(*cells)]
        for drawn, expected in zip(heatmap.z, mean_weights, strict=True):
            assert list(drawn) == pytest.approx(expected)
        assert f"\u03bb = {lam:g}" in frame.layout.title.text


def test_op_shares_come_from_the_saved_weights_unless_the_sweep_saved_them(sweep):
    entry = sweep["runs"][0]
    shares = viz.op_shares(entry, sweep["ops"])
    assert set(shares) == set(sweep["ops"])  # none included: a cure by none shows
    assert math.isclose(sum(shares.values()), 1.0)  # every edge has one strongest op
    computed = viz.op_shares({k: v for k, v in entry.items() if k != "op_shares"}, sweep["ops"])
    assert computed == derive.op_shares(entry["weights"]["normal"], sweep["ops"])
    assert computed == pytest.approx(shares)  # saved and recomputed agree
    saved = {"skip_connect": 0.25, "sep_conv_3x3": 0.75}
    assert viz.op_shares({**entry, "op_shares": saved}, sweep["ops"]) == saved
    assert viz.op_shares({**entry, "op_shares": {"normal": saved}}, sweep["ops"]) == saved


def test_the_page_is_self_contained(sweep):
    page = viz.noise_page(sweep)
    assert "Plotly.newPlot" in page and "plotly.js v" in page  # the library itself, inline
    assert not re.search(r"<script[^>]+src=", page), "plotly.js must be inline, not fetched"
    assert 3_000_000 < len(page.encode()) < 8_000_000  # plotly.js itself is most of it


def test_the_command_writes_the_page_and_never_replaces_another_file(tmp_path):
    out = tmp_path / "slider.html"
    run = subprocess.run([sys.executable, "-m", "ndarts_edu", "page", "--out", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert str(out) in run.stdout and f'name="{viz.PAGE_MARK}"' in out.read_text()
    again = subprocess.run([sys.executable, "-m", "ndarts_edu", "page", "--out", str(out)],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr  # its own page: rewritten
    notes = tmp_path / "notes.html"
    notes.write_text("<p>my notes</p>")
    refused = subprocess.run([sys.executable, "-m", "ndarts_edu", "page", "--out", str(notes)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.startswith("error: --out")
    assert notes.read_text() == "<p>my notes</p>"
    with pytest.raises(ConfigError, match="is a folder"):
        viz.write_noise_page(tmp_path, load_sweep())


def test_the_committed_page_is_drawn_from_the_shipped_sweep(figure):
    # docs/noise_slider.html is linked from the README and notebook 01; after a new sweep (or a
    # change to the page's figure) it must be written again.
    assert COMMITTED.is_file(), "python -m ndarts_edu page --out docs/noise_slider.html"
    head = COMMITTED.read_text(encoding="utf-8")[:4000]
    found = re.search(rf'<meta name="{viz.PAGE_MARK}" content="([0-9a-f]+)">', head)
    assert found and found.group(1) == viz.page_fingerprint(figure), \
        "out of date: python -m ndarts_edu page --out docs/noise_slider.html"
