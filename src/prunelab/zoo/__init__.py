"""Datasets and models for pruning studies.

``load_dataset(name, ...)`` gives train / val / test tensors and class names;
``build_model(name, input_shape, num_classes)`` gives a plain ``nn.Module``;
``weights_file(path)`` names a local checkpoint by its digest, for pretrained
weights (``load_weights`` loads it, checked).
Loaders never download silently: they say where they looked and how to get
the files (``download=True`` fetches MNIST and Fashion-MNIST, checked).
"""

from .datasets import Dataset, available_datasets, imbalance, load_dataset
from .errors import ZooError
from .models import available_models, build_model
from .weights import load_weights, weights_file

__all__ = ["Dataset", "ZooError", "available_datasets", "available_models", "build_model", "imbalance",
           "load_dataset", "load_weights", "weights_file"]
