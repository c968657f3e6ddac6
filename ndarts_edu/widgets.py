"""Controls for the notebooks: the noise slider on the shipped sweep, and a live side-by-side
search.

- ``NoiseSweepExplorer``: a slider over the noise levels of a sweep (``experiments.sweep``; the
  one shipped with the package by default). It answers at once because nothing is trained: it
  redraws ``viz.sweep_view`` from saved numbers.
- ``LiveComparison``: DARTS (noise 0) and NoisyDARTS (the slider's noise) searched side by side in
  a background thread, redrawn about twice a second, with a Stop button.

This is the only module that starts threads and owns ipywidgets; it trains through
``Search.run``'s callbacks and draws through ``viz``. Callbacks never print: what a user should
see goes to a status widget. Every button has a plain method (``set_noise``, ``start``, ``stop``,
``join``) that tests and notebook cells call directly.

Why a thread: while a cell runs, the kernel does not read browser events (a click on Stop would
wait for the cell to end), but it does send widget updates. So ``start`` returns at once and the
search runs beside the kernel. A cell that calls ``join`` blocks the events again until the run
ends: put it after the cell that starts the run.

CSS classes, for styling and browser tests (``widget.add_class``):

- ``ndarts-noise-slider``: the sweep's noise slider (``SelectionSlider``, description "noise λ")
- ``ndarts-sweep-seed``: the sweep's seed choice
- ``ndarts-sweep-readout``: the sentence under the sweep's slider
- ``ndarts-sweep-figure``: the sweep's figure (a ``FigureWidget``; none in static mode)
- ``ndarts-live-noise-slider``, ``ndarts-noise-kind``, ``ndarts-noise-mean``, ``ndarts-live-seed``:
  the live run's noise settings (``FloatSlider`` "noise λ", ``Dropdown``, ``FloatText``,
  ``BoundedIntText``)
- ``ndarts-run``, ``ndarts-stop``: the buttons "Run" and "Stop"
- ``ndarts-progress``: the live run's progress bar
- ``ndarts-status``: the live run's status line (errors show here too)
- ``ndarts-live-figure``: the live run's figure (a ``FigureWidget``; none in static mode)

In JupyterLab the class sits on the plot element itself: ``.js-plotly-plot.ndarts-sweep-figure``
(its ``.data`` is the figure's data), ``.js-plotly-plot.ndarts-live-figure``. The sweep's figure is
the first plotly figure of notebook 01.
"""
import html
import os
import threading
import time

import ipywidgets as w
import torch

from . import repro, viz
from .errors import ConfigError, check_choice, check_number
from .experiments import load_sweep
from .noise import NOISE_KINDS
from .ops import space_ops
from .presets import preset_config, preset_noise
from .search import Search

# twice a second: live enough to watch, and a browser redrawing 28 subplots in software (no GPU)
# then spends half a core on it, not all of one (measured at 5 a second: tests/browser/README.md)
REDRAWS_PER_SECOND = 2
ALL_SEEDS = "all"


class Throttle:
    """``ready()`` is true at most once per ``interval`` seconds (plotly has no throttle of its
    own)."""

    def __init__(self, interval=1 / REDRAWS_PER_SECOND):
        self.interval = interval
        self.last = float("-inf")

    def ready(self):
        now = time.perf_counter()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


def live_threads(preset_threads=None):
    """Torch threads for a live run: one core fewer than the machine has (at least 1), so that the
    kernel keeps a core to answer the browser; never more than the preset asks for."""
    spare = max(1, (os.cpu_count() or 1) - 1)
    return min(spare, preset_threads) if preset_threads else spare


def warm_up_torch():
    """Build one optimizer: the first in a process imports ``torch._dynamo``, which takes seconds.
    Paying that when a panel is built keeps the first redraw after Run quick."""
    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)


def _tagged(widget, css_class):
    widget.add_class(css_class)
    return widget


def _show(box, live):
    from IPython.display import display

    display(box)
    # static mode: the figure goes below the controls, through a display handle
    if live.widget is None:
        live.show()


# -- the slider on a precomputed sweep ----------------------------------------------------------
class NoiseSweepExplorer:
    """A noise slider over a sweep: moving it redraws ``viz.sweep_view`` for that noise level.

    Args:
        sweep: a sweep dict (``experiments.sweep`` / ``load_sweep(path)``); default: the shipped
            one.
        noise_lambda: where the slider starts (default: the sweep's lowest noise, plain DARTS).
        seed: ``None`` for the mean over seeds, or one of the sweep's seeds.
        mode: ``"widget"``, ``"static"`` or ``None`` for ``$NDARTS_EDU_LIVE`` (see
            ``viz.live_mode``).
    """

    def __init__(self, sweep=None, noise_lambda=None, seed=None, mode=None):
        self.sweep = load_sweep() if sweep is None else sweep
        lambdas = self.sweep["noise_lambdas"]
        start = lambdas[0] if noise_lambda is None else self._grid_value(noise_lambda)
        config = self.sweep["config"]
        self.slider = _tagged(w.SelectionSlider(
            options=[(f"{lam:g}", lam) for lam in lambdas], value=start, description="noise \u03bb",
            continuous_update=True, layout=w.Layout(width="420px")), "ndarts-noise-slider")
        kind, mean = config.get("noise_kind", "gaussian"), config.get("noise_mean", 0)
        self.noise_label = w.HTML(f"{html.escape(kind)} noise, mean \u03bc = {mean:g}, "
                                  f"\u03c3 = \u03bb\u00b7std(x), on the skip op")
        self.seed_choice = _tagged(w.Dropdown(
            # "all" rather than None: ipywidgets 8 shows a None value as an empty choice
            options=[("all seeds", ALL_SEEDS)] + [(f"seed {s}", s) for s in self.sweep["seeds"]],
            value=ALL_SEEDS if seed is None else seed, description="seed",
            layout=w.Layout(width="180px")), "ndarts-sweep-seed")
        self.readout = _tagged(w.HTML(), "ndarts-sweep-readout")
        self.live = viz.LiveFigure(viz.sweep_view(self.sweep, start, seed), mode,
                                   css_class="ndarts-sweep-figure")
        self.last_redraw_seconds = None
        self._write_readout()
        self.slider.observe(self._on_change, names="value")
        self.seed_choice.observe(self._on_change, names="value")
        controls = w.HBox([self.slider, self.seed_choice, self.noise_label])
        self.box = w.VBox([controls, self.readout]
                          + ([self.live.widget] if self.live.widget else []))

    # -- plain methods ------------------------------------------------------------------------
    @property
    def noise_lambda(self):
        return self.slider.value

    @property
    def seed(self):
        """The seed shown, or ``None`` for the mean over seeds."""
        return None if self.seed_choice.value == ALL_SEEDS else self.seed_choice.value

    @property
    def figure(self):
        """The figure as it is now (a ``FigureWidget`` in widget mode)."""
        return self.live.figure

    def set_noise(self, noise_lambda):
        """Move the slider to ``noise_lambda`` (one of the sweep's levels); the figure follows."""
        self.slider.value = self._grid_value(noise_lambda)

    def set_seed(self, seed):
        """Show one seed (``None``: the mean over seeds)."""
        if seed is not None and seed not in self.sweep["seeds"]:
            raise ConfigError(f"seed {seed!r} is not in the sweep; allowed: None, "
                              f"{', '.join(map(str, self.sweep['seeds']))}")
        self.seed_choice.value = ALL_SEEDS if seed is None else seed

    def summary(self):
        """The sweep's numbers at the slider's noise level (``experiments.sweep_summary``'s row)."""
        return viz.sweep_row(self.sweep, self.noise_lambda)

    def redraw(self):
        started = time.perf_counter()
        self.live.redraw(viz.sweep_view_frame(self.sweep, self.noise_lambda, self.seed))
        self._write_readout()
        self.last_redraw_seconds = time.perf_counter() - started

    # -- internals ----------------------------------------------------------------------------
    def _grid_value(self, noise_lambda):
        value = check_number("noise_lambda", noise_lambda, minimum=0.0)
        match = [lam for lam in self.sweep["noise_lambdas"] if abs(lam - value) < 1e-9]
        if not match:
            allowed = ", ".join(f"{lam:g}" for lam in self.sweep["noise_lambdas"])
            raise ConfigError(f"noise_lambda {noise_lambda!r} is not in the sweep; "
                              f"allowed: {allowed}")
        return match[0]

    def _on_change(self, change):
        try:
            self.redraw()
        except Exception as error:  # a callback must not print: say it where the user looks
            self.readout.value = ("<span style='color:#b00'>cannot draw: "
                                  f"{html.escape(str(error))}</span>")

    def _write_readout(self):
        row = self.summary()
        self.readout.value = (
            f"<b>\u03bb = {row['noise_lambda']:g}</b>: skip is the strongest op on "
            f"<b>{row['skip_share_mean']:.0%}</b> of the normal cell's edges "
            f"(mean of {row['seeds']} seeds, {row['skip_share_min']:.0%} to "
            f"{row['skip_share_max']:.0%}); the derived normal cell keeps "
            f"{row['genotype_skips_mean']:.1f} skip connections; "
            f"supernet accuracy {row['valid_accuracy_mean']:.1%}")

    def _ipython_display_(self):
        _show(self.box, self.live)


# -- a live search, DARTS next to NoisyDARTS ----------------------------------------------------
def _take_one_step(search, on_step):
    """Advance ``search`` by one step through its own ``run``, which returns when ``stop`` is set:
    two searches that take turns step by step grow side by side in one thread."""
    turn_over = threading.Event()

    def step_then_yield(record):
        on_step(search, record)
        turn_over.set()

    search.run(on_step=step_then_yield, stop=turn_over)


class LiveComparison:
    """DARTS and NoisyDARTS searched side by side, live, with a Run and a Stop button.

    Both searches take turns, one step each, in one background thread. Each keeps its own state of
    the random generators (torch's, Python's) from its turn to the next, so its draws (the noise,
    the skip drop-path) are those it would make alone: each search gives the same result as on its
    own with the same thread count, bit for bit (and within ``experiments.reproduction_gaps`` of a
    shipped search of the same settings made on another CPU: its skip share, derived cell and
    accuracy; the weights themselves move further).

    Args:
        preset: the preset to search with (``presets.PRESETS``).
        noise_lambda: NoisyDARTS's noise (default: the preset's).
        seed: the seed of both searches.
        threads: torch threads while searching (default: ``live_threads``); restored afterwards.
        mode: ``"widget"``, ``"static"`` or ``None`` for ``$NDARTS_EDU_LIVE``.
        **overrides: settings of ``SearchConfig`` that replace the preset's (``epochs=2``...).
    """

    def __init__(self, preset="cpu", noise_lambda=None, seed=0, threads=None, mode=None,
                 **overrides):
        self.preset = preset
        self.base = preset_config(preset, **overrides)
        self.threads = (int(check_number("threads", threads, minimum=1, integer=True)) if threads
                        else live_threads(self.base.threads))
        noise = (preset_noise(preset) if noise_lambda is None
                 else check_number("noise_lambda", noise_lambda, minimum=0))
        self.noise_slider = _tagged(w.FloatSlider(
            value=noise, min=0.0, max=max(2.0, 2 * noise), step=0.05, description="noise \u03bb",
            readout_format=".2f", continuous_update=False), "ndarts-live-noise-slider")
        self.kind_choice = _tagged(w.Dropdown(options=NOISE_KINDS, value=self.base.noise_kind,
                                              description="kind", layout=w.Layout(width="220px")),
                                   "ndarts-noise-kind")
        self.mean_box = _tagged(w.FloatText(value=self.base.noise_mean, description="mean \u03bc",
                                            layout=w.Layout(width="160px")), "ndarts-noise-mean")
        self.seed_box = _tagged(w.BoundedIntText(value=seed, min=0, max=2**31 - 1,
                                                 description="seed",
                                                 layout=w.Layout(width="160px")),
                                "ndarts-live-seed")
        self.run_button = _tagged(w.Button(description="Run", button_style="primary", icon="play"),
                                  "ndarts-run")
        self.stop_button = _tagged(w.Button(description="Stop", icon="stop", disabled=True),
                                   "ndarts-stop")
        self.progress = _tagged(w.IntProgress(value=0, min=0, max=1, description="progress"),
                                "ndarts-progress")
        self.status = _tagged(w.HTML("press Run to search"), "ndarts-status")
        self.run_button.on_click(lambda _: self._start_from_button())
        self.stop_button.on_click(lambda _: self.stop())

        warm_up_torch()
        self.searches, self.results, self.error = [], None, None
        self.timings = {}
        self._thread, self._stop = None, threading.Event()
        self._throttle = Throttle()
        self.live = viz.LiveFigure(viz.alpha_competition(self._placeholders(self.configs())), mode,
                                   css_class="ndarts-live-figure")
        noise = w.HBox([self.noise_slider, self.kind_choice, self.mean_box, self.seed_box])
        # the status on a line of its own: its text changes with every redraw, and beside the
        # buttons its changing width would move them (a Stop that moves is hard to press)
        buttons = w.HBox([self.run_button, self.stop_button, self.progress])
        self.box = w.VBox([noise, buttons, self.status]
                          + ([self.live.widget] if self.live.widget else []))

    # -- plain methods ------------------------------------------------------------------------
    @property
    def figure(self):
        return self.live.figure

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def set_noise(self, noise_lambda, kind=None, mean=None):
        """Set NoisyDARTS's noise for the next run (``ConfigError`` for a value the search
        refuses)."""
        value = check_number("noise_lambda", noise_lambda, minimum=0.0)
        if value > self.noise_slider.max:
            self.noise_slider.max = value
        self.noise_slider.value = value
        if kind is not None:
            self.kind_choice.value = check_choice("noise kind", kind, NOISE_KINDS)
        if mean is not None:
            self.mean_box.value = check_number("noise mean", mean)

    def configs(self):
        """The two searches the controls describe now: DARTS (no noise at all), then NoisyDARTS."""
        common = dict(seed=int(self.seed_box.value), threads=self.threads)
        darts = self.base.replace(noise_lambda=0.0, noise_mean=0.0, **common)
        noisy = self.base.replace(noise_lambda=float(self.noise_slider.value),
                                  noise_kind=self.kind_choice.value,
                                  noise_mean=float(self.mean_box.value), **common)
        return [darts.validate(), noisy.validate()]

    def start(self):
        """Start both searches in a background thread (what Run does); returns at once."""
        if self.running:
            raise ConfigError("a live run is going on; stop it (stop()) or wait for it (join()) "
                              "first")
        configs = self.configs()
        self.searches, self.results, self.error = [], None, None
        self._stop = threading.Event()
        self._throttle = Throttle()
        self.timings = {"started": time.perf_counter()}
        self.live.redraw(viz.alpha_competition_frame(self._placeholders(configs)))
        self._set_running(True)
        self.status.value = "building the supernets\u2026"
        self._thread = threading.Thread(target=self._work, args=(configs,), name="ndarts-live-run",
                                        daemon=True)
        self._thread.start()

    def stop(self):
        """Ask the run to stop after the round of steps it is taking (what Stop does)."""
        self.timings.setdefault("stop_pressed", time.perf_counter())
        self._stop.set()

    def join(self, timeout=None):
        """Wait for the run; ``True`` once it has ended. Re-raises an error of the run.

        While this waits, the kernel reads no browser events (Stop included)."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return False
        if self.error is not None:
            raise self.error
        return True

    # -- the background thread ----------------------------------------------------------------
    def _work(self, configs):
        previous_threads = repro.set_threads(None)
        try:
            # Each search seeds the generators as it is built; its state is kept from then on, and
            # put back for each of its turns, so the two never draw from each other's stream.
            self.searches, states = [], []
            for config in configs:
                self.searches.append(Search(config))
                states.append(repro.rng_state())
            self.progress.max = sum(s.config.epochs * s.steps_per_epoch for s in self.searches)
            while not self._stop.is_set() and not all(s.done for s in self.searches):
                # a round: one step each, so both stop at the same step
                for k, search in enumerate(self.searches):
                    if not search.done:
                        repro.set_rng_state(states[k])
                        _take_one_step(search, self._on_step)
                        states[k] = repro.rng_state()
            self.results = [s.result() for s in self.searches]
            self._redraw()
            self._report_end()
        except Exception as error:  # shown in the status line; Run starts afresh
            self.error = error
            self.status.value = ("<span style='color:#b00'>the run failed: "
                                 f"{html.escape(type(error).__name__)}: "
                                 f"{html.escape(str(error))} (press Run to start again)</span>")
        finally:
            repro.set_threads(previous_threads)
            self.timings["ended"] = time.perf_counter()
            self._set_running(False)

    def _on_step(self, search, record):
        if self._throttle.ready():
            self._redraw()

    def _redraw(self):
        self.live.redraw(viz.alpha_competition_frame(self._snapshots()))
        done = sum(s.step for s in self.searches)
        self.progress.value = done
        if "first_redraw" not in self.timings and done:
            self.timings["first_redraw"] = time.perf_counter()
        if self.results is None:
            elapsed = time.perf_counter() - self.timings["started"]
            self.status.value = f"searching: step {done} of {self.progress.max}, {elapsed:.0f} s"

    def _report_end(self):
        skips = [r["genotype_skips"] for r in self.results]
        seconds = time.perf_counter() - self.timings["started"]
        if all(r["status"] == "finished" for r in self.results):
            self.status.value = (f"finished in {seconds:.0f} s: the derived normal cell keeps "
                                 f"{skips[0]} skip connections with DARTS, {skips[1]} with "
                                 "NoisyDARTS")
        else:
            self.status.value = (f"stopped after {seconds:.0f} s at step {self.progress.value} of "
                                 f"{self.progress.max} (press Run to start again)")

    def _snapshots(self):
        """What ``viz`` needs of each search, as plain data (the live history, not a copy)."""
        return [{"ops": s.op_names, "config": s.config.to_dict(), "history": s.history}
                for s in self.searches]

    @staticmethod
    def _placeholders(configs):
        return [{"ops": list(space_ops(c.space)), "config": c.to_dict(),
                 "history": {"steps": [], "epochs": []}}
                for c in configs]

    def _set_running(self, running):
        for control in (self.noise_slider, self.kind_choice, self.mean_box, self.seed_box,
                        self.run_button):
            control.disabled = running
        self.stop_button.disabled = not running

    def _start_from_button(self):
        try:
            self.start()
        except ConfigError as error:
            self.status.value = f"<span style='color:#b00'>{html.escape(str(error))}</span>"

    def _ipython_display_(self):
        _show(self.box, self.live)


__all__ = ["LiveComparison", "NoiseSweepExplorer", "Throttle", "live_threads"]
