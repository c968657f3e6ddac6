"""The kernel-less noise page (``python -m ndarts_edu page``) in a real headless Chromium.

Opened from disk (``file://``) with every network request blocked and no Jupyter server: the
figure is drawn, and moving the slider (a click on its rail, as a person would) changes the plotted
data to the numbers of that noise level.
"""
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.browser

# What the page draws, read from plotly.js's own graph div.
READ = """() => {
  const gd = document.getElementById('noise-slider');
  if (!gd || !gd.data || !gd.querySelector('.main-svg')) return null;
  const marker = gd.data.find(t => t.name === 'slider');
  return {marker_x: Array.from(marker.x), marker_y: Array.from(marker.y),
          seed_y: gd.data.filter(t => /^seed \\d+$/.test(t.name)).map(t => Array.from(t.y)),
          heatmap: gd.data.find(t => t.type === 'heatmap').z.map(r => Array.from(r)),
          title: gd.layout.title.text, plotly: typeof window.Plotly};
}"""


def test_page_scrubs_from_disk_with_no_network(browser, shots_dir, report, tmp_path):
    from ndarts_edu import viz
    from ndarts_edu.experiments import load_sweep

    path = tmp_path / "noise_slider.html"
    run = subprocess.run([sys.executable, "-m", "ndarts_edu", "page", "--out", str(path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    sweep = load_sweep()
    lams = sweep["noise_lambdas"]

    page = browser.new_page()  # the session context: 1280 x 1000
    asked, errors = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # Every request that is not the file itself is refused and noted: the page must need none.
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
               else (asked.append(route.request.url), route.abort()))
    try:
        t0 = time.monotonic()
        page.goto(path.as_uri())
        page.wait_for_function(f"({READ})() !== null", timeout=30_000)
        before = page.evaluate(READ)
        assert before["plotly"] == "object" and before["marker_x"] == [lams[0]]
        page.locator("#noise-slider").screenshot(path=str(shots_dir / "noise-page-start.png"))

        rail = page.locator(".slider-rail-rect").bounding_box()
        seen = {}
        for index in (len(lams) - 1, 1):  # the far end, then back to the second level
            x = rail["x"] + rail["width"] * index / (len(lams) - 1)
            page.mouse.click(x, rail["y"] + rail["height"] / 2)
            page.wait_for_function(f"({READ})().marker_x[0] === {lams[index]}", timeout=10_000)
            seen[index] = now = page.evaluate(READ)
            row = viz.sweep_row(sweep, lams[index])
            assert now["marker_y"][0] == pytest.approx(row["skip_share_mean"])
            runs = viz.sweep_runs(sweep, lams[index])
            assert now["seed_y"] == [pytest.approx(r["skip_weight_steps"]) for r in runs]
            assert f"\u03bb = {lams[index]:g}" in now["title"]
            page.locator("#noise-slider").screenshot(path=str(shots_dir / f"noise-page-{lams[index]:g}.png"))
        assert seen[len(lams) - 1]["heatmap"] != before["heatmap"] != seen[1]["heatmap"]
        assert not errors, errors
        assert not asked, f"the page asked the network for {asked}"
        report("noise page", {"bytes": path.stat().st_size, "seconds": round(time.monotonic() - t0, 1),
                              "levels_clicked": [lams[i] for i in seen], "network_requests": len(asked)})
    finally:
        page.close()
