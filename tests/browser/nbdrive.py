"""Drive JupyterLab / Notebook 7 in a headless Chromium, as a student would.

Used by the browser tests in this folder (through the fixtures in ``conftest.py``).
Nothing here imports playwright at module level, so the test files can be collected
(and skipped) on a machine without it.

Pieces:
- ``JupyterServer``: ``jupyter lab`` or ``jupyter notebook`` on 127.0.0.1 and a free port,
  rooted in a temporary folder, in its own process group; ``stop()`` shuts it down through
  the REST API, then SIGTERM/SIGKILL to the group, kills any kernel it left and checks that
  the port is closed again.
- ``NotebookPage``: one opened notebook: wait for the kernel, run all cells, find widgets by
  their CSS classes, read plotly graph divs, drag ipywidgets sliders, click buttons, take
  screenshots.
- ``write_selftest_notebook``: a small notebook (FloatSlider + FigureWidgets + Run/Stop
  thread) with the same CSS classes as ``ndarts_edu.widgets``; it proves the machinery on
  its own, independent of the course notebooks.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

# ----------------------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------------------


def free_port() -> int:
    """A free TCP port on the loopback interface (bind to port 0, read it, release it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def poll(
    condition: Callable[[], object],
    timeout: float,
    what: str,
    interval: float = 0.25,
    on_timeout: Callable[[], str] | None = None,
):
    """Call ``condition`` until it returns something truthy; return that value.

    Raises ``TimeoutError`` naming ``what`` (plus ``on_timeout()``, if given) otherwise.
    """
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = condition()
        if last:
            return last
        if time.monotonic() > deadline:
            extra = ""
            if on_timeout is not None:
                try:
                    extra = "\n" + on_timeout()
                except Exception as exc:  # pragma: no cover - diagnostics only
                    extra = f"\n(diagnostics failed: {exc!r})"
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}{extra}")
        time.sleep(interval)


def _children_of(pid: int) -> list[int]:
    """All descendant pids of ``pid`` (Linux /proc scan)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            # the command name may contain spaces/parentheses: split after the last ')'
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents[int(entry)] = ppid
    found, frontier = [], [pid]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        found.extend(kids)
        frontier.extend(kids)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True
    # a zombie still answers kill(0); treat it as gone
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _die_with_parent():  # pragma: no cover - runs in the child, before exec
    """Linux: SIGTERM the server if the test process dies without cleaning up (SIGKILL)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


# ----------------------------------------------------------------------------------------
# the server
# ----------------------------------------------------------------------------------------


class JupyterServer:
    """``jupyter lab`` (app="lab") or ``jupyter notebook`` (app="notebook") on loopback."""

    def __init__(self, app: str, root_dir: Path, work_dir: Path, log_path: Path):
        if app not in ("lab", "notebook"):
            raise ValueError(app)
        self.app = app
        self.root_dir = Path(root_dir)
        self.work_dir = Path(work_dir)  # isolated JUPYTER_CONFIG_DIR / RUNTIME_DIR live here
        self.log_path = Path(log_path)
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def notebook_url(self, name: str) -> str:
        if self.app == "lab":
            return f"{self.url}/lab/tree/{name}"
        return f"{self.url}/notebooks/{name}"

    def _env(self) -> dict:
        env = dict(os.environ)
        cfg = self.work_dir / "config"
        # Quiet, reproducible frontend: no news toast, no update check.
        settings = cfg / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True, exist_ok=True)
        (settings / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False})
        )
        env["JUPYTER_CONFIG_DIR"] = str(cfg)
        env["JUPYTER_RUNTIME_DIR"] = str(self.work_dir / "runtime")
        env["JUPYTER_DATA_DIR"] = str(self.work_dir / "data")  # not ~/.local/share/jupyter
        env["IPYTHONDIR"] = str(self.work_dir / "ipython")
        # The kernelspec says "python": make it this interpreter (the venv's).
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        # Keep the machine usable: the kernel's torch must leave a core to the browser.
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        env["PYDEVD_DISABLE_FILE_VALIDATION"] = "1"
        env.pop("JUPYTER_TOKEN", None)
        env.pop("NDARTS_EDU_LIVE", None)  # test the widget mode (not the static fallback)
        return env

    def start(self, timeout: float = 90.0) -> "JupyterServer":
        self.port = free_port()
        app_cls = "LabApp" if self.app == "lab" else "JupyterNotebookApp"
        cmd = [
            sys.executable, "-m", "jupyter", self.app,
            "--no-browser",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--ServerApp.port_retries=0",
            "--IdentityProvider.token=",  # = the deprecated --ServerApp.token=''
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={self.root_dir}",
            f"--{app_cls}.expose_app_in_browser=True",
        ]
        if self.app == "lab":
            cmd += [
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.extension_manager=readonly",  # no PyPI queries from the server
            ]
        if os.geteuid() == 0:  # CI containers run as root
            cmd.append("--ServerApp.allow_root=True")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")
        self._log.write("$ " + " ".join(cmd) + "\n")
        self._log.flush()
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.root_dir,
            env=self._env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: stop() can kill all of it
            preexec_fn=_die_with_parent,
        )

        def answered():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyter {self.app} exited with code {self.proc.returncode} "
                    f"before answering; log:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/api/status", timeout=2) as r:
                    return r.status == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                return False

        try:
            poll(answered, timeout, f"jupyter {self.app} on port {self.port}",
                 interval=0.3, on_timeout=self.log_tail)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, n: int = 40) -> str:
        try:
            return "".join(self.log_path.read_text(errors="replace").splitlines(True)[-n:])
        except OSError:
            return "(no log)"

    def stop(self) -> list[str]:
        """Shut everything down; return a list of problems (empty when all went well)."""
        problems: list[str] = []
        if self.proc is None:
            return problems
        pid = self.proc.pid
        descendants = _children_of(pid)  # kernels run in their own sessions
        if self.proc.poll() is None:
            # 1. polite: the server shuts its kernels down and exits
            try:
                req = urllib.request.Request(f"{self.url}/api/shutdown", method="POST", data=b"")
                urllib.request.urlopen(req, timeout=5).close()
            except Exception:
                pass
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                problems.append("server ignored /api/shutdown; sent SIGTERM")
                # 2. firm: SIGTERM, then SIGKILL, to the whole process group
                for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                    try:
                        os.killpg(pid, sig)
                    except ProcessLookupError:
                        break
                    try:
                        self.proc.wait(timeout=wait)
                        break
                    except subprocess.TimeoutExpired:
                        continue
        # 3. anything it started (kernels) that outlived it: by pid
        leftovers = [p for p in descendants if _alive(p)]
        deadline = time.monotonic() + 5
        while leftovers and time.monotonic() < deadline:
            time.sleep(0.2)
            leftovers = [p for p in leftovers if _alive(p)]
        for p in leftovers:
            problems.append(f"process {p} outlived the server; killed")
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:  # the group, in case anything is left in it
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.port is not None:
            try:
                poll(lambda: not port_is_open(self.port), 10, f"port {self.port} to close")
            except TimeoutError as exc:
                problems.append(str(exc))
        self.proc = None
        return problems


# ----------------------------------------------------------------------------------------
# the page
# ----------------------------------------------------------------------------------------

# JavaScript run in the page. `window.jupyterapp` exists because the server was started
# with expose_app_in_browser (JupyterLab and Notebook 7 alike).
_JS_PANEL = """
(name) => {
  const app = window.jupyterapp;
  if (!app || !app.shell) return null;
  const w = app.shell.currentWidget;
  if (!w || !w.sessionContext || !w.context) return null;
  if (name && !(w.context.path === name || w.context.path.endsWith('/' + name))) return null;
  return w;
}
"""

_JS_KERNEL_IDLE = (
    "(name) => { const w = (" + _JS_PANEL + ")(name); if (!w) return false;"
    " const sc = w.sessionContext; const k = sc.session && sc.session.kernel;"
    " return !!(w.context.isReady && sc.isReady && k && k.status === 'idle'"
    " && k.connectionStatus === 'connected'); }"
)

# Run cells as the Run menu does. `args.upto`: null for Run All Cells; else the index of a
# cell that is made active before Run All Above Selected Cell.
_JS_RUN = (
    "(args) => { const w = (" + _JS_PANEL + ")(args.name);"
    " window.jupyterapp.shell.activateById(w.id);"
    " if (args.upto === null) {"
    "   window.jupyterapp.commands.execute('notebook:run-all-cells');"
    " } else {"
    "   w.content.activeCellIndex = args.upto;"
    "   window.jupyterapp.commands.execute('notebook:run-all-above');"
    " }"
    # not awaited: the test watches the cells while they run
    " return true; }"
)

# One entry per code cell: its index, execution count, whether it is queued/running, errors.
_JS_CELLS = (
    "(name) => { const w = (" + _JS_PANEL + ")(name); if (!w) return null;"
    " const out = []; const k = w.sessionContext.session && w.sessionContext.session.kernel;"
    " w.content.widgets.forEach((cell, index) => {"
    "   if (cell.model.type !== 'code') return;"
    "   const outputs = cell.model.outputs.toJSON();"
    "   const errors = outputs.filter(o => o.output_type === 'error')"
    "       .map(o => o.ename + ': ' + o.evalue);"
    "   const prompt = cell.node.querySelector('.jp-InputPrompt');"
    "   const src = cell.model.sharedModel.getSource();"
    "   out.push({index: index, count: cell.model.executionCount,"
    "             busy: !!(prompt && prompt.textContent.includes('*')),"
    "             source: src.slice(0, 80), text: src, empty: src.trim() === '',"
    "             errors: errors,"
    "             stderr: outputs.filter(o => o.output_type === 'stream' && o.name === 'stderr')"
    "                 .map(o => (Array.isArray(o.text) ? o.text.join('') : o.text).slice(0, 300))});"
    " });"
    " return {cells: out, kernel: k ? k.status : null}; }"
)

# Points on the plotly graph div under the element matching `sel`:
# [{name, x, y, n}] per trace (what plotly.js is drawing, `gd.data`).
_JS_PLOT = """
(sel) => {
  const host = document.querySelector(sel);
  if (!host) return null;
  const gd = host.classList.contains('js-plotly-plot') ? host : host.querySelector('.js-plotly-plot');
  if (!gd || !gd.data) return null;
  const arr = (v) => (v == null ? [] : Array.from(v));
  return {
    traces: gd.data.map(t => ({name: t.name == null ? null : String(t.name), type: t.type || 'scatter',
                               x: arr(t.x), y: arr(t.y), visible: t.visible === undefined ? true : t.visible})),
    layout_title: gd.layout && gd.layout.title ? (gd.layout.title.text || String(gd.layout.title)) : null,
    drawn: host.querySelectorAll('.main-svg').length,
  };
}
"""

_JS_WIDGET_REPORT = """
() => {
  const els = new Set([...document.querySelectorAll('.js-plotly-plot, [class*="ndarts-"]')]);
  return [...els].map(e => ({
    cls: e.className && e.className.baseVal === undefined ? e.className : String(e.className),
    tag: e.tagName.toLowerCase(),
    traces: e.data ? e.data.length : null,
    points: e.data ? e.data.reduce((n, t) => n + (t.x ? t.x.length : (t.y ? t.y.length : 0)), 0) : null,
    visible: !!(e.offsetWidth || e.offsetHeight),
    text: (e.tagName === 'DIV' && !e.data) ? (e.textContent || '').slice(0, 60) : undefined,
  }));
}
"""


class NotebookPage:
    """A notebook opened in JupyterLab or Notebook 7, in one Playwright page."""

    def __init__(self, page, server: JupyterServer, name: str, shots_dir: Path):
        self.page = page
        self.server = server
        self.name = name
        self.shots_dir = Path(shots_dir)
        self.shots_dir.mkdir(parents=True, exist_ok=True)
        self.shots: list[Path] = []
        self.notes: list[str] = []  # what went wrong on the side (kept in notes.txt)
        self.console: list[str] = []
        page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}"[:500]))
        page.on("pageerror", lambda e: self.console.append(f"pageerror: {e}"[:500]))
        # The widget manager's restore handshake on the kernel websocket (see
        # wait_widget_manager): when each of the frames that matter was seen.
        self.ws_seen: dict[str, list[float]] = {}
        self._ws_listeners: list = []
        page.on("websocket", self._watch_websocket)

    def _watch_websocket(self, ws):
        def seen(payload, direction):
            data = payload if isinstance(payload, (bytes, bytearray)) else payload.encode()
            for key in (b"request_states", b"update_states", b"comm_info_reply"):
                if key in data:
                    self.ws_seen.setdefault(f"{direction}:{key.decode()}", []).append(
                        time.monotonic())

        for event, direction in (("framesent", "sent"), ("framereceived", "received")):
            handler = (lambda d: (lambda p: seen(p, d)))(direction)
            ws.on(event, handler)
            self._ws_listeners.append((ws, event, handler))

    def _unwatch_websocket(self):
        """Stop copying every websocket frame into Python (live runs send many)."""
        for ws, event, handler in self._ws_listeners:
            try:
                ws.remove_listener(event, handler)
            except Exception:
                pass
        self._ws_listeners.clear()

    def _widget_manager_restored(self) -> bool:
        asked = self.ws_seen.get("sent:request_states")
        if not asked:
            return False
        replies = self.ws_seen.get("received:update_states", []) + \
            self.ws_seen.get("received:comm_info_reply", [])
        return any(t >= asked[-1] for t in replies)

    # -- opening and running ----------------------------------------------------------

    def open(self, timeout: float = 90.0) -> "NotebookPage":
        self.page.goto(self.server.notebook_url(self.name), wait_until="domcontentloaded",
                       timeout=timeout * 1000)
        self.wait_kernel_idle(timeout)
        return self

    def wait_widget_manager(self, timeout: float = 30.0):
        """Wait until the ipywidgets manager has asked the new kernel for its widgets.

        On connecting to a kernel the widget manager sends ``request_states`` on the
        ``jupyter.widget.control`` comm and waits (4 s) for ``update_states``; when the
        kernel has not imported ipywidgets yet it closes that comm and the manager falls
        back to a ``comm_info_request``, then fetches every widget comm it does not know.
        A run-all sent at the same moment (the kernel is idle by then) races that restore:
        on a loaded machine it was seen to leave both FigureWidgets as empty plots without
        their CSS classes. So cells run only after the reply came (a person is never that
        fast).
        """
        def restored():
            # the sync API delivers websocket events only while Python is inside a
            # Playwright call: give it one, or the frames would never be seen
            self.page.wait_for_timeout(50)
            return self._widget_manager_restored()

        try:
            poll(restored, timeout,
                 f"{self.name}: the widget manager's request_states/update_states exchange",
                 on_timeout=lambda: f"seen: {self.ws_seen}")
        except TimeoutError as exc:
            # never seen (another widget manager version?): go on, but say so
            self.notes.append(f"note: {exc}")
        self._unwatch_websocket()

    def wait_kernel_idle(self, timeout: float = 90.0):
        poll(lambda: self.page.evaluate(_JS_KERNEL_IDLE, self.name), timeout,
             f"{self.name}: notebook open and kernel idle", on_timeout=self.diagnostics)

    def cells(self) -> dict:
        return self.page.evaluate(_JS_CELLS, self.name)

    def run_all(self, timeout: float = 300.0, upto: str | None = None,
                watch: Callable[[], None] | None = None) -> dict:
        """Run all cells (Run > Run All Cells) and wait until every one has finished.

        ``upto``: run only the cells above the first code cell whose source contains this
        text (Run > Run All Above Selected Cell, with that cell selected).
        ``watch``: called on every poll while the cells run (to sample the page meanwhile).

        Returns the cell summary (see ``_JS_CELLS``, plus ``seconds``); raises
        AssertionError naming the cells that have an error output.
        """
        self.wait_kernel_idle()
        self.wait_widget_manager()
        self.wait_kernel_idle()
        stop_at = None
        if upto is not None:
            code = self.cells()["cells"]
            hits = [c["index"] for c in code if upto in c["text"]]
            if not hits:
                raise AssertionError(f"{self.name}: no code cell contains {upto!r}")
            stop_at = hits[0]
        t0 = time.monotonic()
        self.page.evaluate(_JS_RUN, {"name": self.name, "upto": stop_at})

        def finished():
            if watch is not None:
                watch()
            s = self.cells()
            if not s or s["kernel"] != "idle":
                return False
            code = [c for c in s["cells"] if not c["empty"]
                    and (stop_at is None or c["index"] < stop_at)]
            if any(c["errors"] for c in code):
                return s  # stop early: an error halts the run
            if all(c["count"] is not None and not c["busy"] for c in code):
                return s
            return False

        summary = poll(finished, timeout, f"{self.name}: the cells to finish",
                       interval=0.5, on_timeout=self.diagnostics)
        summary["seconds"] = round(time.monotonic() - t0, 1)
        summary["ran"] = sum(1 for c in summary["cells"] if c["count"] is not None)
        bad = [c for c in summary["cells"] if c["errors"]]
        if bad:
            raise AssertionError(
                f"{self.name}: cells raised:\n"
                + "\n".join(f"  [{c['count']}] {c['source']!r}: {c['errors']}" for c in bad)
            )
        for c in summary["cells"]:
            c.pop("text", None)
        return summary

    # -- widgets ----------------------------------------------------------------------

    def wait_for(self, selector: str, timeout: float = 60.0):
        """Wait until an element matching ``selector`` is attached and visible."""
        self.page.wait_for_selector(selector, state="visible", timeout=timeout * 1000)
        return self.page.locator(selector).first

    def plot(self, selector: str):
        """The traces plotly.js draws inside ``selector`` (None if no graph div yet)."""
        return self.page.evaluate(_JS_PLOT, selector)

    def wait_plot(self, selector: str, timeout: float = 60.0,
                  condition: Callable[[dict], bool] | None = None, what: str = ""):
        def ready():
            p = self.plot(selector)
            if not p or not p["traces"] or not p["drawn"]:
                return None
            if condition is not None and not condition(p):
                return None
            return p

        return poll(ready, timeout, what or f"a plotly graph with data in {selector}",
                    on_timeout=self.diagnostics)

    def slider_value(self, selector: str) -> float:
        """The value the slider's readout shows (what the student reads)."""
        text = self.page.locator(f"{selector} .widget-readout").first.text_content()
        return float(text.strip())

    def drag_slider(self, selector: str, fraction: float, steps: int = 12):
        """Drag the slider's handle with the mouse to ``fraction`` (0..1) of its track.

        ipywidgets 8 draws sliders with noUiSlider: press on ``.noUi-handle`` and move along
        ``.noUi-target``, as a person does.
        """
        root = self.page.locator(selector).first
        self.steady(root)
        handle = root.locator(".noUi-handle").first
        track = root.locator(".noUi-target").first
        hb, tb = handle.bounding_box(), track.bounding_box()
        if not hb or not tb:
            raise AssertionError(f"slider {selector} has no visible handle/track")
        x0, y0 = hb["x"] + hb["width"] / 2, hb["y"] + hb["height"] / 2
        # a little past the end snaps to the end, as a mouse overshoot does
        x1 = tb["x"] + min(max(fraction, 0.0), 1.0) * tb["width"]
        if fraction >= 1.0:
            x1 += 10
        elif fraction <= 0.0:
            x1 -= 10
        self.page.mouse.move(x0, y0)
        self.page.mouse.down()
        self.page.mouse.move(x1, y0, steps=steps)
        self.page.mouse.up()

    def click(self, selector: str):
        loc = self.page.locator(selector).first
        self.steady(loc)
        loc.click()

    def steady(self, loc, timeout: float = 15.0):
        """Scroll ``loc`` into view and wait until it stops moving; return its box.

        Scrolled in the page (Playwright's own scrolling waits for "stable" frames, which a
        busy renderer can make it miss), then its box read until two readings 0.3 s apart
        agree: the notebook's pictures and the cells JupyterLab renders as they come into
        view move what is below them for a while, and a drag started meanwhile misses.
        """
        loc.evaluate("e => e.scrollIntoView({block: 'center'})")
        last = None

        def still():
            nonlocal last
            box = loc.bounding_box()
            same = box is not None and box == last
            last = box
            return box if same else None

        return poll(still, timeout, "the element to stop moving", interval=0.3)

    def text(self, selector: str) -> str:
        return (self.page.locator(selector).first.text_content() or "").strip()

    def close(self):
        """Shut the notebook's kernel down (stops any live run) and close the page; write
        ``notes.txt`` (screenshots that failed, waits that gave up) if there are notes."""
        if self.notes:
            (self.shots_dir / "notes.txt").write_text("\n".join(self.notes) + "\n")
        try:
            self.page.evaluate(
                "(name) => { const w = (" + _JS_PANEL + ")(name);"
                " return w ? w.sessionContext.shutdown().then(() => true) : false; }",
                self.name,
            )
        except Exception:
            pass
        try:
            self.page.close()
        except Exception:
            pass

    # -- evidence ---------------------------------------------------------------------

    def screenshot(self, label: str, selector: str | None = None) -> Path | None:
        """A PNG in ``shots_dir``: the output area of the cell that holds ``selector`` (its
        controls and figure together), or the whole page when no selector is given (or the
        element is not found). Returns its path, or None when it could not be taken (the
        reason goes to ``self.notes``). Never raises: evidence must not hide the real
        failure."""
        path = self.shots_dir / f"{len(self.shots) + 1:02d}-{label}.png"
        try:
            clip = None
            if selector:
                parts = [f".jp-Cell-outputArea:has({one.strip()})" for one in selector.split(",")]
                area = self.page.locator(", ".join(parts)).first
                if area.count():
                    # scrollIntoView in the page: Playwright's own scrolling waits for the
                    # element to be "stable", which a live plot being redrawn never is
                    area.evaluate("e => e.scrollIntoView({block: 'start'})", timeout=5000)
                    box = area.bounding_box(timeout=5000)
                    view = self.page.viewport_size
                    if box and view:
                        # a clip of the page, not an element screenshot: that one waits for
                        # the element to be "stable", which a live plot never is
                        x0, y0 = max(box["x"], 0), max(box["y"], 0)
                        x1 = min(box["x"] + box["width"], view["width"])
                        y1 = min(box["y"] + box["height"], view["height"])
                        if x1 - x0 > 10 and y1 - y0 > 10:
                            clip = {"x": x0, "y": y0, "width": x1 - x0, "height": y1 - y0}
            self.page.screenshot(path=str(path), clip=clip, timeout=20000)
            self.shots.append(path)
            return path
        except Exception as exc:
            self.notes.append(f"screenshot {label} failed: {exc!r}"[:800])
            return None

    def widget_report(self) -> list:
        """What the page shows of widgets: each plotly graph div and ndarts-* element."""
        return self.page.evaluate(_JS_WIDGET_REPORT)

    def diagnostics(self) -> str:
        lines = [f"url: {self.page.url}"]
        try:
            lines.append("widgets: " + json.dumps(self.widget_report())[:3000])
        except Exception as exc:
            lines.append(f"widgets: n/a ({exc!r})")
        lines.append(f"widget-manager handshake seen: {sorted(self.ws_seen)}")
        try:
            cells = self.cells()
            for c in (cells or {}).get("cells", []):
                c.pop("text", None)
            lines.append("cells: " + json.dumps(cells)[:3000])
        except Exception as exc:
            lines.append(f"cells: n/a ({exc!r})")
        lines += ["notes:"] + self.notes[-10:]
        lines += ["console (last 15):"] + self.console[-15:]
        lines += ["server log (tail):", self.server.log_tail(15)]
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------
# a self-test notebook with the same CSS classes as ndarts_edu.widgets
# ----------------------------------------------------------------------------------------

_SELFTEST_CELLS = [
    """\
import math, threading, time
import ipywidgets as W
import plotly.graph_objects as go

EPOCHS = list(range(30))

def weights(noise):
    # toy 'skip weight': dominates without noise, fades with noise
    skip = [1 / (1 + math.exp(-(0.3 * e - 1 - 12 * noise))) * (1 - 0.7 * noise) for e in EPOCHS]
    conv = [0.5 + 0.3 * math.tanh(0.1 * e) * (0.3 + noise) for e in EPOCHS]
    return skip, conv
""",
    """\
noise = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, description='noise')
noise.add_class('ndarts-noise-slider')
skip, conv = weights(0.0)
sweep = go.FigureWidget(data=[go.Scatter(x=EPOCHS, y=skip, name='skip_connect'),
                              go.Scatter(x=EPOCHS, y=conv, name='sep_conv_3x3')],
                        layout=dict(height=300, title='selftest: alpha competition'))
sweep.add_class('ndarts-sweep-figure')

def on_noise(change):
    s, c = weights(change['new'])
    with sweep.batch_update():
        sweep.data[0].y = s
        sweep.data[1].y = c

noise.observe(on_noise, names='value')
W.VBox([noise, sweep])
""",
    """\
run, stop = W.Button(description='Run'), W.Button(description='Stop')
run.add_class('ndarts-run'); stop.add_class('ndarts-stop')
status = W.Label('idle'); status.add_class('ndarts-status')
live = go.FigureWidget(data=[go.Scatter(x=[], y=[], name='skip_connect')],
                       layout=dict(height=250, title='selftest: live run'))
live.add_class('ndarts-live-figure')
halt = threading.Event()

def work():
    xs, ys, step, last = [], [], 0, 0.0
    while not halt.is_set() and step < 2000:
        time.sleep(0.05); step += 1
        xs.append(step); ys.append(math.sin(step / 10))
        if time.monotonic() - last > 0.2:
            last = time.monotonic()
            with live.batch_update():
                live.data[0].x, live.data[0].y = list(xs), list(ys)
            status.value = f'running: step {step}'
    status.value = f'stopped at step {step}'

def on_run(_):
    halt.clear(); status.value = 'running'
    threading.Thread(target=work, daemon=True).start()

run.on_click(on_run)
stop.on_click(lambda _: halt.set())
W.VBox([W.HBox([run, stop, status]), live])
""",
]


def write_selftest_notebook(path: Path) -> Path:
    cells = [
        {"cell_type": "code", "execution_count": None, "id": f"selftest-{i}", "metadata": {},
         "outputs": [], "source": src.splitlines(True)}
        for i, src in enumerate(_SELFTEST_CELLS)
    ]
    nb = {
        "cells": [{"cell_type": "markdown", "id": "selftest-title", "metadata": {},
                   "source": ["# Browser-test machinery self-test (generated)"]}] + cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                           "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(nb, indent=1))
    return path


# ----------------------------------------------------------------------------------------
# the checks (shared by the self-test, JupyterLab and Notebook 7 tests)
# ----------------------------------------------------------------------------------------

# CSS classes that ndarts_edu.widgets puts on its widgets (see its module docstring).
SLIDER = ".ndarts-noise-slider"
SWEEP = ".ndarts-sweep-figure"
LIVE = ".ndarts-live-figure"
RUN = "button.ndarts-run, .ndarts-run button"
STOP = "button.ndarts-stop, .ndarts-stop button"
STATUS = ".ndarts-status"


def n_points(plot: dict | None) -> int:
    if not plot:
        return 0
    return sum(max(len(t["x"]), len(t["y"])) for t in plot["traces"])


def skip_weight(plot: dict) -> float:
    """The skip weight the plot shows now.

    notebook 01's sweep figure (``viz.sweep_view``): one line per seed, named "seed N", of
    the mean skip weight f(alpha_skip) during the search at the slider's noise: the mean of
    their last points. Otherwise (the self-test): the last point of the trace whose name
    mentions "skip".
    """
    seeds = [t for t in plot["traces"] if t["name"] and re.fullmatch(r"seed \d+", t["name"])
             and [y for y in t["y"] if y is not None]]
    if seeds:
        finals = [[y for y in t["y"] if y is not None][-1] for t in seeds]
        return float(sum(finals) / len(finals))
    for t in plot["traces"]:
        if t["name"] and "skip" in t["name"].lower() and t["y"]:
            return float([y for y in t["y"] if y is not None][-1])
    raise AssertionError(
        "no skip-weight trace ('seed N' or a name with 'skip') in the plot; traces: "
        + ", ".join(repr(t["name"]) for t in plot["traces"])
    )


def slider_marker(plot: dict):
    """notebook 01: the skip share marked at the slider's noise (trace "slider"), or None."""
    for t in plot["traces"]:
        if t["name"] == "slider" and t["y"]:
            return float(t["y"][0])
    return None


def _settled(read: Callable[[], object], timeout: float, what: str, differs_from=None,
             quiet: float = 1.0, on_timeout=None):
    """Poll ``read()`` until it returns the same value for ``quiet`` seconds (and, if
    ``differs_from`` is given, a value different from it)."""
    state = {"v": object(), "since": time.monotonic()}

    def cond():
        v = read()
        now = time.monotonic()
        if v != state["v"]:
            state["v"], state["since"] = v, now
            return None
        if differs_from is not None and v == differs_from:
            return None
        return (v,) if now - state["since"] >= quiet else None

    return poll(cond, timeout, what, interval=0.2, on_timeout=on_timeout)[0]


def check_sweep_rendered(nb: NotebookPage, timeout: float = 180.0) -> dict:
    """The alpha-competition plot: a plotly graph div, drawn, with data points (within 3 minutes:
    in CI the browser shares two cores with the other tests, and the 5 MB plotly bundle loads
    slowly there)."""
    plot = nb.wait_plot(SWEEP, timeout, condition=lambda p: n_points(p) > 0,
                        what="the alpha-competition plot (.ndarts-sweep-figure) with data")
    assert n_points(plot) > 0
    nb.screenshot("sweep-rendered", SWEEP)
    return plot


def check_slider(nb: NotebookPage, timeout: float = 60.0) -> dict:
    """Drag the noise slider to its low end (0), then to its high end: the plotted skip
    weight must be high at 0 and fall at high noise.

    Returns what was measured (slider values, skip weights and texts at both ends).
    """
    nb.wait_for(SLIDER, timeout)
    nb.wait_plot(SWEEP, timeout)

    def reading():
        p = nb.plot(SWEEP)
        if not p or not p["traces"]:
            return None
        marker = slider_marker(p)
        return (round(skip_weight(p), 6), None if marker is None else round(marker, 6))

    def readout():
        if nb.page.locator(".ndarts-sweep-readout").count():
            return nb.text(".ndarts-sweep-readout")
        return None

    # 1. the low end: drag there with the mouse (notebook 01 leaves the slider elsewhere); a drag
    # that a page still settling made miss is made again, as a person would (3 tries)
    for _ in range(3):
        if nb.slider_value(SLIDER) == 0:
            break
        nb.drag_slider(SLIDER, 0.0)
        v0 = _settled(lambda: nb.slider_value(SLIDER), 20, "slider readout at its low end")
        if v0 != 0:
            nb.notes.append(f"a drag of the slider to its low end missed (it reads {v0})")
    v0 = _settled(lambda: nb.slider_value(SLIDER), 20, "slider readout at its low end")
    assert v0 == 0, f"the slider's low end reads {v0}, not 0"
    r0 = _settled(reading, timeout, f"the plot to settle at noise {v0}", quiet=1.5)
    text0 = readout()
    nb.screenshot("slider-noise-0", SLIDER)

    # 2. drag, with the mouse, to the high end
    nb.drag_slider(SLIDER, 1.0)
    v1 = _settled(lambda: nb.slider_value(SLIDER), 20, "slider readout after the drag")
    assert v1 > v0, f"dragging the slider did not raise its value ({v0} -> {v1})"
    r1 = _settled(reading, timeout, f"the plotted skip weight to change after noise {v0} -> {v1}",
                  differs_from=r0, quiet=1.5, on_timeout=lambda: f"still {reading()} (was {r0})")
    text1 = readout()
    nb.screenshot(f"slider-noise-{v1:g}", SLIDER)
    result = {"noise_low": v0, "skip_weight_low": r0[0], "skip_share_low": r0[1],
              "noise_high": v1, "skip_weight_high": r1[0], "skip_share_high": r1[1],
              "readout_low": text0, "readout_high": text1}
    assert r1[0] < r0[0], f"the skip weight should fall from noise 0 to high noise: {result}"
    if r0[1] is not None:
        assert r1[1] < r0[1], f"the skip share should fall from noise 0 to high noise: {result}"
    return result


class PointsWatch:
    """Samples the number of points in a plot (``watch`` for ``run_all``)."""

    def __init__(self, nb: NotebookPage, selector: str):
        self.nb, self.selector = nb, selector
        self.t0 = time.monotonic()
        self.samples: list[tuple[float, int]] = []
        self.shot = None
        self.tries = 0

    def __call__(self):
        n = n_points(self.nb.plot(self.selector))
        self.samples.append((round(time.monotonic() - self.t0, 1), n))
        # a screenshot while it is growing (from the third distinct non-zero count; a
        # failed one is tried again at the next samples, 3 times at most)
        if (self.shot is None and self.tries < 3
                and len({m for _, m in self.samples if m}) >= 3):
            self.tries += 1
            self.shot = self.nb.screenshot("live-running-during-run-all", self.selector)

    def growth(self) -> list[tuple[float, int]]:
        """The samples at which the count went up."""
        out, last = [], None
        for t, n in self.samples:
            if last is not None and n > last:
                out.append((t, n))
            last = n
        return out


def _button_disabled(nb: NotebookPage, selector: str):
    loc = nb.page.locator(selector)
    return loc.first.is_disabled() if loc.count() else None


def check_live(nb: NotebookPage, start_timeout: float = 120.0) -> dict:
    """Run starts a live run whose plot grows; Stop stops it (the plot stops growing)."""
    nb.wait_for(RUN)
    n0 = n_points(nb.plot(LIVE))
    has_status = nb.page.locator(STATUS).count() > 0
    status0 = nb.text(STATUS) if has_status else None
    nb.click(RUN)
    t_click = time.monotonic()

    # the first change: a reset of the plot (a new run starts from scratch) or new points
    n1 = poll(lambda: (lambda n: (n,) if n != n0 else None)(n_points(nb.plot(LIVE))),
              start_timeout, "the live plot (.ndarts-live-figure) to change after Run",
              on_timeout=nb.diagnostics)[0]
    n2 = poll(lambda: (lambda n: n if n > n1 else None)(n_points(nb.plot(LIVE))),
              start_timeout, f"the live plot to grow past {n1} points", on_timeout=nb.diagnostics)
    t_first = time.monotonic() - t_click
    n3 = poll(lambda: (lambda n: n if n > n2 else None)(n_points(nb.plot(LIVE))),
              60, f"the live plot to keep growing past {n2} points", on_timeout=nb.diagnostics)
    status_running = nb.text(STATUS) if has_status else None
    stop_enabled_running = _button_disabled(nb, STOP) is False
    nb.screenshot("live-running-after-Run", LIVE)

    nb.click(STOP)
    t_stop = time.monotonic()
    # stopped: no new points for 2 s (a last redraw after the current step is allowed)
    n_stop = _settled(lambda: n_points(nb.plot(LIVE)), 60, "the live plot to stop growing",
                      quiet=2.0, on_timeout=nb.diagnostics)
    stop_s = time.monotonic() - t_stop - 2.0
    if has_status:
        poll(lambda: nb.text(STATUS) != status_running, 30, "the status line to change on Stop")
    status_stopped = nb.text(STATUS) if has_status else None
    nb.screenshot("live-stopped", LIVE)
    time.sleep(1.0)  # and it stays stopped
    n_after = n_points(nb.plot(LIVE))
    result = {"points_before_run": n0, "points_after_reset": n1, "growing": [n2, n3],
              "at_stop": n_stop, "1s_later": n_after, "first_growth_s": round(t_first, 1),
              "stop_settled_s": round(max(stop_s, 0.0), 1), "status_before": status0,
              "status_running": status_running, "status_stopped": status_stopped,
              "stop_enabled_while_running": stop_enabled_running,
              "run_enabled_after_stop": _button_disabled(nb, RUN) is False}
    assert n3 > n2 > n1, result
    assert n_after == n_stop, f"the live plot kept growing after Stop: {result}"
    return result


def check_all(nb: NotebookPage) -> dict:
    out = {"sweep_points": n_points(check_sweep_rendered(nb))}
    out["slider"] = check_slider(nb)
    out["live"] = check_live(nb)
    return out
