"""Models of the pruning literature, as plain ``nn.Module``s, for any small image shape.

``build_model(name, input_shape, num_classes)`` with ``input_shape`` =
``(channels, height, width)``. Rules for small inputs, so that every
architecture accepts the 8×8 digits as well as 28×28 and 32×32 images:

* ``lenet5``: 5×5 convolutions (the first padded by 2, as for 28×28 MNIST)
  when the input is at least 28 pixels on its shorter side; otherwise 3×3
  convolutions padded by 1, and the second max-pool only if the map is at
  least 4 pixels wide.
* ``conv4``, ``conv6``, ``vgg11``, ``vgg16``: a max-pool is skipped when it
  would shrink the map below 1×1; the classifier reads a global average
  (VGG) or the flattened map (Conv-n).
* ``resnet20``, ``resnet56``, ``resnet18``, ``wrn16_8``: CIFAR-style (3×3 stem,
  no stem pooling), global average pooling, so any input of at least 4×4
  (8×8 for ResNet-18) works.

The CIFAR models of the pruning literature, at their published sizes (10
classes, 32×32×3 inputs; pinned by the tests):

============  ==========  ====================================================
model         parameters  as in
============  ==========  ====================================================
``resnet20``  272,474     OpenLTH's ``cifar_resnet_20`` (Frankle et al. 2020):
                          a 1×1 convolution and BN on the shortcuts that change shape
``resnet56``  853,018     He et al. 2016, Table 6 (0.85M): parameter-free
                          shortcuts (option A: subsampled, zero-padded channels),
                          as in the filter-pruning literature (Li et al. 2017)
``vgg16``     14,728,266  the CIFAR VGG-16 of Frankle & Carbin 2019 (14.7M): 13
                          conv–BN–ReLU layers, global average pool, one linear layer
``wrn16_8``   10,961,370  Zagoruyko & Komodakis 2016, WRN-16-8 (11.0M):
                          pre-activation blocks, widths 128/256/512, no dropout
============  ==========  ====================================================
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from .errors import ZooError

__all__ = ["build_model", "available_models", "BasicBlock", "PadShortcut", "WideBlock"]


def _flat_size(layers: nn.Module, shape: tuple[int, int, int]) -> int:
    with torch.no_grad():
        return int(layers(torch.zeros(1, *shape)).numel())


def _mlp(widths: Sequence[int]) -> Callable[[tuple[int, int, int], int], nn.Module]:
    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Flatten()]
        previous = shape[0] * shape[1] * shape[2]
        for width in widths:
            layers += [nn.Linear(previous, width), nn.ReLU()]
            previous = width
        layers.append(nn.Linear(previous, classes))
        return nn.Sequential(*layers)

    return build


def _lenet5(shape: tuple[int, int, int], classes: int) -> nn.Module:
    channels, height, width = shape
    if min(height, width) >= 28:
        features = nn.Sequential(nn.Conv2d(channels, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                 nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2))
    else:
        layers: list[nn.Module] = [nn.Conv2d(channels, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(6, 16, 3, padding=1), nn.ReLU()]
        if min(height, width) // 2 >= 4:
            layers.append(nn.MaxPool2d(2))
        features = nn.Sequential(*layers)
    flat = _flat_size(features, shape)
    return nn.Sequential(features, nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
                         nn.Linear(84, classes))


def _conv_stack(config: Sequence[int | str], shape: tuple[int, int, int], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels, size = shape[0], min(shape[1], shape[2])
    for item in config:
        if item == "M":
            if size >= 2:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            continue
        assert isinstance(item, int)
        layers.append(nn.Conv2d(channels, item, 3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(item))
        layers.append(nn.ReLU())
        channels = item
    return nn.Sequential(*layers)


def _conv_n(config: Sequence[int | str]) -> Callable[[tuple[int, int, int], int], nn.Module]:
    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        features = _conv_stack(config, shape, batch_norm=False)
        flat = _flat_size(features, shape)
        return nn.Sequential(features, nn.Flatten(), nn.Linear(flat, 256), nn.ReLU(), nn.Linear(256, 256),
                             nn.ReLU(), nn.Linear(256, classes))

    return build


def _vgg(config: Sequence[int | str]) -> Callable[[tuple[int, int, int], int], nn.Module]:
    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        features = _conv_stack(config, shape, batch_norm=True)
        return nn.Sequential(features, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))

    return build


class PadShortcut(nn.Module):
    """He et al.'s option-A shortcut: ``x`` subsampled by ``stride``, its channels zero-padded to ``planes``.

    Parameter-free: out[:, :c] = 0, out[:, c:c + inplanes] = x[:, :, ::s, ::s],
    the rest 0, with c = (planes − inplanes) // 2.
    """

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.stride = stride
        self.front = (planes - inplanes) // 2
        self.back = planes - inplanes - self.front

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::self.stride, ::self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, self.front, self.back))


class BasicBlock(nn.Module):
    """The residual block of He et al.: two 3×3 conv–BN, and a shortcut that matches the shape when it changes.

    Parameters
    ----------
    inplanes, planes : int
        Channels in and out.
    stride : int
        The first convolution's stride (2 where a stage begins).
    shortcut : {"projection", "pad"}, default="projection"
        Where the shape changes: a 1×1 convolution and BN (option B), or
        :class:`PadShortcut` (option A, no parameters).
    """

    def __init__(self, inplanes: int, planes: int, stride: int, shortcut: str = "projection"):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if (stride != 1 or inplanes != planes) and shortcut == "pad":
            self.shortcut = PadShortcut(inplanes, planes, stride)
        elif stride != 1 or inplanes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False),
                                          nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + self.shortcut(x))


class WideBlock(nn.Module):
    """The pre-activation block of wide ResNets: BN–ReLU–conv twice, a 1×1 convolution where the shape changes."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = torch.relu(self.bn1(x))
        out: torch.Tensor = self.conv2(torch.relu(self.bn2(self.conv1(pre))))
        skip: torch.Tensor = x if self.shortcut is None else self.shortcut(pre)
        return out + skip


def _resnet(widths: Sequence[int], blocks: int, shortcut: str = "projection"
            ) -> Callable[[tuple[int, int, int], int], nn.Module]:
    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Conv2d(shape[0], widths[0], 3, padding=1, bias=False),
                                   nn.BatchNorm2d(widths[0]), nn.ReLU()]
        inplanes = widths[0]
        for stage, planes in enumerate(widths):
            for block in range(blocks):
                layers.append(BasicBlock(inplanes, planes, 2 if stage > 0 and block == 0 else 1, shortcut))
                inplanes = planes
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(inplanes, classes)]
        return nn.Sequential(*layers)

    return build


def _wide_resnet(depth: int, width: int) -> Callable[[tuple[int, int, int], int], nn.Module]:
    blocks = (depth - 4) // 6

    def build(shape: tuple[int, int, int], classes: int) -> nn.Module:
        layers: list[nn.Module] = [nn.Conv2d(shape[0], 16, 3, padding=1, bias=False)]
        inplanes = 16
        for stage, planes in enumerate((16 * width, 32 * width, 64 * width)):
            for block in range(blocks):
                layers.append(WideBlock(inplanes, planes, 2 if stage > 0 and block == 0 else 1))
                inplanes = planes
        layers += [nn.BatchNorm2d(inplanes), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                   nn.Linear(inplanes, classes)]
        return nn.Sequential(*layers)

    return build


_VGG11: list[int | str] = [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]
_VGG16: list[int | str] = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
_MODELS: dict[str, tuple[Callable[[tuple[int, int, int], int], nn.Module], int]] = {
    # name: (builder, smallest input side it accepts)
    "mlp": (_mlp([256, 256]), 1),
    "lenet300100": (_mlp([300, 100]), 1),
    "lenet5": (_lenet5, 4),
    "conv4": (_conv_n([64, 64, "M", 128, 128, "M"]), 1),
    "conv6": (_conv_n([64, 64, "M", 128, 128, "M", 256, 256, "M"]), 1),
    "vgg11": (_vgg(_VGG11), 1),
    "vgg16": (_vgg(_VGG16), 1),
    "resnet20": (_resnet([16, 32, 64], 3), 4),
    "resnet56": (_resnet([16, 32, 64], 9, shortcut="pad"), 4),
    "resnet18": (_resnet([64, 128, 256, 512], 2), 8),
    "wrn16_8": (_wide_resnet(16, 8), 4),
}


def available_models() -> list[str]:
    """Return the model names :func:`build_model` knows.

    Returns
    -------
    list of str
        The names, sorted.
    """
    return sorted(_MODELS)


def build_model(name: str, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Build a freshly initialised model (torch's default initialisation, from the global generator).

    Parameters
    ----------
    name : str
        One of :func:`available_models`, or ``"torchvision:<name>"`` / ``"timm:<name>"``
        (:mod:`prunelab.zoo.adapters`, optional extras imported only then).
    input_shape : sequence of int
        ``(channels, height, width)`` of one input.
    num_classes : int
        The number of outputs, at least 2.

    Returns
    -------
    nn.Module
        The model, mapping ``(N, channels, height, width)`` inputs to ``(N, num_classes)`` logits.

    Raises
    ------
    ZooError
        For an unknown name (the message lists the choices) or an input the
        architecture cannot take (too small, not 3-D), or fewer than 2 classes.

    Examples
    --------
    >>> model = build_model("lenet5", (1, 8, 8), 10)
    >>> tuple(model(torch.zeros(2, 1, 8, 8)).shape)
    (2, 10)
    """
    if isinstance(name, str) and name.startswith(("torchvision:", "timm:")):
        from . import adapters

        library, _, architecture = name.partition(":")
        build = adapters.torchvision_model if library == "torchvision" else adapters.timm_model
        c, h, w = (int(s) for s in input_shape)
        return build(architecture, (c, h, w), num_classes)
    if name not in _MODELS:
        import difflib

        close = difflib.get_close_matches(str(name), _MODELS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ZooError(f"unknown model {name!r}.{hint} Available: {', '.join(available_models())}.")
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ZooError(f"input_shape must be (channels, height, width), got {tuple(input_shape)!r}.")
    if not isinstance(num_classes, int) or num_classes < 2:
        raise ZooError(f"num_classes must be an int of at least 2, got {num_classes!r}.")
    builder, smallest = _MODELS[name]
    if min(shape[1], shape[2]) < smallest:
        raise ZooError(f"{name} needs inputs of at least {smallest}x{smallest} pixels; got "
                         f"{shape[1]}x{shape[2]}. Use a model for smaller inputs (e.g. mlp) or resize the data.")
    return builder((shape[0], shape[1], shape[2]), num_classes)
