"""The repository's address in one place: ``[project.urls] Repository`` in ``pyproject.toml``.

Everything else that names the repository is written from it: the Colab and Binder badges of the
README and of every notebook, the Colab install cell that opens every notebook, the ``git clone``
line of notebook 00 and the address of the kernel-less noise page on GitHub Pages. Run from the
repository root:

    python tools/repository.py --check        # exit 1, listing each file that is out of step
    python tools/repository.py --write        # rewrite those files (notebooks through jupytext)
    python tools/repository.py --set https://github.com/ACCOUNT/ndarts_edu   # point at a fork

``tests/test_repository.py`` runs ``--check``'s function, so a badge edited by hand, or a notebook
whose install cell drifted, fails the tests. Only the address forms below are rewritten; links to
other projects (DARTS, NoisyDARTS) are left alone.
"""
import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"
README = ROOT / "README.md"
NOTEBOOK_SOURCES = "notebooks/[0-9][0-9]_*.py"
GITHUB = re.compile(r"https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+)")
URL_LINE = re.compile(r'^(Repository\s*=\s*")([^"]*)(")', re.M)

# The first code cell of every notebook, written here once. On Colab it installs the package from
# its repository with the extra that its figures need (plotly, anywidget), and pins ipywidgets at
# the version Colab already has: Colab imports its ipywidgets 7 at kernel start, so an upgrade
# would need a restart; with the pin, pip keeps it or fails saying why. Elsewhere it does nothing
# (so nbval, Binder and a laptop run it as a no-op). get_ipython().run_line_magic is %pip spelled
# as Python: an indented %pip inside the `if` would come back from the .py source as a comment.
INSTALL_CELL = '''\
# On Colab only: install the package and what its figures need, keeping Colab's own ipywidgets.
import sys
if "google.colab" in sys.modules:
    import ipywidgets
    PACKAGE = "ndarts_edu[figures] @ git+{url}"
    KEEP = f"ipywidgets=={{ipywidgets.__version__}}"  # Colab's own (7.x), loaded at kernel start
    get_ipython().run_line_magic("pip", f'install -q "{{PACKAGE}}" "{{KEEP}}"')
    from google.colab import output
    output.enable_custom_widget_manager()  # Colab's manager for third-party widgets (anywidget)
    # plotly's FigureWidget has open rendering bugs on Colab, so the figures there are plain plots
    # redrawn in place. To try the live widgets instead, uncomment this line and run the cell again:
    # import os; os.environ["NDARTS_EDU_LIVE"] = "widget"
'''


PLACEHOLDER = "https://github.com/not_yet_published/ndarts_edu"
README_BLOCK = re.compile(
    r"(<!-- repository: written by tools/repository.py -->\n)(.*?)(<!-- /repository -->)", re.S)


def readme_block(repo):
    """The README's sentence on where the repository is (the placeholder, or the address)."""
    if repo.url == PLACEHOLDER:
        return ("No public address exists yet, so it holds a placeholder,\n"
                f"`{PLACEHOLDER}` (an account name that GitHub cannot register,\n"
                "so no badge or install cell leads to someone else's code): the badges and the "
                "Colab install cell\nwork once the course is published.\n")
    return f"This copy lives at {repo.url}.\n"


class Repository:
    """``https://github.com/ACCOUNT/NAME`` and the addresses made from it."""

    def __init__(self, url):
        match = GITHUB.fullmatch(url.rstrip("/"))
        if not match:
            raise ValueError(f"repository {url!r}: expected https://github.com/ACCOUNT/NAME")
        self.account, self.name = match.groups()
        self.url = f"https://github.com/{self.account}/{self.name}"

    def colab(self, notebook):
        return (f"https://colab.research.google.com/github/{self.account}/{self.name}"
                f"/blob/main/notebooks/{notebook}")

    def binder(self, notebook):
        return (f"https://mybinder.org/v2/gh/{self.account}/{self.name}"
                f"/HEAD?urlpath=lab/tree/notebooks/{notebook}")

    def pages(self):
        """Where GitHub Pages serves ``docs/`` once it is switched on for the repository."""
        return f"https://{self.account.lower()}.github.io/{self.name}/"

    def install_cell(self):
        return INSTALL_CELL.format(url=self.url)


def configured(pyproject=PYPROJECT):
    """The ``Repository`` of ``[project.urls]``."""
    match = URL_LINE.search(pyproject.read_text())
    if not match:
        raise ValueError(f"{pyproject.name}: no Repository = \"...\" under [project.urls]")
    return Repository(match.group(2))


# -- what the files should say -------------------------------------------------------------------
_ANY = r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+"


def _rewrite_addresses(text, repo):
    """Each address form that names this repository, pointed at ``repo``."""
    forms = [
        (rf"https://colab\.research\.google\.com/github/{_ANY}/blob/",
         f"https://colab.research.google.com/github/{repo.account}/{repo.name}/blob/"),
        (rf"https://mybinder\.org/v2/gh/{_ANY}/",
         f"https://mybinder.org/v2/gh/{repo.account}/{repo.name}/"),
        (rf"git\+https://github\.com/{_ANY}(?=[\"'\s])", f"git+{repo.url}"),
        (rf"git clone https://github\.com/{_ANY} && cd [A-Za-z0-9_.-]+",
         f"git clone {repo.url} && cd {repo.name}"),
        (r"https://[A-Za-z0-9_.-]+\.github\.io/[A-Za-z0-9_.-]+/", repo.pages()),
    ]
    for pattern, replacement in forms:
        text = re.sub(pattern, lambda _: replacement, text)
    return text


def _with_install_cell(source, repo):
    """A notebook's percent-format source with its first code cell replaced by the install cell."""
    cells = re.split(r"(?m)^(?=# %%)", source)
    for index, cell in enumerate(cells):
        header, _, _ = cell.partition("\n")
        if header.strip() == "# %%":  # the first code cell (text cells are "# %% [markdown]")
            rest = cell[len(header) + 1:]
            gap = rest[len(rest.rstrip("\n")):]  # keep the blank lines before the next cell
            cells[index] = f"{header}\n{repo.install_cell().rstrip()}{gap or chr(10)}"
            break
    else:
        raise ValueError("no code cell: a notebook opens with its install cell")
    return "".join(cells)


def expected(repo, root=ROOT):
    """``{path: text}``: each file that names the repository, as ``repo`` would have it."""
    out = {}
    for path in [root / "README.md", *sorted(root.glob(NOTEBOOK_SOURCES))]:
        text = _rewrite_addresses(path.read_text(), repo)
        if path.name == "README.md":
            text = README_BLOCK.sub(lambda m: m.group(1) + readme_block(repo) + m.group(3), text)
        if path.suffix == ".py":
            text = _with_install_cell(text, repo)
        out[path] = text
    return out


def out_of_step(repo=None, root=ROOT):
    """The files whose text differs from what ``repo`` (default: pyproject's) makes of them."""
    repo = repo or configured(root / "pyproject.toml")
    return [path for path, text in expected(repo, root).items() if path.read_text() != text]


def write(repo=None, root=ROOT):
    """Rewrite every file that is out of step; the notebooks' .ipynb follow through jupytext."""
    repo = repo or configured(root / "pyproject.toml")
    changed = []
    for path, text in expected(repo, root).items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    sources = [str(p) for p in changed if p.suffix == ".py"]
    if sources:  # the .py were just written, so --sync carries them into their paired .ipynb
        subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", *sources],
                       check=True, cwd=root)
    return changed


def set_repository(url, root=ROOT):
    """Name ``url`` in pyproject.toml, then write everything from it."""
    repo = Repository(url)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text()
    if not URL_LINE.search(text):
        raise ValueError(f"{pyproject.name}: no Repository = \"...\" under [project.urls]")
    named = URL_LINE.sub(lambda m: f"{m.group(1)}{repo.url}{m.group(3)}", text, count=1)
    pyproject.write_text(named)
    return [pyproject, *write(repo, root)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--check", action="store_true",
                       help="list the files out of step; exit 1 if any")
    group.add_argument("--write", action="store_true", help="rewrite them from pyproject.toml")
    group.add_argument("--set", metavar="URL",
                       help="name URL (https://github.com/ACCOUNT/NAME) and rewrite")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = out_of_step()
            for path in stale:
                print(f"{path.relative_to(ROOT)}: out of step with pyproject.toml "
                      "(python tools/repository.py --write)")
            return 1 if stale else 0
        changed = set_repository(args.set) if args.set else write()
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in changed:
        print(f"wrote {path.relative_to(ROOT)}")
    print(f"repository: {configured().url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
