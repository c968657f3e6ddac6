"""The command line, run as a user runs it (``python -m ndarts_edu`` in a subprocess).

Bad input ends with a non-zero status and one line of error on stderr, never a traceback; Ctrl-C
leaves a checkpoint that ``search --resume`` continues.
"""
import json
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

# One torch thread and a tiny search: these tests start real processes on a shared machine.
QUICK = ["--preset", "quick", "--threads", "1"]


def cli(*args, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "ndarts_edu", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def error_line(process):
    """The single ``error:`` line of a failed command (and check there is no traceback)."""
    assert process.returncode != 0, process.stdout
    assert "Traceback" not in process.stderr, process.stderr
    errors = [line for line in process.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, process.stderr
    return errors[0]


def only_line(process):
    """The whole stderr of a command refused before it started: exactly one ``error:`` line."""
    line = error_line(process)
    assert process.stderr.strip() == line, process.stderr
    return line


@pytest.mark.parametrize("args, message", [
    (["--noise-lambda", "nan"], "noise_lambda must be a finite number, got nan"),
    (["--noise-lambda", "lots"], "argument --noise-lambda: invalid float value: 'lots'"),
    (["--space", "s9"], "unknown space 's9'; allowed: darts, darts7, s2, s3"),
    (["--preset", "gpu"], "unknown preset 'gpu'; allowed: cpu, quick, paper"),
    (["--noise-kind", "laplace"], "unknown noise kind 'laplace'; allowed: gaussian, uniform, multiplicative"),
    (["--device", "tpu"], "unknown device 'tpu'; allowed: auto, cpu, cuda, mps"),
    (["--epochs", "0"], "epochs must be >= 1, got 0"),
    (["--batch-size", "-8"], "batch_size must be >= 1, got -8"),
    (["--channels", "0"], "channels must be >= 2, got 0"),
    (["--dataset", "folder", "--data-dir", "nowhere"], "data folder 'nowhere' does not exist"),
])
def test_bad_search_input_is_one_line_of_error(tmp_path, args, message):
    line = only_line(cli("search", *QUICK, *args, cwd=tmp_path))
    assert message in line
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_odd_channels_are_refused_before_any_data_is_read(tmp_path):
    # The data folder does not exist (and CIFAR-10 would be downloaded): the channels rule answers first.
    line = only_line(cli("search", *QUICK, "--channels", "5", "--dataset", "cifar10", "--data-dir",
                         tmp_path / "nowhere", cwd=tmp_path))
    assert "channels must be even (the factorized reduce splits them in two), got 5" in line
    assert not (tmp_path / "nowhere").exists() and not (tmp_path / "runs").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_asked_for_on_a_machine_without_one(tmp_path):
    line = only_line(cli("search", *QUICK, "--device", "cuda", cwd=tmp_path))
    assert "device 'cuda' asked for, but this machine has no CUDA GPU; use 'auto' or 'cpu'" in line


def test_a_data_folder_with_wrong_shapes(tmp_path):
    (tmp_path / "data").mkdir()
    np.savez(tmp_path / "data" / "train.npz", images=np.zeros((20, 8)), labels=np.arange(20))
    line = only_line(cli("search", *QUICK, "--dataset", "folder", "--data-dir", "data", cwd=tmp_path))
    assert "images must be (N, C, H, W) or (N, H, W), got shape (20, 8)" in line


def test_an_out_folder_that_cannot_be_made(tmp_path):
    (tmp_path / "a-file").write_text("")
    line = only_line(cli("search", *QUICK, "--out", "a-file/run", cwd=tmp_path))
    assert "cannot create the --out folder 'a-file/run'" in line


def test_a_crafted_checkpoint_is_refused_and_its_code_never_runs(tmp_path):
    class WritesAMarker:
        def __reduce__(self):
            return os.system, (f"touch {tmp_path / 'code-ran'}",)

    (tmp_path / "run").mkdir()
    with open(tmp_path / "run" / "checkpoint.pt", "wb") as f:
        pickle.dump({"format": "ndarts_edu.result/1", "config": WritesAMarker()}, f)
    line = only_line(cli("search", "--resume", "run", cwd=tmp_path))
    assert "refused to load checkpoint 'run/checkpoint.pt'" in line
    assert not (tmp_path / "code-ran").exists()


@pytest.mark.slow
def test_a_diverging_search_is_one_line_of_error_and_keeps_its_history(tmp_path):
    # A noise 1e30 times the signal overflows at once: the message must point at the noise level.
    process = cli("search", *QUICK, "--noise-lambda", "1e30", "--out", "run", cwd=tmp_path)
    line = error_line(process)
    assert "diverged" in line and "at step 1" in line and "noise_lambda=1e+30" in line
    assert "no epoch finished, so no checkpoint" in line
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["status"] == "diverged" and result["message"] in line


@pytest.mark.slow
def test_ctrl_c_leaves_a_checkpoint_and_resume_finishes(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "ndarts_edu", "search", *QUICK, "--epochs", "50",
                                "--out", str(out)], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        deadline = time.monotonic() + 240
        while not (out / "checkpoint.pt").exists():  # written at the end of epoch 1
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)  # stops after the current step
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert stdout.startswith("stopped:")
    stopped = json.loads((out / "result.json").read_text())
    assert stopped["status"] == "stopped" and 1 <= stopped["epochs_done"] < 50
    assert len(stopped["history"]["epochs"]) == stopped["epochs_done"]

    resumed = cli("search", "--resume", "run", "--epochs", stopped["epochs_done"] + 2, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    finished = json.loads((out / "result.json").read_text())
    assert finished["status"] == "finished" and finished["epochs_done"] == stopped["epochs_done"] + 2
    # the last stdout line is the genotype as DARTS's genotypes.py spells it
    genotype = finished["genotype"]
    pairs = ", ".join(f"({op!r}, {source})" for op, source in genotype["normal"])
    assert resumed.stdout.splitlines()[-1].startswith(f"as DARTS's genotypes.py: Genotype(normal=[{pairs}], "
                                                      "normal_concat=range(2, ")
    assert finished["history"]["epochs"][: stopped["epochs_done"]] == stopped["history"]["epochs"]


@pytest.mark.slow
def test_resume_refuses_a_missing_checkpoint_bad_epochs_and_settings_it_would_ignore(tmp_path):
    assert "no checkpoint at 'nowhere/checkpoint.pt'" in only_line(cli("search", "--resume", "nowhere", cwd=tmp_path))
    assert cli("search", *QUICK, "--epochs", "1", "--out", "run", cwd=tmp_path).returncode == 0
    line = only_line(cli("search", "--resume", "run", "--noise-lambda", "0.5", "--preset", "quick", cwd=tmp_path))
    assert "only --epochs and --device may change, got --noise-lambda, --preset" in line
    line = only_line(cli("search", "--resume", "run", "--epochs", "0", cwd=tmp_path))
    assert "epochs must be >= 1, got 0" in line


@pytest.mark.parametrize("content, message", [
    ('{"normal": [["sep_conv_3x3", 0], ', "is not valid JSON"),
    (json.dumps({"normal": [["conv_9x9", 0], ["skip_connect", 1]], "reduce": [["skip_connect", 0], ["skip_connect", 1]]}),
     "unknown op 'conv_9x9'"),
])
def test_a_bad_genotype_file_is_one_line_of_error(tmp_path, content, message):
    (tmp_path / "genotype.json").write_text(content)
    process = cli("train", "--genotype", "genotype.json", "--preset", "quick", cwd=tmp_path)
    if "invalid choice: 'train'" in process.stderr:
        pytest.skip("the train sub-command is not there yet")
    assert message in only_line(process)


def test_compare_run_again_continues_instead_of_starting_over(tmp_path):
    args = ["compare", *QUICK, "--epochs", "1", "--seeds", "0", "--workers", "1", "--out", tmp_path / "cmp"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    runs = json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"]
    assert len(runs) == 2
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 of the 2 searches are done there" in again.stderr and "2 of 2 searches" in again.stdout
    assert "started" not in again.stderr  # nothing ran
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"] == runs  # nothing re-run
    (tmp_path / "cmp" / "compare.json").write_text("[1, 2]")
    assert "exists but is not a compare file" in error_line(cli(*args, cwd=tmp_path))


# -- the command line as a newcomer expects (issue 12) ---------------------------------------------------
ONE_EPOCH = [*QUICK, "--epochs", "1", "--workers", "1"]


@pytest.mark.parametrize("args, meant", [
    (["compare", "--noise-lambda", "1.5"], "--noise-lambdas"),  # search's spelling, singular
    (["sweep", "--seed", "1"], "--seeds"),
    (["ablations", "--noise-lambdas", "1"], "--noise-lambda"),
    (["search", "--noise", "1"], "--noise-"),
    (["compare", "--epoch", "1"], "--epochs"),
])
def test_options_are_never_abbreviated_and_the_error_names_the_option_meant(tmp_path, args, meant):
    process = cli(*args, cwd=tmp_path)
    assert process.returncode == 2
    line = only_line(process)
    assert f"{args[0]} has no option {args[1]}; did you mean {meant}" in line
    assert f"see python -m ndarts_edu {args[0]} --help" in line
    assert not (tmp_path / "runs").exists()


def test_help_lists_every_command_and_every_option_with_its_default(tmp_path):
    from ndarts_edu.cli import COMMANDS, build_parser

    top = cli("--help", cwd=tmp_path)
    assert top.returncode == 0 and "``" not in top.stdout
    for command in ("search", "compare", "sweep", "ablations", "train"):
        assert f"    {command}" in top.stdout, command
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)
    for command, parser in subparsers.choices.items():
        for action in parser._actions:
            if action.dest == "help":
                continue
            text = action.help or ""
            assert "default" in text or "required" in text, (command, action.option_strings, text)
        shown = cli(command, "--help", cwd=tmp_path)
        assert shown.returncode == 0 and "``" not in shown.stdout and "(default: " in shown.stdout


@pytest.mark.parametrize("args, message", [
    (["compare", "--seeds", "-1"], "seed must be >= 0, got -1"),
    (["compare", "--epochs", "0"], "epochs must be >= 1, got 0"),
    (["compare", "--workers", "0"], "workers must be >= 1, got 0"),
    (["compare", "--workers", "2", "--cluster", "tcp://127.0.0.1:9"], "give --workers or --cluster, not both"),
    (["compare", "--out", "a-file/x"], "cannot create the --out folder 'a-file/x'"),
    (["sweep", "--noise-lambdas", "-1"], "noise_lambda must be >= 0.0, got -1.0"),
    (["sweep", "--space", "s9"], "unknown space 's9'"),
    (["ablations", "--only", "gaussian_tiny"], "unknown ablation 'gaussian_tiny'"),
    (["ablations", "--epochs", "0"], "epochs must be >= 1, got 0"),
    (["train", "--genotype", "nowhere.json"], "no genotype file at 'nowhere.json'"),
    (["train", "--genotype", "empty-folder"], "the folder 'empty-folder' holds no result.json"),
])
def test_bad_input_to_any_command_is_one_line_and_status_2(tmp_path, args, message):
    (tmp_path / "a-file").write_text("")
    (tmp_path / "empty-folder").mkdir()
    process = cli(*args, cwd=tmp_path)
    assert process.returncode == 2, process.stderr
    assert message in only_line(process)
    assert not (tmp_path / "runs").exists()  # refused before anything was made


def test_compare_twice_with_other_settings_keeps_the_first_results(tmp_path):
    path = tmp_path / "runs" / "compare" / "compare.json"
    first = cli("compare", *ONE_EPOCH, "--seeds", "0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    kept = json.loads(path.read_text())["runs"]
    assert len(kept) == 2
    # the case: other settings into the same --out (here: 2 epochs, another seed)
    other = cli("compare", *QUICK, "--epochs", "2", "--seeds", "1", "--workers", "1", cwd=tmp_path)
    assert other.returncode == 0, other.stderr
    assert "also holds 2 other finished searches (epochs 1 there, 2 here); they stay in the file" in other.stderr
    runs = json.loads(path.read_text())["runs"]
    assert len(runs) == 4 and runs[2:] == kept  # the first run's results, as they were
    assert [(r["config"]["epochs"], r["config"]["seed"]) for r in runs[:2]] == [(2, 1), (2, 1)]
    # and the first command again finds its searches there: nothing runs
    again = cli("compare", *ONE_EPOCH, "--seeds", "0", cwd=tmp_path)
    assert again.returncode == 0 and "2 of the 2 searches are done there" in again.stderr
    assert "started" not in again.stderr and len(json.loads(path.read_text())["runs"]) == 4


def test_the_compare_table_is_labelled_explained_and_says_what_next(tmp_path):
    process = cli("compare", *ONE_EPOCH, "--seeds", "0", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    out = process.stdout
    assert "DARTS (lambda 0)" in out and "NoisyDARTS (lambda 1.5)" in out
    for column in ("skip_share:", "none:", "skips:", "accuracy:", "raw:", "seconds:"):
        assert column in out
    assert "\nnext: " in out
    seed_line = next(line for line in out.splitlines() if line.startswith("0 "))
    run = json.loads((tmp_path / "runs" / "compare" / "compare.json").read_text())["runs"][0]
    assert seed_line.split("|")[1].split()[:5] == [
        f"{run['skip_share']:.2f}", f"{run['op_shares']['none']:.2f}", str(run["genotype_skips"]),
        f"{run['valid_accuracy']:.2f}", f"{run['valid_accuracy_raw']:.2f}"]
    assert "1 epoch," in process.stderr or "1 epochs" not in process.stderr


def test_a_sweep_of_another_base_search_is_refused_and_the_file_left_byte_identical(tmp_path):
    path = tmp_path / "runs" / "sweep" / "sweep.json"
    first = cli("sweep", *ONE_EPOCH, "--noise-lambdas", "0", "--seeds", "0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = path.read_bytes()
    refused = cli("sweep", *QUICK, "--epochs", "2", "--noise-lambdas", "0", "--seeds", "0", "--workers", "1",
                  cwd=tmp_path)
    assert refused.returncode == 2
    line = only_line(refused)
    assert "holds 1 finished search of other settings (epochs 1 there, 2 here); it was left as it was" in line
    assert path.read_bytes() == before
    # the same base search with another level joins the grid
    more = cli("sweep", *ONE_EPOCH, "--noise-lambdas", "1", "--seeds", "0", cwd=tmp_path)
    assert more.returncode == 0, more.stderr
    data = json.loads(path.read_text())
    assert data["noise_lambdas"] == [0.0, 1.0] and [r["noise_lambda"] for r in data["runs"]] == [0.0, 1.0]
    assert data["runs"][0] == json.loads(before)["runs"][0]


def test_ablations_of_another_base_search_are_refused_and_the_file_left_byte_identical(tmp_path):
    path = tmp_path / "runs" / "ablations" / "ablations.json"
    first = cli("ablations", *ONE_EPOCH, "--only", "darts", "--seeds", "0", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    before = path.read_bytes()
    refused = cli("ablations", "--preset", "quick", "--epochs", "2", "--only", "darts", "--seeds", "0", cwd=tmp_path)
    assert refused.returncode == 2 and "epochs 1 there, 2 here" in only_line(refused)
    assert path.read_bytes() == before


def test_train_takes_a_search_folder_as_resume_does(tmp_path):
    assert cli("search", *QUICK, "--epochs", "1", "--out", "run", cwd=tmp_path).returncode == 0
    process = cli("train", "--genotype", "run", "--epochs", "1", "--threads", "1", "--out", "trained", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    result = json.loads((tmp_path / "trained" / "train.json").read_text())
    searched = json.loads((tmp_path / "run" / "result.json").read_text())
    from ndarts_edu.derive import with_nodes

    assert result["genotype"]["normal"] == with_nodes(searched["genotype"]["normal"])  # the folder's cell
    assert result["config"]["layers"] == searched["config"]["layers"]
    accuracy = result["test_accuracy"]
    assert f"test accuracy {accuracy:.3f}," in process.stdout  # three decimals, not six
    assert "train: " in process.stderr and "1 epoch," in process.stderr
    # one epoch of a fresh network may stay near chance: then it says so, and why
    assert ("is about chance level" in process.stderr) == (accuracy < 0.2)


def test_search_reads_cifar10_from_data_by_default(tmp_path):
    from test_data import _cifar_batch, _py2_pickle

    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(_py2_pickle(_cifar_batch(8, i, f"training batch {i} of 5")))
    (folder / "test_batch").write_bytes(_py2_pickle(_cifar_batch(4, 9, "testing batch 1 of 1")))
    process = cli("search", *QUICK, "--dataset", "cifar10", "--epochs", "1", "--batch-size", "8", "--image-size",
                  "8", "--out", "run", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["data"] == "cifar10" and result["config"]["data_dir"] == "data"


def test_small_things_a_newcomer_notices(tmp_path):
    process = cli("search", *QUICK, "--epochs", "1", "--out", "run", cwd=tmp_path)
    assert process.returncode == 0, process.stderr
    first = process.stderr.splitlines()[0]
    assert "1 epoch on cpu (1 thread)" in first  # not "1 epochs", "1 threads"
    assert "epoch 0/" not in process.stderr and "epoch 1/1" in process.stderr
    summary = process.stdout.splitlines()[0]
    accuracy = json.loads((tmp_path / "run" / "result.json").read_text())["valid_accuracy"]
    assert f"supernet accuracy {accuracy:.2f}," in summary
    # resuming a finished search says that nothing ran, and how to continue it
    resumed = cli("search", "--resume", "run", cwd=tmp_path)
    assert resumed.returncode == 0 and resumed.stdout == ""
    assert "nothing ran: the search in run has finished its 1 epoch (--epochs N, more than 1, continues it)" in \
        resumed.stderr


def test_the_progress_bar_counts_the_epoch_it_is_in(tiny_config, tiny_data, capsys):
    from ndarts_edu.cli import Progress
    from ndarts_edu.search import Search

    bar = Progress(Search(tiny_config.replace(epochs=2), data=tiny_data))
    bar.tty = True
    bar.search.train_one_step()
    bar._draw(1.0, end="\r")
    assert "epoch 1/2 step 1/" in capsys.readouterr().err


def test_the_benchmark_prints_only_what_it_measured(tmp_path):
    """Each measurement a JSON line; the summary's ratios are those of this run's own medians."""
    bench = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "bench_search.py")
    process = subprocess.run([sys.executable, bench, "--space", "s3", "--channels", "4", "--layers",
                              "3", "--nodes", "2", "--batch", "8", "--image-size", "8", "--steps",
                              "1", "--warmup", "1", "--threads", "1", "--repeats", "1"],
                             capture_output=True, text=True, timeout=300, cwd=tmp_path,
                             env={**os.environ, "PEER_DARTS": ""})
    assert process.returncode == 0, process.stderr
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    steps = {line["impl"]: line for line in lines if line["benchmark"] == "search_steps"}
    assert sorted(steps) == ["fast", "readable"] and all(s["steps_per_s"] > 0 for s in steps.values())
    (summary,) = [line for line in lines if line["benchmark"] == "search_steps_summary"]
    ratio = summary["ratios"]["fast/readable"]["steps_per_s"]
    assert ratio == round(steps["fast"]["steps_per_s"] / steps["readable"]["steps_per_s"], 2)
    assert "# " in process.stdout  # the table for people
    assert "reference" not in process.stdout and "issue" not in process.stdout


def test_the_sweep_command_by_default_is_the_shipped_grid():
    # README gives one sweep command, `python -m ndarts_edu sweep`: it must make the shipped file.
    from ndarts_edu import experiments
    from ndarts_edu.cli import build_parser

    shipped = experiments.load_sweep()
    args = build_parser().parse_args(["sweep"])
    assert args.preset == shipped["preset"] and args.noise_lambdas is None
    assert list(experiments.SWEEP_LAMBDAS) == shipped["noise_lambdas"] and args.seeds == shipped["seeds"]
