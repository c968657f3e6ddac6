"""Figures of a search, drawn with plotly from plain data alone.

Every view reads what a search hands out (a result dict as in ``result.json``, the live
``Search.history``, an entry of the noise sweep), so a saved result draws exactly like a live run.

- ``alpha_competition``: the weights ``f(alpha)`` of each op over the steps, edge by edge, one
  column per run on shared axes (DARTS next to NoisyDARTS).
- ``final_weights``: the last weights of a cell as a heatmap (edges x ops).
- ``skip_share_by_epoch``: where each search was heading, epoch by epoch.
- ``skip_share_vs_noise`` and ``sweep_view``: the noise sweep, ``skip_share`` against ``lambda``
  (mean and spread over seeds), and what one noise level looks like (what the slider shows).
- ``cell_graph`` / ``cell_graphs``: the derived cell as a graph (no graphviz needed).
- ``ablation_bars``: the ablations (``ablations.py``), skip share and supernet accuracy per variant.
- ``noise_page``: the slider of ``sweep_view`` as one HTML page of plotly frames, for a browser with
  no kernel and no network (``python -m ndarts_edu page``).

A view that is redrawn comes as a pair: ``view(...)`` builds the figure (layout, styles) once and
``view_frame(...)`` computes only what changes, a ``Frame``; ``apply_frame`` writes a frame into
the figure with one ``plotly_restyle`` per kind of trace, which is some 10x cheaper than setting
trace attributes one by one (it matters at 5 redraws a second). ``LiveFigure`` shows a figure so
that it can be redrawn in place: a ``FigureWidget`` where anywidget is installed, else a display
handle, chosen by the ``NDARTS_EDU_LIVE`` environment variable (``auto``, ``widget``, ``static``;
``auto`` is ``static`` on Colab). Trace data go to plotly as plain lists (``plain``), and the
widgets share one copy of plotly's widget code (``figure_widget``).
"""
import functools
import hashlib
import html
import importlib.util
import json
import math
import os
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import ablations, derive
from .errors import ConfigError, check_choice
from .experiments import sweep_summary
from .network import CELL_TYPES, edge_inputs
from .ops import NONE, SKIP


OP_COLORS = {
    SKIP: "#d62728",  # the op that wins unfairly: red everywhere
    NONE: "#9e9e9e",
    "sep_conv_3x3": "#1f77b4",
    "sep_conv_5x5": "#6baed6",
    "dil_conv_3x3": "#2ca02c",
    "dil_conv_5x5": "#98df8a",
    "max_pool_3x3": "#9467bd",
    "avg_pool_3x3": "#ff7f0e",
}
FONT = dict(family="Helvetica, Arial, sans-serif", size=13)


# -- names ---------------------------------------------------------------------------------------
def state_name(state):
    """States of a cell: 0 and 1 are the two previous cells' outputs, 2, 3, ... its own nodes."""
    return ("c\u2096\u208b\u2082", "c\u2096\u208b\u2081")[state] if state < 2 else str(state - 2)


def edge_labels(num_edges):
    """``"c_{k-1} -> 0"`` and so on, in the edge order of ``network.edge_inputs``."""
    nodes = derive._nodes_of(num_edges)
    return [f"{state_name(source)}\u2192{node}" for node, source in edge_inputs(nodes)]


def noise_of(run):
    """``(noise_lambda, noise_mean, noise_kind)`` of a result or a sweep entry."""
    config = run.get("config", run)
    return (float(config.get("noise_lambda", 0.0)), float(config.get("noise_mean", 0.0)),
            config.get("noise_kind", "gaussian"))


def run_title(run):
    """``DARTS (λ = 0)`` or ``NoisyDARTS (λ = 0.5)``, with the kind and mean when they are not the
    paper's."""
    lam, mean, kind = noise_of(run)
    if lam == 0 and mean == 0:
        return "DARTS (\u03bb = 0)"
    extra = "" if kind == "gaussian" else f", {kind}"
    extra += "" if mean == 0 else f", \u03bc = {mean:g}"
    return f"NoisyDARTS (\u03bb = {lam:g}{extra})"


# -- frames: what changes between redraws --------------------------------------------------------
@dataclass
class Frame:
    """The changing part of a view: each trace's data (in trace order), the title, the subplot
    titles."""

    traces: list
    title: str = None
    subplot_titles: list = field(default_factory=list)


def apply_frame(fig, frame):
    """Write ``frame`` into ``fig``: one ``plotly_restyle`` per group of traces with the same
    keys."""
    groups = {}
    for index, values in enumerate(frame.traces):
        groups.setdefault(tuple(sorted(values)), []).append(index)
    for keys, indexes in groups.items():
        if keys:
            fig.plotly_restyle({k: [frame.traces[i][k] for i in indexes] for k in keys},
                               trace_indexes=indexes)
    if frame.title is not None:
        fig.layout.title.text = frame.title
    for annotation, text in zip(fig.layout.annotations, frame.subplot_titles):
        annotation.text = text
    return fig


def _figure(frame, build):
    fig = build()
    apply_frame(fig, frame)
    fig.update_layout(font=FONT, template="plotly_white", margin=dict(l=60, t=90, b=60))
    return fig


# -- the alpha competition -----------------------------------------------------------------------
def weight_history(run, cell="normal"):
    """``(x, x_label, rows_over_time)``: the weights ``f(alpha)`` of ``cell`` as they were recorded.

    A result or a live history gives one point per recorded step (``record_every``), or per epoch
    when no step was recorded; a sweep entry gives one point per epoch.
    """
    check_choice("cell", cell, CELL_TYPES)
    history = run.get("history")
    if history is not None:
        steps = [s for s in history.get("steps", []) if "weights" in s]
        if steps:
            return [s["step"] for s in steps], "step", [s["weights"][cell] for s in steps]
        epochs = history.get("epochs", [])
        return [e["step"] for e in epochs], "step", [e["weights"][cell] for e in epochs]
    epochs = run.get("epochs", [])
    return [e["epoch"] for e in epochs], "epoch", [e["weights"][cell] for e in epochs]


def _num_edges(run, cell):
    _, _, rows = weight_history(run, cell)
    if rows:
        return len(rows[0])
    if "weights" in run:
        return len(run["weights"][cell])
    return len(edge_inputs(run["config"]["nodes"]))


def alpha_competition_frame(runs, cell="normal", titles=None):
    """Per run, edge and op (in that order) the op's weight over the steps; titles with the skip
    share."""
    traces, subplot_titles = [], []
    for index, run in enumerate(runs):
        x, x_label, rows = weight_history(run, cell)
        ops = run["ops"]
        for edge in range(_num_edges(run, cell)):
            for k in range(len(ops)):
                traces.append({"x": x, "y": [r[edge][k] for r in rows]})
        title = titles[index] if titles else run_title(run)
        if rows:
            share = derive.skip_share(rows[-1], ops)
            title += f"<br><sup>{x_label} {x[-1]}: skip strongest on {share:.0%} of the edges</sup>"
        subplot_titles.append(title)
    return Frame(traces, subplot_titles=subplot_titles)


def alpha_competition(runs, cell="normal", titles=None):
    """The weight of every op over the steps, one row per edge, one column per run, shared axes.

    ``runs``: results (``Search.result()``), live snapshots (``{"ops", "config", "history"}``)
    or sweep entries (drawn per epoch). The runs must share the space and the cell size.
    """
    if not runs:
        raise ConfigError("alpha_competition needs at least one run")
    ops, edges = runs[0]["ops"], _num_edges(runs[0], cell)
    for run in runs[1:]:
        if run["ops"] != ops or _num_edges(run, cell) != edges:
            raise ConfigError(f"runs to compare must share ops and cell size; got {run['ops']} "
                              f"with {_num_edges(run, cell)} edges against {ops} with {edges}")
    x_label = weight_history(runs[0], cell)[1]

    def build():
        height = 170 + 56 * edges
        fig = make_subplots(rows=edges, cols=len(runs), shared_xaxes=True, shared_yaxes=True,
                            column_titles=[" "] * len(runs), row_titles=edge_labels(edges),
                            vertical_spacing=min(0.025, 1 / max(edges - 1, 1)),
                            horizontal_spacing=0.04)
        for col in range(len(runs)):
            for edge in range(edges):
                for name in ops:
                    fig.add_trace(go.Scatter(
                        mode="lines", name=name, legendgroup=name,
                        showlegend=(col == 0 and edge == 0),
                        line=dict(color=OP_COLORS.get(name), width=3 if name == SKIP else 1.5),
                        hovertemplate=f"{name}<br>{x_label} %{{x}}: %{{y:.3f}}<extra></extra>"),
                        row=edge + 1, col=col + 1)
        fig.update_yaxes(range=[0, 1], tickvals=[0, 0.5, 1], ticktext=["0", "", "1"],
                         tickfont=dict(size=9))
        fig.update_xaxes(title_text=x_label, row=edges)
        # edge names beside the last column, read horizontally
        fig.update_annotations(textangle=0, xanchor="left", x=1.01, font_size=11,
                               selector=dict(textangle=90))
        fig.update_layout(height=height,
                          title=dict(text=f"f(\u03b1) on each edge of the {cell} cell"),
                          legend=dict(orientation="h", y=-75 / (height - 180), yanchor="top", x=0),
                          margin=dict(r=80, b=90))
        return fig

    return _figure(alpha_competition_frame(runs, cell, titles), build)


# -- final weights -------------------------------------------------------------------------------
def final_weights(runs, cell="normal", titles=None):
    """The last weights of ``cell`` as heatmaps (edges x ops), one per run, side by side."""
    runs = runs if isinstance(runs, (list, tuple)) else [runs]
    fig = make_subplots(rows=1, cols=len(runs), shared_yaxes=True, horizontal_spacing=0.05,
                        subplot_titles=[titles[i] if titles else run_title(r)
                                        for i, r in enumerate(runs)])
    for col, run in enumerate(runs):
        rows = run["weights"][cell]
        fig.add_trace(go.Heatmap(z=rows, x=run["ops"], y=edge_labels(len(rows)), zmin=0, zmax=1,
                                 colorscale="Blues", showscale=col == len(runs) - 1,
                                 texttemplate="%{z:.2f}",
                                 hovertemplate="%{y} %{x}: %{z:.3f}<extra></extra>"),
                      row=1, col=col + 1)
    fig.update_yaxes(autorange="reversed")
    fig.update_layout(font=FONT, template="plotly_white",
                      height=140 + 26 * len(runs[0]["weights"][cell]),
                      title=f"final f(\u03b1), {cell} cell")
    return fig


# -- the noise sweep -----------------------------------------------------------------------------
def sweep_runs(sweep, noise_lambda):
    """The sweep's entries at ``noise_lambda``, in seed order (``ConfigError`` if it has none)."""
    runs = sorted((r for r in sweep["runs"] if math.isclose(r["noise_lambda"], noise_lambda)),
                  key=lambda r: r["seed"])
    if not runs:
        allowed = ", ".join(f"{lam:g}" for lam in sweep["noise_lambdas"])
        raise ConfigError(f"noise_lambda {noise_lambda!r} is not in the sweep; allowed: {allowed}")
    return runs


def sweep_run(sweep, noise_lambda, seed):
    """One entry of the sweep with the sweep's ops and config, so that it draws like a result."""
    entry = next((r for r in sweep_runs(sweep, noise_lambda) if r["seed"] == seed), None)
    if entry is None:
        raise ConfigError(f"seed {seed!r} is not in the sweep; "
                          f"allowed: {', '.join(map(str, sweep['seeds']))}")
    config = {**sweep["config"], "noise_lambda": entry["noise_lambda"], "seed": entry["seed"]}
    return {**entry, "ops": sweep["ops"], "config": config}


def sweep_row(sweep, noise_lambda, rows=None):
    """``sweep_summary``'s row at ``noise_lambda``: mean, min and max of the skip share over
    seeds. ``rows``: the summary, where the caller has it already."""
    sweep_runs(sweep, noise_lambda)
    return next(r for r in rows or sweep_summary(sweep)
                if math.isclose(r["noise_lambda"], noise_lambda))


def _skip_share_traces(sweep, noise_lambda, rows):
    lams = [r["noise_lambda"] for r in rows]
    seeds = [(r["noise_lambda"], r["skip_share"]) for r in sweep["runs"]]
    picked = (sweep_row(sweep, noise_lambda, rows)["skip_share_mean"]
              if noise_lambda is not None else None)
    return [
        {"x": lams + lams[::-1],
         "y": [r["skip_share_max"] for r in rows] + [r["skip_share_min"] for r in rows][::-1]},
        {"x": [lam for lam, _ in seeds], "y": [share for _, share in seeds]},
        {"x": lams, "y": [r["skip_share_mean"] for r in rows]},
        {"x": [] if picked is None else [noise_lambda], "y": [] if picked is None else [picked]},
    ]


def _add_skip_share_traces(fig, **where):
    fig.add_trace(go.Scatter(fill="toself", fillcolor="rgba(214,39,40,0.15)", line=dict(width=0),
                             hoverinfo="skip", name="min to max over seeds"), **where)
    fig.add_trace(go.Scatter(mode="markers", marker=dict(color="rgba(214,39,40,0.5)", size=6),
                             name="one seed",
                             hovertemplate="\u03bb %{x:g}: %{y:.0%}<extra>one seed</extra>"),
                  **where)
    fig.add_trace(go.Scatter(mode="lines+markers", line=dict(color=OP_COLORS[SKIP], width=3),
                             name="mean over seeds",
                             hovertemplate="\u03bb %{x:g}: %{y:.0%}<extra>mean</extra>"), **where)
    fig.add_trace(go.Scatter(mode="markers",
                             marker=dict(symbol="circle-open", size=18, color="black",
                                         line=dict(width=3)),
                             name="slider", showlegend=False, hoverinfo="skip"), **where)


def skip_share_vs_noise(sweep, noise_lambda=None):
    """``skip_share`` (edges whose strongest op is skip) against the noise level: mean, seeds,
    spread."""
    def build():
        fig = go.Figure()
        _add_skip_share_traces(fig)
        fig.update_xaxes(title_text="noise \u03bb (std of the noise / std(x))")
        fig.update_yaxes(title_text="skip share, normal cell", range=[-0.02, 1.02],
                         tickformat=".0%")
        fig.update_layout(height=380, title="skip domination against the noise level")
        return fig

    return _figure(Frame(_skip_share_traces(sweep, noise_lambda, sweep_summary(sweep))), build)


def skip_share_by_epoch(runs, titles=None):
    """``skip_share`` of each run's normal cell at the end of every epoch (from
    ``history["epochs"]``): where each search was heading, one line per run."""
    titles = titles or [run_title(run) for run in runs]
    fig = go.Figure()
    for run, title in zip(runs, titles):
        epochs = run["history"]["epochs"]
        fig.add_scatter(x=[e["epoch"] for e in epochs], y=[e["skip_share"] for e in epochs],
                        mode="lines+markers", name=title,
                        line=dict(color=OP_COLORS[SKIP] if noise_of(run)[:2] == (0.0, 0.0)
                                  else None))
    fig.update_layout(title="skip share of the normal cell, epoch by epoch", xaxis_title="epoch",
                      yaxis=dict(title="skip share", range=[0, 1], tickformat=".0%"), height=350,
                      template="plotly_white", font=FONT)
    return fig


def sweep_view_frame(sweep, noise_lambda, seed=None):
    """What the slider changes: the marker, the skip weight curves, the final weights, the title."""
    runs = sweep_runs(sweep, noise_lambda)
    if seed is not None and seed not in [r["seed"] for r in runs]:
        raise ConfigError(f"seed {seed!r} is not in the sweep; "
                          f"allowed: {', '.join(map(str, sweep['seeds']))}")
    every = sweep["config"].get("record_every", 1) or 1
    darts = sweep_runs(sweep, 0.0) if any(lam == 0 for lam in sweep["noise_lambdas"]) else []
    summary = sweep_summary(sweep)  # once a frame: the slider redraws it at every move
    traces = _skip_share_traces(sweep, noise_lambda, summary)
    # the mean skip weight of the normal cell, step by step: the competition in one line per seed
    darts_mean = [statistics.mean(values)
                  for values in zip(*(r["skip_weight_steps"] for r in darts))]
    traces.append({"x": [every * (i + 1) for i in range(len(darts_mean))], "y": darts_mean})
    for seed_value in sweep["seeds"]:
        run = next((r for r in runs if r["seed"] == seed_value), None)
        steps = run["skip_weight_steps"] if run else []
        traces.append({"x": [every * (i + 1) for i in range(len(steps))], "y": steps,
                       "opacity": 1.0 if seed in (None, seed_value) else 0.2})
    shown = [r for r in runs if seed is None or r["seed"] == seed]
    cells = [r["weights"]["normal"] for r in shown]
    # mean over the seeds
    rows = [[statistics.mean(values) for values in zip(*edge)] for edge in zip(*cells)]
    traces.append({"z": rows})
    row = sweep_row(sweep, noise_lambda, summary)
    who = "mean over seeds" if seed is None else f"seed {seed}"
    share = row["skip_share_mean"] if seed is None else shown[0]["skip_share"]
    title = (f"noise \u03bb = {noise_lambda:g}: skip is the strongest op on {share:.0%} of the "
             f"normal cell's edges ({who})")
    return Frame(traces, title=title)


def sweep_view(sweep, noise_lambda=None, seed=None):
    """Three panels for one noise level of a sweep: where it sits on the skip-share curve, the skip
    weight during the search (DARTS's mean for reference), the final weights of the normal cell."""
    noise_lambda = sweep["noise_lambdas"][0] if noise_lambda is None else noise_lambda
    ops = sweep["ops"]
    edges = len(sweep["runs"][0]["weights"]["normal"])

    def build():
        fig = make_subplots(rows=1, cols=3, column_widths=[0.34, 0.33, 0.33],
                            horizontal_spacing=0.09,
                            subplot_titles=["skip share against the noise",
                                            "mean skip weight f(\u03b1_skip) while searching",
                                            "final f(\u03b1), normal cell"])
        _add_skip_share_traces(fig, row=1, col=1)
        fig.add_trace(go.Scatter(mode="lines", line=dict(color="grey", dash="dash", width=2),
                                 name="DARTS (\u03bb = 0), mean"), row=1, col=2)
        for seed_value in sweep["seeds"]:
            fig.add_trace(go.Scatter(mode="lines", line=dict(color=OP_COLORS[SKIP], width=2),
                                     name=f"seed {seed_value}", showlegend=False,
                                     hovertemplate=f"seed {seed_value}, step %{{x}}: "
                                                   f"%{{y:.3f}}<extra></extra>"),
                          row=1, col=2)
        fig.add_trace(go.Heatmap(x=list(ops), y=edge_labels(edges), zmin=0, zmax=1,
                                 colorscale="Blues",
                                 texttemplate="%{z:.2f}", showscale=False,
                                 hovertemplate="%{y} %{x}: %{z:.3f}<extra></extra>"), row=1, col=3)
        fig.add_hline(y=1 / len(ops), line=dict(color="black", dash="dot", width=1), row=1, col=2,
                      annotation_text="uniform 1/|ops|", annotation_position="bottom right")
        fig.update_xaxes(title_text="noise \u03bb", row=1, col=1)
        fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", row=1, col=1)
        fig.update_xaxes(title_text="step", row=1, col=2)
        fig.update_yaxes(range=[0, 1], row=1, col=2)
        fig.update_yaxes(autorange="reversed", row=1, col=3)
        # a widget defaults to ~700 px: too narrow for three panels
        fig.update_layout(height=430, width=900, legend=dict(orientation="h", y=-0.25, x=0))
        return fig

    return _figure(sweep_view_frame(sweep, noise_lambda, seed), build)


# -- the noise slider as a page that needs no kernel ---------------------------------------------
PAGE_MARK = "ndarts-edu-noise-page"  # the <meta> name of a page written here (and its fingerprint)


def op_shares(entry, ops):
    """``{op: share}``: the fraction of the normal cell's edges on which each op, ``none``
    included, has the largest weight of all ops (``derive.op_shares``). From the entry's
    ``op_shares`` when the sweep saved them, else from its final ``weights`` by the same rule."""
    saved = entry.get("op_shares")
    if saved is not None:
        return dict(saved.get("normal", saved))
    return derive.op_shares(entry["weights"]["normal"], ops)


def _op_share_traces(sweep):
    """Per op other than skip (drawn as ``skip_share``), ``none`` included: the mean share over
    seeds at each noise level, so a noise that hands the cell to ``none`` shows."""
    lams = sweep["noise_lambdas"]
    ops = [op for op in sweep["ops"] if op != SKIP]
    means = {op: [] for op in ops}
    for lam in lams:
        shares = [op_shares(r, sweep["ops"]) for r in sweep_runs(sweep, lam)]
        for op in ops:
            means[op].append(statistics.mean(share.get(op, 0.0) for share in shares))
    return [(op, {"x": list(lams), "y": means[op]}) for op in ops]


def noise_page_figure(sweep):
    """``sweep_view`` with a slider made of plotly frames, one per noise level, and each op's share
    of the edges in the left panel: everything the notebook's slider shows, computed in advance,
    so that plotly.js alone scrubs it (no kernel, no widget, no network)."""
    lams = sweep["noise_lambdas"]
    fig = sweep_view(sweep, lams[0])
    moving = list(range(len(fig.data)))  # sweep_view_frame's traces, in order
    for op, values in _op_share_traces(sweep):
        fig.add_trace(go.Scatter(mode="lines+markers", name=f"{op} share, mean", **values,
                                 line=dict(color=OP_COLORS.get(op), width=2, dash="dot"),
                                 hovertemplate=f"\u03bb %{{x:g}}: %{{y:.0%}}<extra>{op}</extra>"),
                      row=1, col=1)
    fig.layout.annotations[0].text = "edges each op wins"
    frames = []
    for lam in lams:
        frame = sweep_view_frame(sweep, lam)
        frames.append(go.Frame(
            name=f"{lam:g}", traces=moving, layout={"title": {"text": frame.title}},
            data=[{"type": fig.data[i].type, **plain(values)}
                  for i, values in zip(moving, frame.traces)]))
    fig.frames = frames
    instant = {"mode": "immediate", "frame": {"duration": 0, "redraw": True},
               "transition": {"duration": 0}}
    fig.update_layout(
        height=620, margin=dict(t=110, b=210),
        legend=dict(orientation="h", y=-0.62, x=0),
        sliders=[dict(active=0, y=-0.2, pad=dict(t=10), len=0.6,
                      currentvalue=dict(prefix="noise \u03bb = "),
                      steps=[dict(label=f"{lam:g}", method="animate", args=[[f"{lam:g}"], instant])
                             for lam in lams])])
    return fig


def page_fingerprint(fig):
    """A digest of what the page draws (its traces and frames as plain numbers), independent of
    the plotly.js version embedded: a committed page can be checked against the shipped sweep."""
    drawn = {"data": [t.to_plotly_json() for t in fig.data],
             "frames": [f.to_plotly_json() for f in fig.frames]}
    return hashlib.sha256(json.dumps(drawn, sort_keys=True, default=str).encode()).hexdigest()


def noise_page(sweep):
    """The whole page as one HTML string: the figure with plotly.js inline (about 5 MB), a title and
    a legend. It opens from disk, from GitHub Pages or a USB stick, without any network."""
    fig = noise_page_figure(sweep)
    config = sweep["config"]
    # auto_play=False: plotly.py would otherwise run through every frame once the page loads
    figure = fig.to_html(full_html=False, include_plotlyjs=True, div_id="noise-slider",
                         auto_play=False, config={"displaylogo": False, "responsive": True})
    seeds = ", ".join(map(str, sweep["seeds"]))
    lams = " ".join(f"{lam:g}" for lam in sweep["noise_lambdas"])
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="{PAGE_MARK}" content="{page_fingerprint(fig)}">
<title>NoisyDARTS: the noise slider</title>
<style>body {{ font-family: Helvetica, Arial, sans-serif; max-width: 1000px; margin: 1.5em auto;
padding: 0 1em; color: #222; }} p {{ line-height: 1.45; }} code {{ background: #f3f3f3; }}</style>
</head>
<body>
<h1>Skip domination against the noise: the slider of notebook 01</h1>
<p>DARTS lets every operation of every edge compete through a softmax; left alone, the skip
connection wins most edges. NoisyDARTS adds noise <i>n</i> ~ N(0, (&lambda; std(x))<sup>2</sup>) to
the skip op's output during the search. Move the slider under the figure: each position is a noise
level &lambda; of a sweep searched in advance, {len(sweep["seeds"])} seeds each.</p>
<p><b>Left</b>: the share of the normal cell's edges on which each op is the strongest, against
&lambda; (skip in red: the mean, each seed, and the spread over seeds; the ring is the slider's
&lambda;). <b>Middle</b>: the mean skip weight f(&alpha;<sub>skip</sub>) of the normal cell while
searching, for each seed (red) against DARTS (&lambda; = 0, grey). <b>Right</b>: the final weights
of the normal cell, edge by edge, mean over the seeds.</p>
{figure}
<p>The sweep: the <code>{html.escape(sweep["preset"])}</code> preset
({html.escape(config["space"])} space,
{config["layers"]} cells of {config["channels"]} channels, {config["epochs"]} epochs on
{html.escape(config["dataset"])}), noise levels {lams}, seeds {seeds}. Made with
<code>python -m ndarts_edu sweep</code> and drawn by <code>python -m ndarts_edu page</code>
(package <code>ndarts_edu</code>, notebook <code>01_skip_domination</code>); this file needs no
kernel and no network.</p>
</body>
</html>
"""


def write_noise_page(path, sweep):
    """Write ``noise_page(sweep)`` to ``path``; never over a file that is not such a page."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {str(path)!r} is a folder; give the HTML file to write")
    if path.exists():
        with open(path, errors="replace") as f:  # the mark is in the head, not the 5 MB after it
            if f'name="{PAGE_MARK}"' not in f.read(4000):
                raise ConfigError(f"--out {str(path)!r} exists and is not a noise page written "
                                  "by this command; choose another file")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(noise_page(sweep), encoding="utf-8")
    return path


# -- the derived cell ----------------------------------------------------------------------------
def _cell_positions(nodes):
    """Where each state sits: the inputs on the left, the nodes in a zig-zag, the output on the
    right."""
    spots = {0: (0.0, 1.0), 1: (0.0, -1.0)}
    for i in range(nodes):
        spots[2 + i] = (1.0 + i, 0.55 if i % 2 == 0 else -0.55)
    spots["out"] = (nodes + 1.0, 0.0)
    return spots


def _curve(a, b, bend):
    """A quadratic Bezier from a to b, bowed sideways by ``bend`` so parallel edges stay apart."""
    (x0, y0), (x1, y1) = a, b
    cx, cy = (x0 + x1) / 2 - bend * (y1 - y0), (y0 + y1) / 2 + bend * (x1 - x0)
    ts = [i / 20 for i in range(21)]
    xs = [(1 - t) ** 2 * x0 + 2 * (1 - t) * t * cx + t * t * x1 for t in ts]
    ys = [(1 - t) ** 2 * y0 + 2 * (1 - t) * t * cy + t * t * y1 for t in ts]
    return xs, ys


def _add_cell(fig, genotype, cell, **where):
    entries = derive.with_nodes(genotype[cell])
    concat = genotype.get(f"{cell}_concat") or sorted({node for *_, node in entries})
    nodes = max(concat) - 1
    spots = _cell_positions(nodes)
    for state in concat:  # every node feeds the cell's output (concatenation)
        xs, ys = _curve(spots[state], spots["out"], 0.0)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines",
                                 line=dict(color="#cccccc", width=1, dash="dot"),
                                 hoverinfo="skip", showlegend=False), **where)
    labels = []
    for i, (op, source, target) in enumerate(entries):
        xs, ys = _curve(spots[source], spots[target], 0.15 if i % 2 else -0.15)
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", showlegend=False, hoverinfo="text",
                                 text=f"{op}: {state_name(source)} \u2192 {state_name(target)}",
                                 line=dict(color=OP_COLORS.get(op, "black"),
                                           width=5 if op == SKIP else 2.5)),
                      **where)
        labels.append((xs[10], ys[10], op))
    fig.add_trace(go.Scatter(x=[x for x, _, _ in labels], y=[y for _, y, _ in labels], mode="text",
                             text=[op.replace("_connect", "") for *_, op in labels],
                             showlegend=False,
                             textfont=dict(size=11,
                                           color=[OP_COLORS.get(op, "black") for *_, op in labels]),
                             hoverinfo="skip"), **where)
    states = [0, 1, *range(2, 2 + nodes), "out"]
    # cell inputs and output in yellow
    fills = ["#fff3bf" if s in (0, 1, "out") else "#dbe9f6" for s in states]
    fig.add_trace(go.Scatter(x=[spots[s][0] for s in states], y=[spots[s][1] for s in states],
                             mode="markers+text",
                             text=[state_name(s) if s != "out" else "c\u2096" for s in states],
                             textposition="middle center", hoverinfo="skip", showlegend=False,
                             marker=dict(size=30, color=fills, line=dict(color="#555", width=1.5))),
                  **where)


def cell_graphs(genotypes, titles=None, cell="normal"):
    """Derived cells side by side: edges coloured by op, skip edges thick and red."""
    genotypes = genotypes if isinstance(genotypes, (list, tuple)) else [genotypes]
    titles = titles or [""] * len(genotypes)
    counted = [f"{t}{': ' if t else ''}{derive.genotype_skips(g[cell])} skip of {len(g[cell])} ops"
               for t, g in zip(titles, genotypes)]
    fig = make_subplots(rows=1, cols=len(genotypes), subplot_titles=counted,
                        horizontal_spacing=0.04)
    for col, genotype in enumerate(genotypes):
        _add_cell(fig, genotype, cell, row=1, col=col + 1)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False, range=[-1.5, 1.5])
    fig.update_layout(font=FONT, template="plotly_white", height=320,
                      margin=dict(l=20, r=20, t=70, b=20), title=f"derived {cell} cells")
    return fig


def cell_graph(genotype, cell="normal", title=None):
    """One derived cell as a graph (see ``cell_graphs``)."""
    return cell_graphs([genotype], [title or ""], cell)


# -- the ablations -------------------------------------------------------------------------------
def ablation_bars(data):
    """Per variant of an ablation run (``ablations.run_ablations``): the mean over seeds as a bar,
    each seed as a dot; skip share on the left, the supernet's accuracy (no noise) on the right."""
    rows = ablations.ablation_summary(data)[::-1]  # plotly draws the first bar at the bottom
    label_of = {row["key"]: row["label"] for row in rows}
    finished = [r for r in data["runs"] if r["status"] == "finished"]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.03,
                        subplot_titles=["skip share of the normal cell",
                                        "supernet accuracy (valid half, no noise)"])
    for col, measure in enumerate(("skip_share", "valid_accuracy"), 1):
        fig.add_bar(x=[row[f"{measure}_mean"] for row in rows], y=[row["label"] for row in rows],
                    orientation="h", marker_color="#9ecae1", name="mean of the seeds",
                    showlegend=col == 1, row=1, col=col)
        fig.add_scatter(x=[r[measure] for r in finished],
                        y=[label_of[r["variant"]] for r in finished],
                        mode="markers", marker=dict(color=OP_COLORS[SKIP], size=7), name="one seed",
                        showlegend=col == 1, row=1, col=col)
    fig.update_xaxes(range=[0, 1], tickformat=".0%")
    fig.update_layout(height=460, template="plotly_white", legend=dict(orientation="h", y=-0.12),
                      margin=dict(l=260), font=FONT)
    return fig


# -- a figure that redraws in place --------------------------------------------------------------
LIVE_MODES = ("auto", "widget", "static")
LIVE_ENV = "NDARTS_EDU_LIVE"


def on_colab():
    return "google.colab" in sys.modules


def live_mode(requested=None):
    """``widget`` or ``static``: ``requested``, else ``$NDARTS_EDU_LIVE``, else ``auto``.

    ``auto`` is ``widget`` where anywidget and ipywidgets are installed (plotly's ``FigureWidget``
    needs both), except on Colab: there plotly's widget has open rendering bugs (blank figures,
    googlecolab/colabtools #2871 and #5889), while a figure redrawn through a display handle shows.
    ``NDARTS_EDU_LIVE=widget`` tries the widget anyway."""
    mode = requested or os.environ.get(LIVE_ENV) or "auto"
    check_choice(f"live figure mode (argument or ${LIVE_ENV})", mode, LIVE_MODES)
    if mode == "auto":
        has_widgets = all(importlib.util.find_spec(m) is not None
                          for m in ("anywidget", "ipywidgets"))
        mode = "widget" if has_widgets and not on_colab() else "static"
    return mode


def plain(value):
    """``value`` with numpy arrays and tensors turned into (nested) lists of Python numbers.

    plotly keeps lists as lists, but sends a numpy array as a typed array, which Colab's widget
    frontend fails to draw (float arrays stay blank: googlecolab/colabtools #2871): every trace
    value of these views goes to plotly as plain lists."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()  # numpy arrays and scalars, torch tensors
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


# plotly's FigureWidget is an anywidget whose state carries its ~5 MB bundle (``_esm``): a notebook
# saved with widget state (nbconvert --execute saves it) grew by that for every figure. The figures
# here take a small loader as ``_esm`` instead; the bundle travels once per kernel, in one plain
# widget model that every figure names (``_bundle``), and the loader imports it once per page.
_LOADER = """
// plotly's FigureWidget, its bundle read from the one shared model (ndarts_edu.viz)
const loaded = (globalThis[Symbol.for("ndarts_edu.plotly_widget")] ??= new Map());

function plotlyWidget(model) {
  const ref = model.get("_bundle");  // "IPY_MODEL_<id>"
  if (!loaded.has(ref)) {
    const module = (async () => {
      const holder = await model.widget_manager.get_model(ref.replace(/^IPY_MODEL_/, ""));
      const url = URL.createObjectURL(new Blob([holder.get("code")], { type: "text/javascript" }));
      try { return await import(url); } finally { URL.revokeObjectURL(url); }
    })();
    module.catch(() => loaded.delete(ref));  // a later figure tries again
    loaded.set(ref, module);
  }
  return loaded.get(ref);
}

// anywidget gives initialize() 2 s of wall clock; a model whose initialize takes longer gets none
// of the kernel's later updates, ever (anywidget 0.11: "Failed to initialize model"). Importing
// plotly's 5 MB bundle takes longer than that on a busy machine, and the figure then stayed as the
// kernel first sent it (no slider, no live redraw). So initialize returns at once: the updates that
// come meanwhile are kept and applied, in order, as if they came now, once plotly's own initialize
// listens to the model; render waits for that.
export default async () => {
  let widget;  // plotly's own { initialize, render } for this model
  let ready;   // plotly's initialize has run and the kept updates are applied
  return {
    initialize(context) {
      const kept = [];  // [the widget model, what one kernel update changed]
      const keep = (model) => kept.push([model, model.changedAttributes()]);
      context.model.on("change", keep);
      ready = plotlyWidget(context.model).then((module) => {
        widget = module.default();
        const started = widget.initialize?.(context);  // plotly's listens from here on
        context.model.off("change", keep);  // no await before this: nothing comes in between
        for (const [model, changed] of kept) if (changed) model.set_state(changed);
        return started;
      });
      ready.catch((error) => console.error("ndarts_edu: plotly's widget code failed to load",
                                           error));
    },
    async render(context) {
      await ready;
      return widget.render(context);
    },
  };
};
"""


@functools.cache
def _figure_widget_class():
    """plotly's ``FigureWidget`` with the small loader as its ``_esm`` (needs anywidget)."""
    import ipywidgets
    import traitlets

    bundle_file = importlib.util.find_spec("plotly").submodule_search_locations[0]
    code = (Path(bundle_file) / "package_data" / "widgetbundle.js").read_text(encoding="utf-8")

    class PlotlyBundle(ipywidgets.Widget):
        """A model with no view: plotly's widget code, once for all the figures of a kernel."""
        code = traitlets.Unicode().tag(sync=True)

    holder = []

    def shared_bundle():
        if not holder or holder[0].comm is None:  # closed (Widget.close_all): open a new one
            holder[:] = [PlotlyBundle(code=code)]
        return holder[0]

    class FigureWidget(go.FigureWidget):
        _esm = _LOADER
        _bundle = traitlets.Instance(PlotlyBundle).tag(sync=True, **ipywidgets.widget_serialization)

        def __init__(self, figure, css_classes=()):
            # The comm opens once every trait is set, so that the frontend gets the whole figure
            # (data, layout, CSS classes) in its first message. plotly sets its data after the comm
            # opened, and add_class comes later still: those updates were seen lost while JupyterLab
            # built the page's first anywidget model, which then stayed an empty plot.
            self._open_later = True
            super().__init__(figure)
            self._dom_classes = tuple(css_classes)
            self._open_later = False
            self.open()

        def open(self):
            if not getattr(self, "_open_later", False):
                super().open()

        @traitlets.default("_bundle")
        def _shared(self):  # read while the comm opens: the model exists before the figure's
            return shared_bundle()

    return FigureWidget


def figure_widget(figure, css_classes=()):
    """``figure`` as a plotly ``FigureWidget`` whose saved state does not carry plotly's bundle,
    sent to the frontend whole, in one message."""
    return _figure_widget_class()(figure, css_classes)


def static_bundle(fig):
    """What a display handle shows of ``fig``: plotly's own output for this frontend, except on
    Colab. There plotly's HTML loads plotly.js by a <script src> and draws in the next <script>,
    which fails ("Plotly is not defined") when the output is replaced from a widget callback
    (googlecolab/colabtools #5889): this HTML draws once plotly.js has loaded, however late."""
    if not on_colab():
        return fig._repr_mimebundle_()
    return {"text/html": self_loading_html(fig)}


def self_loading_html(fig, plotly_url=None):
    """``fig`` as HTML that loads plotly.js (once per page) and draws when it is there."""
    import uuid

    from plotly.offline import get_plotlyjs_version

    plotly_url = plotly_url or f"https://cdn.plot.ly/plotly-{get_plotlyjs_version()}.min.js"
    div = f"ndarts-{uuid.uuid4().hex}"
    height = fig.layout.height or 450
    return f"""<div id="{div}" style="height:{height}px; width:100%;"></div>
<script>(function () {{
  var figure = {fig.to_json()};
  var draw = function () {{  // the output may have been replaced meanwhile: then nothing to draw
    var el = document.getElementById("{div}");
    if (el) Plotly.react(el, figure.data, figure.layout, {{responsive: true}});
  }};
  if (window.Plotly) {{ draw(); return; }}
  var tag = document.querySelector("script[data-ndarts-plotly]");
  if (!tag) {{
    tag = document.createElement("script");
    tag.src = "{plotly_url}";
    tag.setAttribute("data-ndarts-plotly", "");
    document.head.appendChild(tag);
  }}
  tag.addEventListener("load", draw);
}})();</script>"""


class LiveFigure:
    """A figure shown once and redrawn in place by ``redraw(frame)``.

    ``widget``: a plotly ``FigureWidget``, updated through its comm (one message per redraw).
    ``static``: the plain figure shown through a display handle, replaced on every redraw; works
    wherever Jupyter output works, without any widget frontend.
    """

    def __init__(self, figure, mode=None, css_class=None):
        self.mode = live_mode(mode)
        classes = [css_class] if css_class else []
        self.figure = figure_widget(figure, classes) if self.mode == "widget" else figure
        self._handle = None
        self.redraws = 0

    @property
    def widget(self):
        """The ``FigureWidget`` to place in a widget layout (``None`` in static mode)."""
        return self.figure if self.mode == "widget" else None

    def redraw(self, frame):
        with self.figure.batch_update():
            apply_frame(self.figure, frame)
        if self._handle is not None:
            self._handle.update(static_bundle(self.figure), raw=True)
        self.redraws += 1

    def show(self):
        from IPython.display import display

        if self.mode == "widget":
            display(self.figure)
        else:
            self._handle = display(static_bundle(self.figure), raw=True, display_id=True)

    def _ipython_display_(self):
        self.show()
