"""Draw the pictures of notebook 01's expected result (docs/images/), from the shipped sweep.

For readers on GitHub, where the notebook's own figures are not rendered. Needs playwright and
Debian's chromium (.ci/install-browser installs both). Run from the repository root:

    python tools/notebook_images.py [--sweep PATH]
"""
import argparse
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE_FILES = {"darts": "01_sweep_noise_0.png", "noisy": "01_sweep_default_noise.png",
               "race": "01_alpha_competition.png"}


def images(sweep_path=None, folder=ROOT / "docs" / "images"):
    """Screenshots of the figures notebook 01 shows, drawn from the sweep by ``viz``."""
    from playwright.sync_api import sync_playwright

    from ndarts_edu import viz
    from ndarts_edu.experiments import load_sweep
    from ndarts_edu.presets import preset_noise

    sweep = load_sweep(sweep_path)
    noise = preset_noise(sweep["preset"])
    seed = sweep["seeds"][0]
    figures = {
        "darts": viz.sweep_view(sweep, 0.0),
        "noisy": viz.sweep_view(sweep, noise),
        "race": viz.alpha_competition([viz.sweep_run(sweep, 0.0, seed),
                                       viz.sweep_run(sweep, noise, seed)]),
    }
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                    args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1150, "height": 400})
        for key, fig in figures.items():
            html = Path(tmp) / f"{key}.html"
            fig.update_layout(width=1100)
            fig.write_html(html, include_plotlyjs=True, config={"displayModeBar": False})
            page.goto(html.as_uri())
            page.wait_for_selector(".main-svg")
            page.locator(".js-plotly-plot").screenshot(path=str(folder / IMAGE_FILES[key]))
        browser.close()
    return [folder / name for name in IMAGE_FILES.values()]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sweep", help="a sweep.json instead of the shipped one")
    for path in images(parser.parse_args().sweep):
        print(path)
