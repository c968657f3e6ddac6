"""What every course notebook starts with, for the tools/build_notebook_*.py scripts.

A builder lists its cells as ``("md", text)`` / ``("code", text)`` pairs and calls ``write``: the
notebook comes out stripped (no outputs, no execution counts, no widget state), with stable cell
ids so that a rebuild of unchanged cells changes nothing in git.
"""
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COLAB = "https://colab.research.google.com/github/OWNER/ndarts_edu/blob/main/notebooks/{}"
BINDER = "https://mybinder.org/v2/gh/OWNER/ndarts_edu/HEAD?urlpath=lab/tree/notebooks/{}"

COLAB_INSTALL = '''import sys
if "google.colab" in sys.modules:
    %pip install -q "ndarts_edu @ git+https://github.com/OWNER/ndarts_edu"
'''


def badges(name):
    """The two launch badges of notebook ``name``, as markdown."""
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({COLAB.format(name)})\n"
            f"[![Binder](https://mybinder.org/badge_logo.svg)]({BINDER.format(name)})")


def header(name, title, text):
    """The first two cells: title, badges and introduction; then the install that runs on Colab only."""
    return [("md", f"# {title}\n\n{badges(name)}\n\n{text.strip()}"), ("code", COLAB_INSTALL)]


def write(name, cells, out=None):
    """Write ``notebooks/name`` (or ``out``) from ``(kind, source)`` pairs; returns the path."""
    nb = nbformat.v4.new_notebook()
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    stem = name.split("_")[0]
    for index, (kind, source) in enumerate(cells):
        make = nbformat.v4.new_markdown_cell if kind == "md" else nbformat.v4.new_code_cell
        cell = make(source.strip("\n"))
        cell.id = f"nb{stem}-{index:02d}"
        nb.cells.append(cell)
    nbformat.validate(nb)
    path = Path(out) if out else ROOT / "notebooks" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
