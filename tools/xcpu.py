"""How far another CPU moves a shipped search: re-run sweep points under other torch kernels.

    python tools/xcpu.py --points 0:10 1.5:10 --kernels default --workers 2
    python tools/xcpu.py --points 0:10 1.5:10 --kernels native --out docs/calibration/xcpu_avx512.json

Each point ``LAMBDA:SEED`` of the shipped sweep is searched again in a fresh process, once per
kernel setting: this CPU's own kernels, ``ATEN_CPU_CAPABILITY=avx2`` and ``=default`` (torch then
runs the kernels it would run on another CPU). Every run is compared with the shipped entry, figure
by figure, as ``experiments.reproduction_gaps`` compares them; the file keeps each run's whole entry
and its differences, and their maxima, which ``tools/readme_numbers.py`` puts in the README and the
bounds in ``ndarts_edu/experiments.py`` are set from.
"""
import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from ndarts_edu.experiments import load_sweep, max_weight_difference  # noqa: E402
from ndarts_edu.runs import atomic_write_json  # noqa: E402

KERNELS = {
    "native": {},
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "default": {"ATEN_CPU_CAPABILITY": "default"},
}
ONE_RUN = """
import json, sys, torch
from ndarts_edu.experiments import sweep_entry
from ndarts_edu.presets import preset_config
from ndarts_edu.search import Search
entry = sweep_entry(Search(preset_config("cpu", noise_lambda=float(sys.argv[1]),
                                         seed=int(sys.argv[2]))).run())
entry["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
json.dump(entry, sys.stdout)
"""
FIGURES = ("weights_end", "weights_epochs", "share_edges_end", "share_edges_epochs",
           "genotype_skips", "accuracy_end", "accuracy_epochs", "accuracy_raw_end",
           "accuracy_raw_epochs")


def share_edges(a, b, edges):
    """The largest difference, in edges, of the skip share and of each op's share."""
    pairs = [(a["skip_share"], b["skip_share"])]
    pairs += [(a["op_shares"][op], b["op_shares"][op]) for op in b.get("op_shares") or {}]
    return round(max(abs(x - y) for x, y in pairs) * edges)


def differences(saved, rerun):
    """Each figure ``reproduction_gaps`` compares: at the end, and the largest over the epochs."""
    edges = len(saved["weights"]["normal"])
    epochs = list(zip(saved["epochs"], rerun["epochs"]))
    return {
        "weights_end": round(max_weight_difference(saved["weights"], rerun["weights"]), 6),
        "weights_epochs": round(max(max_weight_difference(a["weights"], b["weights"])
                                    for a, b in epochs), 6),
        "share_edges_end": share_edges(saved, rerun, edges),
        "share_edges_epochs": max(share_edges(a, b, edges) for a, b in epochs),
        "genotype_skips": abs(saved["genotype_skips"] - rerun["genotype_skips"]),
        "accuracy_end": round(abs(saved["valid_accuracy"] - rerun["valid_accuracy"]), 6),
        "accuracy_epochs": round(max(abs(a["valid_accuracy"] - b["valid_accuracy"])
                                     for a, b in epochs), 6),
        "accuracy_raw_end": round(abs(saved["valid_accuracy_raw"]
                                      - rerun["valid_accuracy_raw"]), 6),
        "accuracy_raw_epochs": round(max(abs(a["valid_accuracy_raw"] - b["valid_accuracy_raw"])
                                         for a, b in epochs), 6),
    }


def rerun(lam, seed, kernels):
    env = {**os.environ, **KERNELS[kernels], "PYTHONPATH": ROOT}
    out = subprocess.run([sys.executable, "-c", ONE_RUN, str(lam), str(seed)], env=env,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", nargs="+", default=["0:10"], help="LAMBDA:SEED of the sweep")
    parser.add_argument("--kernels", nargs="+", default=list(KERNELS), choices=list(KERNELS))
    parser.add_argument("--workers", type=int, default=1, help="searches at once (one core each)")
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "calibration", "xcpu.json"))
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        parser.error(f"--out {args.out} exists: move it away or name another file")
    shipped = load_sweep()
    entries = {(r["noise_lambda"], r["seed"]): r for r in shipped["runs"]}
    jobs = []
    for point in args.points:
        lam, seed = float(point.split(":")[0]), int(point.split(":")[1])
        if (lam, seed) not in entries:
            parser.error(f"--points {point}: not in the shipped sweep (noise levels "
                         f"{shipped['noise_lambdas']}, seeds {shipped['seeds']})")
        jobs += [(lam, seed, kernels) for kernels in args.kernels]
    runs = []
    with ThreadPoolExecutor(args.workers) as pool:
        for (lam, seed, kernels), entry in zip(jobs, pool.map(lambda job: rerun(*job), jobs)):
            runs.append({"noise_lambda": lam, "seed": seed, "kernels": kernels,
                         "cpu_capability": entry["cpu_capability"],
                         **differences(entries[(lam, seed)], entry), "entry": entry})
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "entry"}), flush=True)
    worst = {key: max(r[key] for r in runs) for key in FIGURES}
    what = (f"{len(args.points)} shipped point(s) searched again with "
            f"{', '.join(args.kernels)} kernels")
    atomic_write_json(args.out, {"format": "ndarts_edu.xcpu/2", "what": what,
                                 "shipped_on": shipped.get("environment"), **worst, "runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
