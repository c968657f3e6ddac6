"""Reliability (issue 6): repeatable runs, checkpoint and resume, divergence, bad input, safe loading.

The searches here are tiny (2 steps of 32 images per epoch) so that a 4-epoch run takes seconds.
"""
import copy
import json
import os
import pickle
import random
import signal
import threading

import numpy as np
import pytest
import torch

from ndarts_edu import repro
from ndarts_edu.data import ImageData, load_dataset, pick_device
from ndarts_edu.errors import ConfigError
from ndarts_edu.presets import preset_config
from ndarts_edu.runs import CHECKPOINT, RESULT, load_checkpoint
from ndarts_edu.search import Search, SearchConfig, SearchDiverged

from tiny import TINY


@pytest.fixture(scope="module")
def small_data():
    """128 digits: two halves of 64, so 2 steps of 32 per epoch."""
    from ndarts_edu.data import digits

    d = digits()
    return ImageData("digits-small", d.train_images[:128].clone(), d.train_labels[:128].clone(),
                     d.test_images[:32].clone(), d.test_labels[:32].clone(), num_classes=10)


def four_epochs(**changes):
    """A 4-epoch search with the noise on and a cosine noise decay, so every schedule and generator matters."""
    config = SearchConfig(dataset="digits", epochs=4, batch_size=32, threads=1, device="cpu", seed=0,
                          noise_lambda=0.5, noise_decay="cosine", **TINY)
    return config.replace(**changes)


def without_timings(result):
    """A result without its wall-clock times: what two runs of the same search must share bit for bit."""
    result = copy.deepcopy(result)
    result.pop("seconds")
    for record in result["history"]["epochs"]:
        record.pop("seconds")
    return result


@pytest.fixture(scope="module")
def uninterrupted(small_data):
    """The reference: four epochs in one go."""
    return without_timings(Search(four_epochs(), data=small_data).run())


def stop_when(predicate, stop):
    return lambda record: stop.set() if predicate(record) else None


# -- reproducibility ----------------------------------------------------------------------------
def test_seed_everything_reseeds_python_numpy_and_torch():
    def draws():
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    repro.seed_everything(7)
    first = draws()
    repro.seed_everything(7)
    assert draws() == first
    repro.seed_everything(8)
    assert draws() != first


def test_same_seed_and_settings_give_the_same_result_file(small_data, tmp_path):
    config = four_epochs(epochs=2)
    for name in ("a", "b", "other_seed"):
        seed = 1 if name == "other_seed" else 0
        Search(config.replace(seed=seed), data=small_data).run(out_dir=str(tmp_path / name))
    a, b, other = (without_timings(json.loads((tmp_path / n / RESULT).read_text())) for n in ("a", "b", "other_seed"))
    assert a == b  # history, alphas, weights, genotype: all bit-identical
    assert a["genotype"] == b["genotype"] and a["history"] == b["history"]
    assert other["alphas"] != a["alphas"]  # the comparison can tell runs apart


def test_result_records_versions_device_and_threads(small_data):
    result = Search(four_epochs(epochs=1), data=small_data).run()
    env = result["environment"]
    assert env["torch"] == torch.__version__ and env["numpy"] == np.__version__
    assert env["ndarts_edu"] and env["python"] and env["platform"]
    assert env["device"] == "cpu" and env["torch_threads"] == 1
    assert result["config"]["device"] == "cpu" and result["config"]["threads"] == 1


# -- checkpoint and resume ----------------------------------------------------------------------
def test_stopped_after_two_epochs_then_resumed_equals_an_uninterrupted_run(small_data, uninterrupted, tmp_path):
    out = str(tmp_path)
    stop = threading.Event()
    first = Search(four_epochs(), data=small_data).run(on_epoch=stop_when(lambda r: r["epoch"] == 2, stop),
                                                        stop=stop, out_dir=out)
    assert first["status"] == "stopped" and first["epochs_done"] == 2
    assert json.loads((tmp_path / RESULT).read_text())["status"] == "stopped"
    assert len(first["history"]["epochs"]) == 2  # the history so far is kept

    resumed = Search.resume(out, data=small_data)
    assert resumed.epoch == 2
    result = without_timings(resumed.run(out_dir=out))
    assert result["history"] == uninterrupted["history"]
    assert result["alphas"] == uninterrupted["alphas"]
    assert result["genotype"] == uninterrupted["genotype"]
    on_disk = json.loads((tmp_path / RESULT).read_text())  # the resume rewrote result.json
    assert on_disk["status"] == "finished" and on_disk["epochs_done"] == 4


def test_stopped_mid_epoch_then_resumed_equals_an_uninterrupted_run(small_data, uninterrupted, tmp_path):
    out = str(tmp_path)
    stop = threading.Event()
    first = Search(four_epochs(), data=small_data).run(on_step=stop_when(lambda r: r["step"] == 3, stop),
                                                        stop=stop, out_dir=out)
    assert first["status"] == "stopped" and first["steps_done"] == 3 and first["epochs_done"] == 1
    result = without_timings(Search.resume(out, data=small_data).run(out_dir=out))
    assert result["history"] == uninterrupted["history"]
    assert result["alphas"] == uninterrupted["alphas"]


@pytest.mark.parametrize("augment", ["crop_flip", "distort"])
def test_augmented_search_stopped_mid_epoch_then_resumed_equals_an_uninterrupted_run(small_data, tmp_path, augment):
    """The augmentation's draws (a crop per image, a distortion per image) are in the checkpoint too."""
    config = four_epochs(epochs=2, augment=augment)
    whole = without_timings(Search(config, data=small_data).run())
    out, stop = str(tmp_path), threading.Event()
    Search(config, data=small_data).run(on_step=stop_when(lambda r: r["step"] == 3, stop), stop=stop, out_dir=out)
    result = without_timings(Search.resume(out, data=small_data).run(out_dir=out))
    assert result["history"] == whole["history"] and result["alphas"] == whole["alphas"]


def test_two_epochs_extended_to_four_equal_four_when_the_schedules_are_flat(small_data, tmp_path):
    flat = four_epochs(w_lr_min=0.05, w_lr=0.05, noise_decay="none")
    whole = without_timings(Search(flat, data=small_data).run())
    Search(flat.replace(epochs=2), data=small_data).run(out_dir=str(tmp_path))
    result = without_timings(Search.resume(str(tmp_path), data=small_data).run(out_dir=str(tmp_path), epochs=4))
    assert result["history"] == whole["history"]
    assert result["alphas"] == whole["alphas"] and result["genotype"] == whole["genotype"]


def test_extending_replans_the_cosine_schedule_over_the_new_length(small_data, tmp_path):
    config = four_epochs(epochs=1)
    Search(config, data=small_data).run(out_dir=str(tmp_path))
    search = Search.resume(str(tmp_path), data=small_data)
    search.extend(2)
    # epoch 2 of 2 starts half-way down the cosine: (w_lr + w_lr_min) / 2, not at w_lr_min
    assert search.lr == pytest.approx((config.w_lr + config.w_lr_min) / 2)
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        search.extend(0)
    search.run(epochs=2)
    with pytest.raises(ConfigError, match="fewer than the 2 already done"):
        search.extend(1)


def test_a_checkpoint_is_written_after_every_epoch_with_everything_needed(small_data, tmp_path):
    seen = []

    def on_epoch(record):
        state = load_checkpoint(str(tmp_path / CHECKPOINT))
        seen.append((record["epoch"], state["progress"]["epoch"], len(state["history"]["epochs"])))

    Search(four_epochs(epochs=3), data=small_data).run(on_epoch=on_epoch, out_dir=str(tmp_path))
    assert seen == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    state = load_checkpoint(str(tmp_path / CHECKPOINT))
    assert state["w_optimizer"]["state"] and state["a_optimizer"]["state"]  # momentum and Adam moments
    assert {"torch", "python"} <= set(state["rng"]) and state["train_batches"]["order"] is not None
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT, RESULT]  # no temporary files left


def test_a_failed_write_keeps_the_previous_checkpoint_whole(small_data, tmp_path, monkeypatch):
    search = Search(four_epochs(epochs=2), data=small_data)
    search.run(epochs=1, out_dir=str(tmp_path))
    before = (tmp_path / CHECKPOINT).read_bytes()

    def save_half_then_fail(obj, path):
        with open(path, "wb") as f:
            f.write(b"half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", save_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        search.run(epochs=2, out_dir=str(tmp_path))
    assert (tmp_path / CHECKPOINT).read_bytes() == before
    assert load_checkpoint(str(tmp_path / CHECKPOINT))["progress"]["epoch"] == 1
    assert sorted(os.listdir(tmp_path)) == [CHECKPOINT, RESULT]


def test_ctrl_c_stops_after_the_step_and_a_second_one_interrupts(small_data, tmp_path):
    """The first SIGINT asks the search to stop (checkpoint, history); a second raises KeyboardInterrupt."""
    previous = signal.getsignal(signal.SIGINT)
    first = Search(four_epochs(), data=small_data).run(
        on_step=lambda r: signal.raise_signal(signal.SIGINT) if r["step"] == 3 else None, out_dir=str(tmp_path / "once"))
    assert first["status"] == "stopped" and first["steps_done"] == 3
    assert load_checkpoint(str(tmp_path / "once" / CHECKPOINT))["progress"]["step"] == 3
    assert signal.getsignal(signal.SIGINT) is previous

    def twice(record):
        if record["step"] == 3:
            signal.raise_signal(signal.SIGINT)
            signal.raise_signal(signal.SIGINT)

    out = tmp_path / "twice"
    with pytest.raises(KeyboardInterrupt):
        Search(four_epochs(), data=small_data).run(on_step=twice, out_dir=str(out))
    assert signal.getsignal(signal.SIGINT) is previous
    saved = json.loads((out / RESULT).read_text())
    assert saved["status"] == "interrupted" and len(saved["history"]["steps"]) == 3
    # the checkpoint is the last consistent one (end of epoch 1), and it resumes
    assert load_checkpoint(str(out / CHECKPOINT))["progress"]["step"] == 2
    assert Search.resume(str(out), data=small_data).run(epochs=2)["status"] == "finished"


# -- divergence ---------------------------------------------------------------------------------
def test_a_huge_learning_rate_stops_with_a_message_naming_step_and_causes(small_data, tmp_path):
    search = Search(four_epochs(w_lr=1e6), data=small_data)
    with pytest.raises(SearchDiverged) as caught:
        search.run(out_dir=str(tmp_path))
    message = str(caught.value)
    assert "step" in message and "w_lr=1000000.0" in message and "noise_lambda=0.5" in message
    result = caught.value.result
    assert result["status"] == "diverged" and result["message"] == message
    assert result["history"]["steps"]  # what was learnt before is kept
    saved = json.loads((tmp_path / RESULT).read_text())  # strict JSON: no NaN slipped into the result
    assert saved["status"] == "diverged" and saved["history"] == result["history"]


def test_after_divergence_the_last_good_checkpoint_is_kept(small_data, tmp_path):
    search = Search(four_epochs(), data=small_data)

    def poison_after_epoch_2(record):
        if record["epoch"] == 2:  # a weight turns NaN, as an overflow would make it
            search.model.classifier.weight.data[0, 0] = float("nan")

    with pytest.raises(SearchDiverged, match=r"loss became nan at step 5 \(epoch 3\)"):
        search.run(on_epoch=poison_after_epoch_2, out_dir=str(tmp_path))
    state = load_checkpoint(str(tmp_path / CHECKPOINT))
    assert state["progress"]["epoch"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())
    assert len(json.loads((tmp_path / RESULT).read_text())["history"]["epochs"]) == 2
    assert Search.resume(str(tmp_path), data=small_data).run()["status"] == "finished"


def test_an_overflowing_alpha_step_is_undone_and_stops_the_search(small_data, tmp_path):
    search = Search(four_epochs(alpha_lr=1e30), data=small_data)
    with pytest.raises(SearchDiverged, match="architecture parameters became non-finite.*alpha_lr=1e\\+30"):
        search.run(out_dir=str(tmp_path))
    assert all(torch.isfinite(a).all() for a in search.arch_params)
    assert json.loads((tmp_path / RESULT).read_text())["status"] == "diverged"


# -- bad settings -------------------------------------------------------------------------------
@pytest.mark.parametrize("changes, message", [
    (dict(noise_lambda=float("nan")), "noise_lambda must be a finite number, got nan"),
    (dict(noise_lambda=float("inf")), "noise_lambda must be a finite number, got inf"),
    (dict(noise_lambda=-0.1), "noise_lambda must be >= 0.0, got -0.1"),
    (dict(noise_kind="laplace"), "unknown noise kind 'laplace'; allowed: gaussian, uniform, multiplicative"),
    (dict(space="s9"), "unknown space 's9'; allowed: darts, darts7, s2, s3"),
    (dict(space=["skip_connect", "conv_9x9"]), "unknown op 'conv_9x9'; allowed: none, "),
    (dict(device="tpu"), "unknown device 'tpu'; allowed: auto, cpu, cuda, mps"),
    (dict(device="cpu:x"), "device 'cpu:x' is not a valid torch device"),
    (dict(epochs=0), "epochs must be >= 1, got 0"),
    (dict(grad_clip=0), "grad_clip must be > 0.0, got 0"),
    (dict(epochs=-3), "epochs must be >= 1, got -3"),
    (dict(epochs=2.5), "epochs must be a whole number, got 2.5"),
    (dict(epochs="3"), "epochs must be a number, got '3'"),
    (dict(batch_size=0), "batch_size must be >= 1, got 0"),
    (dict(batch_size=-32), "batch_size must be >= 1, got -32"),
    (dict(channels=0), "channels must be >= 2, got 0"),
    (dict(channels=-4), "channels must be >= 2, got -4"),
    (dict(dataset="mnist"), "unknown dataset 'mnist'; allowed: digits, cifar10, folder"),
])
def test_bad_settings_name_the_value_and_what_is_allowed(changes, message):
    with pytest.raises(ConfigError) as caught:
        four_epochs(**changes).validate()
    assert message in str(caught.value)


@pytest.mark.parametrize("changes, message", [
    (dict(channels=5, dataset="cifar10", data_dir="nowhere"), "channels must be even (the factorized"),
    (dict(dataset="cifar10"), "dataset 'cifar10' needs a data folder"),
    (dict(image_size=2), "image_size must be >= 4, got 2"),
    (dict(limit=0), "limit must be >= 1, got 0"),
    (dict(skip_drop_path=1.0), "skip_drop_path must be <= 0.99, got 1.0"),
    (dict(alpha_betas=(0.5, 1.0)), "alpha_betas must be two numbers in [0, 1)"),
    (dict(fair_threshold=1.5), "fair_threshold must be <= 1.0, got 1.5"),
])
def test_every_rule_is_checked_before_the_data_is_loaded(monkeypatch, changes, message):
    import ndarts_edu.search

    def no_loading(*args, **kwargs):
        raise AssertionError("the data was loaded before the settings were checked")

    monkeypatch.setattr(ndarts_edu.search, "load_dataset", no_loading)
    with pytest.raises(ConfigError) as caught:
        Search(four_epochs(**changes))
    assert message in str(caught.value)


def test_an_odd_channel_count_is_refused_when_the_supernet_is_built(small_data):
    with pytest.raises(ConfigError, match="channels must be even .* got 5"):
        Search(four_epochs(channels=5), data=small_data)


def test_unknown_setting_and_preset():
    with pytest.raises(ConfigError, match="unknown setting\\(s\\) noise_level; allowed: .*noise_lambda"):
        four_epochs(noise_level=0.2)
    with pytest.raises(ConfigError, match="unknown preset 'gpu'; allowed: cpu, quick, paper"):
        preset_config("gpu")


def test_a_live_noise_change_is_checked_too(small_data):
    search = Search(four_epochs(epochs=1), data=small_data)
    for bad in (float("nan"), -1.0):
        with pytest.raises(ConfigError, match="noise_lambda must be"):
            search.model.set_noise(noise_lambda=bad)
    assert all(m.noise_lambda == 0.5 for m in search.model.noise_modules())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_asked_for_on_a_machine_without_one():
    for device in ("cuda", "cuda:0"):
        with pytest.raises(ConfigError, match=f"device '{device}' asked for, but this machine has no CUDA GPU; "
                                              "use 'auto' or 'cpu'"):
            pick_device(device)
    assert pick_device("auto").type == "cpu"


def test_a_gpu_number_that_does_not_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert pick_device("cuda:0") == torch.device("cuda:0")
    with pytest.raises(ConfigError, match="'cuda:3' asked for, but this machine has 1 CUDA GPU"):
        pick_device("cuda:3")


def test_rng_states_of_more_gpus_than_here_restore_those_that_exist(monkeypatch):
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: restored.append(device))
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "cuda": [torch.zeros(8), torch.zeros(8)]}
    repro.set_rng_state(state)
    assert restored == [0]


# -- bad data -----------------------------------------------------------------------------------
def write_npz(folder, **arrays):
    folder.mkdir(exist_ok=True)
    np.savez(folder / "train.npz", **arrays)
    return str(folder)


def test_a_data_folder_that_does_not_exist(tmp_path):
    with pytest.raises(ConfigError, match="data folder '.*nowhere' does not exist"):
        load_dataset("folder", str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="has no train.npz"):
        load_dataset("folder", str(tmp_path))
    with pytest.raises(ConfigError, match="dataset 'folder' needs a data folder"):
        load_dataset("folder")


@pytest.mark.parametrize("arrays, message", [
    (dict(images=np.zeros((10, 5)), labels=np.arange(10)), r"images must be \(N, C, H, W\) or \(N, H, W\), got shape \(10, 5\)"),
    (dict(images=np.zeros((10, 1, 1, 8, 8)), labels=np.arange(10)), "got shape \\(10, 1, 1, 8, 8\\)"),
    (dict(images=np.zeros((10, 1, 8, 8)), labels=np.arange(9)), r"labels must be \(N,\) = \(10,\), got shape \(9,\)"),
    (dict(images=np.zeros((10, 1, 8, 8)), labels=np.zeros(10)), "labels must be integers >= 0, got dtype float64"),
    (dict(images=np.zeros((10, 1, 8, 8)), labels=-np.arange(10)), "labels must be integers >= 0"),
    (dict(pictures=np.zeros((10, 1, 8, 8)), labels=np.arange(10)), "must hold arrays 'images' and 'labels'"),
    (dict(images=np.zeros((0, 1, 8, 8)), labels=np.arange(0)), "holds no images"),
    (dict(images=np.full((10, 1, 8, 8), np.nan), labels=np.arange(10)), "images hold NaN or infinite values"),
    (dict(images=np.array([["a"] * 4] * 10), labels=np.arange(10)), "images must be numbers, got dtype <U1"),
])
def test_a_data_folder_with_wrong_contents(tmp_path, arrays, message):
    with pytest.raises(ConfigError, match=message):
        load_dataset("folder", write_npz(tmp_path / "data", **arrays))


def test_a_data_file_that_is_not_an_npz_archive(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    with open(single / "train.npz", "wb") as f:
        np.save(f, np.zeros((10, 1, 8, 8)))
    with pytest.raises(ConfigError, match="holds a single array, not an .npz archive"):
        load_dataset("folder", str(single))
    folder = write_npz(tmp_path / "cut", images=np.zeros((100, 1, 8, 8)), labels=np.arange(100))
    path = os.path.join(folder, "train.npz")
    data = open(path, "rb").read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="is not a readable .npz file"):
        load_dataset("folder", folder)


def test_a_test_file_with_another_image_shape(tmp_path):
    folder = write_npz(tmp_path / "data", images=np.zeros((10, 1, 8, 8)), labels=np.arange(10))
    np.savez(os.path.join(folder, "test.npz"), images=np.zeros((4, 1, 4, 4)), labels=np.arange(4))
    with pytest.raises(ConfigError, match=r"test.npz: images of shape \(1, 4, 4\), but train.npz has \(1, 8, 8\)"):
        load_dataset("folder", folder)


# -- bad checkpoints and safe loading -------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpoint_dir(small_data, tmp_path_factory):
    """A finished 1-epoch search's folder (checkpoint.pt and result.json)."""
    out = tmp_path_factory.mktemp("checkpoint")
    Search(four_epochs(epochs=1), data=small_data).run(out_dir=str(out))
    return out


def folder_with(tmp_path, write):
    """A fresh folder whose checkpoint.pt is written by ``write(path)``."""
    folder = tmp_path / "ckpt"
    folder.mkdir()
    write(str(folder / CHECKPOINT))
    return str(folder)


def test_a_missing_truncated_or_corrupt_checkpoint(checkpoint_dir, small_data, tmp_path):
    whole = (checkpoint_dir / CHECKPOINT).read_bytes()
    with pytest.raises(ConfigError, match="no checkpoint at '.*nowhere/checkpoint.pt'"):
        Search.resume(str(tmp_path / "nowhere"), data=small_data)
    for name, content, message in [("truncated", whole[: len(whole) // 2], "the file is truncated or corrupt"),
                                   ("empty", b"", "the file is truncated or corrupt"),
                                   ("random", bytes(random.Random(0).getrandbits(8) for _ in range(4096)),
                                    "checkpoint")]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / CHECKPOINT).write_bytes(content)
        with pytest.raises(ConfigError, match=message):
            Search.resume(str(folder), data=small_data)


class WritesAMarker:
    """Unpickling this runs a shell command: what a malicious checkpoint would do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_crafted_pickle_is_refused_without_running_its_code(small_data, tmp_path, writer):
    marker = tmp_path / "code-ran"
    payload = {"format": "ndarts_edu.result/1", "config": WritesAMarker(marker)}

    def write(path):
        if writer == "pickle":
            with open(path, "wb") as f:
                pickle.dump(payload, f)
        else:
            torch.save(payload, path)

    with pytest.raises(ConfigError, match="refused to load checkpoint .*could run code"):
        Search.resume(folder_with(tmp_path, write), data=small_data)
    assert not marker.exists()


def test_a_checkpoint_from_another_configuration(checkpoint_dir, small_data, tmp_path):
    state = load_checkpoint(str(checkpoint_dir / CHECKPOINT))
    tampered = dict(state, config=dict(state["config"], channels=6))
    with pytest.raises(ConfigError, match=r"does not fit .*stem.0.weight has shape \(12, 1, 3, 3\) there, "
                                          r"\(18, 1, 3, 3\) here"):
        Search.resume(folder_with(tmp_path, lambda path: torch.save(tampered, path)), data=small_data)

    other_space = Search(four_epochs(space="s2"), data=small_data)
    alphas = [a.detach().clone() for a in other_space.arch_params]
    with pytest.raises(ConfigError, match=r"another configuration \(space 's3' there, 's2' here\); alpha_normal"):
        other_space.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(other_space.arch_params, alphas))  # left as it was


@pytest.mark.parametrize("damage, message", [
    (lambda state: {k: v for k, v in state.items() if k != "history"}, "is incomplete .*history"),
    (lambda state: dict(state, config=[1, 2]), "is incomplete .*config"),
    (lambda state: dict(state, config=dict(state["config"], bogus=1)), "unknown setting\\(s\\) bogus"),
    (lambda state: dict(state, config=dict(state["config"], noise_lambda=float("nan"))), "noise_lambda must be"),
    (lambda state: {"weights": state["model"]}, "is not an ndarts_edu search checkpoint"),
])
def test_a_damaged_checkpoint(checkpoint_dir, small_data, tmp_path, damage, message):
    state = damage(load_checkpoint(str(checkpoint_dir / CHECKPOINT)))
    with pytest.raises(ConfigError, match=message):
        Search.resume(folder_with(tmp_path, lambda path: torch.save(state, path)), data=small_data)


def test_resuming_with_other_data_is_refused(checkpoint_dir, small_data):
    more = ImageData("more", torch.cat([small_data.train_images] * 2), torch.cat([small_data.train_labels] * 2),
                     small_data.test_images, small_data.test_labels, num_classes=10)
    with pytest.raises(ConfigError, match="drawn from 64 images, this data has 128"):
        Search.resume(str(checkpoint_dir), data=more)
    # the same number of images, but other ones: the checksum tells
    flipped = ImageData("flipped", small_data.train_images.flip(3), small_data.train_labels,
                        small_data.test_images, small_data.test_labels, num_classes=10)
    with pytest.raises(ConfigError, match="other images of the same number \\(checksum [0-9a-f]{16} there"):
        Search.resume(str(checkpoint_dir), data=flipped)
    relabelled = ImageData("relabelled", small_data.train_images, small_data.train_labels.roll(1),
                           small_data.test_images, small_data.test_labels, num_classes=10)
    with pytest.raises(ConfigError, match="other images of the same number"):
        Search.resume(str(checkpoint_dir), data=relabelled)
    assert Search.resume(str(checkpoint_dir), data=small_data).done  # the same data resumes (a finished 1-epoch search)
