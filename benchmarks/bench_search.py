"""How fast does the search step? This package's two paths, and DARTS's own code, on this machine.

Usage (from the repository root, with the package installed)::

    # darts space, 8 channels, 5 cells, batch 32, 16x16 inputs (the defaults)
    PEER_DARTS=/path/to/quark0/darts python benchmarks/bench_search.py --order 1 2 --threads 1 2
    python benchmarks/bench_search.py --channels 16 --layers 8 --batch 64 --image-size 32 \\
        --steps 1 --warmup 1 --repeats 1         # DARTS's own size (minutes a step on a CPU)
    python benchmarks/bench_search.py --preset cpu      # one whole search of a preset, each path

Each measurement runs in a fresh Python process (one JSON line each): ``fast`` is the package's
search step with the fast path (``SearchConfig.fused=True``, the default), ``readable`` the same
step computed by ``SearchCell``/``MixedOp`` as written (``fused=False``), and ``darts`` the step
of DARTS's original ``cnn/`` code (``model_search.Network`` and ``architect.Architect``),
imported at run time from the checkout that ``PEER_DARTS`` names (github.com/quark0/darts;
nothing of it is copied here; only the calls that torch 2 no longer accepts are adapted, in
``run_darts``). Without ``PEER_DARTS`` only the package's two paths are measured.

A step is an architecture step (first or second order) and a weight step. Ours draws a fresh
batch each time and has NoisyDARTS's skip noise on (``--noise``, default 0.2); DARTS's is its own
step, without noise, on one fixed batch. Images are random, 3 channels, 10 classes. The first
``--warmup`` steps (2) are not timed; then ``--steps`` steps (3) are, as wall time and as the
process's CPU time. Peak memory is the process's ``ru_maxrss`` (its whole life: the interpreter,
torch and the data included). The implementations take turns, ``--repeats`` rounds (3) of one
fresh process each (A B C A B C ...), so that a change in the machine's load hits them alike.

The summary (a JSON line per setting, then a table on lines that start with ``#``) gives each
implementation's median over the rounds and the ratios of those medians, ``fast/darts``,
``fast/readable`` and ``readable/darts``, as speed-ups by wall time (steps per second) and by
CPU time per step, with the load average before and after. Only what this run measured goes in:
no figure measured elsewhere (DARTS's code on the CI machine, in the README) is printed beside
them, since speeds taken on different machines, or at different loads, do not compare.

On a machine whose cores are busy with other work, compare CPU times (at 1 thread they do not
count the time the process waits), and run with ``OMP_WAIT_POLICY=PASSIVE`` or ``--threads 1``:
OpenMP threads spin while they wait for each other, and with ``--threads 2`` a step took 14 to 23
times longer when the other thread was descheduled (2 cores, load average 4 to 9). The policy in
force is recorded in ``environment``.

With ``--preset P`` the script times one whole search of that preset instead (building the search,
loading its data and running every epoch), with and without the fast path, and prints
``seconds``, ``cpu_seconds`` and ``peak_rss_mb`` of each (and their ratio, fast/readable).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

WARMUP = 2
IMPLS = ("fast", "readable", "darts")


def peak_rss_mb():
    """Peak resident memory of this process in MiB (``ru_maxrss``: KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def random_data(n_per_half, image_size, seed=0):
    import torch

    from ndarts_edu.data import ImageData

    g = torch.Generator().manual_seed(seed)
    n = 2 * n_per_half
    images = torch.randn(n, 3, image_size, image_size, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageData("random", images, labels, images[:n_per_half // 4 + 1].clone(),
                     labels[:n_per_half // 4 + 1].clone(), num_classes=10)


def timed(step, steps, warmup=WARMUP, synchronize=lambda: None):
    """Wall and CPU seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    for _ in range(warmup):
        step()
    synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    synchronize()
    return time.perf_counter() - wall, time.process_time() - cpu


def run_ours(args, order, fused):
    import torch

    from ndarts_edu import repro
    from ndarts_edu.search import Search, SearchConfig

    repro.set_threads(args.threads)
    # a fresh batch every step, no reshuffle
    data = random_data(args.batch * (args.warmup + args.steps), args.image_size)
    config = SearchConfig(space=args.space, channels=args.channels, layers=args.layers,
                          nodes=args.nodes, batch_size=args.batch, order=order,
                          noise_lambda=args.noise, epochs=1, threads=args.threads,
                          device=args.device, seed=0, record_every=0, fused=fused)
    search = Search(config, data=data)
    cuda = search.device.type == "cuda"
    wall, cpu = timed(search.train_one_step, args.steps, args.warmup,
                      torch.cuda.synchronize if cuda else lambda: None)
    out = {"parameters": sum(p.numel() for p in search.weight_params), "device": str(search.device)}
    if cuda:
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return wall, cpu, out


def run_darts(args, order):
    """DARTS's search step, from its own code in the ``PEER_DARTS`` checkout (its ``cnn/``)."""
    import types

    import torch
    from torch import nn

    root = os.environ.get("PEER_DARTS")
    if not root or not os.path.isdir(os.path.join(root, "cnn")):
        raise SystemExit(f"PEER_DARTS must name a checkout of quark0/darts (with a cnn/ folder), "
                         f"got {root!r}")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    # DARTS calls .cuda() everywhere: on a CPU machine it becomes a no-op.
    torch.Tensor.cuda = lambda self, *a, **k: self
    nn.Module.cuda = lambda self, *a, **k: self
    sys.path.insert(0, os.path.join(root, "cnn"))
    import architect
    import model_search

    flat = architect._concat

    class Architect(architect.Architect):
        """DARTS's unrolled step, its in-place calls spelled as torch 2 takes them; the algorithm
        unchanged (a fresh model per unrolled step, as ``architect.py``)."""

        def _compute_unrolled_model(self, input, target, eta, network_optimizer):
            loss = self.model._loss(input, target)
            theta = flat(self.model.parameters()).data
            try:
                moment = flat(network_optimizer.state[v]["momentum_buffer"]
                              for v in self.model.parameters()).mul_(self.network_momentum)
            except KeyError:  # before the first weight step there is no momentum buffer
                moment = torch.zeros_like(theta)
            dtheta = flat(torch.autograd.grad(loss, self.model.parameters())).data
            dtheta = dtheta + self.network_weight_decay * theta
            return self._construct_model_from_theta(theta.sub(moment + dtheta, alpha=eta))

        def _backward_step_unrolled(self, input_train, target_train, input_valid, target_valid, eta,
                                    network_optimizer):
            unrolled = self._compute_unrolled_model(input_train, target_train, eta,
                                                    network_optimizer)
            unrolled._loss(input_valid, target_valid).backward()
            dalpha = [v.grad for v in unrolled.arch_parameters()]
            vector = [v.grad.data for v in unrolled.parameters()]
            implicit = self._hessian_vector_product(vector, input_train, target_train)
            for g, ig in zip(dalpha, implicit):
                g.data.sub_(ig.data, alpha=eta)
            for v, g in zip(self.model.arch_parameters(), dalpha):
                if v.grad is None:
                    v.grad = g.data.clone()
                else:
                    v.grad.data.copy_(g.data)

        def _hessian_vector_product(self, vector, input, target, r=1e-2):
            R = (r / flat(vector).norm()).item()
            for p, v in zip(self.model.parameters(), vector):
                p.data.add_(v, alpha=R)
            alphas = self.model.arch_parameters()
            grads_p = torch.autograd.grad(self.model._loss(input, target), alphas)
            for p, v in zip(self.model.parameters(), vector):
                p.data.sub_(v, alpha=2 * R)
            grads_n = torch.autograd.grad(self.model._loss(input, target), alphas)
            for p, v in zip(self.model.parameters(), vector):
                p.data.add_(v, alpha=R)
            return [(x - y).div_(2 * R) for x, y in zip(grads_p, grads_n)]

    model = model_search.Network(args.channels, 10, args.layers, nn.CrossEntropyLoss())
    optimizer = torch.optim.SGD(model.parameters(), 0.025, momentum=0.9, weight_decay=3e-4)
    # train_search.py's defaults
    arch = Architect(model, types.SimpleNamespace(momentum=0.9, weight_decay=3e-4,
                                                  arch_learning_rate=3e-4, arch_weight_decay=1e-3))
    shape = (args.batch, 3, args.image_size, args.image_size)
    x, y = torch.randn(shape), torch.randint(0, 10, (args.batch,))
    x_valid, y_valid = torch.randn(shape), torch.randint(0, 10, (args.batch,))

    def step():  # train_search.py's loop body
        model.train()
        arch.step(x, y, x_valid, y_valid, 0.025, optimizer, unrolled=order == 2)
        optimizer.zero_grad()
        loss = model._loss(x, y)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        optimizer.step()

    wall, cpu = timed(step, args.steps, args.warmup)
    return wall, cpu, {"parameters": sum(p.numel() for p in model.parameters()), "device": "cpu",
                       "source": os.path.abspath(root)}


def measure_steps(args, impl, order):
    if impl == "darts":
        wall, cpu, extra = run_darts(args, order)
    else:
        wall, cpu, extra = run_ours(args, order, fused=impl == "fast")
    return {
        "benchmark": "search_steps", "impl": impl,
        "steps_per_s": round(args.steps / wall, 4),
        "seconds_per_step": round(wall / args.steps, 4),
        "cpu_seconds_per_step": round(cpu / args.steps, 4),
        "peak_rss_mb": peak_rss_mb(),
        "settings": {"space": args.space, "channels": args.channels, "layers": args.layers,
                     "nodes": args.nodes, "batch": args.batch, "image_size": args.image_size,
                     "in_channels": 3, "classes": 10, "order": order, "steps": args.steps,
                     "warmup": args.warmup, "threads": args.threads,
                     "noise_lambda": 0.0 if impl == "darts" else args.noise},
        **extra, "environment": environment(),
    }


def measure_preset(args, fused):
    from ndarts_edu import repro
    from ndarts_edu.presets import preset_config, preset_noise
    from ndarts_edu.search import Search

    repro.set_threads(args.threads)
    noise = preset_noise(args.preset) if args.noise is None else args.noise
    config = preset_config(args.preset, threads=args.threads, device=args.device, fused=fused,
                           noise_lambda=noise)
    wall, cpu = time.perf_counter(), time.process_time()
    result = Search(config).run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"benchmark": "preset_search", "impl": "fast" if fused else "readable",
            "preset": args.preset, "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "search_seconds": result["seconds"], "peak_rss_mb": peak_rss_mb(),
            "status": result["status"], "steps": result["steps_done"],
            "epochs": result["epochs_done"], "skip_share": result["skip_share"],
            "settings": {"threads": config.threads, "noise_lambda": config.noise_lambda,
                         "device": args.device},
            "environment": environment()}


def environment():
    import torch

    return {"torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "machine": platform.machine(), "cpu": _cpu_name(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY")}


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name")), None)
    except OSError:
        return platform.processor() or None


# What each benchmark's summary takes the median of, and which figure is a speed (more is faster)
# or a time (less is faster).
SPEEDS = {"search_steps": ("steps_per_s",), "preset_search": ()}
TIMES = {"search_steps": ("cpu_seconds_per_step",), "preset_search": ("seconds", "cpu_seconds")}
RATIOS = (("fast", "darts"), ("fast", "readable"), ("readable", "darts"))


def summarize(rows, loads):
    """Per group of one setting (threads, order or preset): each implementation's median over
    its rounds, and the ratios ``a/b`` of those medians, as speed-ups of ``a`` over ``b`` (by wall
    time and by CPU time). Only the rows of this run go in. ``loads``: the load average before
    and after each group."""
    groups = {}
    for row in rows:
        groups.setdefault(_group(row), []).append(row)
    out = []
    for key, group in groups.items():
        kind = group[0]["benchmark"]
        figures = SPEEDS[kind] + TIMES[kind] + ("peak_rss_mb",)
        by_impl = {}
        for row in group:
            by_impl.setdefault(row["impl"], []).append(row)
        median = {impl: {f: round(statistics.median(r[f] for r in runs), 4) for f in figures}
                  for impl, runs in by_impl.items()}
        ratios = {}
        for a, b in RATIOS:
            if a in median and b in median:
                ratio = {f: round(median[a][f] / median[b][f], 2) for f in SPEEDS[kind]}
                ratio.update({f: round(median[b][f] / median[a][f], 2) for f in TIMES[kind]})
                ratios[f"{a}/{b}"] = ratio
        out.append({"benchmark": f"{kind}_summary", **dict(key),
                    "rounds": {impl: len(runs) for impl, runs in by_impl.items()},
                    "median": median, "ratios": ratios,
                    "load_average_before_after": loads.get(key)})
    return out


def _group(row):
    if row["benchmark"] == "preset_search":
        return (("preset", row["preset"]), ("threads", row["settings"]["threads"]))
    s = row["settings"]
    return tuple((k, s[k]) for k in ("space", "channels", "layers", "batch", "image_size",
                                     "threads", "order"))


SETTING_KEYS = ("preset", "space", "channels", "layers", "batch", "image_size", "threads", "order")


def table(summaries):
    """A short table of the summaries, for people (lines starting with '#')."""
    lines = []
    for s in summaries:
        setting = ", ".join(f"{k} {v}" for k, v in s.items() if k in SETTING_KEYS)
        lines.append(f"# {setting}; load {s['load_average_before_after']}")
        for impl, m in s["median"].items():
            figures = "  ".join(f"{name} {m[name]:g}" for name in m)
            lines.append(f"#   {impl:<9} {figures}  (median of {s['rounds'][impl]})")
        for pair, ratio in s["ratios"].items():
            lines.append(f"#   {pair:<16} "
                         + "  ".join(f"x{v:g} by {name}" for name, v in ratio.items()))
    return lines


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="darts")
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--nodes", type=int, default=4)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--order", type=int, nargs="+", choices=(1, 2), default=[1])
    p.add_argument("--steps", type=int, default=3, help="timed steps per process")
    p.add_argument("--warmup", type=int, default=WARMUP, help="untimed steps before them")
    p.add_argument("--threads", type=int, nargs="+", default=None,
                   help="torch threads, one or more counts (default: 2 for steps; "
                        "for --preset, the preset's own)")
    p.add_argument("--repeats", type=int, default=None,
                   help="rounds, each implementation once per round, in turn "
                        "(default: 3 for steps, 1 for --preset)")
    p.add_argument("--impl", nargs="+", choices=IMPLS, default=None,
                   help="what to measure (default: fast and readable, and darts when PEER_DARTS "
                        "is set)")
    p.add_argument("--noise", type=float, default=None,
                   help="noise_lambda of our steps (default 0.2, NoisyDARTS; for --preset, the "
                        "preset's own)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--preset", default=None, help="time a whole search of this preset instead")
    p.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 1 if args.preset else 3
    if args.steps < 1 or args.repeats < 1 or any(t < 1 for t in args.threads or []):
        p.error("--steps, --repeats and --threads must be at least 1")
    if args.warmup < 0:
        p.error(f"--warmup must be 0 or more, got {args.warmup}")
    if args.impl is None:
        peer = os.environ.get("PEER_DARTS") and not args.preset
        args.impl = ["fast", "readable"] + (["darts"] if peer else [])
    if "darts" in args.impl and (args.space != "darts" or args.nodes != 4 or args.device != "cpu"
                                 or args.preset):
        p.error("DARTS's code runs its own space (--space darts, --nodes 4) on the CPU, "
                "and no --preset")
    return args


def child_command(args, impl, threads, order):
    cmd = [sys.executable, os.path.abspath(__file__), "--in-process", "--device", args.device,
           "--impl", impl]
    if threads is not None:
        cmd += ["--threads", str(threads)]
    if args.noise is not None:
        cmd += ["--noise", repr(args.noise)]
    if args.preset:
        return cmd + ["--preset", args.preset]
    return cmd + ["--space", args.space, "--channels", str(args.channels),
                  "--layers", str(args.layers), "--nodes", str(args.nodes),
                  "--batch", str(args.batch), "--image-size", str(args.image_size),
                  "--steps", str(args.steps), "--warmup", str(args.warmup), "--order", str(order)]


def main(argv=None):
    args = parse(argv)
    if args.in_process:  # the child: one measurement in this (fresh) process
        args.threads = args.threads[0] if args.threads else None
        impl = args.impl[0]
        if args.preset:
            out = measure_preset(args, impl == "fast")
        else:
            args.noise = 0.2 if args.noise is None else args.noise
            args.threads = args.threads or 2
            out = measure_steps(args, impl, args.order[0])
        print(json.dumps(out), flush=True)
        return 0
    # The parent: one fresh process per measurement, so that ru_maxrss is that measurement's
    # own; within a setting the implementations take turns, round after round (A B C A B C).
    status, rows, loads = 0, [], {}
    for threads in args.threads or [None]:
        for order in [None] if args.preset else args.order:
            before, group = [round(v, 2) for v in os.getloadavg()], None
            for _ in range(args.repeats):
                for impl in args.impl:
                    done = subprocess.run(child_command(args, impl, threads, order),
                                          stdout=subprocess.PIPE, text=True)
                    status = done.returncode or status
                    for line in done.stdout.splitlines():
                        print(line, flush=True)
                        if line.startswith("{"):
                            rows.append(json.loads(line))
                            group = _group(rows[-1])
            if group is not None:
                loads[group] = [before, [round(v, 2) for v in os.getloadavg()]]
    summaries = summarize(rows, loads)
    for summary in summaries:
        print(json.dumps(summary), flush=True)
    for line in table(summaries):
        print(line, flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
