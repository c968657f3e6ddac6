"""Data: CIFAR-10 files written like the real ones, the user's folders, the digits, batches, devices."""
import os
import pickle
import struct
import sys

import numpy as np
import pytest
import torch

from ndarts_edu.config import SearchConfig
from ndarts_edu import data
from ndarts_edu.data import Batches, cifar10, folder, load_dataset, pick_device, split_search
from ndarts_edu.errors import ConfigError


# -- CIFAR-10 in its own format ---------------------------------------------------------------------
def _py2_pickle(obj):
    """Pickle ``obj`` with the opcodes of Python 2's cPickle (protocol 2), as the real CIFAR-10 files were.

    Python 2 ``str`` (keys, labels of the batch, file names, the array's raw bytes) is a STRING
    opcode, which Python 3 reads as ``str`` with ``encoding='latin1'``; the arrays reference
    ``numpy.core.multiarray._reconstruct``. (Python 3's own protocol 2 would write the bytes through
    ``_codecs.encode`` instead: not what the real files hold.)
    """
    out = bytearray(b"\x80\x02")

    def string(s):
        b = s.encode("latin1") if isinstance(s, str) else bytes(s)
        out.extend(b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b)

    def integer(i):
        if 0 <= i < 256:
            out.extend(b"K" + bytes([i]))
        elif 0 <= i < 65536:
            out.extend(b"M" + struct.pack("<H", i))
        else:
            out.extend(b"J" + struct.pack("<i", i))

    def save(o):
        if isinstance(o, (str, bytes)):
            string(o)
        elif isinstance(o, bool) or o is None:
            out.extend({None: b"N", True: b"\x88", False: b"\x89"}[o])
        elif isinstance(o, int):
            integer(o)
        elif isinstance(o, list):
            out.extend(b"](")
            for item in o:
                save(item)
            out.extend(b"e")
        elif isinstance(o, tuple):
            out.extend(b"(")
            for item in o:
                save(item)
            out.extend(b"t")
        elif isinstance(o, dict):
            out.extend(b"}(")
            for key, value in o.items():
                save(key)
                save(value)
            out.extend(b"u")
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.flags.c_contiguous
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            out.extend(b"K\x00\x85U\x01b\x87R(K\x01")  # _reconstruct(ndarray, (0,), 'b'); state: (1, ...
            save(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb")
            out.extend(b"\x89")
            string(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    save(obj)
    out.extend(b".")
    return bytes(out)


def _cifar_batch(n, seed, label):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = [int(v) for v in rng.integers(0, 10, size=n)]
    return {"batch_label": label, "labels": labels, "data": images,
            "filenames": [f"img_{seed}_{i}.png" for i in range(n)]}


@pytest.fixture
def cifar_root(tmp_path):
    folder_ = tmp_path / "cifar-10-batches-py"
    folder_.mkdir()
    batches = {f"data_batch_{i}": _cifar_batch(6, i, f"training batch {i} of 5") for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(4, 9, "testing batch 1 of 1")
    for name, batch in batches.items():
        (folder_ / name).write_bytes(_py2_pickle(batch))
    return tmp_path, batches


def test_written_files_are_like_the_real_ones(cifar_root):
    root, batches = cifar_root
    raw = (root / "cifar-10-batches-py" / "data_batch_1").read_bytes()
    assert raw.startswith(b"\x80\x02}(") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw
    # torchvision reads them with pickle.load(f, encoding="latin1"): str keys, the same array
    loaded = pickle.loads(raw, encoding="latin1")
    assert sorted(loaded) == ["batch_label", "data", "filenames", "labels"]
    assert np.array_equal(loaded["data"], batches["data_batch_1"]["data"])
    assert loaded["labels"] == batches["data_batch_1"]["labels"]


def test_cifar10_reads_its_own_format(cifar_root):
    root, batches = cifar_root
    d = cifar10(str(root))
    assert d.name == "cifar10" and d.num_classes == 10
    assert d.train_images.shape == (30, 3, 32, 32) and d.test_images.shape == (4, 3, 32, 32)
    assert d.train_images.dtype == torch.float32 and d.shape == (3, 32, 32)
    labels = sum((batches[f"data_batch_{i}"]["labels"] for i in range(1, 6)), [])
    assert d.train_labels.tolist() == labels and d.train_labels.dtype == torch.int64
    assert d.test_labels.tolist() == batches["test_batch"]["labels"]
    # standardised per channel with the training part's statistics, channel-major (R plane first)
    raw = np.concatenate([batches[f"data_batch_{i}"]["data"] for i in range(1, 6)]).reshape(-1, 3, 32, 32)
    raw = torch.from_numpy(raw).float()
    mean, std = raw.mean(dim=(0, 2, 3), keepdim=True), raw.std(dim=(0, 2, 3), keepdim=True)
    assert torch.allclose(d.train_images, (raw - mean) / std, atol=1e-5)
    assert torch.allclose(d.train_images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(d.train_images.std(dim=(0, 2, 3)), torch.ones(3), atol=1e-5)
    test_raw = torch.from_numpy(batches["test_batch"]["data"].reshape(-1, 3, 32, 32)).float()
    assert torch.allclose(d.test_images, (test_raw - mean) / std, atol=1e-5)


def test_cifar10_limit_and_image_size(cifar_root):
    root, _ = cifar_root
    d = load_dataset("cifar10", str(root), image_size=16, limit=10)
    assert d.train_images.shape == (10, 3, 16, 16) and d.test_images.shape == (4, 3, 16, 16)


def test_cifar10_python3_pickles_load_too(cifar_root):
    """The same dicts pickled by Python 3 (what a user who subsets CIFAR-10 writes), protocols 2 and 4."""
    root, batches = cifar_root
    for protocol in (2, 4):
        for name, batch in batches.items():
            (root / "cifar-10-batches-py" / name).write_bytes(pickle.dumps(batch, protocol=protocol))
        d = cifar10(str(root))
        assert d.train_images.shape == (30, 3, 32, 32)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_malicious_pickle_is_refused(cifar_root):
    root, _ = cifar_root
    marker = str(root / "pwned")
    batch = {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1], "payload": _Evil(marker)}
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ConfigError, match="data_batch_3"):
        cifar10(str(root))
    assert not os.path.exists(marker)


def test_cifar10_bad_folders(tmp_path, cifar_root):
    with pytest.raises(ConfigError, match="no CIFAR-10"):
        cifar10(str(tmp_path / "nowhere"))
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(
        _py2_pickle({"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]}))
    with pytest.raises(ConfigError, match="3072"):
        cifar10(str(root))
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(ConfigError, match="data_batch_2"):
        cifar10(str(root))


# -- the user's own folder ------------------------------------------------------------------------
# -- downloading through torchvision ---------------------------------------------------------------
# This machine cannot reach CIFAR-10's server and its PyPI torchvision does not load beside the CPU
# torch, so these tests put small stand-in `torchvision` packages on sys.path: what cifar10() must
# do with each answer a real one can give (missing, broken, offline, or the files written).
def _fake_torchvision(tmp_path, monkeypatch, init="", cifar_body="pass"):
    package = tmp_path / "fake_site" / "torchvision"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(init + "\nfrom . import datasets\n")
    (package / "datasets.py").write_text(
        "calls = []\n"
        "def CIFAR10(root, train=True, download=False):\n"
        "    calls.append((root, train, download))\n"
        + "".join(f"    {line}\n" for line in cifar_body.splitlines()))
    monkeypatch.syspath_prepend(str(package.parent))
    for name in ("torchvision", "torchvision.datasets"):
        monkeypatch.delitem(sys.modules, name, raising=False)


def _copies_from(source):
    """A stand-in CIFAR10 body that 'downloads' by copying the batches written under ``source``."""
    return ("import shutil, os\n"
            f"shutil.copytree({str(source / 'cifar-10-batches-py')!r}, os.path.join(root, 'cifar-10-batches-py'))")


def test_download_without_torchvision_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # import torchvision -> ImportError
    with pytest.raises(ConfigError, match="needs torchvision.*ModuleNotFoundError"):
        cifar10(str(tmp_path / "data"), download=True)


def test_download_with_a_torchvision_built_for_another_torch_says_so(tmp_path, monkeypatch):
    # What PyPI's torchvision does here: its C extension fails to register its operators.
    _fake_torchvision(tmp_path, monkeypatch, init='raise RuntimeError("operator torchvision::nms does not exist")')
    with pytest.raises(ConfigError, match=r"RuntimeError: operator torchvision::nms.*matches torch"):
        cifar10(str(tmp_path / "data"), download=True)


def test_download_offline_says_what_to_copy(tmp_path, monkeypatch):
    _fake_torchvision(tmp_path, monkeypatch, cifar_body=(
        "import urllib.error\nraise urllib.error.URLError('[Errno -3] Temporary failure in name resolution')"))
    with pytest.raises(ConfigError, match="could not download CIFAR-10.*URLError.*copy cifar-10-batches-py"):
        cifar10(str(tmp_path / "data"), download=True)


def test_download_then_read_what_torchvision_wrote(tmp_path, monkeypatch, cifar_root):
    source, batches = cifar_root
    _fake_torchvision(tmp_path, monkeypatch, cifar_body=_copies_from(source))
    root = tmp_path / "downloaded"
    d = cifar10(str(root), download=True)
    import torchvision.datasets as fake
    assert fake.calls == [(str(root), True, True)]
    assert len(d.train_labels) == 30 and d.train_labels.tolist()[:6] == batches["data_batch_1"]["labels"]
    cifar10(str(root), download=True)  # the files are there now: no second download
    assert len(fake.calls) == 1


def test_a_cifar10_search_downloads_what_is_missing(tmp_path, monkeypatch, cifar_root):
    # `python -m ndarts_edu search --preset paper` on a fresh GPU machine: the folder is fetched first.
    from ndarts_edu.search import Search, SearchConfig

    source, _ = cifar_root
    _fake_torchvision(tmp_path, monkeypatch, cifar_body=_copies_from(source))
    config = SearchConfig(dataset="cifar10", data_dir=str(tmp_path / "fresh"), space="s2", channels=4, layers=1,
                          nodes=1, batch_size=4, epochs=1, threads=1, device="cpu")
    search = Search(config)
    assert search.data_name == "cifar10" and (tmp_path / "fresh" / "cifar-10-batches-py" / "test_batch").exists()


def _npz(path, images, labels):
    np.savez(path, images=images, labels=labels)


def test_folder_grey_nhw_with_test_file(tmp_path):
    rng = np.random.default_rng(0)
    _npz(tmp_path / "train.npz", rng.random((20, 9, 9)).astype(np.float32), rng.integers(0, 3, 20))
    _npz(tmp_path / "test.npz", rng.random((6, 9, 9)).astype(np.float32), np.array([0, 1, 2, 3, 0, 1]))
    d = folder(str(tmp_path))
    assert d.train_images.shape == (20, 1, 9, 9) and d.test_images.shape == (6, 1, 9, 9)
    assert d.num_classes == 4  # the largest label in either file, plus one
    assert torch.allclose(d.train_images.mean(), torch.tensor(0.0), atol=1e-5)


def test_folder_colour_nchw_split_and_resize(tmp_path):
    rng = np.random.default_rng(1)
    _npz(tmp_path / "train.npz", rng.integers(0, 255, (25, 3, 12, 10)).astype(np.uint8), rng.integers(0, 5, 25))
    d = folder(str(tmp_path))
    assert d.train_images.shape == (20, 3, 12, 10) and d.test_images.shape == (5, 3, 12, 10)
    d = load_dataset("folder", str(tmp_path), image_size=8)
    assert d.shape == (3, 8, 8)


@pytest.mark.parametrize("images, labels, match", [
    (np.zeros((4, 2, 2, 2, 2)), np.zeros(4, int), "shape"),
    (np.zeros((4, 8, 8)), np.zeros(3, int), "labels"),
    (np.zeros((4, 8, 8)), np.array([0.5, 1, 2, 3]), "integers"),
    (np.zeros((4, 8, 8)), np.array([-1, 1, 2, 3]), "integers"),
])
def test_folder_rejects_bad_arrays(tmp_path, images, labels, match):
    _npz(tmp_path / "train.npz", images, labels)
    with pytest.raises(ConfigError, match=match):
        folder(str(tmp_path))


def test_folder_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        folder(str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="train.npz"):
        folder(str(tmp_path))
    with pytest.raises(ConfigError, match="data folder"):
        load_dataset("folder")


# -- digits -------------------------------------------------------------------------------------
def test_digits(digits_data):
    d = digits_data
    assert d.shape == (1, 8, 8) and d.num_classes == 10
    assert len(d.train_labels) + len(d.test_labels) == 1797
    assert len(d.test_labels) == round(0.2 * 1797)
    assert set(d.train_labels.tolist()) == set(range(10))
    assert load_dataset("digits", image_size=16).shape == (1, 16, 16)
    with pytest.raises(ConfigError, match="image_size"):
        load_dataset("digits", image_size=2)


def test_split_search(digits_data):
    (xw, yw), (xa, ya) = split_search(digits_data.train_images, digits_data.train_labels, 0.5)
    n = len(digits_data.train_labels)
    assert len(yw) == n // 2 and len(ya) == n - n // 2
    with pytest.raises(ConfigError, match="empty"):
        split_search(xw[:1], yw[:1], 0.5)


# -- batches ------------------------------------------------------------------------------------
def _indexed(n):
    return torch.arange(n, dtype=torch.float32).reshape(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous(), torch.arange(n)


def test_batches_cover_an_epoch_without_repeats():
    images, labels = _indexed(40)
    b = Batches(images, labels, 8, "cpu", seed=0)
    assert len(b) == 5
    seen = []
    for _ in range(len(b)):
        x, y = b.next()
        assert x.shape == (8, 1, 2, 2) and torch.equal(x[:, 0, 0, 0].long(), y)
        seen += y.tolist()
    assert sorted(seen) == list(range(40))
    second = [i for _ in range(len(b)) for i in b.next()[1].tolist()]
    assert sorted(second) == list(range(40)) and second != seen  # a new order each epoch


def test_batches_drop_last_and_small_sets():
    images, labels = _indexed(42)
    b = Batches(images, labels, 8, "cpu")
    assert len(b) == 5
    assert len({i for _ in range(5) for i in b.next()[1].tolist()}) == 40
    small = Batches(*_indexed(5), 8, "cpu")  # fewer images than one batch: one short batch
    assert len(small) == 1 and len(small.next()[1]) == 5


def test_batches_reproducible_for_a_seed():
    images, labels = _indexed(32)
    order = lambda seed: [Batches(images, labels, 8, "cpu", seed=seed).next()[1].tolist() for _ in range(1)]  # noqa: E731
    a, b = Batches(images, labels, 8, "cpu", seed=5), Batches(images, labels, 8, "cpu", seed=5)
    assert [a.next()[1].tolist() for _ in range(9)] == [b.next()[1].tolist() for _ in range(9)]
    assert order(5) != order(6)


def test_batches_augment_keeps_shapes_and_pixels():
    x = torch.randn(16, 3, 8, 8)
    b = Batches(x, torch.arange(16), 16, "cpu", augment=True)
    out, y = b.next()
    assert out.shape == x.shape
    assert not torch.equal(out, x[y])


def _windows(image, pad=4):
    """Every crop of ``image`` padded by ``pad`` zeros, and each one flipped: what crop_flip may return."""
    _, h, w = image.shape
    padded = torch.nn.functional.pad(image, (pad, pad, pad, pad))
    crops = [padded[:, dy:dy + h, dx:dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)]
    return crops + [c.flip(2) for c in crops]


def test_crop_flip_crops_each_image_at_its_own_offset():
    """As torchvision's RandomCrop in DARTS's utils.py: one offset per image, not one per batch."""
    x = torch.randn(1, 2, 8, 8).expand(32, 2, 8, 8).contiguous()  # 32 copies of one image
    out, y = Batches(x, torch.arange(32), 32, "cpu", seed=3, augment="crop_flip").next()
    windows = _windows(x[0])
    chosen = [next(k for k, wdw in enumerate(windows) if torch.equal(wdw, image)) for image in out]
    assert len(set(chosen)) > 8  # 32 draws of 162 windows: one offset per batch would give 1


def test_distort_keeps_labels_and_shapes_and_changes_every_image(digits_data):
    x, labels = digits_data.train_images[:64], digits_data.train_labels[:64]
    b = Batches(x, labels, 32, "cpu", seed=0, augment="distort")
    out, y = b.next()
    index = b._order[:32]
    assert out.shape == (32, 1, 8, 8) and out.dtype == x.dtype
    assert torch.equal(y, labels[index])  # labels are never touched
    changed = (out - x[index]).abs().flatten(1).amax(1)
    assert bool((changed > 0.1).all())


def test_distort_without_distortion_is_the_identity(digits_data):
    x, labels = digits_data.train_images[:16], digits_data.train_labels[:16]
    still = data.Distortion(degrees=0, scale=0, shift=0, noise=0)
    b = Batches(x, labels, 16, "cpu", augment="distort", distortion=still)
    out, y = b.next()
    assert torch.allclose(out, x[b._order[:16]], atol=1e-5)


def test_distort_pixel_noise_has_its_std(digits_data):
    x, labels = digits_data.train_images[:512], digits_data.train_labels[:512]
    only_noise = data.Distortion(degrees=0, scale=0, shift=0, noise=0.3)
    b = Batches(x, labels, 512, "cpu", augment="distort", distortion=only_noise)
    out, _ = b.next()
    assert abs(float((out - x[b._order]).std()) - 0.3) < 0.01  # 32,768 draws: std error ~0.0012


def test_distort_is_fixed_by_the_seed_and_fresh_every_epoch(digits_data):
    x, labels = digits_data.train_images[:32], digits_data.train_labels[:32]

    def two_epochs(seed):
        b = Batches(x, labels, 32, "cpu", seed=seed, augment="distort")
        first = b.next()[0][b._order.argsort()]  # back in the images' order
        second = b.next()[0][b._order.argsort()]
        return first, second

    first, second = two_epochs(0)
    again = two_epochs(0)
    assert torch.equal(first, again[0]) and torch.equal(second, again[1])
    assert (first - second).abs().flatten(1).amax(1).min() > 0.1  # every image drawn anew
    assert not torch.equal(first, two_epochs(1)[0])


@pytest.mark.parametrize("augment", ["crop_flip", "distort"])
def test_augmented_batches_resume_exactly(digits_data, augment):
    """A state_dict taken mid-epoch restores the order and the augmentation draws bit for bit."""
    x, labels = digits_data.train_images[:96], digits_data.train_labels[:96]
    a = Batches(x, labels, 32, "cpu", seed=4, augment=augment)
    for _ in range(4):  # into the second epoch
        a.next()
    state = a.state_dict()
    b = Batches(x, labels, 32, "cpu", seed=99, augment=augment)
    b.load_state_dict(state)
    for _ in range(5):
        (xa, ya), (xb, yb) = a.next(), b.next()
        assert torch.equal(xa, xb) and torch.equal(ya, yb)


def test_a_distorted_test_set_is_fixed_by_its_seed_and_holds_every_image(digits_data):
    x, labels = digits_data.test_images[:40], digits_data.test_labels[:40]
    images, y = data.distorted_test_set(x, labels, seed=5, copies=3)
    again, y_again = data.distorted_test_set(x, labels, seed=5, copies=3)
    assert images.shape == (120, 1, 8, 8) and torch.equal(images, again) and torch.equal(y, y_again)
    assert sorted(y.tolist()) == sorted(labels.tolist() * 3)  # each image 3 times, labels kept
    other, _ = data.distorted_test_set(x, labels, seed=6, copies=3)
    assert not torch.equal(images, other)
    # each image keeps its own label: undistorted, the set is the images in another order
    still = data.Distortion(degrees=0, scale=0, shift=0, noise=0)
    plain, y_plain = data.distorted_test_set(x, labels, seed=5, distortion=still)
    order = [next(k for k in range(40) if torch.allclose(x[k], image, atol=1e-5)) for image in plain]
    assert sorted(order) == list(range(40)) and torch.equal(labels[order], y_plain)
    with pytest.raises(ConfigError, match="copies must be >= 1"):
        data.distorted_test_set(x, labels, copies=0)


def test_bad_augment_and_distortion_are_refused():
    x, labels = _indexed(8)
    with pytest.raises(ConfigError, match="augment 'rotate'"):
        SearchConfig(augment="rotate").validate()  # checked where the setting enters
    with pytest.raises(ConfigError, match="degrees"):
        data.Distortion(degrees=-1)
    with pytest.raises(ConfigError, match="scale"):
        data.Distortion(scale=1.5)


# -- device -------------------------------------------------------------------------------------
def test_pick_device_auto_and_cpu():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available() and torch.backends.mps.is_available():
        expected = "mps"
    assert pick_device("auto").type == expected
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_pick_device_cuda_without_gpu():
    with pytest.raises(ConfigError, match="no CUDA"):
        pick_device("cuda")
    with pytest.raises(ConfigError, match="no CUDA"):
        pick_device("cuda:1")


@pytest.mark.parametrize("bad", ["tpu", "gpu", ""])
def test_pick_device_unknown(bad):
    with pytest.raises(ConfigError, match="device"):
        pick_device(bad)


def test_load_dataset_unknown():
    with pytest.raises(ConfigError, match="imagenet"):
        data.load_dataset("imagenet")
