"""Calibrate the teaching preset: a grid of settings x noise levels x seeds, one search at a time.

    python tools/calibrate.py --settings cpu --noise 0,0.5,1 --seeds 0,1,2 --out docs/calibration/grid_cpu.json
    python tools/calibrate.py --out docs/calibration/grid_cpu.json --summary      # the table only
    python tools/calibrate.py --list                                             # the settings

Each search runs in this process with one torch thread; its summary (not its history) is written
to ``--out`` as soon as it finishes, under a key made of its settings, noise level and seed, so a
rerun skips what the file holds and an interrupted grid continues. Two processes may share one
file (a lock guards each write).

What one search records:

- ``skip_share`` (the library's: the normal edges whose strongest non-``none`` op is skip) at the
  end and after every epoch;
- ``op_share``: for each op, the share of the normal (and reduce) cell's edges where it is the
  strongest of *all* ops, ``none`` included, so a cure that hands the cell to ``none`` shows;
- ``accuracy_raw``: the supernet's accuracy on the architecture half in eval mode, as the search
  reports it, with BatchNorm statistics gathered while skip carried noise;
- ``accuracy_bn``: the same after the BatchNorm statistics are re-estimated without noise
  (``bn_corrected_accuracy``), the figure to compare across noise levels;
- ``accuracy_distorted_bn``: the BN-corrected supernet on one fixed distorted copy of the
  architecture half (only with ``augment="distort"``): the task the search trained on;
- ``cpu_seconds``: the search's process CPU time (``time.process_time``), which other programs on
  the machine do not inflate the way they inflate wall-clock time.
"""
import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ndarts_edu.data import Batches, Distortion, ImageData, digits  # noqa: E402
from ndarts_edu.network import evaluate, kept_batchnorm_statistics, recalibrate_batchnorm  # noqa: E402
from ndarts_edu.presets import preset_config  # noqa: E402
from ndarts_edu.search import Search  # noqa: E402

GRID_FORMAT = "ndarts_edu.calibration/1"

# name -> SearchConfig overrides of the cpu preset, and a Distortion's settings (or None).
# Kept as they were measured: a later setting gets a new name, so the file's keys stay true.
SETTINGS = {
    # the preset before this calibration: the 8x8 digits as they are
    "old_cpu": dict(config=dict(dataset="digits", space="s3", layers=5, channels=8, nodes=4, epochs=10,
                                batch_size=64, w_lr=0.005, alpha_lr=1e-2, augment=False)),
}
DIGITS = dict(dataset="digits", space="s3", layers=5, channels=8, nodes=4, batch_size=64, alpha_lr=1e-2,
              augment="distort")
ISSUE_DISTORTION = dict(degrees=15.0, scale=0.12, shift=0.125, noise=0.3)
# Round 1: the issue's distortion at 8x8, drawn afresh per image, 16 epochs (176 steps), three w_lr.
for w_lr in (0.025, 0.01, 0.005):
    SETTINGS[f"d8_e16_w{w_lr:g}"] = dict(config=dict(DIGITS, epochs=16, w_lr=w_lr), distortion=ISSUE_DISTORTION)
# Round 2: within the budget (110 steps, as the old preset), and a faster alpha.
for w_lr, alpha_lr in ((0.01, 1e-2), (0.01, 3e-2), (0.025, 3e-2)):
    SETTINGS[f"d8_e10_w{w_lr:g}_a{alpha_lr:g}"] = dict(config=dict(DIGITS, epochs=10, w_lr=w_lr, alpha_lr=alpha_lr),
                                                      distortion=ISSUE_DISTORTION)
# The old preset's plain digits with the decisive alpha of round 5.
for w_lr in (0.005, 0.01):
    SETTINGS[f"plain_e10_w{w_lr:g}_a0.1"] = dict(config=dict(DIGITS, augment=False, epochs=10, w_lr=w_lr,
                                                             alpha_lr=0.1))
# A fixed pool of distorted digits (the issue's 4,000, here one copy of each: 11 steps an epoch).
for w_lr, alpha_lr in ((0.025, 3e-2), (0.025, 0.1), (0.01, 0.1)):
    SETTINGS[f"pool1438_e10_w{w_lr:g}_a{alpha_lr:g}"] = dict(
        config=dict(DIGITS, augment=False, epochs=10, w_lr=w_lr, alpha_lr=alpha_lr), distortion=ISSUE_DISTORTION,
        pool=1438)
# Round 5: a decisive alpha (3x faster): an early lead is locked in either way, and an edge whose
# skip is pushed out stops carrying noise, so the supernet trains unhindered.
for w_lr in (0.025, 0.01, 0.015):
    SETTINGS[f"d8_e10_w{w_lr:g}_a0.1"] = dict(config=dict(DIGITS, epochs=10, w_lr=w_lr, alpha_lr=0.1),
                                              distortion=ISSUE_DISTORTION)
# Round 3: a harder distortion, so that the loss stays high (the noise's penalty on skip scales
# with the loss's curvature, which fades as the supernet fits the data).
HARD_DISTORTION = dict(degrees=30.0, scale=0.2, shift=0.2, noise=0.6)
for w_lr, alpha_lr in ((0.01, 3e-2), (0.01, 1e-2)):
    SETTINGS[f"d8h_e10_w{w_lr:g}_a{alpha_lr:g}"] = dict(config=dict(DIGITS, epochs=10, w_lr=w_lr, alpha_lr=alpha_lr),
                                                       distortion=HARD_DISTORTION)
# Round 4: DARTS's depth (8 cells): skip as a gradient highway, an advantage that does not fade
# as the convolutions learn (the weights at DARTS's 0.025).
for w_lr in (0.025, 0.015):
    SETTINGS[f"d8_L8_e10_w{w_lr:g}_a0.03"] = dict(config=dict(DIGITS, layers=8, epochs=10, w_lr=w_lr, alpha_lr=3e-2),
                                                  distortion=ISSUE_DISTORTION)


def setting(name):
    if name not in SETTINGS:
        raise SystemExit(f"unknown setting {name!r}; known: {', '.join(SETTINGS)}")
    return SETTINGS[name]


def run_key(name, noise, seed):
    """The file's key for one search: its name, noise, seed and a hash of its exact settings."""
    spec = json.dumps(setting(name), sort_keys=True)
    return f"{name}|{noise:g}|{seed}|{hashlib.sha256(spec.encode()).hexdigest()[:8]}"


# -- measurement ------------------------------------------------------------------------------
def op_share(rows, op_names):
    """For each op, the share of edges where it has the largest weight (``none`` included)."""
    best = [max(range(len(row)), key=row.__getitem__) for row in rows]
    return {name: round(sum(b == k for b in best) / len(best), 4) for k, name in enumerate(op_names)}


@torch.no_grad()
def bn_corrected_accuracy(search, images=None, labels=None):
    """Accuracy with BatchNorm statistics re-estimated without noise (the library's
    ``network.recalibrate_batchnorm``), on the architecture half or on ``images``."""
    if images is None:
        return search.evaluate(recalibrate=True)[1]
    with kept_batchnorm_statistics(search.model):
        recalibrate_batchnorm(search.model, search.train_batches.images, search.config.batch_size)
        return evaluate(search.model, images, labels)[1]


def distorted_copy(batches, distortion, seed=12345):
    """One fixed distorted draw of every image of ``batches`` (the same for every search)."""
    fixed = Batches(batches.images, batches.labels, len(batches.labels), batches.images.device, seed=seed,
                    augment="distort", distortion=distortion)
    return fixed._distort(batches.images), batches.labels


def distorted_pool(size, distortion, seed=0):
    """The digits' training part as ``size`` fixed distorted copies (cycling through the images):
    a finite data set the weights can overfit, unlike fresh draws."""
    d = digits()
    source = torch.arange(size) % len(d.train_labels)
    maker = Batches(d.train_images, d.train_labels, 1, "cpu", seed=seed, augment="distort", distortion=distortion)
    images = maker._distort(d.train_images[source])
    return ImageData("digits-distorted", images, d.train_labels[source], d.test_images, d.test_labels, 10)


def one_search(name, noise, seed):
    """Run one search of setting ``name`` and return its summary."""
    spec = setting(name)
    config = preset_config("cpu", **spec["config"]).replace(noise_lambda=noise, seed=seed, threads=1,
                                                            device="cpu")
    started_cpu, started_wall = time.process_time(), time.perf_counter()
    distortion = Distortion(**spec["distortion"]) if spec.get("distortion") else None
    if spec.get("pool"):  # a fixed data set of distorted digits instead of fresh draws
        search = Search(config, data=distorted_pool(spec["pool"], distortion))
    else:
        search = Search(config)
    if distortion is not None and config.augment == "distort":  # the same batches as Search makes, with this grid's distortion
        search.train_batches = Batches(search.train_batches.images, search.train_batches.labels, config.batch_size,
                                       search.device, seed=seed, augment=config.augment, distortion=distortion)
        search.valid_batches = Batches(search.valid_batches.images, search.valid_batches.labels,
                                       config.batch_size, search.device, seed=seed + 1, augment=config.augment,
                                       distortion=distortion)
    result = search.run()
    cpu_seconds = time.process_time() - started_cpu
    wall_seconds = time.perf_counter() - started_wall
    ops = result["ops"]
    summary = {
        "setting": name, "noise_lambda": noise, "seed": seed, "spec": spec, "status": result["status"],
        "skip_share": result["skip_share"],
        "skip_share_by_epoch": [e["skip_share"] for e in result["history"]["epochs"]],
        "op_share": {kind: op_share(result["weights"][kind], ops) for kind in ("normal", "reduce")},
        "genotype_skips": result["genotype_skips"],
        "genotype": result["genotype"],
        "accuracy_raw": result["valid_accuracy_raw"],
        "accuracy_raw_by_epoch": [e["valid_accuracy_raw"] for e in result["history"]["epochs"]],
        "train_accuracy_last_epoch": result["history"]["epochs"][-1]["train_accuracy"],
        "weights_normal": result["weights"]["normal"],
        "steps": result["steps_done"],
        "cpu_seconds": round(cpu_seconds, 2),
        "wall_seconds": round(wall_seconds, 2),
        "torch_threads": torch.get_num_threads(),
    }
    if config.augment == "distort":
        images, labels = distorted_copy(search.valid_batches, distortion or Distortion())
        summary["accuracy_distorted_bn"] = round(bn_corrected_accuracy(search, images, labels), 6)
    summary["accuracy_bn"] = round(bn_corrected_accuracy(search), 6)
    summary["measure_cpu_seconds"] = round(time.process_time() - started_cpu - cpu_seconds, 2)
    return summary


# -- the file ---------------------------------------------------------------------------------
@contextlib.contextmanager
def locked(path):
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_grid(path):
    if not os.path.exists(path):
        return {"format": GRID_FORMAT, "environment": None, "runs": {}}
    with open(path) as f:
        data = json.load(f)
    if data.get("format") != GRID_FORMAT:
        raise SystemExit(f"{path} is not a calibration file ({GRID_FORMAT})")
    return data


def add_run(path, key, summary):
    """Merge one summary into the file (under a lock, written atomically)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with locked(path):
        data = read_grid(path)
        if data["environment"] is None:
            from ndarts_edu import repro
            data["environment"] = repro.environment("cpu")
        data["runs"][key] = summary
        data["runs"] = dict(sorted(data["runs"].items()))
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=None, separators=(",", ":"))
        os.replace(tmp, path)


# -- the table --------------------------------------------------------------------------------
def groups(runs):
    out = {}
    for r in runs.values():
        out.setdefault((r["setting"], r["noise_lambda"]), []).append(r)
    return out


def summary_rows(runs, settings=None):
    rows = []
    for (name, noise), group in sorted(groups(runs).items()):
        if settings and name not in settings:
            continue
        group = sorted(group, key=lambda r: r["seed"])
        share = group[0]["op_share"]["normal"]
        rows.append({
            "setting": name, "noise": noise, "seeds": [r["seed"] for r in group],
            "skip": [r["skip_share"] for r in group],
            # holding or growing: the share at half-time against the end
            "skip_half": [r["skip_share_by_epoch"][len(r["skip_share_by_epoch"]) // 2 - 1] for r in group],
            "op_share": {op: statistics.mean(r["op_share"]["normal"][op] for r in group) for op in share},
            "acc_bn": statistics.mean(r["accuracy_bn"] for r in group),
            "acc_raw": statistics.mean(r["accuracy_raw"] for r in group),
            "acc_dist": (statistics.mean(r["accuracy_distorted_bn"] for r in group)
                         if all("accuracy_distorted_bn" in r for r in group) else None),
            "cpu": statistics.mean(r["cpu_seconds"] for r in group),
        })
    return rows


def format_summary(runs, settings=None):
    lines = [f"{'setting':<24} {'lam':>4} {'n':>2} {'skip':>5} {'>=.75':>5} {'<=.40':>5}  op share (normal, argmax "
             f"over all ops)        {'acc_bn':>6} {'raw':>6} {'dist':>6} {'cpu s':>6} {'half':>5}  skip per seed"]
    for row in summary_rows(runs, settings):
        shares = " ".join(f"{op[:8]}={v:.2f}" for op, v in row["op_share"].items())
        dist = f"{row['acc_dist']:6.3f}" if row["acc_dist"] is not None else f"{'':6}"
        lines.append(
            f"{row['setting']:<24} {row['noise']:4g} {len(row['seeds']):2d} {statistics.mean(row['skip']):5.2f} "
            f"{sum(s >= 0.75 for s in row['skip']):5d} {sum(s <= 0.40 for s in row['skip']):5d}  {shares:<40} "
            f"{row['acc_bn']:6.3f} {row['acc_raw']:6.3f} {dist} {row['cpu']:6.1f} "
            f"{statistics.mean(row['skip_half']):5.2f}  "
            + " ".join(f"{s:.2f}" for s in row["skip"]))
    return "\n".join(lines)


def numbers(text, kind=float):
    return [kind(v) for v in text.split(",") if v.strip()]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default="", help="comma-separated setting names (--list)")
    parser.add_argument("--noise", default="0", help="noise levels, e.g. 0,0.5,1")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="docs/calibration/grid_cpu.json")
    parser.add_argument("--summary", action="store_true", help="print the table of --out and stop")
    parser.add_argument("--list", action="store_true", help="print the settings and stop")
    args = parser.parse_args(argv)
    if args.list:
        for name, spec in SETTINGS.items():
            print(f"{name:<14} {json.dumps(spec, sort_keys=True)}")
        return
    names = [n for n in args.settings.split(",") if n]
    if not args.summary:
        torch.set_num_threads(1)
        for name in names:
            for noise in numbers(args.noise):
                for seed in numbers(args.seeds, int):
                    key = run_key(name, noise, seed)
                    if key in read_grid(args.out)["runs"]:
                        continue
                    summary = one_search(name, noise, seed)
                    add_run(args.out, key, summary)
                    print(f"{key}: skip {summary['skip_share']:.2f} none {summary['op_share']['normal'].get('none', 0):.2f}"
                          f" acc_bn {summary['accuracy_bn']:.3f} raw {summary['accuracy_raw']:.3f}"
                          f" cpu {summary['cpu_seconds']:.1f}s", flush=True)
    print(format_summary(read_grid(args.out)["runs"], names or None))


if __name__ == "__main__":
    main()
