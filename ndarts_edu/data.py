"""Data for the search: an embedded default, CIFAR-10, the user's own images; and the device.

- ``digits``: the UCI handwritten digits (1,797 greyscale 8x8 images, 10 classes; E. Alpaydin and
  C. Kaynak, CC BY 4.0, the copy that scikit-learn bundles), shipped in this package, so the
  default search needs no network.
- ``cifar10``: CIFAR-10 through torchvision (download where the machine can), or read from a
  local ``cifar-10-batches-py`` folder in the format that torchvision writes.
- ``folder``: the user's own ``train.npz`` (and optional ``test.npz``) with ``images``
  (N, C, H, W) or (N, H, W) and integer ``labels`` (N,): any channel count, any size.

Everything is held as tensors (on the search device when it fits) and served by ``Batches``,
which shuffles with its own generator so that a seed fixes the order.
"""
import hashlib
import math
import os
import pickle
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

from .errors import ConfigError, check_choice, check_number

DATASETS = ("digits", "cifar10", "folder")
DEVICES = ("auto", "cpu", "cuda", "mps")


# -- device ------------------------------------------------------------------------------------
def pick_device(requested="auto"):
    """``auto``: CUDA, then Apple's MPS, then CPU. ``cuda:1`` and the like are accepted too."""
    requested = str(requested)
    base = requested.split(":")[0]
    check_choice("device", base, DEVICES)
    cuda_ok = torch.cuda.is_available()
    mps_ok = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if base == "auto":
        return torch.device("cuda" if cuda_ok else "mps" if mps_ok else "cpu")
    if base == "cuda" and not cuda_ok:
        raise ConfigError(f"device {requested!r} asked for, but this machine has no CUDA GPU; "
                          "use 'auto' or 'cpu'")
    index = requested.partition(":")[2]
    if base == "cuda" and index.isdigit() and int(index) >= torch.cuda.device_count():
        raise ConfigError(f"device {requested!r} asked for, but this machine has "
                          f"{torch.cuda.device_count()} CUDA GPU(s), numbered from 0")
    if base == "mps" and not mps_ok:
        raise ConfigError(f"device {requested!r} asked for, but MPS is not available here; "
                          "use 'auto' or 'cpu'")
    try:
        return torch.device(requested)
    except RuntimeError as error:
        raise ConfigError(f"device {requested!r} is not a valid torch device ({error})") from None


# -- data sets ---------------------------------------------------------------------------------
@dataclass
class ImageData:
    """Images (N, C, H, W) with labels (N,), a train and a test part."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    num_classes: int

    @property
    def shape(self):
        """``(C, H, W)`` of one image."""
        return tuple(self.train_images.shape[1:])


def _standardise(train, test):
    """Scale to zero mean, unit std per channel, with the training part's statistics."""
    train, test = train.float(), test.float()
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (train - mean) / std, (test - mean) / std


def _resize(images, image_size):
    if image_size is None or images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    return torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="bilinear",
                                           align_corners=False)


def _split(images, labels, test_fraction, seed):
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = int(round(test_fraction * len(labels)))
    test, train = order[:n_test], order[n_test:]
    return images[train], labels[train], images[test], labels[test]


def digits(image_size=None, test_fraction=0.2, split_seed=0):
    """The embedded handwritten digits: 1 x 8 x 8 (or ``image_size``), 10 classes, no download."""
    with resources.files("ndarts_edu").joinpath("datasets/digits.npz").open("rb") as f:
        archive = np.load(f, allow_pickle=False)
        images = torch.from_numpy(archive["images"].astype(np.float32)).unsqueeze(1)
        labels = torch.from_numpy(archive["labels"].astype(np.int64))
    parts = _split(images, labels, test_fraction, split_seed)
    train, test = _standardise(_resize(parts[0], image_size), _resize(parts[2], image_size))
    return ImageData("digits", train, parts[1], test, parts[3], num_classes=10)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles CIFAR-10's batch files (dicts of bytes, lists and numpy arrays) and nothing
    else."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"),
               ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"),
               # Python 3's protocol 2 writes bytes as _codecs.encode(str, 'latin1')
               ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _read_cifar_batch(path):
    with open(path, "rb") as f:
        try:
            batch = _ArrayUnpickler(f, encoding="latin1").load()
        except Exception as error:
            raise ConfigError(f"{path} is not a CIFAR-10 batch file ({error})") from None
    data = np.asarray(batch.get("data"), dtype=np.uint8)
    labels = np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ConfigError(f"{path} has data of shape {data.shape}, expected (N, 3072) "
                          "with N labels")
    return data.reshape(-1, 3, 32, 32), labels


def cifar10(root, download=False, image_size=None, limit=None):
    """CIFAR-10 from ``root/cifar-10-batches-py`` (torchvision's layout).

    With ``download=True`` torchvision fetches the files first (it needs the network and a
    torchvision that matches the installed torch). The files are then read here with an
    unpickler that accepts only numpy arrays, so a tampered file cannot run code.
    ``limit`` keeps the first N training images (a quick look on a CPU).
    """
    folder = os.path.join(root, "cifar-10-batches-py")
    if download and not os.path.isdir(folder):
        try:
            import torchvision
        except Exception as error:
            # not installed, or built for another torch (then RuntimeError or OSError)
            raise ConfigError(f"downloading CIFAR-10 needs torchvision, which cannot be imported "
                              f"({type(error).__name__}: {error}); install the torchvision that "
                              f"matches torch {torch.__version__}, or put cifar-10-batches-py in "
                              f"{root!r}") from None
        try:
            # the archive holds the test batch too
            torchvision.datasets.CIFAR10(root, train=True, download=True)
        except (OSError, RuntimeError) as error:
            # no network (URLError is an OSError), a bad checksum
            raise ConfigError(f"could not download CIFAR-10 into {root!r} "
                              f"({type(error).__name__}: {error}); on a machine without "
                              "internet, copy cifar-10-batches-py there") from None
    if not os.path.isdir(folder):
        raise ConfigError(f"no CIFAR-10 at {folder!r}: download it (download=True, needs the "
                          "network) or point data_dir at a folder holding cifar-10-batches-py")
    train = [_read_cifar_batch(os.path.join(folder, f"data_batch_{i}")) for i in range(1, 6)
             if os.path.exists(os.path.join(folder, f"data_batch_{i}"))]
    if not train:
        raise ConfigError(f"{folder!r} holds no data_batch_1 .. data_batch_5")
    test = _read_cifar_batch(os.path.join(folder, "test_batch"))
    train_x = torch.from_numpy(np.concatenate([x for x, _ in train]))
    train_y = torch.from_numpy(np.concatenate([y for _, y in train]))
    if limit:
        train_x, train_y = train_x[:limit], train_y[:limit]
    train_x, test_x = _standardise(_resize(train_x.float(), image_size),
                                   _resize(torch.from_numpy(test[0]).float(), image_size))
    return ImageData("cifar10", train_x, train_y, test_x, torch.from_numpy(test[1]), num_classes=10)


def _read_npz(path):
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ConfigError(f"{path} holds a single array, not an .npz archive of 'images' and "
                              "'labels' (write it with numpy.savez)")
        with archive:
            images, labels = archive["images"], archive["labels"]
    except ConfigError:
        raise
    except KeyError as error:
        raise ConfigError(f"{path} must hold arrays 'images' and 'labels' "
                          f"(missing {error})") from None
    except Exception as error:
        # a truncated or corrupt archive fails in many ways (zip, zlib, header)
        raise ConfigError(f"{path} is not a readable .npz file "
                          f"({type(error).__name__}: {error})") from None
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == bool):
        raise ConfigError(f"{path}: images must be numbers, got dtype {images.dtype}")
    if len(images) == 0:
        raise ConfigError(f"{path} holds no images (images has shape {images.shape})")
    if not np.isfinite(images).all():
        raise ConfigError(f"{path}: images hold NaN or infinite values")
    if images.ndim == 3:
        images = images[:, None]
    if images.ndim != 4:
        raise ConfigError(f"{path}: images must be (N, C, H, W) or (N, H, W), "
                          f"got shape {images.shape}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ConfigError(f"{path}: labels must be (N,) = ({len(images)},), "
                          f"got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise ConfigError(f"{path}: labels must be integers >= 0, got dtype {labels.dtype}, "
                          f"min {labels.min()}")
    return torch.from_numpy(images.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def folder(path, image_size=None, test_fraction=0.2, split_seed=0):
    """The user's own data: ``path/train.npz`` and optionally ``path/test.npz``."""
    if not os.path.isdir(path):
        raise ConfigError(f"data folder {path!r} does not exist")
    train_path = os.path.join(path, "train.npz")
    if not os.path.exists(train_path):
        raise ConfigError(f"data folder {path!r} has no train.npz (arrays 'images' and 'labels')")
    images, labels = _read_npz(train_path)
    test_path = os.path.join(path, "test.npz")
    if os.path.exists(test_path):
        test_images, test_labels = _read_npz(test_path)
        if test_images.shape[1:] != images.shape[1:]:
            raise ConfigError(f"{test_path}: images of shape {tuple(test_images.shape[1:])}, "
                              f"but train.npz has {tuple(images.shape[1:])}")
    else:
        images, labels, test_images, test_labels = _split(images, labels, test_fraction, split_seed)
    train, test = _standardise(_resize(images, image_size), _resize(test_images, image_size))
    num_classes = int(torch.cat([labels, test_labels]).max()) + 1  # the test part may be empty
    return ImageData(os.path.basename(os.path.normpath(path)), train, labels, test, test_labels,
                     num_classes)


def check_dataset(name, data_dir=None, image_size=None, limit=None):
    """The rules of the data settings (``SearchConfig`` and ``TrainConfig`` check them too, before
    anything is read): a known name, a folder for every data set but the embedded one, an image
    size of at least 4 pixels, a limit of at least one image."""
    check_choice("dataset", name, DATASETS)
    if image_size is not None:
        check_number("image_size", image_size, minimum=4, integer=True)
    if limit is not None:
        check_number("limit", limit, minimum=1, integer=True)
    if name != "digits" and data_dir is None:
        raise ConfigError(f"dataset {name!r} needs a data folder (data_dir / --data-dir)")


def load_dataset(name="digits", data_dir=None, image_size=None, download=False, limit=None):
    """Load a data set by name (``digits``, ``cifar10`` or ``folder``)."""
    check_dataset(name, data_dir, image_size, limit)
    if image_size is not None:
        image_size = int(image_size)
    if name == "digits":
        return digits(image_size)
    if name == "cifar10":
        return cifar10(data_dir, download=download, image_size=image_size, limit=limit)
    return folder(data_dir, image_size)


# -- batches -----------------------------------------------------------------------------------
def split_search(images, labels, portion=0.5):
    """Split the training images in two halves: one trains the weights, one the architecture.

    ``portion`` is a validated ``train_portion`` (in (0, 1]); the images decide if both halves
    hold some."""
    n = int(len(labels) * portion)
    if n == 0 or n == len(labels):
        raise ConfigError(f"train_portion {portion} leaves one half of the {len(labels)} images "
                          "empty")
    return (images[:n], labels[:n]), (images[n:], labels[n:])


AUGMENTS = ("none", "crop_flip", "distort")


def augment_name(augment):
    """``augment`` as one of ``AUGMENTS`` (``False``/``None`` mean "none", ``True`` "crop_flip")."""
    if augment is None or isinstance(augment, bool):
        return "crop_flip" if augment else "none"
    return augment


def check_augment(augment):
    """The augmentation setting, checked where it enters (``SearchConfig``, ``TrainConfig``)."""
    return check_choice("augment", augment_name(augment), AUGMENTS)


@dataclass(frozen=True)
class Distortion:
    """How far ``augment="distort"`` moves each image: a random affine map and pixel noise.

    Every image of every batch gets its own rotation by up to ``degrees`` either way, a scaling
    by a factor in ``[1 - scale, 1 + scale]``, a shift by up to ``shift`` of the image side in
    each direction, then Gaussian pixel noise of std ``noise`` (the images are standardised, so
    in units of the data's std). The draws are fresh every time, so the task never runs out, and
    they come from the batches' own generator, so a seed fixes them and a checkpoint keeps them.
    """

    degrees: float = 15.0
    scale: float = 0.12
    shift: float = 0.125
    noise: float = 0.3

    def __post_init__(self):
        check_number("distortion degrees", self.degrees, minimum=0.0, maximum=180.0)
        check_number("distortion scale", self.scale, minimum=0.0, maximum=0.9)
        check_number("distortion shift", self.shift, minimum=0.0, maximum=1.0)
        check_number("distortion noise", self.noise, minimum=0.0)


class Batches:
    """Shuffled mini-batches of in-memory tensors, endlessly; ``len()`` batches make an epoch.

    ``augment`` (run on the tensors' device, drawn per image from the batches' generator):

    - ``"none"`` (or ``False``): the images as they are.
    - ``"crop_flip"`` (or ``True``): DARTS's CIFAR recipe, a random crop of the image padded by
      4 px and a horizontal flip with probability 1/2, each image its own offset and coin.
    - ``"distort"``: a random rotation, scaling and shift and pixel noise per image
      (``Distortion``; ``distortion`` overrides its defaults): the embedded digits made into a
      task that a small supernet does not learn within a few epochs.
    """

    def __init__(self, images, labels, batch_size, device, seed=0, augment=False, drop_last=True,
                 distortion=None):
        # validated settings (SearchConfig, TrainConfig check batch_size and augment once)
        self.batch_size = int(batch_size)
        self.images, self.labels = images.to(device), labels.to(device)
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment_name(augment)
        self.distortion = distortion or Distortion()
        # The digits' background (the darkest value of each channel) fills what a distortion moves
        # in.
        self._background = (self.images.amin(dim=(0, 2, 3), keepdim=True)
                            if self.augment == "distort" else None)
        self.drop_last = drop_last and len(labels) >= self.batch_size
        self._order, self._position = None, 0

    def __len__(self):
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def next(self):
        if self._order is None or self._position >= len(self) * self.batch_size:
            self._order, self._position = (torch.randperm(len(self.labels),
                                                          generator=self.generator), 0)
        index = self._order[self._position:self._position + self.batch_size].to(self.images.device)
        self._position += self.batch_size
        x, y = self.images[index], self.labels[index]
        if self.augment == "crop_flip":
            x = self._crop_flip(x)
        elif self.augment == "distort":
            x = self._distort(x)
        return x, y

    def _draw(self, *shape):
        """Uniform draws in [0, 1) from the batches' generator (on the CPU), moved to the data's
        device."""
        return torch.rand(*shape, generator=self.generator).to(self.images.device)

    def _crop_flip(self, x):
        # As torchvision's RandomCrop(padding=4) and RandomHorizontalFlip in DARTS's utils.py: each
        # image its own offset. Deviation: the padding is 0 in standardised units (the mean pixel),
        # where torchvision pads the raw image with black before it is normalised.
        n, c, h, w = x.shape
        padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
        dy, dx = (self._draw(2, n) * 9).long()  # offsets 0..8, one pair per image
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        images = torch.arange(n, device=x.device)[:, None, None, None]
        x = padded[images, torch.arange(c, device=x.device)[None, :, None, None], rows, cols]
        flip = self._draw(n) < 0.5
        return torch.where(flip[:, None, None, None], x.flip(3), x)

    def _distort(self, x):
        r"""Each image through its own affine map, then pixel noise.

        The sampling grid maps an output pixel :math:`p` (coordinates in [-1, 1]) to the input
        point :math:`R(\theta) p / s + t`: the image turns by :math:`\theta`, grows by :math:`s`
        and moves by :math:`t`. What comes in from outside the image is the darkest value of each
        channel (the digits' background).
        """
        d, n = self.distortion, x.shape[0]
        angle = (self._draw(n) * 2 - 1) * math.radians(d.degrees)
        scale = 1 + (self._draw(n) * 2 - 1) * d.scale
        shift = (self._draw(n, 2) * 2 - 1) * 2 * d.shift  # the image side spans 2 in grid units
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1),
                             torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
        background = self._background
        x = torch.nn.functional.grid_sample(x - background, grid, align_corners=False) + background
        noise = torch.randn(x.shape, generator=self.generator).to(x.device)
        return x + d.noise * noise

    def fingerprint(self):
        """A checksum of the labels and of about 4096 pixels spread over the images: enough to tell
        other data of the same size apart, cheap enough for CIFAR-10."""
        pixels = self.images.reshape(-1)
        digest = hashlib.sha256(self.labels.cpu().numpy().tobytes())
        digest.update(pixels[:: max(1, pixels.numel() // 4096)].cpu().numpy().tobytes())
        return digest.hexdigest()[:16]

    def state_dict(self):
        return {"generator": self.generator.get_state(), "order": self._order,
                "position": self._position, "fingerprint": self.fingerprint()}

    def load_state_dict(self, state):
        order = state["order"]
        if order is not None and len(order) != len(self.labels):
            # Another data set: the saved order would index past it (or miss images).
            raise ConfigError(f"the saved batches were drawn from {len(order)} images, this data "
                              f"has {len(self.labels)}: resume with the data the search started "
                              "with")
        saved, here = state.get("fingerprint"), self.fingerprint()
        if saved is not None and saved != here:  # None: a checkpoint from before checksums
            raise ConfigError(f"the saved batches were drawn from other images of the same number "
                              f"(checksum {saved} there, {here} here): resume with the data the "
                              "search started with")
        self.generator.set_state(state["generator"])
        self._order, self._position = state["order"], state["position"]


def distorted_test_set(images, labels, seed=0, copies=1, distortion=None):
    """A harder test set that stays the same: ``copies`` distortions of every image, drawn once.

    Each copy of each image gets its own rotation, scaling, shift and pixel noise (``Distortion``,
    the draws of ``Batches(..., augment="distort")``) from a generator seeded with ``seed``, so
    every network compared is tested on the same images, on every run. More copies measure an
    accuracy with less of the luck of a small test set. Returns ``(images, labels)``, shuffled
    alike.
    """
    copies = int(check_number("copies", copies, minimum=1, integer=True))
    images, labels = images.repeat(copies, 1, 1, 1), labels.repeat(copies)
    batches = Batches(images, labels, len(labels), images.device, seed=seed, augment="distort",
                      drop_last=False, distortion=distortion)
    return batches.next()
