"""How long does each notebook take under ``pytest --nbval``, and how much memory does it need?

Usage (from the repository root, with the package installed)::

    python benchmarks/bench_notebooks.py                      # every notebook, one after another
    python benchmarks/bench_notebooks.py notebooks/02_noisy_skip_gradient.ipynb --repeats 3

Each notebook runs as the README's test command runs it (``pytest --nbval NOTEBOOK``: a real
Jupyter kernel, every cell, every assert), alone, in a fresh ``pytest`` process, so nothing is
shared with another notebook. Wall time is that process's whole life (the kernel's start included);
peak memory is the largest resident set of any process it ran, the kernel included
(``RUSAGE_CHILDREN``'s ``ru_maxrss``: Linux keeps the largest of the descendants it has reaped,
and ``pytest`` reaps its kernel). A Binder student has about 2 GB: that is the figure to read.

One JSON line per run, then a table (lines that start with ``#``) of each notebook's median, with
the machine and the load average before and after: the figures are this machine's, at this load.
"""
import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def run_once(notebook):
    """One ``pytest --nbval`` of ``notebook`` in a fresh process: seconds, peak MB, exit status."""
    # ru_maxrss of RUSAGE_CHILDREN is a maximum over every child reaped so far: a fresh
    # interpreter for each run keeps one notebook's peak from hiding another's
    probe = ("import json, resource, subprocess, sys, time\n"
             "start = time.monotonic()\n"
             "rc = subprocess.run([sys.executable, '-m', 'pytest', '--nbval', '-q',\n"
             "                     '-p', 'no:cacheprovider', sys.argv[1]],\n"
             "                    stdout=subprocess.DEVNULL).returncode\n"
             "seconds = time.monotonic() - start\n"
             "peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n"
             "print(json.dumps({'seconds': seconds, 'peak_mb': peak_kb / 1024, 'rc': rc}))\n")
    out = subprocess.run([sys.executable, "-c", probe, notebook], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def machine():
    import torch

    from ndarts_edu.repro import cpu_model

    return (f"{cpu_model()}, {os.cpu_count()} cores, {torch.backends.cpu.get_cpu_capability()} "
            f"kernels, torch {torch.__version__}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="default: notebooks/*.ipynb")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each notebook (1)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats {args.repeats}: give 1 or more")
    notebooks = args.notebooks or sorted(glob.glob(os.path.join("notebooks", "*.ipynb")))
    for notebook in notebooks:
        if not os.path.exists(os.path.join(ROOT, notebook)):
            parser.error(f"{notebook}: no such notebook (give paths from the repository root)")
    load_before = os.getloadavg()
    runs = {notebook: [] for notebook in notebooks}
    for _ in range(args.repeats):  # notebooks take turns, so a change of load hits them alike
        for notebook in notebooks:
            run = run_once(notebook)
            runs[notebook].append(run)
            print(json.dumps({"notebook": notebook, **run}), flush=True)
    print(f"# {machine()}; load average {load_before[0]:.1f} before, "
          f"{os.getloadavg()[0]:.1f} after; {time.strftime('%Y-%m-%d')}")
    print(f"# {'notebook':<42} {'nbval s':>8} {'peak MB':>8}  passed")
    for notebook, done in runs.items():
        print(f"# {os.path.basename(notebook):<42} "
              f"{statistics.median(r['seconds'] for r in done):>8.1f} "
              f"{statistics.median(r['peak_mb'] for r in done):>8.0f}  "
              f"{sum(r['rc'] == 0 for r in done)} of {len(done)}")
    return 0 if all(r["rc"] == 0 for done in runs.values() for r in done) else 1


if __name__ == "__main__":
    sys.exit(main())
