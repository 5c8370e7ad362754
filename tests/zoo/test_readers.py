"""The readers of CIFAR-100, SVHN and ImageFolder trees, on small files written in the real formats; torchvision's
and timm's adapters where torchvision imports."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.zoo import ZooError, build_model, load_dataset


def _cifar100(folder: Path, n_train: int = 200, n_test: int = 100) -> np.ndarray:
    """The three pickles of ``cifar-100-python`` (as the official archive has them); return the test images."""
    folder.mkdir(parents=True)
    gen = np.random.default_rng(0)
    images = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images[split] = gen.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        batch = {b"filenames": [b"f.png"] * n, b"batch_label": b"x", b"fine_labels": [i % 100 for i in range(n)],
                 b"coarse_labels": [i % 20 for i in range(n)], b"data": images[split]}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return images["test"]


def test_cifar100_reads_the_fine_labels_and_names_from_the_python_pickles(tmp_path):
    test_images = _cifar100(tmp_path / "cifar-100-python")
    data = load_dataset("cifar100", root=tmp_path, val_fraction=0.5)
    assert data.num_classes == 100 and data.class_names[42] == "fine42" and data.input_shape == (3, 32, 32)
    assert len(data.train[1]) + len(data.val[1]) == 200 and data.test[1].tolist() == [i % 100 for i in range(100)]
    expected = torch.from_numpy(test_images.reshape(-1, 3, 32, 32).astype(np.float32)) / 255.0
    assert torch.equal(data.test[0], expected)  # channel-major rows, as the format stores them


def test_cifar100_refuses_a_pickle_that_would_run_code_and_a_truncated_one(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _cifar100(folder)

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    (folder / "test").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ZooError, match="shutil.rmtree is not part of the CIFAR format.*Nothing in it was run"):
        load_dataset("cifar100", root=tmp_path)
    assert (tmp_path / "victim").exists()
    (folder / "test").write_bytes((folder / "train").read_bytes()[:5000])
    with pytest.raises(ZooError, match=f"{folder / 'test'} is not a CIFAR python batch"):
        load_dataset("cifar100", root=tmp_path)


def test_cifar100_with_the_cifar10_labels_key_is_refused_naming_the_key(tmp_path):
    folder = tmp_path / "cifar-100-python"
    _cifar100(folder)
    batch = pickle.loads((folder / "train").read_bytes())
    batch[b"labels"] = batch.pop(b"fine_labels")
    (folder / "train").write_bytes(pickle.dumps(batch))
    with pytest.raises(ZooError, match="does not hold CIFAR data .*one fine_labels each"):
        load_dataset("cifar100", root=tmp_path)


def _svhn(folder: Path, n: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    from scipy.io import savemat

    gen = np.random.default_rng(seed)
    x = gen.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1).astype(np.uint8)  # 1..10, where 10 is the digit 0
    folder.mkdir(parents=True, exist_ok=True)
    savemat(folder / name, {"X": x, "y": y})
    return x, y


def test_svhn_reads_the_mat_files_with_label_10_as_the_digit_0(tmp_path):
    folder = tmp_path / "svhn"
    _svhn(folder, 100, 0, "train_32x32.mat")
    x, y = _svhn(folder, 30, 1, "test_32x32.mat")
    data = load_dataset("svhn", root=folder, val_fraction=0.2)
    assert data.input_shape == (3, 32, 32) and data.num_classes == 10
    assert data.test[1].tolist() == [(i + 1) % 10 for i in range(30)]
    # image 7, channel 2, row 5, column 9 is X[5, 9, 2, 7] of the file
    assert int(round(float(data.test[0][7, 2, 5, 9]) * 255)) == x[5, 9, 2, 7]
    assert len(data.train[1]) == 80 and len(data.val[1]) == 20


def test_svhn_missing_or_corrupt_is_refused_saying_where_and_what(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("PRUNELAB_DATA", raising=False)
    with pytest.raises(ZooError, match=f"svhn is not here: looked in {tmp_path / 'svhn'}.*train_32x32.mat"):
        load_dataset("svhn", root=tmp_path / "svhn")
    folder = tmp_path / "svhn"
    _svhn(folder, 20, 0, "train_32x32.mat")
    (folder / "test_32x32.mat").write_bytes((folder / "train_32x32.mat").read_bytes()[:300])
    with pytest.raises(ZooError, match="test_32x32.mat is not an SVHN .mat file"):
        load_dataset("svhn", root=folder)
    from scipy.io import savemat

    savemat(folder / "test_32x32.mat", {"X": np.zeros((28, 28, 1, 4), np.uint8), "y": np.ones((4, 1), np.uint8)})
    with pytest.raises(ZooError, match=r"does not hold SVHN data \(X of shape \(32, 32, 3, N\)"):
        load_dataset("svhn", root=folder)


def _image_tree(root: Path, size=(6, 5), mode="RGB") -> dict[str, list[np.ndarray]]:
    from PIL import Image

    gen = np.random.default_rng(0)
    written: dict[str, list[np.ndarray]] = {}
    for split, per_class in (("train", 10), ("test", 3)):
        for cls in ("cat", "dog"):
            (root / split / cls).mkdir(parents=True)
            for i in range(per_class):
                shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
                pixels = gen.integers(0, 256, size=shape, dtype=np.uint8)
                Image.fromarray(pixels, mode).save(root / split / cls / f"{i:03d}.png")
                written.setdefault(f"{split}/{cls}", []).append(pixels)
    return written


def test_an_image_folder_tree_is_read_in_sorted_order_with_its_classes(tmp_path):
    written = _image_tree(tmp_path / "pets")
    data = load_dataset(f"imagefolder:{tmp_path / 'pets'}", val_fraction=0.2)
    assert data.class_names == ("cat", "dog") and data.input_shape == (3, 5, 6)
    assert data.test[1].tolist() == [0, 0, 0, 1, 1, 1]
    expected = torch.from_numpy(written["test/dog"][1].transpose(2, 0, 1).astype(np.float32)) / 255.0
    assert torch.equal(data.test[0][4], expected)
    assert len(data.train[1]) == 16 and len(data.val[1]) == 4


def test_a_greyscale_image_folder_gives_one_channel(tmp_path):
    _image_tree(tmp_path / "grey", mode="L")
    assert load_dataset(f"imagefolder:{tmp_path / 'grey'}", val_fraction=0.2).input_shape == (1, 5, 6)


def test_an_image_folder_without_splits_a_corrupt_image_or_mixed_sizes_is_refused_naming_it(tmp_path):
    from PIL import Image

    with pytest.raises(ZooError, match="must hold the folders train/ and test/"):
        load_dataset(f"imagefolder:{tmp_path / 'nothing'}")
    _image_tree(tmp_path / "pets")
    bad = tmp_path / "pets" / "train" / "dog" / "005.png"
    bad.write_bytes(b"\x89PNG not really")
    with pytest.raises(ZooError, match=f"{bad} cannot be read as an image"):
        load_dataset(f"imagefolder:{tmp_path / 'pets'}")
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(bad)
    with pytest.raises(ZooError, match=f"{bad} is 9x9, but .*000.png is 6x5: .*one size"):
        load_dataset(f"imagefolder:{tmp_path / 'pets'}")
    bad.unlink()
    (tmp_path / "pets" / "test" / "bird").mkdir()
    with pytest.raises(ZooError, match="has classes the training split lacks: bird"):
        load_dataset(f"imagefolder:{tmp_path / 'pets'}")


def _torchvision_reason() -> str | None:
    try:
        import torchvision  # noqa: F401
    except Exception as err:  # noqa: BLE001 - any failure to import is the reason to skip
        return f"torchvision does not import here ({type(err).__name__}: {err})"
    return None


needs_torchvision = pytest.mark.skipif(_torchvision_reason() is not None, reason=_torchvision_reason() or "")


def test_without_torchvision_the_adapters_say_why_and_the_zoo_still_imports():
    if _torchvision_reason() is None:
        pytest.skip("torchvision imports here: the adapter tests below run instead")
    with pytest.raises(ZooError, match="torchvision is (not installed|installed but does not import)"):
        build_model("torchvision:resnet18", (3, 32, 32), 10)
    with pytest.raises(ZooError, match="torchvision is (not installed|installed but does not import)"):
        load_dataset("torchvision:CIFAR10")
    assert build_model("resnet20", (3, 32, 32), 10) is not None


@needs_torchvision
def test_torchvision_and_timm_models_by_name():
    model = build_model("torchvision:resnet18", (3, 32, 32), 7)
    assert tuple(model(torch.zeros(2, 3, 32, 32)).shape) == (2, 7)
    with pytest.raises(ZooError, match="torchvision has no model 'resnet19'"):
        build_model("torchvision:resnet19", (3, 32, 32), 7)
    pytest.importorskip("timm")
    timm_model = build_model("timm:resnet18", (1, 32, 32), 5)
    assert tuple(timm_model(torch.zeros(2, 1, 32, 32)).shape) == (2, 5)


@needs_torchvision
def test_a_torchvision_dataset_by_name_reads_local_files_only(tmp_path):
    raw = tmp_path / "MNIST" / "raw"  # torchvision's layout
    raw.mkdir(parents=True)
    gen = np.random.default_rng(0)
    for prefix, n in (("train", 50), ("t10k", 20)):
        images = gen.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            b"\x00\x00\x08\x03" + b"".join(d.to_bytes(4, "big") for d in (n, 28, 28)) + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(
            b"\x00\x00\x08\x01" + n.to_bytes(4, "big") + (np.arange(n) % 10).astype(np.uint8).tobytes())
    data = load_dataset("torchvision:MNIST", root=tmp_path, val_fraction=0.2)
    assert data.input_shape == (1, 28, 28) and data.test[1].tolist() == [i % 10 for i in range(20)]
    with pytest.raises(ZooError, match="torchvision:MNIST is not in"):
        load_dataset("torchvision:MNIST", root=tmp_path / "empty")
