"""The README's numbers, made from the data the package ships, never typed by hand.

    python tools/readme_numbers.py            # rewrite the README's numbers block
    python tools/readme_numbers.py --check    # exit 1 if the README's block is not what the data give

The block sits between the two marker lines below in ``README.md``. It is made from:

- ``ndarts_edu/datasets/sweep_cpu.json`` (``python -m ndarts_edu sweep``): per noise level, the
  skip share, the share of edges ``none`` wins, the derived cells' skips and the supernet's
  accuracy (batch-norm statistics re-estimated without noise, and raw), over its seeds;
- ``docs/calibration/grid_cpu.json`` (``tools/calibrate.py``): the preset's check on seeds it was
  not calibrated on, where the grid holds it;
- ``docs/calibration/xcpu*.json`` (``tools/xcpu.py``): how far the same searches move on another
  CPU, or when torch runs another CPU's kernels;
- ``ndarts_edu/datasets/ablations_cpu.json`` (``python -m ndarts_edu ablations``): per variant.

Each table names the machine, the torch version and the thread count its data record.
"""
import argparse
import glob
import json
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ndarts_edu import stats  # noqa: E402
from ndarts_edu.ablations import load_ablations  # noqa: E402
from ndarts_edu.experiments import load_sweep  # noqa: E402
from ndarts_edu.presets import PRESETS, preset_noise  # noqa: E402

README = os.path.join(ROOT, "README.md")
SWEEP = os.path.join(ROOT, "ndarts_edu", "datasets", "sweep_cpu.json")
ABLATIONS = os.path.join(ROOT, "ndarts_edu", "datasets", "ablations_cpu.json")
GRID = os.path.join(ROOT, "docs", "calibration", "grid_cpu.json")
XCPU = sorted(glob.glob(os.path.join(ROOT, "docs", "calibration", "xcpu*.json")))
BEGIN = "<!-- numbers: begin (made by tools/readme_numbers.py from the shipped data; do not edit) -->"
END = "<!-- numbers: end -->"
COLLAPSED, CURED = 0.75, 0.40  # issue 11's thresholds for one search's skip share


def machine(environment):
    """One line naming what made a file's numbers."""
    if not environment:
        return "machine not recorded"
    cpu = environment.get("cpu") or environment.get("platform", "unknown CPU")
    kernels = environment.get("cpu_capability")
    return (f"{cpu}{f' ({kernels} kernels)' if kernels else ''}, torch {environment['torch']}, "
            f"{environment['torch_threads']} thread(s)")


def spread(values, digits=2):
    """``mean (min-max)`` of ``values``."""
    return f"{statistics.mean(values):.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def none_share(run):
    return (run.get("op_shares") or {}).get("none")


def mean_or_dash(values, digits=2):
    values = [v for v in values if v is not None]
    return f"{statistics.mean(values):.{digits}f}" if values else "-"


def sweep_table(sweep):
    noisy = preset_noise(sweep["preset"])
    seeds = sweep["seeds"]
    lines = [
        f"The shipped noise sweep (`python -m ndarts_edu sweep`): the `{sweep['preset']}` preset "
        f"at {len(sweep['noise_lambdas'])} noise levels x seeds {', '.join(map(str, seeds))}; "
        f"made on {machine(sweep.get('environment'))}.",
        "",
        "| lambda | skip_share: mean (min-max) | seeds >= 0.75 | seeds <= 0.40 | none share | "
        "skips in cell (of 8) | supernet acc. | raw acc. | wall s per search (median) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for lam in sweep["noise_lambdas"]:
        runs = [r for r in sweep["runs"] if r["noise_lambda"] == lam]
        shares = [r["skip_share"] for r in runs]
        name = "DARTS, 0" if lam == 0 else f"{lam:g}{' (preset)' if lam == noisy else ''}"
        lines.append(
            f"| {name} | {spread(shares)} | {sum(s >= COLLAPSED for s in shares)} of {len(runs)} | "
            f"{sum(s <= CURED for s in shares)} of {len(runs)} | "
            f"{mean_or_dash(none_share(r) for r in runs)} | "
            f"{statistics.mean(r['genotype_skips'] for r in runs):.1f} | "
            f"{mean_or_dash(r['valid_accuracy'] for r in runs)} | "
            f"{mean_or_dash(r.get('valid_accuracy_raw') for r in runs)} | "
            f"{statistics.median(r['seconds'] for r in runs):.0f} |")
    return lines


def validation_table(grid, preset):
    """The preset's setting on the grid's validation seeds (those >= 10), if the grid has them."""
    name = PRESETS[preset].get("calibration")
    if not name or not grid:
        return []
    runs = [r for r in grid["runs"].values() if r["setting"] == name and r["seed"] >= 10]
    if not runs:
        return []
    lines = ["", f"The same preset on seeds it was not calibrated on (`tools/calibrate.py`, setting "
             f"`{name}`):", "",
             "| lambda | seeds | skip_share: mean (min-max) | seeds >= 0.75 | seeds <= 0.40 | "
             "none share | supernet acc. | CPU s per search |", "|---|---|---|---|---|---|---|---|"]
    for lam in sorted({r["noise_lambda"] for r in runs}):
        group = [r for r in runs if r["noise_lambda"] == lam]
        shares = [r["skip_share"] for r in group]
        lines.append(
            f"| {lam:g} | {', '.join(str(r['seed']) for r in sorted(group, key=lambda r: r['seed']))}"
            f" | {spread(shares)} | {sum(s >= COLLAPSED for s in shares)} of {len(group)} | "
            f"{sum(s <= CURED for s in shares)} of {len(group)} | "
            f"{statistics.mean(r['op_share']['normal'].get('none', 0) for r in group):.2f} | "
            f"{statistics.mean(r['accuracy_bn'] for r in group):.2f} | "
            f"{statistics.mean(r['cpu_seconds'] for r in group):.0f} |")
    return lines


def kernels_label(xcpu):
    """What ran the searches again: which kernels, on which machine."""
    run = xcpu["runs"][0]
    if run["kernels"] == "native":
        return f"{run['cpu_capability']}: another machine, with its own kernels"
    return (f"{run['cpu_capability']}: the machine that made them, with "
            f"ATEN_CPU_CAPABILITY={run['kernels']}")


def xcpu_lines(measured, sweep):
    """What another CPU's kernels move: each search's figures, and the claims over the seeds."""
    if not measured:
        return []
    edges = len(sweep["runs"][0]["weights"]["normal"])
    shipped = {(r["noise_lambda"], r["seed"]): r for r in sweep["runs"]}
    reruns = [{(r["noise_lambda"], r["seed"]): r["entry"] for r in x["runs"]} for x in measured]
    lines = ["", "How far another CPU moves the shipped searches, each searched again from scratch:", ""]
    for xcpu, rerun in zip(measured, reruns):
        # the largest change of the skip share at the end, in edges of the normal cell
        skip_edges = max(round(abs(shipped[point]["skip_share"] - entry["skip_share"]) * edges)
                         for point, entry in rerun.items())
        lines.append(f"- {kernels_label(xcpu)} ({len(xcpu['runs'])} searches, `tools/xcpu.py`). "
                     "One search moves by at most: the weights f(alpha) "
                     f"{xcpu['weights_end']:.2f}, the skip share {skip_edges} edge(s) of {edges} "
                     f"at the end, the derived cell's skips {xcpu['genotype_skips']}, the "
                     f"supernet's accuracy {xcpu['accuracy_end']:.3f} at the end.")
    lines += ["", "So one search's weights do not reproduce across CPUs; the claims over the seeds "
              "do:", "",
              "| over the seeds, paired by seed | shipped | "
              + " | ".join(x["runs"][0]["cpu_capability"] for x in measured) + " |",
              "|---|---|" + "---|" * len(measured)]
    noisy = preset_noise(sweep["preset"])
    seeds = [s for s in sweep["seeds"] if all((0.0, s) in r and (noisy, s) in r for r in reruns)]
    for what, key in (("skip share", "skip_share"), ("supernet accuracy", "valid_accuracy")):
        row = [str(stats.paired_interval([runs[0.0, s][key] for s in seeds],
                                         [runs[noisy, s][key] for s in seeds]))
               for runs in (shipped, *reruns)]
        lines.append(f"| {what}, lambda 0 minus lambda {noisy:g} | {' | '.join(row)} |")
    return lines


def ablations_table(data):
    lines = ["", f"The shipped ablations (`python -m ndarts_edu ablations`, lambda "
             f"{data['noise_lambda']:g}, seeds {', '.join(map(str, data['seeds']))}; made on "
             f"{machine(data.get('environment'))}):", "",
             "| variant | skip_share | none share | supernet acc. | raw acc. |", "|---|---|---|---|---|"]
    for variant in data["variants"]:
        runs = [r for r in data["runs"] if r["variant"] == variant["key"]]
        if not runs:
            continue
        lines.append(
            f"| {variant['label']} | {spread([r['skip_share'] for r in runs])} | "
            f"{mean_or_dash(none_share(r) for r in runs)} | "
            f"{mean_or_dash(r['valid_accuracy'] for r in runs)} | "
            f"{mean_or_dash(r.get('valid_accuracy_raw') for r in runs)} |")
    return lines


def read(path):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def block():
    """The README's numbers block, as text."""
    sweep = load_sweep(SWEEP)
    lines = sweep_table(sweep)
    lines += validation_table(read(GRID), sweep["preset"])
    lines += xcpu_lines([read(path) for path in XCPU], sweep)
    lines += ablations_table(load_ablations(ABLATIONS))
    return "\n".join([BEGIN, *lines, END])


def rewritten(readme):
    if BEGIN not in readme or END not in readme:
        raise SystemExit(f"README.md has no numbers block: add the lines {BEGIN!r} and {END!r}")
    head, rest = readme.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return head + block() + tail


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that README.md is current")
    args = parser.parse_args(argv)
    with open(README) as f:
        readme = f.read()
    new = rewritten(readme)
    if args.check:
        if new != readme:
            print("README.md's numbers are not those of the shipped data: "
                  "run python tools/readme_numbers.py", file=sys.stderr)
            return 1
        return 0
    with open(README, "w") as f:
        f.write(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
