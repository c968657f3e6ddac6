"""The figure Colab gets (``viz.self_loading_html``), in a real headless Chromium.

Colab's plain-plot fallback replaces an output's HTML from widget callbacks; plotly's own HTML
then draws before its <script src> has loaded ("Plotly is not defined"). Here the HTML is
injected the way an output frame does it (new <script> elements, run in turn), plotly.js comes
late from its CDN address (served from the installed plotly, with a delay; every other request is
refused), and the figure must be drawn, and redrawn with the new data when replaced.
"""
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

INJECT = """(html) => {
  const out = document.getElementById('out');
  out.innerHTML = html;  // scripts set through innerHTML do not run: re-create them, as frames do
  for (const old of [...out.querySelectorAll('script')]) {
    const tag = document.createElement('script');
    tag.textContent = old.textContent;
    old.replaceWith(tag);
  }
}"""
READ = """() => { const gd = document.querySelector('#out .js-plotly-plot');
  return gd && gd.data ? gd.data.map(t => Array.from(t.y || [])) : null; }"""


def test_self_loading_figure_draws_after_plotly_loads_and_redraws(browser, shots_dir, report):
    import plotly
    import plotly.graph_objects as go

    from ndarts_edu import viz

    bundle = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    cdn = "https://cdn.plot.ly/plotly-test.min.js"
    asked, refused = [], []

    def serve(route):
        if route.request.url == cdn:
            asked.append(route.request.url)
            time.sleep(1.0)  # plotly.js arrives well after the figure's own script ran
            route.fulfill(body=bundle.read_bytes(), content_type="text/javascript")
        else:
            refused.append(route.request.url)
            route.abort()

    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.route("**/*", serve)
    try:
        page.set_content("<html><head></head><body><div id='out'></div></body></html>")
        first = go.Figure(go.Scatter(y=[0.1, 0.2, 0.3]), layout=dict(height=300))
        page.evaluate(INJECT, viz.self_loading_html(first, plotly_url=cdn))
        assert page.evaluate("typeof window.Plotly") == "undefined"  # not loaded yet
        page.wait_for_function(f"({READ})() !== null", timeout=20_000)
        assert page.evaluate(READ) == [[0.1, 0.2, 0.3]]
        # a redraw replaces the output: plotly.js is there now, the new data is drawn at once
        second = go.Figure(go.Scatter(y=[0.9, 0.8]), layout=dict(height=300))
        page.evaluate(INJECT, viz.self_loading_html(second, plotly_url=cdn))
        page.wait_for_function(f"JSON.stringify(({READ})()) === '[[0.9,0.8]]'", timeout=10_000)
        # two replacements before plotly.js loads (a fresh page): the last one is drawn
        page.set_content("<html><head></head><body><div id='out'></div></body></html>")
        page.evaluate(INJECT, viz.self_loading_html(first, plotly_url=cdn))
        page.evaluate(INJECT, viz.self_loading_html(second, plotly_url=cdn))
        page.wait_for_function(f"JSON.stringify(({READ})()) === '[[0.9,0.8]]'", timeout=20_000)
        page.screenshot(path=str(shots_dir / "colab-fallback.png"))
        assert not errors, errors
        assert not refused, refused
        report("colab fallback", {"plotly_js_loads": len(asked)})
    finally:
        page.close()
