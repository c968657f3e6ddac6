"""viz draws from plain data: what a figure shows must be the numbers of the result or sweep it was given."""
import statistics

import plotly.graph_objects as go
import pytest

from ndarts_edu import ablations, viz
from ndarts_edu.errors import ConfigError
from ndarts_edu.experiments import sweep, sweep_summary
from ndarts_edu.search import SearchConfig, run_search

TINY = dict(dataset="digits", space="s3", channels=4, layers=3, nodes=2, threads=1, device="cpu")


@pytest.fixture(scope="module")
def results(tiny_data):
    """DARTS and NoisyDARTS on the tiny supernet: 1 epoch of 4 steps each."""
    config = SearchConfig(epochs=1, batch_size=32, seed=0, **TINY)
    return [run_search(config, tiny_data), run_search(config.replace(noise_lambda=1.0), tiny_data)]


@pytest.fixture(scope="module")
def tiny_sweep():
    """A real sweep, 2 noise levels x 2 seeds, 2 epochs of 3 steps each."""
    return sweep(SearchConfig(epochs=2, batch_size=256, **TINY), [0.0, 1.0], [0, 1], preset="test")


def trace_values(fig, key):
    return [list(getattr(t, key)) if getattr(t, key) is not None else None for t in fig.data]


def test_weight_history_reads_steps_of_a_result_and_epochs_of_a_sweep_entry(results, tiny_sweep):
    x, label, rows = viz.weight_history(results[0])
    steps = results[0]["history"]["steps"]
    assert (x, label) == ([s["step"] for s in steps], "step")
    assert rows == [s["weights"]["normal"] for s in steps]
    entry = tiny_sweep["runs"][0]
    x, label, rows = viz.weight_history(entry, "reduce")
    assert (x, label) == ([1, 2], "epoch")
    assert rows[-1] == entry["epochs"][-1]["weights"]["reduce"]


def test_weight_history_falls_back_to_epochs_when_no_step_was_recorded(results):
    result = dict(results[0], history={"steps": [], "epochs": results[0]["history"]["epochs"]})
    x, label, rows = viz.weight_history(result)
    assert x == [e["step"] for e in result["history"]["epochs"]] and len(rows) == 1


def test_alpha_competition_draws_every_op_of_every_edge_of_every_run(results):
    fig = viz.alpha_competition(results)
    ops, edges = results[0]["ops"], len(results[0]["weights"]["normal"])
    assert len(fig.data) == len(results) * edges * len(ops)
    steps = results[1]["history"]["steps"]
    skip = ops.index("skip_connect")
    # run 1 (NoisyDARTS), edge 3, the skip op
    trace = fig.data[(1 * edges + 3) * len(ops) + skip]
    assert trace.name == "skip_connect"
    assert list(trace.y) == [s["weights"]["normal"][3][skip] for s in steps]
    assert list(trace.x) == [s["step"] for s in steps]
    titles = [a.text for a in fig.layout.annotations][:2]
    assert titles[0].startswith("DARTS (\u03bb = 0)") and titles[1].startswith("NoisyDARTS (\u03bb = 1)")
    assert f"{results[1]['skip_share']:.0%}" in titles[1]


def test_a_redrawn_figure_equals_a_fresh_one(results):
    first_step_only = [dict(r, history={"steps": r["history"]["steps"][:1], "epochs": []}) for r in results]
    fig = viz.alpha_competition(first_step_only)
    viz.apply_frame(fig, viz.alpha_competition_frame(results))
    fresh = viz.alpha_competition(results)
    assert trace_values(fig, "y") == trace_values(fresh, "y")
    assert [a.text for a in fig.layout.annotations] == [a.text for a in fresh.layout.annotations]


def test_alpha_competition_refuses_runs_of_different_spaces(results):
    other = dict(results[1], ops=["skip_connect", "sep_conv_3x3"])
    with pytest.raises(ConfigError, match="share ops"):
        viz.alpha_competition([results[0], other])
    with pytest.raises(ConfigError, match="cell"):
        viz.weight_history(results[0], "middle")


def test_final_weights_heatmap_holds_the_final_weights(results):
    fig = viz.final_weights(results, cell="reduce")
    assert [list(map(list, t.z)) for t in fig.data] == [r["weights"]["reduce"] for r in results]
    assert list(fig.data[0].x) == results[0]["ops"]


def test_skip_share_against_noise_shows_mean_and_spread_over_seeds(tiny_sweep):
    fig = viz.skip_share_vs_noise(tiny_sweep, noise_lambda=1.0)
    band, seeds, mean, marker = fig.data
    rows = sweep_summary(tiny_sweep)
    assert list(mean.x) == [0.0, 1.0]
    assert list(mean.y) == [r["skip_share_mean"] for r in rows]
    assert sorted(seeds.y) == sorted(r["skip_share"] for r in tiny_sweep["runs"])
    assert list(band.y) == [rows[0]["skip_share_max"], rows[1]["skip_share_max"],
                            rows[1]["skip_share_min"], rows[0]["skip_share_min"]]
    assert list(marker.x) == [1.0] and list(marker.y) == [rows[1]["skip_share_mean"]]


def test_sweep_view_follows_the_noise_level_and_the_seed(tiny_sweep):
    fig = viz.sweep_view(tiny_sweep, 0.0)
    heatmap = fig.data[-1]
    at_zero = [r for r in tiny_sweep["runs"] if r["noise_lambda"] == 0.0]
    mean = [[statistics.mean(v) for v in zip(*edge)] for edge in zip(*(r["weights"]["normal"] for r in at_zero))]
    assert [list(row) for row in heatmap.z] == mean
    viz.apply_frame(fig, viz.sweep_view_frame(tiny_sweep, 1.0, seed=1))
    one = next(r for r in tiny_sweep["runs"] if r["noise_lambda"] == 1.0 and r["seed"] == 1)
    assert [list(row) for row in fig.data[-1].z] == one["weights"]["normal"]
    assert list(fig.data[3].x) == [1.0]
    seed_lines = fig.data[5:7]  # after the 4 skip-share traces and DARTS's mean
    assert [t.opacity for t in seed_lines] == [0.2, 1.0]
    assert list(seed_lines[1].y) == one["skip_weight_steps"]
    assert "\u03bb = 1" in fig.layout.title.text and "seed 1" in fig.layout.title.text


def test_sweep_view_names_what_is_allowed(tiny_sweep):
    with pytest.raises(ConfigError, match=r"noise_lambda 0\.3 is not in the sweep; allowed: 0, 1"):
        viz.sweep_view_frame(tiny_sweep, 0.3)
    with pytest.raises(ConfigError, match="seed 7 is not in the sweep"):
        viz.sweep_view_frame(tiny_sweep, 1.0, seed=7)


def test_sweep_run_draws_like_a_result(tiny_sweep):
    run = viz.sweep_run(tiny_sweep, 1.0, 0)
    assert run["ops"] == tiny_sweep["ops"] and run["config"]["noise_lambda"] == 1.0
    assert viz.run_title(run).startswith("NoisyDARTS")
    assert len(viz.alpha_competition([viz.sweep_run(tiny_sweep, 0.0, 0), run]).data) == 2 * 5 * 3


def test_cell_graph_colours_each_kept_op_and_counts_the_skips():
    genotype = {"normal": [["skip_connect", 0], ["sep_conv_3x3", 1], ["skip_connect", 1], ["skip_connect", 2]],
                "normal_concat": [2, 3]}
    fig = viz.cell_graph(genotype, title="by hand")
    edges = [t for t in fig.data if t.mode == "lines" and t.line.dash is None]
    assert len(edges) == 4
    assert [t.line.color for t in edges] == [viz.OP_COLORS[op] for op, _ in genotype["normal"]]
    assert edges[0].line.width > edges[1].line.width  # skip edges drawn thicker
    assert fig.layout.annotations[0].text == "by hand: 3 skip of 4 ops"


def test_edge_labels_follow_the_edge_order():
    assert viz.edge_labels(5) == ["c\u2096\u208b\u2082\u21920", "c\u2096\u208b\u2081\u21920",
                                  "c\u2096\u208b\u2082\u21921", "c\u2096\u208b\u2081\u21921", "0\u21921"]


def test_live_mode_is_chosen_by_argument_then_environment(monkeypatch):
    monkeypatch.setenv(viz.LIVE_ENV, "static")
    assert viz.live_mode() == "static"
    assert viz.live_mode("widget") == "widget"
    monkeypatch.setenv(viz.LIVE_ENV, "fancy")
    with pytest.raises(ConfigError, match="'fancy'; allowed: auto, widget, static"):
        viz.live_mode()


@pytest.mark.parametrize("mode", ["static", "widget"])
def test_live_figure_redraws_in_place(results, mode):
    live = viz.LiveFigure(viz.alpha_competition(results), mode=mode, css_class="ndarts-test")
    assert isinstance(live.figure, go.FigureWidget) == (mode == "widget")
    assert (live.widget is not None) == (mode == "widget")
    if mode == "widget":
        assert "ndarts-test" in live.widget._dom_classes
    empty = [dict(r, history={"steps": [], "epochs": []}) for r in results]
    live.redraw(viz.alpha_competition_frame(empty))
    assert live.redraws == 1 and all(len(t.y) == 0 for t in live.figure.data)


def test_cell_graphs_draw_pairs_and_fairdarts_triples_on_their_nodes():
    pairs = {"normal": [["skip_connect", 0], ["sep_conv_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 0]],
             "normal_concat": [2, 3]}
    triples = {"normal": [["sep_conv_3x3", 1, 3], ["skip_connect", 0, 3]], "normal_concat": [2, 3]}
    fig = viz.cell_graphs([pairs, triples], titles=["DARTS", "FairDARTS"])
    hovers = [t.text for t in fig.data if t.hoverinfo == "text"]
    c1, c2 = viz.state_name(1), viz.state_name(0)
    assert hovers == [f"skip_connect: {c2} \u2192 0", f"sep_conv_3x3: {c1} \u2192 0",
                      "skip_connect: 0 \u2192 1", f"max_pool_3x3: {c2} \u2192 1",
                      f"sep_conv_3x3: {c1} \u2192 1", f"skip_connect: {c2} \u2192 1"]
    assert [a.text for a in fig.layout.annotations] == ["DARTS: 2 skip of 4 ops", "FairDARTS: 1 skip of 2 ops"]


def test_ablation_bars_show_each_variants_mean_and_every_seed():
    data = ablations.load_ablations()
    rows = ablations.ablation_summary(data)
    fig = viz.ablation_bars(data)
    bars = [t for t in fig.data if t.type == "bar"]
    dots = [t for t in fig.data if t.type == "scatter"]
    assert len(bars) == len(dots) == 2
    for bar, dot, measure in zip(bars, dots, ("skip_share", "valid_accuracy")):
        assert list(bar.y) == [row["label"] for row in rows][::-1]
        assert list(bar.x) == [row[f"{measure}_mean"] for row in rows][::-1]
        finished = [r for r in data["runs"] if r["status"] == "finished"]
        assert sorted(zip(dot.y, dot.x)) == sorted((next(row["label"] for row in rows if row["key"] == r["variant"]),
                                                    r[measure]) for r in finished)


def test_skip_share_by_epoch_draws_each_runs_history(results):
    fig = viz.skip_share_by_epoch(results)
    assert [t.name for t in fig.data] == [viz.run_title(r) for r in results]
    for trace, run in zip(fig.data, results):
        assert list(trace.y) == [e["skip_share"] for e in run["history"]["epochs"]]
        assert list(trace.x) == [e["epoch"] for e in run["history"]["epochs"]]
    assert fig.data[0].line.color == viz.OP_COLORS["skip_connect"] and fig.data[1].line.color is None


def test_live_mode_auto_draws_plain_figures_on_colab(monkeypatch):
    # Colab's widget frontend leaves plotly's FigureWidget blank (open bugs): auto picks the
    # display-handle figure there, and NDARTS_EDU_LIVE=widget still asks for the widget.
    monkeypatch.delenv(viz.LIVE_ENV, raising=False)
    assert viz.live_mode() == "widget"  # anywidget and ipywidgets are installed here
    monkeypatch.setattr(viz, "on_colab", lambda: True)
    assert viz.live_mode() == "static"
    monkeypatch.setenv(viz.LIVE_ENV, "widget")
    assert viz.live_mode() == "widget"


def test_plain_turns_arrays_and_tensors_into_lists():
    import numpy as np
    import torch

    value = {"x": np.arange(3.0), "z": [torch.tensor([0.5, 0.25])], "name": "skip",
             "n": np.float32(2)}
    assert viz.plain(value) == {"x": [0.0, 1.0, 2.0], "z": [[0.5, 0.25]], "name": "skip", "n": 2.0}
    assert type(viz.plain(value)["n"]) is float


def _arrays_in(value):
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return 1
    if isinstance(value, dict):
        return sum(_arrays_in(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(_arrays_in(v) for v in value)
    return 0


def test_every_trace_value_goes_to_plotly_as_plain_lists(results, tiny_sweep):
    # numpy arrays reach plotly.js as typed arrays, which Colab's widget frontend does not draw
    figures = [viz.alpha_competition(results), viz.final_weights(results),
               viz.sweep_view(tiny_sweep, 1.0), viz.skip_share_vs_noise(tiny_sweep, 0.0),
               viz.noise_page_figure(tiny_sweep)]
    for fig in figures:
        assert _arrays_in([t.to_plotly_json() for t in fig.data]) == 0
        assert _arrays_in([f.to_plotly_json() for f in fig.frames]) == 0


def test_figure_widgets_share_one_copy_of_plotlys_bundle(results):
    # A FigureWidget's state carried plotly's ~5 MB bundle (_esm), saved with every figure of an
    # executed notebook. Here each figure's state holds a small loader and names one shared model.
    first = viz.figure_widget(viz.alpha_competition(results))
    second = viz.figure_widget(viz.final_weights(results))
    assert isinstance(first, go.FigureWidget)
    states = [first.get_state(), second.get_state()]
    assert all(len(state["_esm"]) < 5_000 for state in states)
    assert states[0]["_bundle"] == states[1]["_bundle"] == f"IPY_MODEL_{first._bundle.model_id}"
    bundle = first._bundle.get_state()["code"]
    shipped = go.FigureWidget()._esm  # what plotly itself would send with every figure
    assert len(bundle) > 1_000_000 and bundle == str(shipped)


def test_static_figures_on_colab_wait_for_plotly_to_load(results, monkeypatch):
    fig = viz.alpha_competition(results)
    assert viz.static_bundle(fig) == fig._repr_mimebundle_()  # elsewhere: plotly's own output
    monkeypatch.setattr(viz, "on_colab", lambda: True)
    html = viz.static_bundle(fig)["text/html"]
    assert "window.Plotly" in html and 'addEventListener("load", draw)' in html
    assert fig.to_json() in html  # the whole figure, as plotly's JSON
    live = viz.LiveFigure(viz.alpha_competition(results), mode="static")
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *a, **k: shown.append(a[0]) or None)
    live.show()
    assert list(shown[0]) == ["text/html"]
