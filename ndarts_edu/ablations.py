"""The paper's ablations at a preset's scale: which noise cures skip domination, and which does not.

Each variant changes a few settings of one base search (plain DARTS, ``noise_lambda = 0``) and is
searched over several seeds:

- the noise level: half, once and twice the preset's ``noise_lambda`` (Gaussian, zero mean);
- the kind of noise: uniform and multiplicative against Gaussian, at the same level;
- the mean: a biased noise (``mu = +1`` and ``mu = -1``) against the unbiased one. The paper's
  argument (step 3 of its derivation) is that only ``E[n] = 0`` keeps the expected architecture
  gradient of skip unchanged; a positive mean inflates it, a negative one deflates it. As in the
  reference code's biased runs, the noise (mean and spread) decays to 0 over the search (cosine,
  ``noise_decay="cosine"``);
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
from .cluster import run_searches
from .config import searched
from .errors import ConfigError, check_choice, check_number, read_format_file
from .experiments import refuse_other_settings, setting_differences
from .ops import NONE, space_ops
from .runs import atomic_write_json
from .search import Search, SearchConfig

ABLATIONS_FORMAT = "ndarts_edu.ablations/1"
SHIPPED_ABLATIONS = "datasets/ablations_cpu.json"
BIASED_MEAN = 1.0
FAIRDARTS_ZERO_ONE = 10.0  # weight of FairDARTS's zero-one loss (train_search.py's aux_loss_weight)


def fairdarts_settings(base=None):
    """FairDARTS's search (xiaomi-automl/FairDARTS, fairdarts/train_search.py) on top of ``base``.

    Sigmoid weights from alpha = 0, the zero-one loss with weight 10 (one mean over both cell types,
    ``mixed.zero_one_loss``), Adam betas (0.9, 0.999) for alpha (DARTS: (0.5, 0.999)). Its learning
    rates are alpha 3e-3 and weights 0.005, cosine to 0.001. ``base`` (default: ``SearchConfig()``,
    the reference's own settings) says how a preset scales them: alpha learns 10 times the base's
    rate (3e-3 against the 3e-4 of DARTS and NoisyDARTS; the ``cpu`` preset raised its 3e-4 to 1e-2
    for its 110 steps, so FairDARTS's rate becomes 0.1), the weights at FairDARTS's 0.005, or the
    base's rate where that is lower. Two deviations: FairDARTS searches without ``none`` (7 ops)
    where the base's space may have it, and its weight step adds the zero-one loss too, which has no
    gradient for the weights and is left out. Measured on the ``cpu`` preset (seed 0, 10 epochs):
    so scaled, FairDARTS's rule keeps 7 of 8 ops, skip wins half the edges, the supernet reaches
    0.94; with the base's alpha rate (1e-2) no weight reaches 0.85 and the rule keeps no op; with a
    tenth of the base's weight rate (0.0005, the ratio of 0.005 to 0.05) the supernet reaches 0.76.
    """
    base = base or SearchConfig()
    w_lr = min(base.w_lr, 0.005)
    return {"weighting": "sigmoid", "zero_one_weight": FAIRDARTS_ZERO_ONE,
            "alpha_betas": [0.9, 0.999], "alpha_lr": round(10 * base.alpha_lr, 10),
            "w_lr": w_lr, "w_lr_min": min(base.w_lr_min, w_lr)}


def ablation_variants(noise_lambda, base=None):
    """``[(key, group, label, settings)]``: each variant's changes to the base DARTS search.

    ``noise_lambda`` is the preset's NoisyDARTS level: every noisy variant but the level sweep uses
    it. ``base``: the base search, which sets FairDARTS's learning rates (``fairdarts_settings``).
    """
    lam = float(check_number("noise_lambda", noise_lambda, minimum=0.0, strict=True))
    noisy = {"noise_lambda": lam}
    return [
        ("darts", "baseline", "DARTS (no noise)", {}),
        ("gaussian_half", "noise level", f"Gaussian, lambda {lam / 2:g}",
         {"noise_lambda": lam / 2}),
        ("gaussian", "noise level", f"Gaussian, lambda {lam:g} (NoisyDARTS)", noisy),
        ("gaussian_double", "noise level", f"Gaussian, lambda {2 * lam:g}",
         {"noise_lambda": 2 * lam}),
        ("uniform", "kind", f"uniform, lambda {lam:g}", {**noisy, "noise_kind": "uniform"}),
        ("multiplicative", "kind", f"multiplicative, lambda {lam:g}",
         {**noisy, "noise_kind": "multiplicative"}),
        # The reference's biased runs (its scripts/run_noisy_darts_search.sh: mu = +0.5, +1.0) pass
        # --noise_decay, a cosine decay of the whole noise to 0 over the search; its script has no
        # negative mean, which gets the same decay here so that the pair differs only in the sign.
        ("mean_plus", "mean", f"biased, mu = +{BIASED_MEAN:g}, decaying",
         {**noisy, "noise_mean": BIASED_MEAN, "noise_decay": "cosine"}),
        ("mean_minus", "mean", f"biased, mu = -{BIASED_MEAN:g}, decaying",
         {**noisy, "noise_mean": -BIASED_MEAN, "noise_decay": "cosine"}),
        ("noise_all", "where", "noise on every op", {**noisy, "noise_on": "all"}),
        ("fairdarts", "other cure", "FairDARTS (sigmoid + zero-one loss)",
         fairdarts_settings(base)),
    ]


PAPER_REFERENCE = {
    # From PAPER_FACTS.md: the reference code on CIFAR-10 (skips of the 8 edges of the searched
    # normal cell, mean of 8 searches; top-1 test accuracy of the trained network). None: not
    # reported.
    "darts": {"skips_of_8": "up to 6 (collapsed cells)",
              "cifar10_top1": "97.00 +- 0.14 (first order)"},
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
    # DARTS's rule for every variant, so counts compare
    top2 = derive.derive_cell(normal, result["ops"])
    return {
        "variant": key,
        "seed": result["config"]["seed"],
        "status": result["status"],
        "skip_share": result["skip_share"],
        "op_shares": result["op_shares"],
        "top2_skips": derive.genotype_skips(top2),
        "kept_ops": len(result["genotype"]["normal"]),
        "valid_accuracy": result["valid_accuracy"],
        "valid_accuracy_raw": result["valid_accuracy_raw"],
        "seconds": result["seconds"],
        "genotype": result["genotype"],
        "weights_normal": normal,
        "epochs": [_epoch_entry(e) for e in result["history"]["epochs"]],
    }


def _epoch_entry(record):
    """What an ablation entry keeps of an epoch record."""
    keys = ("epoch", "skip_share", "op_shares", "valid_accuracy", "valid_accuracy_raw")
    return {key: record[key] for key in keys}


def run_ablations(base_config, noise_lambda, seeds, only=None, out_path=None, on_result=None,
                  stop=None, preset=None, on_plan=None, on_event=None, workers=None, cluster=None):
    """Search every variant (or those named in ``only``) for every seed; return
    ``ABLATIONS_FORMAT`` data.

    With ``out_path`` the data is written as each search finishes, and the searches already in
    that file (same base settings and noise level) are kept rather than run again, so an
    interrupted run continues where it stopped; a file of other settings is refused with a
    ``ConfigError`` before anything runs, and left as it was. A search that diverges is recorded
    with ``status = "diverged"``, its numbers as they were. ``on_plan``, ``on_event``,
    ``workers``, ``cluster``, ``stop``: as ``experiments.compare``; the runs are kept in variant
    order, however they were run.
    """
    base = base_config.replace(noise_lambda=0.0)
    variants = ablation_variants(noise_lambda, base)
    keys = [key for key, *_ in variants]
    only = list(dict.fromkeys(only or keys))  # a variant named twice is searched once
    for key in only:
        check_choice("ablation", key, keys)
    seeds = sorted({int(check_number("seed", s, minimum=0, integer=True)) for s in seeds})
    if not seeds:
        raise ConfigError("ablations need at least one seed")
    data = {"format": ABLATIONS_FORMAT, "preset": preset, "config": base.to_dict(),
            "ops": list(space_ops(base.space)), "noise_lambda": float(noise_lambda),
            "seeds": seeds, "variants": [], "environment": None, "runs": []}
    if out_path and os.path.exists(out_path):
        previous = load_ablations(out_path)
        if previous["runs"] and (searched(previous["config"]) != searched(data["config"])
                                 or previous["noise_lambda"] != data["noise_lambda"]):
            differ = setting_differences({**previous["config"],
                                          "ablation noise_lambda": previous["noise_lambda"]},
                                         {**data["config"],
                                          "ablation noise_lambda": data["noise_lambda"]})
            raise refuse_other_settings(out_path, len(previous["runs"]), differ)
        data["runs"], data["environment"] = list(previous["runs"]), previous["environment"]
        data["seeds"] = sorted(set(previous["seeds"]) | set(seeds))
    # The file lists the variants asked for now and those it already holds runs of.
    listed = set(only) | {r["variant"] for r in data["runs"]}
    data["variants"] = [{"key": k, "group": g, "label": label, "settings": s}
                        for k, g, label, s in variants if k in listed]
    done = {(r["variant"], r["seed"]) for r in data["runs"]}
    todo = [(key, seed, settings) for key, _, _, settings in variants if key in only
            for seed in seeds if (key, seed) not in done]
    if on_plan:
        total = len(only) * len(seeds)
        on_plan({"total": total, "kept": total - len(todo),
                 "others": len(done - {(k, s) for k in only for s in seeds}),
                 "others_differ": [], "path": out_path})

    def keep(j, result):
        data["environment"] = data["environment"] or result["environment"]
        data["runs"].append(ablation_entry(todo[j][0], result))
        data["runs"].sort(key=lambda r: (keys.index(r["variant"]), r["seed"]))
        if on_result:
            on_result(result)
        if out_path:
            atomic_write_json(out_path, data)

    run_searches([base.replace(seed=seed, **settings) for _, seed, settings in todo], keep,
                 on_event=on_event, labels=[f"{key} seed={seed}" for key, seed, _ in todo],
                 workers=workers, cluster=cluster, stop=stop)
    return data


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
    return [_epoch_entry(e) for e in search.history["epochs"]]


def ablations_base(data):
    """The base search (plain DARTS) of an ablations file, as a ``SearchConfig``."""
    return SearchConfig.from_dict(data["config"])


def load_ablations(path=None):
    """The ablations shipped with the package (``path=None``) or a file written by
    ``run_ablations``."""
    return read_format_file(path, SHIPPED_ABLATIONS, "ablations", ABLATIONS_FORMAT)


def _mean_std(values):
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ablation_summary(data):
    """One row per variant: means and spreads over its seeds, and the paper's numbers beside
    them."""
    rows = []
    for variant in data["variants"]:
        runs = [r for r in data["runs"] if r["variant"] == variant["key"]]
        if not runs:
            continue
        finished = [r for r in runs if r["status"] == "finished"]
        share, share_std = _mean_std(r["skip_share"] for r in finished)
        acc, acc_std = _mean_std(r["valid_accuracy"] for r in finished)
        op_shares = derive.mean_op_shares(r.get("op_shares") for r in finished)  # None: older file
        rows.append({
            "key": variant["key"], "group": variant["group"], "label": variant["label"],
            "seeds": len(runs), "diverged": len(runs) - len(finished),
            "skip_share_mean": share, "skip_share_std": share_std,
            "skip_share_min": min((r["skip_share"] for r in finished), default=None),
            "skip_share_max": max((r["skip_share"] for r in finished), default=None),
            "top2_skips_mean": _mean_std(r["top2_skips"] for r in finished)[0],
            "op_shares_mean": op_shares,
            "none_share_mean": op_shares.get(NONE) if op_shares else None,
            "valid_accuracy_mean": acc, "valid_accuracy_std": acc_std,
            "valid_accuracy_raw_mean": _mean_std(r.get("valid_accuracy_raw") for r in finished)[0],
            "paper": PAPER_REFERENCE.get(variant["key"], {}),
        })
    return rows


def format_ablations(data):
    """The summary as a text table: one line per variant."""
    edges = len(data["runs"][0]["weights_normal"]) if data["runs"] else 0
    cell_ops = 2 * data["config"]["nodes"]  # two ops per node under DARTS's rule

    def num(value, fmt):
        return format(value, fmt) if value is not None else "-"

    head = (f"{'variant':<38}{'seeds':>6}  {'skip share':>14}  {'none':>5}  "
            f"{f'skips of {cell_ops}':>10}  {'accuracy %':>12}  {'raw %':>5}"
            "   paper: skips of 8 | CIFAR-10 %")
    lines = [head, "-" * len(head)]
    for row in ablation_summary(data):
        share = f"{num(row['skip_share_mean'], '.2f')} +- {num(row['skip_share_std'], '.2f')}"
        acc = (f"{num(100 * row['valid_accuracy_mean'], '.1f')} +- "
               f"{num(100 * row['valid_accuracy_std'], '.1f')}"
               if row["valid_accuracy_mean"] is not None else "-")
        raw = row["valid_accuracy_raw_mean"]
        seeds = f"{row['seeds']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        paper = row["paper"]
        none, skips = num(row["none_share_mean"], ".2f"), num(row["top2_skips_mean"], ".2f")
        lines.append(f"{row['label']:<38}{seeds:>6}  {share:>14}  {none:>5}  {skips:>10}  "
                     f"{acc:>12}  {num(raw and 100 * raw, '.1f'):>5}"
                     f"   {paper.get('skips_of_8') or '-'} | {paper.get('cifar10_top1') or '-'}")
    lines.append(f"skip share: of the {edges} edges of the normal cell, the fraction whose "
                 "strongest op other than none is skip (DARTS's rule); none: the fraction where "
                 "none has the largest weight of all ops; skips: in the derived normal cell; "
                 "accuracy: the supernet's, on the search's valid half, batch norm re-estimated "
                 "without noise (raw: with the statistics gathered under noise)")
    return "\n".join(lines)
