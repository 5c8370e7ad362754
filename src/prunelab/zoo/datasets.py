"""Datasets as tensors: train / val / test splits, read from files that are already here.

``load_dataset(name, root=None, split_seed=0, val_fraction=0.1, download=False)``:

* ``digits``: scikit-learn's bundled 1,797 8×8 images (always available, the
  embedded default); stratified 80/20 train/test, then val from train.
* ``fashion-mnist``, ``mnist``: the four idx files (gzipped or not), looked for
  in ``root``, ``$PRUNELAB_DATA/<name>``, ``/usr/share/datasets/<name>``
  (Debian's ``dataset-fashion-mnist``) and ``~/.cache/prunelab/<name>``, parsed
  directly; the official test set, val stratified from train.
* ``cifar10``, ``cifar100``: the ``cifar-10-batches-py`` / ``cifar-100-python``
  folders, read with an unpickler that admits only the format's types
  (CIFAR-100: the 100 fine labels);
* ``svhn``: ``train_32x32.mat`` and ``test_32x32.mat`` (the cropped digits;
  the label 10 of the files is the digit 0);
* ``imagefolder:<path>``: ``<path>/train/<class>/<image>`` and
  ``<path>/test/<class>/<image>``, any format PIL reads, all of one size;
* ``torchvision:<Name>``: a ``torchvision.datasets`` class by name, through
  the adapter (:mod:`prunelab.zoo.adapters`), never downloading.

The readers of the formats are in :mod:`prunelab.zoo.readers`.

Nothing is downloaded unless ``download=True``; then the official files are
fetched into the cache and checked against their known digests (of the
decompressed data, so that re-compressed copies such as Debian's also match).
Pixel values are floats in [0, 1], shape ``(N, channels, height, width)``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import ZooError
from .readers import read_cifar, read_idx, read_image_folder, read_svhn, restricted_load

__all__ = ["Dataset", "load_dataset", "available_datasets", "imbalance", "DATA_ENV", "MIRROR_ENV"]

#: Extra folder searched for dataset files (``$PRUNELAB_DATA/<name>``).
DATA_ENV = "PRUNELAB_DATA"
#: Base URL replacing the official ones for ``download=True`` (a mirror).
MIRROR_ENV = "PRUNELAB_DATA_MIRROR"

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass(frozen=True)
class Dataset:
    """Three splits of one dataset, with its class names.

    Made by :func:`load_dataset`; the constructor's parameters are the attributes.

    Parameters
    ----------
    name : str
        The dataset's name, as :func:`load_dataset` takes it.
    train, val, test : (Tensor, Tensor)
        Images ``(N, C, H, W)`` float32 in [0, 1] and labels ``(N,)`` int64.
    class_names : tuple of str
        One name per class, in label order.
    """

    name: str
    train: Split
    val: Split
    test: Split
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        c, h, w = self.train[0].shape[1:]
        return int(c), int(h), int(w)

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)


_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
            "Ankle boot")
_IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
# SHA-256 of the decompressed files (upstream and Debian's copies agree on these).
_IDX_SOURCES = {
    "fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }, _FASHION),
    # MNIST: the MD5 of the official gzip files (as published with torchvision).
    "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist/", {
        "train-images-idx3-ubyte": "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte": "md5:d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte": "md5:9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte": "md5:ec29112dd5afa0611ce80d1b7f02629c",
    }, tuple(str(d) for d in range(10))),
}


def available_datasets() -> list[str]:
    """Return the dataset names :func:`load_dataset` knows.

    Returns
    -------
    list of str
        The names, sorted; whether their files are here is not checked.
    """
    return ["cifar10", "cifar100", "digits", "fashion-mnist", "imagefolder:<path>", "mnist", "svhn",
            "torchvision:<Name>"]


def load_dataset(name: str, root: str | Path | None = None, split_seed: int = 0, val_fraction: float = 0.1,
                 download: bool = False) -> Dataset:
    """Load a dataset's train / val / test splits.

    Parameters
    ----------
    name : str
        One of :func:`available_datasets`.
    root : path, optional
        Folder with the dataset's files (searched first).
    split_seed : int, default=0
        Seed of the stratified val split (the test set never changes).
    val_fraction : float in (0, 1), default=0.1
        Fraction of the training set held out, stratified, as validation.
    download : bool, default=False
        Fetch missing MNIST/Fashion-MNIST files (checked against known digests)
        into ``root`` (only ``root`` is searched then) or the user cache.

    Returns
    -------
    Dataset
        The three splits and the class names.

    Raises
    ------
    ZooError
        Unknown name; files missing (says where it looked and how to install
        them); truncated or corrupt files; ``val_fraction`` not a float in (0, 1).

    Examples
    --------
    >>> data = load_dataset("digits")
    >>> data.input_shape, data.num_classes, len(data.test[1])
    ((1, 8, 8), 10, 360)
    """
    if not isinstance(val_fraction, float) or not 0.0 < val_fraction < 1.0:
        raise ZooError(f"val_fraction must be a float in (0, 1), got {val_fraction!r}.")
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
        y = torch.tensor(digits.target, dtype=torch.int64)
        rest, test = _stratified(y, 0.2, 0)  # one test set for every split_seed
        train, val = _stratified(y[rest], val_fraction, split_seed)
        return Dataset(name, (x[rest][train], y[rest][train]), (x[rest][val], y[rest][val]), (x[test], y[test]),
                       tuple(str(d) for d in range(10)))
    if name in _IDX_SOURCES:
        folder = _find(name, root, [f + suffix for f in _IDX_FILES for suffix in ("", ".gz")], download)
        arrays = [read_idx(_pick(folder, f)) for f in _IDX_FILES]
        return _with_val(name, arrays[0], arrays[1], arrays[2], arrays[3], _IDX_SOURCES[name][2], split_seed,
                         val_fraction)
    if name in ("cifar10", "cifar100"):
        return _cifar(name, root, split_seed, val_fraction)
    if name == "svhn":
        folder = _find(name, root, ["train_32x32.mat", "test_32x32.mat"], download=False)
        (xs, ys), (x_test, y_test) = read_svhn(folder / "train_32x32.mat"), read_svhn(folder / "test_32x32.mat")
        return _with_val(name, xs, ys, x_test, y_test, tuple(str(d) for d in range(10)), split_seed, val_fraction)
    if isinstance(name, str) and name.startswith("imagefolder:"):
        tree = Path(name.removeprefix("imagefolder:")).expanduser()
        if not (tree / "train").is_dir() or not (tree / "test").is_dir():
            raise ZooError(f"{name}: {tree} must hold the folders train/ and test/, each with one folder per class "
                           "(<path>/train/<class>/<image>).")
        xs, ys, classes = read_image_folder(tree / "train")
        x_test, y_test, _ = read_image_folder(tree / "test", classes)
        return _with_val(name, xs, ys, x_test, y_test, classes, split_seed, val_fraction)
    if isinstance(name, str) and name.startswith("torchvision:"):
        from .adapters import torchvision_dataset

        (xs, ys), (x_test, y_test), classes = torchvision_dataset(name.removeprefix("torchvision:"), root)
        return _with_val(name, xs, ys, x_test, y_test, classes, split_seed, val_fraction)
    import difflib

    close = difflib.get_close_matches(str(name), available_datasets(), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ZooError(f"unknown dataset {name!r}.{hint} Available: {', '.join(available_datasets())}.")


def _cifar(name: str, root: str | Path | None, split_seed: int, val_fraction: float) -> Dataset:
    """CIFAR-10 (five training batches) or CIFAR-100 (one, with 100 fine labels) from their python batches."""
    if name == "cifar10":
        folder = _find(name, root, ["data_batch_1", "test_batch", "batches.meta"], download=False,
                       subfolder="cifar-10-batches-py")
        parts = [read_cifar(folder / f"data_batch_{i}") for i in range(1, 6)]
        x_test, y_test = read_cifar(folder / "test_batch")
        names_key, meta = b"label_names", restricted_load(folder / "batches.meta")
    else:
        folder = _find(name, root, ["train", "test", "meta"], download=False, subfolder="cifar-100-python")
        parts = [read_cifar(folder / "train", b"fine_labels")]
        x_test, y_test = read_cifar(folder / "test", b"fine_labels")
        names_key, meta = b"fine_label_names", restricted_load(folder / "meta")
    label_names: Any = meta.get(names_key, [])
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in label_names)
    y = np.concatenate([p[1] for p in parts])
    if len(names) <= int(max(y.max(), y_test.max())):
        raise ZooError(f"{folder} names {len(names)} classes but its labels go to {int(max(y.max(), y_test.max()))}; "
                       "the files are not from one copy of the dataset.")
    return _with_val(name, np.concatenate([p[0] for p in parts]), y, x_test, y_test, names, split_seed, val_fraction)


def _stratified(labels: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of (kept, held out), holding out ``fraction`` of every class."""
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    kept, held = train_test_split(index, test_size=fraction, stratify=labels.numpy(), random_state=seed)
    return torch.as_tensor(np.sort(kept)), torch.as_tensor(np.sort(held))


def _with_val(name: str, x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              names: Sequence[str], seed: int, val_fraction: float) -> Dataset:
    def images(x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.array(x, dtype=np.float32)) / 255.0  # a writable copy
        return t.unsqueeze(1) if t.dim() == 3 else t

    xt, yt = images(x_train), torch.from_numpy(np.array(y_train, dtype=np.int64))
    train, val = _stratified(yt, val_fraction, seed)
    return Dataset(name, (xt[train], yt[train]), (xt[val], yt[val]),
                   (images(x_test), torch.from_numpy(np.array(y_test, dtype=np.int64))), tuple(names))


def _search_paths(name: str, root: str | Path | None, subfolder: str | None) -> list[Path]:
    paths = []
    if root is not None:
        paths.append(Path(root))
    if os.environ.get(DATA_ENV):
        paths.append(Path(os.environ[DATA_ENV]) / name)
    paths += [Path("/usr/share/datasets") / name, _cache(name)]
    return [p / subfolder for p in paths] + paths if subfolder else paths


def _cache(name: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "prunelab" / name


def _find(name: str, root: str | Path | None, files: Sequence[str], download: bool,
          subfolder: str | None = None) -> Path:
    places = _search_paths(name, root, subfolder)
    if download and root is not None:
        places = places[:1]  # download=True with a root: the files are to be in that root
    for place in places:
        stems = {f.removesuffix(".gz") for f in files}
        if all((place / s).is_file() or (place / f"{s}.gz").is_file() for s in stems):
            return place
    if download and name in _IDX_SOURCES:
        target = Path(root) if root is not None else _cache(name)
        _download(name, target)
        return target
    install = {"fashion-mnist": "apt-get install dataset-fashion-mnist, or load_dataset(..., download=True)",
               "mnist": "load_dataset('mnist', download=True), or put the four idx files in one of these folders",
               "cifar10": "unpack cifar-10-python.tar.gz (from the CIFAR-10 page) into one of these folders",
               "cifar100": "unpack cifar-100-python.tar.gz (from the CIFAR page) into one of these folders",
               "svhn": "put train_32x32.mat and test_32x32.mat (from the SVHN page, format 2) in one of these "
                       "folders"}[name]
    looked = ", ".join(str(p) for p in places)
    raise ZooError(f"{name} is not here: looked in {looked}. To get it: {install}.")


def _pick(folder: Path, stem: str) -> Path:
    return folder / stem if (folder / stem).is_file() else folder / f"{stem}.gz"


def _download(name: str, target: Path) -> None:
    base, digests, _ = _IDX_SOURCES[name]
    base = os.environ.get(MIRROR_ENV, base).rstrip("/") + "/"
    target.mkdir(parents=True, exist_ok=True)
    for stem in _IDX_FILES:
        url = f"{base}{stem}.gz"
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - an http(s) URL by design
                payload = response.read()
        except OSError as err:
            raise ZooError(f"downloading {url} failed ({err}); check the network or put the files in "
                           f"{target} by hand.") from None
        expected = digests[stem]
        if expected.startswith("md5:"):
            ok = hashlib.md5(payload).hexdigest() == expected[4:]  # noqa: S324 - the published checksum
        else:
            try:
                ok = hashlib.sha256(gzip.decompress(payload)).hexdigest() == expected
            except (OSError, EOFError):
                ok = False
        if not ok:
            raise ZooError(f"{url} does not match the published digest of {stem}; nothing was kept. Try again "
                           "or use another mirror ($PRUNELAB_DATA_MIRROR).")
        tmp = target / f".{stem}.gz.part"
        tmp.write_bytes(payload)
        tmp.replace(target / f"{stem}.gz")


def imbalance(dataset: Dataset, fractions: Mapping[int, float] | Sequence[float], seed: int = 0) -> Dataset:
    """Keep only ``fractions[c]`` of class ``c`` in the training split (val and test unchanged).

    ``fractions`` maps classes to the fraction kept (missing classes keep all),
    or lists one fraction per class. The subsample is drawn with ``seed``.
    Record ``fractions`` as a state property so the imbalance is part of identity.

    Parameters
    ----------
    dataset : Dataset
        The dataset to subsample (it is not modified).
    fractions : mapping of int to float, or sequence of float
        Class to the fraction of its training samples kept, in (0, 1]; at least one sample
        of a class with samples is kept.
    seed : int, default=0
        Seed of the subsample.

    Returns
    -------
    Dataset
        A copy whose training split holds the kept samples, in their original order.

    Raises
    ------
    ZooError
        If a class is not one of the dataset's, or a fraction is not in (0, 1].
    """
    if isinstance(fractions, Mapping):
        wanted = {int(c): float(f) for c, f in fractions.items()}
    else:
        wanted = {c: float(f) for c, f in enumerate(fractions)}
    for c, f in wanted.items():
        if not 0 <= c < dataset.num_classes:
            raise ZooError(f"imbalance names class {c}, but {dataset.name} has classes 0..{dataset.num_classes - 1}.")
        if not 0.0 < f <= 1.0:
            raise ZooError(f"imbalance fraction for class {c} is {f}; it must be in (0, 1] (0 would delete the "
                           "class: drop it from the data instead).")
    x, y = dataset.train
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for c in range(dataset.num_classes):
        members = (y == c).nonzero().squeeze(1)
        count = max(1, round(wanted.get(c, 1.0) * len(members))) if len(members) else 0
        keep.append(members[torch.randperm(len(members), generator=gen)[:count]])
    index = torch.sort(torch.cat(keep)).values
    return replace(dataset, train=(x[index], y[index]))
