"""binder/ launches the notebooks on mybinder.org: it must install what requirements.txt installs.

repo2docker reads only ``binder/`` once that folder exists (the root's requirements.txt and
pyproject.toml are then ignored), so a package added to one file and not the other would break
Binder silently. The one allowed difference: Binder takes torch from PyTorch's CPU-only index.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"


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
    binder = requirements(requirement_lines(ROOT / "binder" / "requirements.txt"))
    assert binder == root, (f"binder/requirements.txt and requirements.txt differ: only in binder "
                            f"{sorted(set(binder.items()) - set(root.items()))}, only in requirements.txt "
                            f"{sorted(set(root.items()) - set(binder.items()))}")


def test_binder_takes_a_pinned_cpu_torch():
    lines = requirement_lines(ROOT / "binder" / "requirements.txt")
    assert CPU_INDEX in lines, "binder/requirements.txt must take torch from PyTorch's CPU index"
    assert re.fullmatch(r"==\d+\.\d+\.\d+", requirements(lines)["torch"]), "torch must be pinned (==X.Y.Z)"


def test_binder_installs_the_package_itself_last():
    # A binder/ folder hides pyproject.toml: without this line the notebooks cannot import ndarts_edu.
    assert requirement_lines(ROOT / "binder" / "requirements.txt")[-1] == "-e ."


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
