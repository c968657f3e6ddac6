"""Fixtures for the real-browser tests (pytest marker ``browser``); see README.md here.

Opt-in: the tests in this folder run only when the marker expression selects them
(``pytest -m browser tests/browser``) or ``NDARTS_BROWSER_TESTS=1`` is set (CI, where they run in
the same pool of workers as the rest); a plain ``pytest`` collects and skips them.

Missing tools (Debian ``chromium``, the ``playwright`` package) skip the tests, unless
``NDARTS_BROWSER_TESTS=1`` (CI), where they fail instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sys
import threading
import tempfile
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import nbdrive  # noqa: E402  (the helper module next to this file)

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
NOTEBOOKS = REPO / "notebooks"
SHOTS = Path(os.environ.get("NDARTS_BROWSER_SHOTS", HERE / "screenshots")).resolve()
if os.environ.get("PYTEST_XDIST_WORKER"):  # a folder per worker: each empties its own
    SHOTS = SHOTS / os.environ["PYTEST_XDIST_WORKER"]
REQUIRED = os.environ.get("NDARTS_BROWSER_TESTS", "") == "1"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]

_results: dict = {}  # measurements, printed in the terminal summary
_open_pages: list = []  # NotebookPage objects currently open (for failure screenshots)
_shots_used = False


def missing(reason: str):
    """Skip, or fail when the browser tests are required (NDARTS_BROWSER_TESTS=1)."""
    if REQUIRED:
        pytest.fail(f"{reason} (NDARTS_BROWSER_TESTS=1: required)", pytrace=False)
    pytest.skip(reason)


# ----------------------------------------------------------------------------------------
# opt-in collection
# ----------------------------------------------------------------------------------------


def _browser_requested(markexpr: str) -> bool:
    """True when the ``-m`` expression asks for browser tests by name.

    ``-m browser`` or ``-m "browser and not slow"`` do; no ``-m`` or ``-m "not slow"``
    (which a browser test would merely survive) do not.
    """
    markexpr = (markexpr or "").strip()
    if not markexpr:
        return False
    try:
        from _pytest.mark.expression import Expression

        expr = Expression.compile(markexpr)
        return expr.evaluate(lambda name, **kw: name == "browser") and not expr.evaluate(
            lambda name, **kw: False
        )
    except Exception:  # private pytest API moved: fall back to the word itself
        return re.search(r"(?<!not )\bbrowser\b", markexpr) is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Skip browser tests unless the ``-m`` expression or ``NDARTS_BROWSER_TESTS=1`` asks for them."""
    if REQUIRED or _browser_requested(config.option.markexpr):
        return
    skip = pytest.mark.skip(
        reason="browser test: opt-in, run `pytest -m browser tests/browser` (see tests/browser/README.md)"
    )
    for item in items:
        if item.get_closest_marker("browser"):
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_ndarts_rep_{rep.when}", rep)


def pytest_terminal_summary(terminalreporter):
    if not _shots_used or not SHOTS.exists():
        return
    files = sorted(p for p in SHOTS.rglob("*") if p.is_file())
    terminalreporter.write_sep("-", "browser screenshots")
    terminalreporter.write_line(f"screenshots and server logs: {SHOTS}")
    for p in files:
        terminalreporter.write_line(f"  {p.relative_to(SHOTS)}")
    for key, value in _results.items():
        terminalreporter.write_line(f"{key}: {json.dumps(value, default=str)}")


# ----------------------------------------------------------------------------------------
# tools, browser, screenshots
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = os.environ.get("NDARTS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        missing(f"no chromium at {path} (run .ci/install-browser)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("the playwright Python package is not installed (run .ci/install-browser)")
    return path


@pytest.fixture(scope="session")
def shots_dir() -> Path:
    """Screenshot folder, emptied at the start of each browser-test session."""
    global _shots_used
    _shots_used = True
    if SHOTS.exists():
        shutil.rmtree(SHOTS)
    SHOTS.mkdir(parents=True)
    return SHOTS


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ndarts-chromium-")
    pw = sync_playwright().start()
    ctx = None
    try:
        # a persistent context is the way to give chromium its own fresh user data dir
        ctx = pw.chromium.launch_persistent_context(
            profile,
            executable_path=chromium_path,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        yield ctx
    finally:
        try:
            if ctx is not None:
                ctx.close()
        finally:
            pw.stop()
            shutil.rmtree(profile, ignore_errors=True)


# ----------------------------------------------------------------------------------------
# servers
# ----------------------------------------------------------------------------------------


def _server(app: str, shots: Path):
    """Start a server on a fresh temporary copy of the repository's notebooks/ and docs/ (the
    notebooks' pictures load from ../docs by relative path), plus the self-test notebook; the
    server's root is the copy's top, so the notebooks are at ``notebooks/NAME``."""
    tmp = Path(tempfile.mkdtemp(prefix=f"ndarts-{app}-"))
    top = tmp / "repo"
    root = top / "notebooks"
    if NOTEBOOKS.is_dir():
        shutil.copytree(
            NOTEBOOKS, root,
            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"),
        )
    else:
        root.mkdir(parents=True)
    if (REPO / "docs").is_dir():
        shutil.copytree(REPO / "docs", top / "docs")
    nbdrive.write_selftest_notebook(root / "_selftest" / "selftest.ipynb")
    server = nbdrive.JupyterServer(app, top, tmp / "jupyter", shots / f"server-{app}.log")
    return server, tmp


@pytest.fixture(scope="session")
def server_factory(chromium_path, shots_dir):
    """``server_factory("lab"|"notebook")``: one running server per app, per session.

    Every server is stopped at the end of the session, also when tests failed; a port
    left open fails the teardown.
    """
    started: dict[str, tuple] = {}

    # `timeout` and CI runners end a job with SIGTERM: turn it into KeyboardInterrupt, which
    # pytest handles by tearing the fixtures down (the servers are stopped below).
    def on_sigterm(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, on_sigterm)

    def get(app: str) -> nbdrive.JupyterServer:
        if app not in started:
            server, tmp = _server(app, shots_dir)
            started[app] = (server, tmp)
            server.start()
        return started[app][0]

    try:
        yield get
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        errors = []
        for app, (server, tmp) in started.items():
            port = server.port
            problems = server.stop()
            shutil.rmtree(tmp, ignore_errors=True)
            for p in problems:
                warnings.warn(f"jupyter {app}: {p}")
            if port is not None and nbdrive.port_is_open(port):
                errors.append(f"jupyter {app}: port {port} still open after shutdown")
        if errors:
            pytest.fail("; ".join(errors), pytrace=False)


@pytest.fixture(scope="session")
def require_notebook():
    """``require_notebook(name)``: skip (fail under NDARTS_BROWSER_TESTS=1) if notebooks/name
    does not exist."""
    def check(name: str) -> Path:
        path = NOTEBOOKS / name
        if not path.is_file():
            missing(f"{path.relative_to(REPO)} does not exist")
        return path
    return check


@pytest.fixture(scope="session")
def lab_server(server_factory):
    return server_factory("lab")


@pytest.fixture(scope="session")
def nb7_server(server_factory):
    return server_factory("notebook")


# ----------------------------------------------------------------------------------------
# pages
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_notebook(browser, shots_dir):
    """``open_notebook(server, name, label)`` -> NotebookPage, opened, kernel idle.

    The page lives until the end of the test module (module fixtures hand it to several
    tests), then its kernel is shut down and the page closed. Screenshots go to
    ``<screenshots>/<label>/``.
    """
    pages = []

    def open_(server, name: str, label: str) -> nbdrive.NotebookPage:
        page = browser.new_page()
        nbp = nbdrive.NotebookPage(page, server, f"notebooks/{name}", shots_dir / label)
        pages.append(nbp)
        _open_pages.append(nbp)
        try:
            nbp.open()
        except Exception:
            nbp.screenshot("open-failed")
            raise
        return nbp

    try:
        yield open_
    finally:
        for nbp in pages:
            if nbp in _open_pages:
                _open_pages.remove(nbp)
            nbp.close()


@pytest.fixture(scope="session")
def report(shots_dir):
    """``report(key, value)``: a measurement, printed at the end and kept in results.json."""
    def add(key, value):
        _results[key] = value
        (shots_dir / "results.json").write_text(json.dumps(_results, indent=1, default=str))
    return add


@pytest.fixture(autouse=True)
def _screenshot_on_failure(request):
    """A screenshot of every open notebook page when a browser test fails."""
    yield
    rep = getattr(request.node, "_ndarts_rep_call", None)
    if rep is not None and rep.failed and _open_pages:
        for nbp in list(_open_pages):
            nbp.screenshot(f"FAILED-{request.node.name}")
            try:
                (nbp.shots_dir / f"FAILED-{request.node.name}.txt").write_text(nbp.diagnostics())
            except Exception as exc:
                (nbp.shots_dir / f"FAILED-{request.node.name}.txt").write_text(repr(exc))
            request.node.user_properties.append(("screenshots", str(nbp.shots_dir)))
