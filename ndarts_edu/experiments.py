"""Many searches at once: DARTS against NoisyDARTS over seeds (``compare``), and a grid of noise
levels (``sweep``) whose summary ships with the package so that a slider answers instantly.

Both return plain data and, with ``out_path``, save it after every search. Run again with the
same ``out_path`` and settings, they keep the searches that file already holds and run only the
rest, so an interrupted run continues where it stopped.
"""
import os
import statistics

from .errors import ConfigError, check_number, read_format_file, read_json
from .search import Search, atomic_write_json
from .ops import SKIP, space_ops

SWEEP_FORMAT = "ndarts_edu.sweep/1"
SHIPPED_SWEEP = "datasets/sweep_cpu.json"


def same_settings(recorded, config):
    """Whether a recorded search (its ``result["config"]``) ran with ``config``'s settings.

    ``device="auto"`` and ``threads=None`` match whatever they resolved to.
    """
    wanted = config.to_dict()
    return all(recorded.get(key) == value for key, value in wanted.items()
               if not (key == "device" and value == "auto") and not (key == "threads" and value is None))


def _earlier_file(kind, out_path):
    """The data of an earlier run's ``out_path``; ``None`` if there is none, ``ConfigError`` if it is not a ``kind`` file."""
    if not out_path or not os.path.exists(out_path):
        return None
    data = read_json(out_path, f"{kind} file")
    if not isinstance(data, dict) or not isinstance(data.get("runs"), list):
        raise ConfigError(f"{out_path!r} exists but is not a {kind} file (no 'runs' list); "
                          "remove it or choose another --out")
    return data


def _kept(kind, earlier, base_config, configs):
    """The runs of ``earlier`` (a file's data, or ``None``) that searched one of ``configs``."""
    if earlier is None:
        return []
    if kind == "compare":
        return [r for r in earlier["runs"] if r.get("status") == "finished"
                and any(same_settings(r["config"], c) for c in configs)]
    if earlier.get("format") != SWEEP_FORMAT or earlier.get("config") != base_config.to_dict():
        return []
    grid = {(c.noise_lambda, c.seed) for c in configs}
    return [r for r in earlier["runs"] if (r["noise_lambda"], r["seed"]) in grid]


def kept_runs(kind, out_path, base_config, noise_lambdas, seeds):
    """What ``out_path`` already holds of this ``compare`` or ``sweep`` (``kind``): its finished
    searches of the same settings on the same grid (results for compare, entries for sweep).

    ``[]`` if the file is not there; a ``ConfigError`` if it is there but is not such a file.
    """
    configs = _grid(base_config, noise_lambdas, seeds, kind)
    return _kept(kind, _earlier_file(kind, out_path), base_config, configs)


def _runs(configs, on_result=None, stop=None, out_path=None, wrap=None, kept=()):
    """Run ``configs`` in order; a config that one of ``kept`` (earlier results) ran is not run again."""
    kept, results = list(kept), []
    for config in configs:
        earlier = next((r for r in kept if same_settings(r["config"], config)), None)
        if earlier is not None:
            results.append(earlier)
            continue
        if stop is not None and stop.is_set():
            break
        search = Search(config)
        result = search.run(stop=stop) if wrap is None else wrap(search)
        if result["status"] != "finished":
            break
        results.append(result)
        if on_result:
            on_result(result)
        if out_path:
            atomic_write_json(out_path, {"runs": results})
    return results


def _grid(base_config, noise_lambdas, seeds, what):
    lambdas = [check_number("noise_lambda", lam, minimum=0.0) for lam in noise_lambdas]
    seeds = [int(check_number("seed", s, minimum=0, integer=True)) for s in seeds]
    if not lambdas or not seeds:
        raise ConfigError(f"{what} needs at least one noise level and one seed")
    return [base_config.replace(noise_lambda=lam, seed=seed) for lam in lambdas for seed in seeds]


def compare(base_config, noise_lambdas, seeds, on_result=None, stop=None, out_path=None, wrap=None):
    """One search per (noise level, seed); ``{"runs": [result, ...]}`` in that order.

    ``wrap(search) -> result`` lets a caller run each search its own way (a progress bar).
    """
    configs = _grid(base_config, noise_lambdas, seeds, "compare")
    kept = _kept("compare", _earlier_file("compare", out_path), base_config, configs)
    return {"runs": _runs(configs, on_result, stop, out_path, wrap, kept)}


def summary_table(runs):
    """Rows ``(noise_lambda, seed, skip_share, genotype_skips, valid_accuracy, seconds)`` and per-lambda means."""
    rows = [(r["config"]["noise_lambda"], r["config"]["seed"], r["skip_share"], r["genotype_skips"],
             r["valid_accuracy"], r["seconds"]) for r in runs]
    means = {}
    for lam in sorted({row[0] for row in rows}):
        group = [row for row in rows if row[0] == lam]
        means[lam] = {
            "skip_share": statistics.mean(row[2] for row in group),
            "genotype_skips": statistics.mean(row[3] for row in group),
            "valid_accuracy": statistics.mean(row[4] for row in group),
            "seconds": statistics.mean(row[5] for row in group),
            "seeds": len(group),
        }
    return rows, means


def format_table(runs):
    """A side-by-side text table of a compare: one line per seed, one column group per noise level."""
    rows, means = summary_table(runs)
    lambdas = sorted(means)
    seeds = sorted({row[1] for row in rows})
    by_key = {(row[0], row[1]): row for row in rows}
    head = "seed " + "".join(f"| lambda={lam:<5g} skip%  skips  acc%   s   " for lam in lambdas)
    lines = [head, "-" * len(head)]
    for seed in seeds:
        cells = []
        for lam in lambdas:
            row = by_key.get((lam, seed))
            cells.append("| " + (f"{'':13}{100 * row[2]:5.1f}  {row[3]:5d}  {100 * row[4]:5.1f} {row[5]:5.1f} "
                                 if row else " " * 38))
        lines.append(f"{seed:<5}" + "".join(cells))
    lines.append("-" * len(head))
    lines.append("mean " + "".join(
        f"| {'':13}{100 * m['skip_share']:5.1f}  {m['genotype_skips']:5.2f}  {100 * m['valid_accuracy']:5.1f} "
        f"{m['seconds']:5.1f} " for m in (means[lam] for lam in lambdas)))
    return "\n".join(lines)


# -- the noise sweep ------------------------------------------------------------------------------
def sweep_entry(result):
    """What the slider needs from one search: final and per-epoch skip figures and weights."""
    ops = result["ops"]
    skip = ops.index(SKIP)
    steps = result["history"]["steps"]
    return {
        "noise_lambda": result["config"]["noise_lambda"],
        "seed": result["config"]["seed"],
        "skip_share": result["skip_share"],
        "genotype_skips": result["genotype_skips"],
        "valid_accuracy": result["valid_accuracy"],
        "seconds": result["seconds"],
        "genotype": result["genotype"],
        "weights": result["weights"],
        "epochs": [{"epoch": e["epoch"], "skip_share": e["skip_share"], "genotype_skips": e["genotype_skips"],
                    "valid_accuracy": e["valid_accuracy"], "weights": e["weights"]}
                   for e in result["history"]["epochs"]],
        # the mean skip weight over the normal cell's edges, step by step: the competition in one line
        "skip_weight_steps": [round(sum(row[skip] for row in s["weights"]["normal"]) / len(s["weights"]["normal"]), 5)
                              for s in steps if "weights" in s],
    }


def sweep(base_config, noise_lambdas, seeds, on_result=None, stop=None, out_path=None, wrap=None, preset=None):
    """A grid of noise levels x seeds, summarised for the slider (``SWEEP_FORMAT``)."""
    configs = _grid(base_config, noise_lambdas, seeds, "sweep")
    data = {"format": SWEEP_FORMAT, "preset": preset, "config": base_config.to_dict(),
            "ops": list(space_ops(base_config.space)), "environment": None,
            "noise_lambdas": [float(lam) for lam in noise_lambdas], "seeds": [int(s) for s in seeds], "runs": []}
    earlier = _earlier_file("sweep", out_path)
    data["runs"] = _kept("sweep", earlier, base_config, configs)
    if data["runs"]:
        data["environment"] = earlier.get("environment")
    done = {(r["noise_lambda"], r["seed"]) for r in data["runs"]}
    order = {(c.noise_lambda, c.seed): k for k, c in enumerate(configs)}

    def keep(result):
        data["environment"] = data["environment"] or result["environment"]
        data["runs"].append(sweep_entry(result))
        data["runs"].sort(key=lambda r: order[(r["noise_lambda"], r["seed"])])  # grid order, however it was run
        if on_result:
            on_result(result)
        if out_path:
            atomic_write_json(out_path, data)

    _runs([c for c in configs if (c.noise_lambda, c.seed) not in done], on_result=keep, stop=stop, wrap=wrap)
    return data


def load_sweep(path=None):
    """The sweep shipped with the package (``path=None``) or one saved by ``sweep``."""
    return read_format_file(path, SHIPPED_SWEEP, "sweep", SWEEP_FORMAT)


def sweep_summary(data):
    """Per noise level: mean, min and max over seeds of ``skip_share`` and ``valid_accuracy``."""
    out = []
    for lam in data["noise_lambdas"]:
        runs = [r for r in data["runs"] if r["noise_lambda"] == lam]
        if not runs:
            continue
        shares = [r["skip_share"] for r in runs]
        accs = [r["valid_accuracy"] for r in runs]
        out.append({"noise_lambda": lam, "seeds": len(runs),
                    "skip_share_mean": statistics.mean(shares), "skip_share_min": min(shares),
                    "skip_share_max": max(shares), "valid_accuracy_mean": statistics.mean(accs),
                    "genotype_skips_mean": statistics.mean(r["genotype_skips"] for r in runs)})
    return out
