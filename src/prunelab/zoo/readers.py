"""Readers of the datasets' own file formats, each refusing a file that is not what it should be.

* idx (MNIST, Fashion-MNIST): magic ``0x0000080N``, N big-endian sizes, bytes;
* CIFAR-10 and CIFAR-100's python batches: pickles read with an unpickler that
  admits only the types of the format (nothing in a file can run code);
* SVHN's ``*_32x32.mat`` (MATLAB 5, through SciPy): ``X`` of shape
  ``(32, 32, 3, N)`` and ``y`` of shape ``(N, 1)`` where the digit 0 is labelled 10;
* an ``ImageFolder`` tree, ``<root>/<split>/<class>/<image>`` (any format PIL reads).
"""

from __future__ import annotations

import gzip
import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ZooError

__all__ = ["read_bytes", "read_idx", "read_cifar", "restricted_load", "read_svhn", "read_image_folder",
           "IMAGE_SUFFIXES"]

#: The files an ImageFolder split takes as images (case-insensitive).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def read_bytes(path: Path) -> bytes:
    """A file's bytes, decompressed when it is gzipped; a clear ZooError when it cannot be read."""
    try:
        data = path.read_bytes()
        return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ZooError(f"{path} cannot be read ({err}); the file is truncated or corrupt: delete it and fetch it "
                       "again.") from None


def read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (magic 0x0000080N: unsigned bytes, N dimensions, big-endian sizes)."""
    data = read_bytes(path)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ZooError(f"{path} is not an idx file of unsigned bytes (bad magic number); it is corrupt.")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(data) != expected:
        raise ZooError(f"{path} holds {len(data)} bytes where its header announces {expected}; it is truncated or "
                       "corrupt: delete it and fetch it again.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


class _CifarUnpickler(pickle.Unpickler):
    """Admit only what CIFAR-10's and CIFAR-100's python batches contain: NumPy arrays, lists, dicts, bytes."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of the CIFAR format")
        return super().find_class(module, name)  # type: ignore[no-any-return]


def restricted_load(path: Path) -> dict[object, object]:
    """Unpickle a CIFAR python batch with :class:`_CifarUnpickler` (bytes keys); a ZooError when it is not one."""
    try:
        value = _CifarUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, OSError) as err:
        raise ZooError(f"{path} is not a CIFAR python batch ({err}); it is corrupt or not from the dataset. "
                       "Nothing in it was run.") from None
    if not isinstance(value, dict):
        raise ZooError(f"{path} is not a CIFAR python batch (not a dict).")
    return value


def read_cifar(path: Path, labels_key: bytes = b"labels") -> tuple[np.ndarray, np.ndarray]:
    """A CIFAR batch's images ``(N, 3, 32, 32)`` uint8 and labels (``labels``; CIFAR-100: ``fine_labels``)."""
    batch = restricted_load(path)
    data, labels = batch.get(b"data"), batch.get(labels_key)
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3072 or labels is None \
            or len(labels) != data.shape[0]:  # type: ignore[arg-type]
        raise ZooError(f"{path} does not hold CIFAR data (3072 bytes per image, one {labels_key.decode()} each); "
                       "it is corrupt or not from the dataset.")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def read_svhn(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one SVHN ``.mat`` split: images ``(N, 3, 32, 32)`` uint8 and labels 0..9 (the file's 10 is the digit 0).

    Parameters
    ----------
    path : Path
        ``train_32x32.mat``, ``test_32x32.mat`` or ``extra_32x32.mat``.

    Returns
    -------
    (ndarray, ndarray)
        The images and the int64 labels.

    Raises
    ------
    ZooError
        If the file is not a MATLAB file holding ``X`` and ``y`` of the format's shapes and labels 1..10.
    """
    from scipy.io import loadmat

    try:
        content = loadmat(path, variable_names=["X", "y"])
    except (OSError, ValueError, TypeError, NotImplementedError) as err:
        raise ZooError(f"{path} is not an SVHN .mat file ({err}); it is truncated or corrupt: delete it and fetch "
                       "it again.") from None
    x, y = content.get("X"), content.get("y")
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray) or x.ndim != 4 or x.shape[:3] != (32, 32, 3) \
            or y.size != x.shape[3] or x.dtype != np.uint8:
        raise ZooError(f"{path} does not hold SVHN data (X of shape (32, 32, 3, N) bytes and one label each).")
    labels = y.reshape(-1).astype(np.int64)
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ZooError(f"{path} holds labels outside 1..10; it is not SVHN's format.")
    return np.ascontiguousarray(x.transpose(3, 2, 0, 1)), labels % 10


def read_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Read a split of an ImageFolder tree: one sub-folder per class, the images in it, all of one size.

    Images are read in the order of their sorted names (classes sorted too),
    so the arrays are the same on every machine. All become RGB unless every
    image is greyscale (mode ``L``), which gives one channel.

    Parameters
    ----------
    folder : Path
        The split, e.g. ``<root>/train``.
    classes : list of str, optional
        The classes (from the training split): this split's folders must be among them.

    Returns
    -------
    (ndarray, ndarray, list of str)
        Images ``(N, C, H, W)`` uint8, labels (indices into the classes), and the classes.

    Raises
    ------
    ZooError
        If the split has no class folders or no images, a class is unknown, an image cannot be
        read, or the images differ in size (naming the file).
    """
    from PIL import Image, UnidentifiedImageError

    found = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not found:
        raise ZooError(f"{folder} has no class folders: an ImageFolder split is <split>/<class>/<image>.")
    classes = classes or found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ZooError(f"{folder} has classes the training split lacks: {', '.join(unknown)}.")
    images: list[tuple[Path, Any]] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES) \
            if (folder / name).is_dir() else []
        for file in files:
            try:
                with Image.open(file) as image:
                    image.load()
                    images.append((file, image.copy()))
            except (OSError, UnidentifiedImageError, SyntaxError) as err:
                raise ZooError(f"{file} cannot be read as an image ({err}); it is corrupt: delete or replace it.") \
                    from None
            labels.append(label)
    if not images:
        raise ZooError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}) in its class folders.")
    mode = "L" if all(image.mode == "L" for _, image in images) else "RGB"
    size = images[0][1].size
    arrays = []
    for file, image in images:
        if image.size != size:
            raise ZooError(f"{file} is {image.size[0]}x{image.size[1]}, but {images[0][0]} is {size[0]}x{size[1]}: "
                           "an ImageFolder dataset's images must have one size (resize them first).")
        array = np.asarray(image.convert(mode), dtype=np.uint8)
        arrays.append(array[None] if mode == "L" else array.transpose(2, 0, 1))
    return np.stack(arrays), np.asarray(labels, dtype=np.int64), list(classes)
