"""The zoo's models: output shapes and parameter counts pinned for 8x8, 28x28 and 32x32 inputs."""

import pytest
import torch

from prunelab.zoo import ZooError, available_models, build_model

SHAPES = [(1, 8, 8), (1, 28, 28), (3, 32, 32)]
# Parameter counts with 10 classes. Known references: LeNet-300-100 on MNIST 266,610; LeNet-5 61,706;
# ResNet-20 (CIFAR, OpenLTH) 272,474; ResNet-56 (He et al. 2016, option A) 853,018 (0.85M); VGG-16 (CIFAR,
# Frankle & Carbin) 14.7M; WRN-16-8 (Zagoruyko & Komodakis) 11.0M; ResNet-18 (CIFAR) 11,173,962;
# Conv-4/Conv-6 (Frankle & Carbin) 2.4M/2.3M.
PARAMETERS = {
    "conv4": (458698, 1933258, 2425930),
    "conv6": (1278410, 1802698, 2262602),
    "lenet300100": (50610, 266610, 953010),
    "lenet5": (19754, 61706, 83126),
    "mlp": (85002, 269322, 855050),
    "resnet18": (11172810, 11172810, 11173962),
    "resnet20": (272186, 272186, 272474),
    "resnet56": (852730, 852730, 853018),
    "vgg11": (9229962, 9229962, 9231114),
    "vgg16": (14727114, 14727114, 14728266),
    "wrn16_8": (10961082, 10961082, 10961370),
}
# The published sizes (in millions, as the papers round them) of the CIFAR models of the pruning literature.
PUBLISHED = {"resnet20": 0.27, "resnet56": 0.85, "vgg16": 14.7, "wrn16_8": 11.0}


def test_the_registry_is_the_documented_list():
    assert available_models() == sorted(PARAMETERS)


@pytest.mark.parametrize("name", sorted(PARAMETERS))
@pytest.mark.parametrize("index", range(3), ids=["8x8", "28x28", "32x32"])
def test_output_shape_and_parameter_count(name, index):
    shape = SHAPES[index]
    model = build_model(name, shape, 10)
    assert model(torch.zeros(2, *shape)).shape == (2, 10)
    assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name][index]


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_the_cifar_models_have_their_published_sizes(name):
    model = build_model(name, (3, 32, 32), 10)
    digits = 2 if PUBLISHED[name] < 1 else 1
    assert round(sum(p.numel() for p in model.parameters()) / 1e6, digits) == PUBLISHED[name]


def test_resnet56_shortcuts_subsample_and_zero_pad_without_parameters():
    from prunelab.zoo.models import PadShortcut

    model = build_model("resnet56", (3, 32, 32), 10)
    shortcuts = [m for m in model.modules() if isinstance(m, PadShortcut)]
    assert len(shortcuts) == 2 and not any(p.numel() for m in shortcuts for p in m.parameters())
    x = torch.randn(2, 16, 8, 8)
    out = PadShortcut(16, 32, 2)(x)
    assert out.shape == (2, 32, 4, 4)
    assert torch.equal(out[:, 8:24], x[:, :, ::2, ::2])
    assert not out[:, :8].any() and not out[:, 24:].any()


def test_the_wide_resnet_is_pre_activation_with_projections_where_the_shape_changes():
    from prunelab.zoo.models import WideBlock

    model = build_model("wrn16_8", (3, 32, 32), 10)
    blocks = [m for m in model.modules() if isinstance(m, WideBlock)]
    assert len(blocks) == 6  # (16 - 4) / 6 = 2 per stage
    assert [b.conv1.out_channels for b in blocks] == [128, 128, 256, 256, 512, 512]
    assert [b.shortcut is not None for b in blocks] == [True, False, True, False, True, False]


def test_the_number_of_classes_sets_the_last_layer():
    model = build_model("lenet5", (1, 28, 28), 3)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 3)


def test_bad_names_and_shapes_are_refused():
    with pytest.raises(ZooError, match="unknown model 'lenet'. Did you mean 'lenet5'\\? Available: conv4, conv6,"):
        build_model("lenet", (1, 28, 28), 10)
    with pytest.raises(ZooError, match="resnet18 needs inputs of at least 8x8 pixels; got 4x4"):
        build_model("resnet18", (3, 4, 4), 10)
    with pytest.raises(ZooError, match="input_shape must be \\(channels, height, width\\), got \\(28, 28\\)"):
        build_model("mlp", (28, 28), 10)
    with pytest.raises(ZooError, match="num_classes must be an int of at least 2"):
        build_model("mlp", (1, 8, 8), 1)


def test_models_are_plain_modules_that_prune_and_train():
    from prunelab.prune import prune_model

    model = build_model("resnet20", (3, 32, 32), 10)
    prune_model(model, "global_magnitude", sparsity=0.5)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 32, 32)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert all(type(m).__module__.startswith(("torch.", "prunelab.zoo.models")) for m in model.modules())
