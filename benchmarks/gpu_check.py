"""The GPU path checked, in one go: what ``benchmarks/gpu_check.sh`` runs after installing.

Four parts, then one JSON line of figures on stdout (progress on stderr):

1. ``tests``: pytest on the tests where the device matters, with ``NDARTS_TEST_DEVICE=cuda`` (the
   searches of ``tiny_config`` and ``tests/test_distributed.py`` on CUDA, ``tests/test_gpu.py``'s
   ``cuda`` tests) and the determinism switches on (``repro.make_deterministic``, in the tests'
   conftest; ``CUBLAS_WORKSPACE_CONFIG`` from the shell script).
2. ``steps``: seconds per search step of the ``paper`` preset's supernet (darts7 space, 8 cells
   of 16 channels, its batch of 128, 3 x 32 x 32 images, skip noise 0.2, drop-path 0.3), first and
   second order, with and without the fused cells, on generated CIFAR-shaped data; the peak of
   CUDA memory of each. torch's default switches (cuDNN may pick its kernels), as a search runs.
3. ``repeat``: the same few steps twice with the determinism switches on: whether ``alpha`` and
   the weights come out bit for bit the same, and which ops warned that they have no
   deterministic CUDA kernel.
4. ``notebook03``: one epoch of notebook 03's GPU branch on generated CIFAR-10-shaped data: the
   notebook's calls (``pick_device("auto")``, ``load_dataset("cifar10", "data", download=True)``
   from a ``cifar-10-batches-py`` folder written here, so no download; the ``paper`` preset;
   ``widgets.LiveComparison`` of DARTS and NoisyDARTS, taking turns step by step), with
   ``epochs=1``. Without the figure packages (plotly, ipywidgets) the same two searches run
   through ``Search.run``, one after the other, and the line says so. The images are a fixed
   pattern per class plus noise: learnable, so the accuracy shows that the search learns.

``--dry-run`` runs every part on the CPU at a tiny size (a check of this script, not of a GPU).
"""
import argparse
import contextlib
import json
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TESTS = ["tests/test_gpu.py", "tests/test_distributed.py", "tests/test_search.py",
         "tests/test_fused.py"]
DRY_TESTS = ["tests/test_gpu.py",
             "tests/test_distributed.py::test_torchrun_environment_is_read_and_checked"]
TINY = dict(layers=3, channels=4, nodes=2, batch_size=8)  # --dry-run: what a CPU steps at once


def say(text):
    print(f"gpu_check: {text}", file=sys.stderr, flush=True)


# -- 1. the tests ------------------------------------------------------------------------------
def run_tests(device, dry_run, timeout):
    """pytest on the device-dependent tests; the counts of its last line and its seconds."""
    files = DRY_TESTS if dry_run else TESTS
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
    env = {**os.environ, "NDARTS_TEST_DEVICE": device}
    started = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        output, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output, code = (expired.stdout or b"").decode(errors="replace"), "timeout"
    lines = [line for line in output.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if re.search(r"\d+ (passed|failed)", line)), "")
    counts = {word: int(n)
              for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", last)}
    failures = [line for line in lines if line.startswith(("FAILED", "ERROR"))][:10]
    return {"command": " ".join(["NDARTS_TEST_DEVICE=" + device, "pytest", *files]),
            "exit": code, **counts, "failures": failures,
            "determinism": ("repro.make_deterministic() (tests/conftest.py), "
                            f"CUBLAS_WORKSPACE_CONFIG={os.environ.get('CUBLAS_WORKSPACE_CONFIG')}"
                            if device.startswith("cuda") else "CPU: one torch thread"),
            "seconds": round(time.perf_counter() - started, 1), "summary": last.strip("= ")}


# -- 2 and 3. steps of the paper supernet --------------------------------------------------------
def cifar_shaped(n, size, seed=0):
    """``n`` CIFAR-shaped images (3 x size x size, 10 classes) as an ImageData: random pixels."""
    import torch

    from ndarts_edu.data import ImageData

    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n, 3, size, size, generator=g)
    labels = torch.randint(0, 10, (n,), generator=g)
    return ImageData("cifar-shaped", images, labels, images[:64].clone(), labels[:64].clone(), 10)


def paper_search(device, order, fused, dry_run, steps):
    from ndarts_edu.presets import preset_config, preset_noise
    from ndarts_edu.search import Search

    config = preset_config("paper", order=order, fused=fused, device=device, epochs=1,
                           noise_lambda=preset_noise("paper"), **(TINY if dry_run else {}))
    size = 8 if dry_run else 32
    # enough images that every step draws a fresh batch from each half
    data = cifar_shaped(2 * config.batch_size * (steps + 2), size)
    return Search(config, data)


def synchronize(device):
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def time_steps(device, dry_run, steps):
    """Seconds per ``train_one_step`` (after 2 untimed), each order, fused and readable cells."""
    import torch

    rows = []
    for order in (1, 2):
        for fused in (True, False):
            search = paper_search(device, order, fused, dry_run, steps)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            for _ in range(2):
                search.train_one_step()
            synchronize(device)
            started = time.perf_counter()
            for _ in range(steps):
                search.train_one_step()
            synchronize(device)
            seconds = (time.perf_counter() - started) / steps
            row = {"order": order, "fused": fused, "seconds_per_step": round(seconds, 4),
                   "batch": search.config.batch_size, "steps": steps}
            if device.startswith("cuda"):
                row["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            rows.append(row)
            say(f"order {order}, fused {fused}: {seconds:.3f} s a step")
            del search
    return rows


def repeats(device, dry_run, steps):
    """Twice the same steps (second order, noise, drop-path) with the determinism switches on."""
    import torch

    from ndarts_edu import repro

    before = repro.cuda_determinism()
    switches = repro.make_deterministic()
    finals, warned = [], set()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(2):
                search = paper_search(device, 2, True, dry_run, steps)
                for _ in range(steps):
                    search.train_one_step()
                finals.append([t.detach().cpu().clone()
                               for t in search.model.state_dict().values()])
    finally:  # the notebook's epoch runs with torch's defaults again, as a notebook does
        torch.backends.cudnn.deterministic = before["cudnn_deterministic"]
        torch.backends.cudnn.benchmark = before["cudnn_benchmark"]
        torch.use_deterministic_algorithms(before["deterministic_algorithms"],
                                           warn_only=before["deterministic_warn_only"])
    for warning in caught:
        match = re.search(r"^(\S+) does not have a deterministic implementation",
                          str(warning.message))
        if match:
            warned.add(match.group(1))
    same = all(bool((a == b).all()) for a, b in zip(*finals))
    return {"bit_identical": same, "steps": steps, "switches": switches,
            "ops_without_deterministic_kernel": sorted(warned)}


# -- 4. notebook 03's GPU branch ---------------------------------------------------------------
def write_cifar_folder(folder, n_train, n_test, size=32, seed=0):
    """A ``cifar-10-batches-py`` folder as torchvision writes it (5 train batches, a test batch)
    of learnable images: a fixed random pattern per class, plus as much noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 256, (10, 3 * size * size))
    os.makedirs(folder, exist_ok=True)

    def batch(n):
        labels = rng.integers(0, 10, n)
        noise = rng.integers(0, 256, (n, 3 * size * size))
        data = ((patterns[labels] + noise) // 2).astype(np.uint8)
        return {"data": data, "labels": labels.tolist()}

    per_batch = -(-n_train // 5)
    for i in range(5):
        with open(os.path.join(folder, f"data_batch_{i + 1}"), "wb") as f:
            pickle.dump(batch(min(per_batch, n_train - i * per_batch)), f, protocol=2)
    with open(os.path.join(folder, "test_batch"), "wb") as f:
        pickle.dump(batch(n_test), f, protocol=2)


def notebook03(dry_run, images):
    """One epoch of notebook 03's GPU branch (module docstring), in a folder of its own."""
    import torch

    from ndarts_edu.data import load_dataset, pick_device
    from ndarts_edu.errors import ConfigError
    from ndarts_edu.presets import preset_config, preset_noise
    from ndarts_edu.search import Search

    overrides = dict(TINY, image_size=8) if dry_run else {}
    with tempfile.TemporaryDirectory() as folder, _working_in(folder):
        write_cifar_folder(os.path.join("data", "cifar-10-batches-py"), images, images // 5)
        # the notebook's device cell, as it reads
        device = pick_device("auto")
        PRESET, data = "cpu", None
        if device.type == "cuda" or dry_run:
            try:
                data = load_dataset("cifar10", preset_config("paper").data_dir, download=True)
                PRESET = "paper"
            except ConfigError as error:
                say(f"CIFAR-10 cannot be loaded here ({error})")
        started = time.perf_counter()
        try:  # the notebook's whole-search cell: widgets.LiveComparison(preset=PRESET, ...)
            from ndarts_edu import widgets
        except ImportError as error:
            path = f"Search.run, one after the other ({error.name} is not installed)"
            base = preset_config(PRESET, seed=0, epochs=1, **overrides)
            results = [Search(base.replace(noise_lambda=lam)).run()
                       for lam in (0.0, preset_noise(PRESET))]
        else:
            path = "widgets.LiveComparison (static figure)"
            live = widgets.LiveComparison(preset=PRESET, seed=0, epochs=1, mode="static",
                                          **overrides)
            live.start()
            live.join()
            results = live.results
        seconds = time.perf_counter() - started
    return {"path": path, "preset": PRESET, "device": str(device), "train_images": images,
            "image_shape": list(data.shape) if data is not None else None,
            "epochs": 1, "steps_per_search": [r["steps_done"] for r in results],
            "seconds": round(seconds, 1), "search_seconds": [r["seconds"] for r in results],
            "valid_accuracy": [r["valid_accuracy"] for r in results],
            "skip_share": [r["skip_share"] for r in results],
            "status": [r["status"] for r in results],
            "peak_cuda_mb": (round(torch.cuda.max_memory_allocated() / 2**20, 1)
                             if device.type == "cuda" else None)}


@contextlib.contextmanager
def _working_in(folder):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


# -- the whole check ---------------------------------------------------------------------------
def environment(device):
    import torch

    info = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
            "cuda": torch.version.cuda, "python": sys.version.split()[0]}
    if torch.cuda.is_available():
        info.update(gpu=torch.cuda.get_device_name(0), gpus=torch.cuda.device_count(),
                    cudnn=torch.backends.cudnn.version(),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))))
    return info


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="every part on the CPU at a tiny size: checks the script, not a GPU")
    p.add_argument("--steps", type=int, default=5, help="timed steps of each measurement")
    p.add_argument("--images", type=int, default=50000,
                   help="training images of the generated CIFAR-10 (default: CIFAR-10's 50,000)")
    p.add_argument("--skip", nargs="+", default=[],
                   choices=("tests", "steps", "repeat", "notebook03"))
    p.add_argument("--tests-timeout", type=int, default=300, help="seconds for the tests")
    p.add_argument("--installed", default="", help=argparse.SUPPRESS)  # from gpu_check.sh
    p.add_argument("--out", help="also write the JSON line to this file")
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    import torch

    if args.dry_run:
        device, steps, images = "cpu", 1, 64
        torch.set_num_threads(1)
    elif not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU here (torch.cuda.is_available() is False); "
              "--dry-run checks this script on the CPU", file=sys.stderr)
        return 2
    else:
        device, steps, images = "cuda", args.steps, args.images
    started = time.perf_counter()
    figures = {"check": "gpu_check", "dry_run": args.dry_run, "device": device,
               "environment": environment(device), "installed": args.installed}
    parts = [("tests", lambda: run_tests(device, args.dry_run, args.tests_timeout)),
             ("steps", lambda: time_steps(device, args.dry_run, steps)),
             ("repeat", lambda: repeats(device, args.dry_run, steps)),
             ("notebook03", lambda: notebook03(args.dry_run, images))]
    for name, part in parts:
        if name in args.skip:
            continue
        say(f"{name} ...")
        begun = time.perf_counter()
        try:
            figures[name] = part()
        except Exception as error:  # one part failing leaves the others' figures
            figures[name] = {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"}
        say(f"{name} done in {time.perf_counter() - begun:.0f} s")
    figures["seconds"] = round(time.perf_counter() - started, 1)
    line = json.dumps(figures)
    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    broken = [name for name, _ in parts if isinstance(figures.get(name), dict)
              and "error" in figures[name]]
    return 1 if broken or figures.get("tests", {}).get("exit", 0) != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
