"""The library reads in a narrow pane: the notebooks print its code (``inspect.getsource``) into
Colab's and Binder's cells, which wrap lines past about 100 characters."""
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[1] / "ndarts_edu"
WIDTH = 100


def test_no_line_of_the_library_is_wider_than_a_notebook_pane():
    wide = [f"{path.name}:{number}: {len(line)} characters"
            for path in sorted(LIBRARY.glob("*.py"))
            for number, line in enumerate(path.read_text().splitlines(), 1) if len(line) > WIDTH]
    assert not wide, wide
