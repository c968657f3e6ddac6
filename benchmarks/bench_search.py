"""How fast does the search step? One JSON line per measurement, each measured in a fresh process.

Usage (from the repository root, with the package installed)::

    python benchmarks/bench_search.py --space darts --channels 8 --layers 5 --batch 32 \\
        --image-size 16 --order 1 --steps 5 --threads 2
    python benchmarks/bench_search.py ... --order 1 2        # one fresh process per order
    python benchmarks/bench_search.py --preset cpu      # a whole search, at the preset's own thread count

A step is ``Search.train_one_step``: one architecture step on a batch of the valid half (first or
second order) and one weight step on a batch of the train half, with NoisyDARTS's skip noise on
(``--noise``, default 0.2). The data are random images of 3 channels and 10 classes, enough for
every step to draw a fresh batch. The first 2 steps are a warm-up and are not timed. Peak memory is
the process's ``ru_maxrss``: every measurement runs in its own fresh Python process, so the figure
is that measurement's alone (the interpreter, torch and the data included).

With ``--preset P`` the script times a whole search of that preset instead (building the search,
loading its data and running every epoch) and prints ``seconds`` and ``peak_rss_mb``.

Reference (from the issue): DARTS's original code, on this machine with 2 threads, does

- ``darts`` space, 8 channels, 5 cells, batch 32, 16x16 inputs: 0.47 first-order and 0.23
  second-order steps per second;
- its own size (16 channels, 8 cells, batch 64, 32x32): 0.029 and 0.015 steps per second,
  with 9.4 and 10.2 GB peak memory.

Each JSON line carries the reference at the same shape (``reference``) when there is one.

On a shared machine whose cores are busy with other work, run with ``OMP_WAIT_POLICY=PASSIVE``
(or ``--threads 1``): by default the OpenMP threads spin while they wait for each other, and when
the other thread is descheduled a step with ``--threads 2`` took 14 to 23 times longer (2 cores,
load average 4 to 9). The policy in force is recorded in ``environment``.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time

WARMUP = 2

# shape -> {order: (steps per second, peak GB or None)}; DARTS's original code, 2 threads, this machine.
REFERENCE = {
    ("darts", 8, 5, 32, 16): {1: (0.47, None), 2: (0.23, None)},
    ("darts", 16, 8, 64, 32): {1: (0.029, 9.4), 2: (0.015, 10.2)},
}
REFERENCE_SOURCE = "DARTS original code, same machine, 2 threads (figures from the issue)"


def peak_rss_mb():
    """Peak resident memory of this process in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def reference_for(args, order):
    shape = (args.space, args.channels, args.layers, args.batch, args.image_size)
    if args.nodes != 4 or shape not in REFERENCE:
        return {"source": REFERENCE_SOURCE, "note": "no reference figure at this shape",
                "shapes": [dict(zip(("space", "channels", "layers", "batch", "image_size"), k),
                                **{f"order_{o}_steps_per_s": v[0] for o, v in orders.items()})
                           for k, orders in REFERENCE.items()]}
    steps_per_s, peak_gb = REFERENCE[shape][order]
    return {"source": REFERENCE_SOURCE, "steps_per_s": steps_per_s,
            "peak_rss_mb": None if peak_gb is None else round(peak_gb * 1000), "peak_gb": peak_gb}


def random_data(n_per_half, image_size, seed=0):
    import torch

    from ndarts_edu.data import ImageData

    g = torch.Generator().manual_seed(seed)
    n = 2 * n_per_half
    images = torch.randn(n, 3, image_size, image_size, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageData("random", images, labels, images[:n_per_half // 4 + 1].clone(),
                     labels[:n_per_half // 4 + 1].clone(), num_classes=10)


def measure_steps(args, order):
    import torch

    from ndarts_edu import repro
    from ndarts_edu.search import Search, SearchConfig

    repro.set_threads(args.threads)
    steps = WARMUP + args.steps
    data = random_data(args.batch * steps, args.image_size)  # every step a fresh batch, no reshuffle
    config = SearchConfig(space=args.space, channels=args.channels, layers=args.layers, nodes=args.nodes,
                          batch_size=args.batch, order=order, noise_lambda=args.noise, epochs=1,
                          threads=args.threads, device=args.device, seed=0, record_every=0)
    started = time.perf_counter()
    search = Search(config, data=data)
    build_seconds = time.perf_counter() - started
    for _ in range(WARMUP):
        search.train_one_step()
    started = time.perf_counter()
    for _ in range(args.steps):
        search.train_one_step()
    if search.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    out = {
        "benchmark": "search_steps",
        "steps_per_s": round(args.steps / seconds, 4),
        "seconds_per_step": round(seconds / args.steps, 4),
        "peak_rss_mb": peak_rss_mb(),
        "settings": {"space": args.space, "channels": args.channels, "layers": args.layers, "nodes": args.nodes,
                     "batch": args.batch, "image_size": args.image_size, "in_channels": 3, "classes": 10,
                     "order": order, "steps": args.steps, "warmup": WARMUP, "threads": args.threads,
                     "noise_lambda": args.noise, "device": str(search.device)},
        "build_seconds": round(build_seconds, 3),
        "parameters": sum(p.numel() for p in search.weight_params),
        "environment": environment(),
        "reference": reference_for(args, order),
    }
    ref = out["reference"].get("steps_per_s")
    if ref:
        out["speedup_vs_reference"] = round(out["steps_per_s"] / ref, 2)
    if search.device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out


def measure_preset(args):
    from ndarts_edu import repro
    from ndarts_edu.presets import preset_config, preset_noise
    from ndarts_edu.search import Search

    repro.set_threads(args.threads)
    config = preset_config(args.preset, threads=args.threads, device=args.device,
                           noise_lambda=preset_noise(args.preset) if args.noise is None else args.noise)
    started = time.perf_counter()
    result = Search(config).run()
    seconds = time.perf_counter() - started
    return {"benchmark": "preset_search", "preset": args.preset, "seconds": round(seconds, 3),
            "search_seconds": result["seconds"], "peak_rss_mb": peak_rss_mb(), "status": result["status"],
            "steps": result["steps_done"], "epochs": result["epochs_done"],
            "settings": {"threads": config.threads, "noise_lambda": config.noise_lambda, "device": args.device},
            "environment": environment()}


def environment():
    import torch

    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "load_average": [round(v, 2) for v in os.getloadavg()],
            "machine": platform.machine(), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="darts")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--order", type=int, nargs="+", choices=(1, 2), default=[1],
                   help="1 and/or 2; each order is measured in its own fresh process")
    p.add_argument("--steps", type=int, default=5, help="timed steps, after %d warm-up steps" % WARMUP)
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: 2 for steps; for --preset, the preset's own)")
    p.add_argument("--noise", type=float, default=None,
                   help="noise_lambda (default 0.2, NoisyDARTS; for --preset, the preset's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default=None, help="time a whole search of this preset instead")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.steps < 1 or (args.threads is not None and args.threads < 1):
        p.error("--steps and --threads must be at least 1")
    return args


def main(argv=None):
    args = parse(argv)
    if args.in_process:  # the child: one measurement in this (fresh) process
        if args.preset:
            out = measure_preset(args)
        else:
            if args.noise is None:
                args.noise = 0.2
            if args.threads is None:
                args.threads = 2
            out = measure_steps(args, args.order[0])
        print(json.dumps(out), flush=True)
        return 0
    # The parent: one fresh process per measurement, so ru_maxrss is that measurement's own.
    status = 0
    for order in [None] if args.preset else args.order:
        cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--device", args.device]
        if args.threads is not None:
            cmd += ["--threads", str(args.threads)]
        if args.noise is not None:
            cmd += ["--noise", repr(args.noise)]
        if args.preset:
            cmd += ["--preset", args.preset]
        else:
            cmd += ["--space", args.space, "--channels", str(args.channels), "--layers", str(args.layers),
                    "--nodes", str(args.nodes), "--batch", str(args.batch), "--image-size", str(args.image_size),
                    "--steps", str(args.steps), "--order", str(order)]
        status = subprocess.run(cmd).returncode or status
    return status


if __name__ == "__main__":
    sys.exit(main())
