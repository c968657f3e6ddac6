"""The paper's ablations at a preset's scale: which noise cures skip domination, and which does not.

Each variant changes a few settings of one base search (plain DARTS, ``noise_lambda = 0``) and is
searched over several seeds:

- the noise level: half, once and twice the preset's ``noise_lambda`` (Gaussian, zero mean);
- the kind of noise: uniform and multiplicative against Gaussian, at the same level;
- the mean: a biased noise (``mu = +1`` and ``mu = -1``) against the unbiased one. The paper's
  argument (step 3 of its derivation) is that only ``E[n] = 0`` keeps the expected architecture
  gradient of skip unchanged; a positive mean inflates it, a negative one deflates it;
- where: noise on the skip op only (NoisyDARTS) against noise on every op's output;
- the other cure: FairDARTS's sigmoid weights with its zero-one loss, and no noise.

``run_ablations`` returns plain data (``ABLATIONS_FORMAT``), saved as it goes and resumable; a copy
computed with the ``cpu`` preset ships with the package (``load_ablations()``), so that a notebook
answers at once. ``python -m ndarts_edu ablations`` recomputes it.
"""
import os
import statistics
import threading

from . import derive
from .errors import ConfigError, check_choice, check_number, read_format_file
from .ops import space_ops
from .search import Search, SearchConfig, SearchDiverged, atomic_write_json

ABLATIONS_FORMAT = "ndarts_edu.ablations/1"
SHIPPED_ABLATIONS = "datasets/ablations_cpu.json"
BIASED_MEAN = 1.0
FAIRDARTS_ZERO_ONE = 10.0  # weight of FairDARTS's zero-one loss


def ablation_variants(noise_lambda):
    """``[(key, group, label, settings)]``: each variant's changes to the base DARTS search.

    ``noise_lambda`` is the preset's NoisyDARTS level: every noisy variant but the level sweep uses it.
    """
    lam = float(check_number("noise_lambda", noise_lambda, minimum=0.0, strict=True))
    noisy = {"noise_lambda": lam}
    return [
        ("darts", "baseline", "DARTS (no noise)", {}),
        ("gaussian_half", "noise level", f"Gaussian, lambda {lam / 2:g}", {"noise_lambda": lam / 2}),
        ("gaussian", "noise level", f"Gaussian, lambda {lam:g} (NoisyDARTS)", noisy),
        ("gaussian_double", "noise level", f"Gaussian, lambda {2 * lam:g}", {"noise_lambda": 2 * lam}),
        ("uniform", "kind", f"uniform, lambda {lam:g}", {**noisy, "noise_kind": "uniform"}),
        ("multiplicative", "kind", f"multiplicative, lambda {lam:g}", {**noisy, "noise_kind": "multiplicative"}),
        ("mean_plus", "mean", f"biased, mu = +{BIASED_MEAN:g}", {**noisy, "noise_mean": BIASED_MEAN}),
        ("mean_minus", "mean", f"biased, mu = -{BIASED_MEAN:g}", {**noisy, "noise_mean": -BIASED_MEAN}),
        ("noise_all", "where", "noise on every op", {**noisy, "noise_on": "all"}),
        # FairDARTS's own learning rates differ too; here only its two ideas change, the rest is the base's.
        ("fairdarts", "other cure", "FairDARTS (sigmoid + zero-one loss)",
         {"weighting": "sigmoid", "zero_one_weight": FAIRDARTS_ZERO_ONE}),
    ]


PAPER_REFERENCE = {
    # From PAPER_FACTS.md: the reference code on CIFAR-10 (skips of the 8 edges of the searched normal
    # cell, mean of 8 searches; top-1 test accuracy of the trained network). None: not reported.
    "darts": {"skips_of_8": "up to 6 (collapsed cells)", "cifar10_top1": "97.00 +- 0.14 (first order)"},
    "gaussian_half": {"skips_of_8": "1.75 (lambda 0.1)", "cifar10_top1": "97.53 (lambda 0.1)"},
    "gaussian": {"skips_of_8": "1.5 (lambda 0.2)", "cifar10_top1": "97.61 (lambda 0.2)"},
    "gaussian_double": {"skips_of_8": None, "cifar10_top1": None},
    "uniform": {"skips_of_8": None, "cifar10_top1": "97.40 / 97.42 (0.2 / 0.1)"},
    "multiplicative": {"skips_of_8": None, "cifar10_top1": None},
    "mean_plus": {"skips_of_8": "0.6 to 1.1 (mu +0.5, +1.0)", "cifar10_top1": "97.21 to 97.49"},
    "mean_minus": {"skips_of_8": "0 (mu -1.0)", "cifar10_top1": None},
    "noise_all": {"skips_of_8": None, "cifar10_top1": None},
    "fairdarts": {"skips_of_8": None, "cifar10_top1": "97.46 +- 0.05 (7 searches)"},
}


def ablation_entry(key, result):
    """What the table and the plots need from one search (plain data)."""
    normal = result["weights"]["normal"]
    top2 = derive.derive_cell(normal, result["ops"])  # DARTS's rule for every variant, so counts compare
    return {
        "variant": key,
        "seed": result["config"]["seed"],
        "status": result["status"],
        "skip_share": result["skip_share"],
        "top2_skips": derive.genotype_skips(top2),
        "kept_ops": len(result["genotype"]["normal"]),
        "valid_accuracy": result["valid_accuracy"],
        "seconds": result["seconds"],
        "genotype": result["genotype"],
        "weights_normal": normal,
        "epochs": [{"epoch": e["epoch"], "skip_share": e["skip_share"], "valid_accuracy": e["valid_accuracy"]}
                   for e in result["history"]["epochs"]],
    }


def run_ablations(base_config, noise_lambda, seeds, only=None, out_path=None, on_result=None, stop=None,
                  wrap=None, preset=None):
    """Search every variant (or those named in ``only``) for every seed; return ``ABLATIONS_FORMAT`` data.

    With ``out_path`` the data is written after every search, and the searches already in that file
    (same base settings) are kept rather than run again, so an interrupted run continues where it
    stopped. A search that diverges is recorded with ``status = "diverged"``, its numbers as they were.
    ``wrap(search) -> result`` lets a caller run each search its own way (a progress bar).
    """
    variants = ablation_variants(noise_lambda)
    keys = [key for key, *_ in variants]
    only = list(only or keys)
    for key in only:
        check_choice("ablation", key, keys)
    seeds = [int(check_number("seed", s, minimum=0, integer=True)) for s in seeds]
    if not seeds:
        raise ConfigError("ablations need at least one seed")
    base = base_config.replace(noise_lambda=0.0)
    data = {"format": ABLATIONS_FORMAT, "preset": preset, "config": base.to_dict(), "ops": list(space_ops(base.space)),
            "noise_lambda": float(noise_lambda), "seeds": seeds, "variants": [], "environment": None, "runs": []}
    if out_path and os.path.exists(out_path):
        previous = load_ablations(out_path)
        if previous["config"] == data["config"] and previous["noise_lambda"] == data["noise_lambda"]:
            data["runs"], data["environment"] = previous["runs"], previous["environment"]
            data["seeds"] = sorted(set(previous["seeds"]) | set(seeds))
    # The file lists the variants asked for now and those it already holds runs of.
    listed = set(only) | {r["variant"] for r in data["runs"]}
    data["variants"] = [{"key": k, "group": g, "label": label, "settings": s}
                        for k, g, label, s in variants if k in listed]
    done = {(r["variant"], r["seed"]) for r in data["runs"]}
    for key, _, _, settings in variants:
        for seed in seeds:
            if key not in only or (key, seed) in done:
                continue
            if stop is not None and stop.is_set():
                return data
            search = Search(base.replace(seed=seed, **settings))
            try:
                result = search.run(stop=stop) if wrap is None else wrap(search)
            except SearchDiverged as error:
                result = getattr(error, "result", None) or search.result()
            if result["status"] not in ("finished", "diverged"):
                return data  # stopped: keep what finished
            data["environment"] = data["environment"] or result["environment"]
            data["runs"].append(ablation_entry(key, result))
            if on_result:
                on_result(result)
            if out_path:
                atomic_write_json(out_path, data)
    return data


def merge_ablations(*parts):
    """One ablations file from several computed apart (``--only`` on two machines, say).

    The parts must share the base search and noise level; their runs are put in variant order.
    """
    first = parts[0]
    for part in parts[1:]:
        if part["config"] != first["config"] or part["noise_lambda"] != first["noise_lambda"]:
            raise ConfigError("ablation files to merge must share the base search and noise level")
    runs = {(r["variant"], r["seed"]): r for part in parts for r in part["runs"]}
    keys = [key for key, *_ in ablation_variants(first["noise_lambda"])]
    listed = {v["key"]: v for part in parts for v in part["variants"]}
    return {**first, "seeds": sorted({s for part in parts for s in part["seeds"]}),
            "variants": [listed[k] for k in keys if k in listed],
            "runs": sorted(runs.values(), key=lambda r: (keys.index(r["variant"]), r["seed"]))}


def rerun_epochs(data, key, seed, epochs=2):
    """Search variant ``key`` with ``seed`` again, for its first ``epochs`` epochs only.

    The search is planned at its full length (the same schedules as the saved run) and stopped
    after ``epochs``: its records should match the saved run's first ones, a cheap check that
    saved numbers came from this code. Returns the records, shaped like a run's ``epochs``.
    """
    settings = {v["key"]: v["settings"] for v in data["variants"]}
    check_choice("ablation", key, list(settings))
    config = ablations_base(data).replace(seed=int(seed), **settings[key])
    stop = threading.Event()
    search = Search(config)
    search.run(on_epoch=lambda record: stop.set() if record["epoch"] >= epochs else None, stop=stop)
    return [{"epoch": e["epoch"], "skip_share": e["skip_share"], "valid_accuracy": e["valid_accuracy"]}
            for e in search.history["epochs"]]


def ablations_base(data):
    """The base search (plain DARTS) of an ablations file, as a ``SearchConfig``."""
    return SearchConfig.from_dict(data["config"])


def load_ablations(path=None):
    """The ablations shipped with the package (``path=None``) or a file written by ``run_ablations``."""
    return read_format_file(path, SHIPPED_ABLATIONS, "ablations", ABLATIONS_FORMAT)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ablation_summary(data):
    """One row per variant: means and spreads over its seeds, and the paper's numbers beside them."""
    rows = []
    for variant in data["variants"]:
        runs = [r for r in data["runs"] if r["variant"] == variant["key"]]
        if not runs:
            continue
        finished = [r for r in runs if r["status"] == "finished"]
        share, share_std = _mean_std(r["skip_share"] for r in finished)
        acc, acc_std = _mean_std(r["valid_accuracy"] for r in finished)
        rows.append({
            "key": variant["key"], "group": variant["group"], "label": variant["label"],
            "seeds": len(runs), "diverged": len(runs) - len(finished),
            "skip_share_mean": share, "skip_share_std": share_std,
            "skip_share_min": min((r["skip_share"] for r in finished), default=None),
            "skip_share_max": max((r["skip_share"] for r in finished), default=None),
            "top2_skips_mean": _mean_std(r["top2_skips"] for r in finished)[0],
            "valid_accuracy_mean": acc, "valid_accuracy_std": acc_std,
            "paper": PAPER_REFERENCE.get(variant["key"], {}),
        })
    return rows


def format_ablations(data):
    """The summary as a text table: one line per variant."""
    edges = len(data["runs"][0]["weights_normal"]) if data["runs"] else 0
    cell_ops = 2 * data["config"]["nodes"]  # two ops per node under DARTS's rule

    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    head = (f"{'variant':<38}{'seeds':>6}  {'skip share':>14}  {f'skips of {cell_ops}':>10}  {'accuracy %':>12}"
            f"   paper: skips of 8 | CIFAR-10 %")
    lines = [head, "-" * len(head)]
    for row in ablation_summary(data):
        share = f"{num(row['skip_share_mean'], '.2f')} +- {num(row['skip_share_std'], '.2f')}"
        acc = (f"{num(100 * row['valid_accuracy_mean'], '.1f')} +- {num(100 * row['valid_accuracy_std'], '.1f')}"
               if row["valid_accuracy_mean"] is not None else "-")
        seeds = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        paper = row["paper"]
        lines.append(f"{row['label']:<38}{seeds:>6}  {share:>14}  {num(row['top2_skips_mean'], '.2f'):>10}  {acc:>12}"
                     f"   {paper.get('skips_of_8') or '-'} | {paper.get('cifar10_top1') or '-'}")
    lines.append(f"skip share: of the {edges} edges of the normal cell, the fraction whose strongest op is skip; "
                 f"skips: in the derived normal cell (top-2 rule); accuracy: the supernet's, on the search's valid half")
    return "\n".join(lines)
