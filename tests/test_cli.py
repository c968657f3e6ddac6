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
    args = ["compare", *QUICK, "--epochs", "1", "--seeds", "0", "--out", tmp_path / "cmp"]
    first = cli(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    runs = json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"]
    assert len(runs) == 2
    again = cli(*args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "2 of the 2 searches are done there" in again.stderr and "2 of 2 searches" in again.stdout
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["runs"] == runs  # nothing re-run
    (tmp_path / "cmp" / "compare.json").write_text("[1, 2]")
    assert "exists but is not a compare file" in error_line(cli(*args, cwd=tmp_path))
