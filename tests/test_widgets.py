"""The widgets, driven through their callbacks and plain methods, without a browser.

The sweep slider must redraw the figure from the sweep's numbers; a live run must train in a
thread, stop on request, report a failure in its status line and start again; nothing may print.
"""
import statistics
import time

import pytest
import torch

from ndarts_edu import widgets
from ndarts_edu.errors import ConfigError
from ndarts_edu.experiments import sweep, sweep_summary
from ndarts_edu.search import SearchConfig, run_search

TINY = dict(dataset="digits", space="s3", channels=4, layers=3, nodes=2, threads=1, device="cpu")
# the quick preset cut to 3 steps per epoch: a whole live run takes a second or two
SHORT = dict(epochs=1, batch_size=256)


@pytest.fixture(scope="module")
def tiny_sweep():
    return sweep(SearchConfig(epochs=1, batch_size=256, **TINY), [0.0, 0.5, 1.0], [0, 1], preset="test")


def mean_weights(runs):
    return [[statistics.mean(v) for v in zip(*edge)] for edge in zip(*(r["weights"]["normal"] for r in runs))]


def wait_for(condition, timeout=60.0):
    deadline = time.perf_counter() + timeout
    while not condition():
        assert time.perf_counter() < deadline, "timed out"
        time.sleep(0.02)


# -- the sweep slider ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["static", "widget"])
def test_moving_the_slider_redraws_from_the_sweep(tiny_sweep, mode, capsys):
    explorer = widgets.NoiseSweepExplorer(tiny_sweep, mode=mode)
    assert explorer.noise_lambda == 0.0
    rows = {r["noise_lambda"]: r for r in sweep_summary(tiny_sweep)}
    for lam in (1.0, 0.5, 0.0):
        explorer.slider.value = lam  # what a drag in the browser does
        fig = explorer.figure
        assert list(fig.data[3].x) == [lam]  # the marker on the skip-share curve
        assert list(fig.data[3].y) == [rows[lam]["skip_share_mean"]]
        at_lam = [r for r in tiny_sweep["runs"] if r["noise_lambda"] == lam]
        assert [list(row) for row in fig.data[-1].z] == mean_weights(at_lam)
        assert f"{rows[lam]['skip_share_mean']:.0%}" in explorer.readout.value
        assert f"\u03bb = {lam:g}" in fig.layout.title.text
    assert capsys.readouterr().out == ""


def test_the_seed_choice_shows_one_seed(tiny_sweep):
    explorer = widgets.NoiseSweepExplorer(tiny_sweep, noise_lambda=1.0, mode="static")
    explorer.set_seed(1)
    one = next(r for r in tiny_sweep["runs"] if r["noise_lambda"] == 1.0 and r["seed"] == 1)
    assert [list(row) for row in explorer.figure.data[-1].z] == one["weights"]["normal"]
    explorer.set_seed(None)
    assert "mean over seeds" in explorer.figure.layout.title.text


def test_set_noise_accepts_only_the_sweeps_levels(tiny_sweep):
    explorer = widgets.NoiseSweepExplorer(tiny_sweep, mode="static")
    explorer.set_noise(1)
    assert explorer.noise_lambda == 1.0 and explorer.summary()["noise_lambda"] == 1.0
    with pytest.raises(ConfigError, match=r"noise_lambda 0\.3 is not in the sweep; allowed: 0, 0\.5, 1"):
        explorer.set_noise(0.3)
    with pytest.raises(ConfigError, match="seed 9 is not in the sweep; allowed: None, 0, 1"):
        explorer.set_seed(9)
    with pytest.raises(ConfigError, match="noise_lambda must be >= 0"):
        widgets.NoiseSweepExplorer(tiny_sweep, noise_lambda=-1, mode="static")


def test_a_drawing_error_shows_in_the_readout(tiny_sweep):
    explorer = widgets.NoiseSweepExplorer(tiny_sweep, mode="static")
    explorer.sweep = dict(tiny_sweep, runs=[r for r in tiny_sweep["runs"] if r["noise_lambda"] != 1.0])
    explorer.slider.value = 1.0
    assert "cannot draw" in explorer.readout.value and "not in the sweep" in explorer.readout.value


def test_controls_carry_the_names_a_browser_test_looks_for(tiny_sweep):
    explorer = widgets.NoiseSweepExplorer(tiny_sweep, mode="widget")
    assert explorer.slider.description == "noise \u03bb"
    assert "ndarts-noise-slider" in explorer.slider._dom_classes
    assert "ndarts-sweep-figure" in explorer.live.widget._dom_classes
    assert explorer.live.widget in explorer.box.children
    live = widgets.LiveComparison("quick", mode="widget", **SHORT)
    assert (live.run_button.description, live.stop_button.description) == ("Run", "Stop")
    for widget, name in [(live.run_button, "ndarts-run"), (live.stop_button, "ndarts-stop"),
                         (live.status, "ndarts-status"), (live.live.widget, "ndarts-live-figure")]:
        assert name in widget._dom_classes
        assert name in widgets.__doc__


# -- the live run --------------------------------------------------------------------------------
def test_a_live_run_gives_the_same_results_as_each_search_alone(capsys):
    live = widgets.LiveComparison("quick", noise_lambda=0.5, seed=1, mode="static", threads=1, **SHORT)
    threads_before = torch.get_num_threads()
    live.start()
    assert live.running and live.stop_button.disabled is False and live.run_button.disabled is True
    assert live.join(timeout=120)
    darts, noisy = live.configs()
    alone = [run_search(darts), run_search(noisy)]
    for side_by_side, solo in zip(live.results, alone):
        assert side_by_side["status"] == "finished"
        assert side_by_side["weights"] == solo["weights"]
        assert side_by_side["genotype"] == solo["genotype"]
    assert live.results[0]["config"]["noise_lambda"] == 0.0 and live.results[1]["config"]["noise_lambda"] == 0.5
    # the figure shows both histories, and the status the derived cells' skips
    ops, edges = live.results[0]["ops"], len(live.results[0]["weights"]["normal"])
    skip = ops.index("skip_connect")
    noisy_edge0_skip = live.figure.data[edges * len(ops) + skip]
    assert list(noisy_edge0_skip.y) == [s["weights"]["normal"][0][skip] for s in live.results[1]["history"]["steps"]]
    assert "finished" in live.status.value and str(live.results[1]["genotype_skips"]) in live.status.value
    assert live.progress.value == live.progress.max
    assert torch.get_num_threads() == threads_before
    assert live.run_button.disabled is False and live.stop_button.disabled is True
    assert capsys.readouterr().out == ""


def test_searches_that_draw_while_they_train_keep_their_own_random_numbers():
    # With the skip drop-path (the paper preset's 0.3) DARTS draws too: taking turns must not make
    # the two searches draw from each other's stream.
    live = widgets.LiveComparison("quick", noise_lambda=0.5, seed=1, mode="static", threads=1,
                                  skip_drop_path=0.3, **SHORT)
    live.start()
    assert live.join(timeout=120)
    for side_by_side, config in zip(live.results, live.configs()):
        assert side_by_side["weights"] == run_search(config)["weights"]


def test_stop_ends_a_live_run_and_run_starts_it_again():
    live = widgets.LiveComparison("quick", mode="static", threads=1, epochs=2)
    live.run_button.click()
    wait_for(lambda: "first_redraw" in live.timings)
    live.stop_button.click()
    assert live.join(timeout=60)
    assert [r["status"] for r in live.results] == ["stopped", "stopped"]
    assert live.progress.value < live.progress.max
    assert "stopped" in live.status.value
    assert live.timings["ended"] >= live.timings["stop_pressed"]
    live.start()  # a stopped run can start afresh
    wait_for(lambda: "first_redraw" in live.timings)
    live.stop()
    assert live.join(timeout=60) and live.results[0]["steps_done"] >= 1


def test_a_failure_in_the_run_shows_in_the_status_and_run_works_again(monkeypatch):
    class Broken:
        def __init__(self, config):
            raise RuntimeError("the data went missing")

    monkeypatch.setattr(widgets, "Search", Broken)
    live = widgets.LiveComparison("quick", mode="static", **SHORT)
    live.start()
    with pytest.raises(RuntimeError, match="the data went missing"):
        live.join(timeout=60)
    assert "the data went missing" in live.status.value and "press Run" in live.status.value
    assert live.run_button.disabled is False
    monkeypatch.undo()
    live.start()
    assert live.join(timeout=120) and live.error is None and "finished" in live.status.value


def test_one_run_at_a_time_and_bad_settings_are_named():
    live = widgets.LiveComparison("quick", mode="static", **SHORT)
    live.start()
    with pytest.raises(ConfigError, match="a live run is going on"):
        live.start()
    live.stop()
    live.join(timeout=60)
    with pytest.raises(ConfigError, match="noise_lambda must be >= 0"):
        live.set_noise(-0.1)
    with pytest.raises(ConfigError, match="unknown noise kind 'pink'"):
        live.set_noise(0.2, kind="pink")
    with pytest.raises(ConfigError, match="unknown preset 'gpu'"):
        widgets.LiveComparison("gpu")
    live.set_noise(3.0, kind="uniform", mean=0.5)
    noisy = live.configs()[1]
    assert (noisy.noise_lambda, noisy.noise_kind, noisy.noise_mean) == (3.0, "uniform", 0.5)
    assert live.configs()[0].noise_lambda == 0.0 and live.configs()[0].noise_mean == 0.0


def test_a_button_error_goes_to_the_status_line():
    live = widgets.LiveComparison("quick", mode="static", **SHORT)
    live.mean_box.value = float("inf")
    live.run_button.click()
    assert "noise_mean must be a finite number" in live.status.value and not live.running


def test_throttle_lets_one_redraw_through_per_interval():
    throttle = widgets.Throttle(interval=3600)
    assert [throttle.ready() for _ in range(3)] == [True, False, False]


def test_live_threads_leave_the_kernel_a_core(monkeypatch):
    monkeypatch.setattr(widgets.os, "cpu_count", lambda: 2)
    assert widgets.live_threads() == 1 and widgets.live_threads(4) == 1
    monkeypatch.setattr(widgets.os, "cpu_count", lambda: 16)
    assert widgets.live_threads() == 15 and widgets.live_threads(2) == 2
