"""binder/ launches the notebooks on mybinder.org: it must install what requirements.txt installs,
in a way that repo2docker can cache.

repo2docker reads only ``binder/`` once that folder exists (the root's requirements.txt and
pyproject.toml are then ignored), so a package added to one file and not the other would break
Binder silently. The allowed differences: Binder takes torch from PyTorch's CPU-only index, and
installs the package itself in ``binder/postBuild`` rather than by ``-e .``: a local requirement
makes repo2docker copy the whole repository before installing requirements, so every commit would
rebuild that layer and download torch again. The last test asks repo2docker itself
(``--no-build`` prints the Dockerfile it would build, without Docker).
"""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
LOCAL = "-e ."
REPO2DOCKER_PIN = "jupyter-repo2docker==2026.4.0"  # the version this test was written against


def requirement_lines(path):
    """The lines of a requirements file, comments and blanks removed."""
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing")
    lines = (line.split(" #")[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def requirements(lines):
    """``{name: specifier}`` of the package lines (options such as ``--extra-index-url`` left out)."""
    out = {}
    for line in lines:
        if line.startswith("-"):
            if line.startswith(("-e ", "--editable ")):
                out[line] = ""
            continue
        name, spec = re.match(r"([A-Za-z0-9_.\-]+)(.*)", line).groups()
        out[re.sub(r"[-_.]+", "-", name).lower()] = spec.replace(" ", "")
    return out


def test_binder_installs_the_same_packages_as_requirements_txt():
    root = requirements(requirement_lines(ROOT / "requirements.txt"))
    assert root.pop(LOCAL) == "", "requirements.txt installs the package itself (-e .)"
    binder = requirements(requirement_lines(ROOT / "binder" / "requirements.txt"))
    assert binder == root, (f"binder/requirements.txt and requirements.txt differ: only in binder "
                            f"{sorted(set(binder.items()) - set(root.items()))}, only in requirements.txt "
                            f"{sorted(set(root.items()) - set(binder.items()))}")


def test_binder_takes_a_pinned_cpu_torch():
    lines = requirement_lines(ROOT / "binder" / "requirements.txt")
    assert CPU_INDEX in lines, "binder/requirements.txt must take torch from PyTorch's CPU index"
    assert re.fullmatch(r"==\d+\.\d+\.\d+", requirements(lines)["torch"]), "torch must be pinned (==X.Y.Z)"


def test_binder_requirements_name_nothing_local():
    # A path, -e or file: requirement turns off repo2docker's pre-assembly of the pip layer.
    for line in requirement_lines(ROOT / "binder" / "requirements.txt"):
        assert not re.match(r"(-e|--editable|\.|/|file:)", line) and " @ " not in line, line


def test_postbuild_installs_the_package_without_its_dependencies():
    # A binder/ folder hides pyproject.toml: without postBuild the notebooks cannot import ndarts_edu;
    # --no-deps keeps it from touching the torch that requirements.txt pinned.
    post_build = ROOT / "binder" / "postBuild"
    assert post_build.is_file() and os.access(post_build, os.X_OK), "binder/postBuild, executable"
    commands = [line.strip() for line in post_build.read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert "pip install --no-deps -e ." in commands, commands


def repo2docker():
    """The jupyter-repo2docker command, or a skip (a failure where CI asks for it)."""
    found = os.environ.get("NDARTS_REPO2DOCKER") or shutil.which("jupyter-repo2docker")
    if found and os.access(found, os.X_OK):
        return found
    reason = f"jupyter-repo2docker is not installed (pip install {REPO2DOCKER_PIN}; .ci/run does)"
    if os.environ.get("NDARTS_REPO2DOCKER"):
        pytest.fail(f"NDARTS_REPO2DOCKER={os.environ['NDARTS_REPO2DOCKER']}: {reason}")
    pytest.skip(reason)


def test_repo2docker_installs_requirements_before_the_repository_and_runs_postbuild(tmp_path):
    # The Dockerfile repo2docker would build from this checkout (no Docker needed to print it).
    # Only the committed binder files matter; copying them keeps the working tree out of it.
    shutil.copytree(ROOT / "binder", tmp_path / "binder")
    run = subprocess.run([repo2docker(), "--no-build", "--debug", str(tmp_path)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = run.stdout.splitlines()

    def first(pattern):
        found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
        assert found, f"no line matching {pattern!r} in the Dockerfile:\n{run.stdout[-3000:]}"
        return found[0]

    copy_requirements = first(r"^COPY .*src/binder/requirements\.txt ")
    install_requirements = first(r'^RUN .*pip install .*-r "?binder/requirements\.txt')
    copy_repository = first(r"^COPY .* src/ \$\{REPO_DIR\}/")
    post_build = first(r"^RUN \./binder/postBuild")
    # requirements alone, installed, then the repository, then postBuild: the torch layer is cached
    assert copy_requirements < install_requirements < copy_repository < post_build, \
        (copy_requirements, install_requirements, copy_repository, post_build)
    assert "python=3.12" in run.stderr, "repo2docker reads binder/runtime.txt"


def test_binder_python_is_new_enough_for_ipykernel():
    runtime = (ROOT / "binder" / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-3\.(\d+)", runtime)
    assert match, f"binder/runtime.txt must read python-3.X, got {runtime!r}"
    # repo2docker's default Python (3.10) is too old for ipykernel 7; the package needs what pyproject says.
    assert int(match.group(1)) >= 11
    floor = re.search(r'requires-python\s*=\s*">=3\.(\d+)"', (ROOT / "pyproject.toml").read_text())
    assert floor and int(match.group(1)) >= int(floor.group(1))


def test_the_parser_sees_specifiers_and_options():
    # The comparison above is only as good as this parser: check it on a known file.
    parsed = requirements(["--extra-index-url https://x", "Torch == 2.13.0", "plotly>=6.1", "my_pkg", "-e ."])
    assert parsed == {"torch": "==2.13.0", "plotly": ">=6.1", "my-pkg": "", "-e .": ""}
    assert requirements(["numpy"]) != requirements(["numpy>=2"])
