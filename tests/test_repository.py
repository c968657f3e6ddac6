"""One place names the repository (``[project.urls]`` in pyproject.toml); every badge, install
cell and link is written from it by ``tools/repository.py`` and must stay in step."""
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
import repository  # noqa: E402  (tools/ is not a package)


def test_every_file_is_in_step_with_pyproject():
    stale = [str(p.relative_to(ROOT)) for p in repository.out_of_step()]
    assert not stale, f"{stale} name another repository: run python tools/repository.py --write"


def test_no_placeholder_other_than_pyprojects():
    # The OWNER stood in many files; now only pyproject's address may be a placeholder.
    texts = [ROOT / "README.md", *ROOT.glob("notebooks/*.py"), *ROOT.glob("notebooks/*.ipynb")]
    assert not [p.name for p in texts if "OWNER" in p.read_text()]


def test_the_address_is_a_github_repository_that_a_fork_can_replace():
    repo = repository.configured()
    assert repo.url == f"https://github.com/{repo.account}/{repo.name}"
    with pytest.raises(ValueError, match="ACCOUNT/NAME"):
        repository.Repository("https://gitlab.com/someone/ndarts_edu")


def test_set_points_every_file_at_a_fork(tmp_path):
    # The README's one command, on a copy: afterwards nothing names the old address, the install
    # cell installs from the fork, and --check is content.
    for name in ("README.md", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    old = repository.configured().url
    changed = repository.set_repository("https://github.com/a-fork/ndarts_edu", root=tmp_path)
    assert tmp_path / "pyproject.toml" in changed
    assert repository.out_of_step(root=tmp_path) == []
    for path in [tmp_path / "README.md", *tmp_path.glob("notebooks/*.*")]:
        text = path.read_text()
        assert old not in text and repository.configured().account not in text, path.name
    first = (tmp_path / "notebooks" / "01_skip_domination.ipynb").read_text()
    assert "git+https://github.com/a-fork/ndarts_edu" in first  # jupytext carried it into the .ipynb
    assert "colab.research.google.com/github/a-fork/ndarts_edu/blob/main/notebooks/01_" in first


def test_other_projects_links_are_left_alone():
    repo = repository.Repository("https://github.com/a-fork/ndarts_edu")
    text = "see https://github.com/quark0/darts and xiaomi-automl/NoisyDARTS"
    assert repository._rewrite_addresses(text, repo) == text
