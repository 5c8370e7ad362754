"""The zoo's datasets: real digits, real Fashion-MNIST (when installed), idx and CIFAR parsing, downloads."""

from __future__ import annotations

import gzip
import http.server
import pickle
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.zoo import ZooError, available_datasets, imbalance, load_dataset

FASHION = Path("/usr/share/datasets/fashion-mnist")
needs_fashion = pytest.mark.skipif(not (FASHION / "train-images-idx3-ubyte.gz").exists(),
                                   reason="Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist; "
                                          "CI installs it)")


def test_digits_splits_are_stratified_disjoint_and_seeded():
    data = load_dataset("digits")
    assert data.input_shape == (1, 8, 8) and data.num_classes == 10
    sizes = [len(s[1]) for s in (data.train, data.val, data.test)]
    assert sum(sizes) == 1797 and sizes[2] == 360 and sizes[1] in (143, 144)
    for split in (data.train, data.val, data.test):
        counts = torch.bincount(split[1], minlength=10).float()
        shares = counts / counts.sum()
        assert float((shares - 0.1).abs().max()) < 0.02  # every class in proportion
        assert float(split[0].min()) >= 0.0 and float(split[0].max()) <= 1.0
    from sklearn.datasets import load_digits

    every = torch.cat([data.train[0], data.val[0], data.test[0]]).reshape(1797, -1) * 16
    original = torch.tensor(load_digits().data, dtype=torch.float32)
    assert torch.equal(torch.sort(every.sum(1)).values, torch.sort(original.sum(1)).values)  # a partition
    again = load_dataset("digits")
    assert torch.equal(again.val[1], data.val[1])
    other = load_dataset("digits", split_seed=1)
    assert torch.equal(other.test[1], data.test[1]) and not torch.equal(other.val[0], data.val[0])


@needs_fashion
def test_fashion_mnist_from_debians_files():
    data = load_dataset("fashion-mnist")
    assert data.input_shape == (1, 28, 28) and data.class_names[0] == "T-shirt/top"
    assert [len(s[1]) for s in (data.train, data.val, data.test)] == [54000, 6000, 10000]
    assert torch.equal(torch.bincount(data.test[1]), torch.full((10,), 1000))


def write_idx(folder: Path, images: np.ndarray, labels: np.ndarray, compress: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, x, y in (("train", images, labels), ("t10k", images[:20], labels[:20])):
        blobs = {f"{prefix}-images-idx3-ubyte": bytes([0, 0, 8, 3]) + b"".join(
                     int(n).to_bytes(4, "big") for n in x.shape) + x.tobytes(),
                 f"{prefix}-labels-idx1-ubyte": bytes([0, 0, 8, 1]) + len(y).to_bytes(4, "big") + y.tobytes()}
        for name, data in blobs.items():
            if compress:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_files_are_parsed_from_root(tmp_path, compress):
    gen = np.random.default_rng(0)
    images = gen.integers(0, 256, size=(100, 28, 28), dtype=np.uint8)
    labels = np.repeat(np.arange(10, dtype=np.uint8), 10)
    write_idx(tmp_path / "mnist", images, labels, compress)
    data = load_dataset("mnist", root=tmp_path / "mnist")
    assert len(data.train[1]) == 90 and len(data.val[1]) == 10 and len(data.test[1]) == 20
    restored = (torch.cat([data.train[0], data.val[0]]) * 255).round().to(torch.uint8).squeeze(1)
    assert sorted(map(bytes, restored.numpy())) == sorted(map(bytes, images))


def test_a_truncated_idx_file_is_detected(tmp_path):
    write_idx(tmp_path / "mnist", np.zeros((10, 28, 28), np.uint8), np.arange(10, dtype=np.uint8), False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ZooError, match="train-images-idx3-ubyte holds 7756 bytes where its header announces 7856"):
        load_dataset("mnist", root=tmp_path / "mnist")
    path.write_bytes(b"garbage!")
    with pytest.raises(ZooError, match="is not an idx file"):
        load_dataset("mnist", root=tmp_path / "mnist")


def test_a_missing_dataset_says_where_it_looked(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PRUNELAB_DATA", str(tmp_path / "data"))
    with pytest.raises(ZooError, match=f"mnist is not here: looked in {tmp_path / 'nowhere'}, "
                                       f"{tmp_path / 'data' / 'mnist'}, /usr/share/datasets/mnist, "
                                       ".*download=True"):
        load_dataset("mnist", root=tmp_path / "nowhere")
    with pytest.raises(ZooError, match="unknown dataset 'fashion'. Did you mean 'fashion-mnist'"):
        load_dataset("fashion")
    assert available_datasets() == ["cifar10", "cifar100", "digits", "fashion-mnist", "imagefolder:<path>", "mnist",
                                    "svhn", "torchvision:<Name>"]


def cifar_batch(path: Path, n: int, seed: int) -> None:
    gen = np.random.default_rng(seed)
    batch = {b"data": gen.integers(0, 256, size=(n, 3072), dtype=np.uint8),
             b"labels": [int(i % 10) for i in range(n)], b"batch_label": b"x"}
    path.write_bytes(pickle.dumps(batch, protocol=2))


def test_cifar10_batches_are_read_with_a_restricted_unpickler(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        cifar_batch(folder / f"data_batch_{i}", 20, i)
    cifar_batch(folder / "test_batch", 20, 9)
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{i}".encode() for i in range(10)]}))
    data = load_dataset("cifar10", root=tmp_path)
    assert data.input_shape == (3, 32, 32) and data.class_names[3] == "c3"
    assert len(data.train[1]) + len(data.val[1]) == 100 and len(data.test[1]) == 20

    class Evil:
        def __reduce__(self):
            return (shutil.rmtree, (str(tmp_path / "victim"),))

    (tmp_path / "victim").mkdir()
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(ZooError, match="shutil.rmtree is not part of the CIFAR format.*Nothing in it was run"):
        load_dataset("cifar10", root=tmp_path)
    assert (tmp_path / "victim").exists()


def test_imbalance_subsamples_training_classes():
    data = load_dataset("digits")
    skewed = imbalance(data, {0: 0.1, 1: 0.5})
    before, after = torch.bincount(data.train[1]), torch.bincount(skewed.train[1])
    assert int(after[0]) == round(0.1 * int(before[0])) and int(after[1]) == round(0.5 * int(before[1]))
    assert torch.equal(after[2:], before[2:]) and torch.equal(skewed.test[1], data.test[1])
    with pytest.raises(ZooError, match="imbalance fraction for class 2 is 0.0; it must be in \\(0, 1\\]"):
        imbalance(data, [1.0, 1.0, 0.0])
    with pytest.raises(ZooError, match="imbalance names class 12, but digits has classes 0..9"):
        imbalance(data, {12: 0.5})


@needs_fashion
def test_download_checks_digests_against_a_local_mirror(tmp_path, monkeypatch):
    served = tmp_path / "served"
    shutil.copytree(FASHION, served)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(served), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("PRUNELAB_DATA_MIRROR", f"http://127.0.0.1:{server.server_port}/")
        data = load_dataset("fashion-mnist", root=tmp_path / "fetched", download=True)
        assert len(data.test[1]) == 10000 and (tmp_path / "fetched" / "t10k-labels-idx1-ubyte.gz").exists()
        labels = served / "t10k-labels-idx1-ubyte.gz"
        raw = bytearray(gzip.decompress(labels.read_bytes()))
        raw[100] ^= 1
        labels.write_bytes(gzip.compress(bytes(raw)))
        with pytest.raises(ZooError, match="t10k-labels-idx1-ubyte.gz does not match the published digest"):
            load_dataset("fashion-mnist", root=tmp_path / "again", download=True)
        assert not (tmp_path / "again" / "t10k-labels-idx1-ubyte.gz").exists()
    finally:
        server.shutdown()
