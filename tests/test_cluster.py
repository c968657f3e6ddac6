"""compare, sweep and ablations on a real Dask cluster: the same numbers as in one process, a lost
worker loses only its search, Ctrl-C keeps what finished, and the library never needs Dask.

The clusters here are real ``LocalCluster``s of two worker processes (one thread each), started by
the test; the command line runs as a user runs it (``python -m ndarts_edu`` in a subprocess).
"""
import argparse
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time

import dask
import pytest
from distributed import Client, LocalCluster

from ndarts_edu import ablations, cli, cluster as fan_out, experiments
from ndarts_edu.errors import ConfigError

pytestmark = pytest.mark.slow

# 4 searches of the quick preset, 1 epoch each (a worker's first search also imports torch: long
# enough to kill the worker in the middle of it).
COMPARE = ["compare", "--preset", "quick", "--threads", "1", "--epochs", "1", "--seeds", "0", "1"]


def run_cli(*args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", "ndarts_edu", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def popen_cli(*args, cwd, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "ndarts_edu", *map(str, args)], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def without_timings(runs):
    """The runs with their wall-clock seconds taken out: everything else must match bit for bit."""
    runs = json.loads(json.dumps(runs))
    for run in runs:
        run.pop("seconds", None)
        for epoch in run.get("history", {}).get("epochs", []):
            epoch.pop("seconds", None)
    return runs


def start_cluster(**settings):
    with dask.config.set({"distributed.scheduler.worker-saturation": 1.0, **settings}):
        return LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                            dashboard_address=":0", silence_logs=logging.ERROR)


def saved_runs(path):
    return json.loads(path.read_text())["runs"] if path.exists() else []


@pytest.fixture(scope="module")
def two_workers():
    local = start_cluster()
    yield local
    local.close()


@pytest.fixture(scope="module")
def in_process(tmp_path_factory):
    """The compare of ``COMPARE`` run in one process, one search after another (no Dask)."""
    cwd = tmp_path_factory.mktemp("in_process")
    process = run_cli(*COMPARE, "--workers", "1", cwd=cwd)
    assert process.returncode == 0, process.stderr
    assert "in this process" in process.stderr
    return saved_runs(cwd / "runs" / "compare" / "compare.json")


def test_a_compare_on_two_workers_equals_the_one_in_process_bit_for_bit(tmp_path, two_workers,
                                                                        in_process):
    process = run_cli(*COMPARE, "--cluster", two_workers.scheduler_address, cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    address = two_workers.scheduler_address
    assert f"in the Dask cluster at {address} (2 workers connected)" in process.stderr
    started = [line for line in process.stderr.splitlines() if line.startswith("started ")]
    used = {line.rsplit(" on ", 1)[1] for line in started}
    assert len(used) == 2  # both workers ran searches
    assert "done [4/4]" in process.stderr and "4 of 4 searches" in process.stdout
    runs = saved_runs(tmp_path / "runs" / "compare" / "compare.json")
    grid = [(r["config"]["noise_lambda"], r["config"]["seed"]) for r in runs]
    assert grid == [(0.0, 0), (0.0, 1), (1.5, 0), (1.5, 1)]
    assert without_timings(runs) == without_timings(in_process)  # alphas, weights, histories, ...


def test_sweep_and_ablations_on_two_workers_equal_in_process(tiny_config, two_workers):
    address = two_workers.scheduler_address
    here = experiments.sweep(tiny_config, [0.0, 1.0], [0], workers=1)
    there = experiments.sweep(tiny_config, [0.0, 1.0], [0], cluster=address)
    assert without_timings(there["runs"]) == without_timings(here["runs"])
    assert there["environment"] == here["environment"]
    here = ablations.run_ablations(tiny_config, 1.0, [0], only=["darts", "uniform"], workers=1)
    there = ablations.run_ablations(tiny_config, 1.0, [0], only=["darts", "uniform"],
                                    cluster=address)
    assert [r["variant"] for r in there["runs"]] == ["darts", "uniform"]
    assert without_timings(there["runs"]) == without_timings(here["runs"])


def test_a_killed_worker_loses_only_its_search_and_the_next_run_does_it(tmp_path, in_process):
    # Dask would give the lost search to another worker (allowed-failures, 3 by default); with 0 it
    # gives up at once, which is the case to check: the run goes on, and the next one does the rest.
    local = start_cluster(**{"distributed.scheduler.allowed-failures": 0})
    client = Client(local)
    try:
        pids = client.run(os.getpid)
        process = popen_cli(*COMPARE, "--cluster", local.scheduler_address, cwd=tmp_path)
        deadline = time.monotonic() + 300
        busy = []
        while not busy:  # the first worker that runs a search
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            busy = [w for w, keys in client.processing().items()
                    if any(str(k).startswith("search-") for k in keys)]
            time.sleep(0.1)
        os.kill(pids[busy[0]], signal.SIGKILL)
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 1, stderr
        assert "Traceback" not in stderr
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "1 search lost with its worker" in errors[0], stderr
        assert "run the same command again to run it" in errors[0]
        path = tmp_path / "runs" / "compare" / "compare.json"
        finished = saved_runs(path)
        assert len(finished) == 3 and "3 of 4 searches" in stdout  # the other searches finished

        again = run_cli(*COMPARE, "--cluster", local.scheduler_address, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "3 of the 4 searches are done there" in again.stderr and "done [4/4]" in again.stderr
        runs = saved_runs(path)
        assert all(run in runs for run in finished)  # as they were, seconds and all: not rerun
        assert without_timings(runs) == without_timings(in_process)
    finally:
        client.close()
        local.close()


def test_ctrl_c_cancels_the_rest_keeps_what_finished_and_leaves_no_worker(tmp_path):
    # As a terminal sends it: SIGINT to the whole process group, the local cluster's workers too.
    process = popen_cli(*COMPARE, "--workers", "2", cwd=tmp_path, start_new_session=True)
    path = tmp_path / "runs" / "compare" / "compare.json"
    try:
        deadline = time.monotonic() + 400
        while not saved_runs(path):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: the same command again continues" in stderr
    kept = saved_runs(path)
    assert 1 <= len(kept) < 4 and f"{len(kept)} of 4 searches" in stdout
    deadline = time.monotonic() + 30
    while True:  # the workers went with it: nothing of that process group is left
        try:
            os.killpg(process.pid, 0)
        except ProcessLookupError:
            break
        assert time.monotonic() < deadline, "a worker process outlived the interrupted compare"
        time.sleep(0.2)

    again = run_cli(*COMPARE, "--workers", "1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"{len(kept)} of the 4 searches are done there" in again.stderr
    assert all(run in saved_runs(path) for run in kept)


def test_a_ctrl_c_while_a_finished_search_is_handed_over_waits_until_it_is_kept(tiny_config):
    # The race CI met: Ctrl-C between a result counted and its file written lost it from the file.
    kept = []

    def on_result(index, result):
        os.kill(os.getpid(), signal.SIGINT)  # lands here, in the middle of keeping the result
        time.sleep(0.2)
        kept.append(index)

    configs = [tiny_config, tiny_config.replace(seed=1)]
    lost = fan_out.run_searches(configs, on_result, workers=1)
    assert lost == [] and kept == [0]  # the first kept whole; the Ctrl-C then stopped the rest


def test_the_library_and_a_single_search_never_import_dask(tmp_path):
    code = (
        "import sys\n"
        "import ndarts_edu, ndarts_edu.cli, ndarts_edu.cluster, ndarts_edu.experiments\n"
        "import ndarts_edu.ablations\n"
        "from ndarts_edu.cli import main\n"
        "quick = ['--preset', 'quick', '--threads', '1', '--epochs', '1']\n"
        "assert main(['search', *quick, '--out', 'run']) == 0\n"
        "assert main(['compare', *quick, '--seeds', '0', '--workers', '1']) == 0\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')]\n"
        "assert not loaded, loaded\n")
    process = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600)
    assert process.returncode == 0, process.stderr


def test_workers_default_to_one_per_core_and_fall_back_without_dask(monkeypatch, capsys):
    cores = fan_out.available_cores()
    assert fan_out.default_workers(1) == cores and fan_out.default_workers(None) == 1
    assert fan_out.default_workers(2) == max(1, cores // 2)
    args = argparse.Namespace(workers=None, cluster=None)
    assert cli._fan_out(args, 1) == (cores, None)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *rest: None if name == "distributed" else real(name, *rest))
    assert cli._fan_out(args, 1) == (1, None)
    if cores > 1:
        assert "Dask is not installed" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--workers 2 runs the searches on Dask, which is not"):
        cli._fan_out(argparse.Namespace(workers=2, cluster=None), 1)


def test_a_scheduler_that_cannot_be_reached_is_one_line_and_status_2(tmp_path):
    process = run_cli(*COMPARE, "--cluster", "tcp://127.0.0.1:9", cwd=tmp_path)
    assert process.returncode == 2 and "Traceback" not in process.stderr, process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, process.stderr
    assert "cannot reach a Dask scheduler at 'tcp://127.0.0.1:9'" in errors[0]
    assert not saved_runs(tmp_path / "runs" / "compare" / "compare.json")
