"""Augmentation as data: the seeded crop and flip do what they say, normalisation reaches every split, and a bad
step is refused naming it."""

import pytest
import torch

from prunelab.recipes import dataset_for
from prunelab.zoo import ZooError
from prunelab.zoo.augmentation import Augment, augmentation_steps, hflip, normalized, random_crop


def _images(n=6, c=2, h=5, w=7):
    return torch.arange(n * c * h * w, dtype=torch.float32).reshape(n, c, h, w) + 1  # no zeros: padding shows


def test_random_crop_is_a_shifted_window_of_the_zero_padded_image():
    x = _images()
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    gen = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 5, (6,), generator=gen), torch.randint(0, 5, (6,), generator=gen)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        assert torch.equal(out[i], padded[i, :, dy[i]:dy[i] + 5, dx[i]:dx[i] + 7])
    assert out.shape == x.shape and (out == 0).any()  # some windows reach into the padding
    assert torch.equal(random_crop(x, 0, torch.Generator()), x)


def test_hflip_mirrors_the_images_whose_draw_is_below_p():
    x = _images()
    assert torch.equal(hflip(x, 0.0, torch.Generator()), x)
    assert torch.equal(hflip(x, 1.0, torch.Generator()), x.flip(-1))
    draws = torch.rand(6, generator=torch.Generator().manual_seed(5))
    out = hflip(x, 0.5, torch.Generator().manual_seed(5))
    for i in range(6):
        assert torch.equal(out[i], x[i].flip(-1) if draws[i] < 0.5 else x[i])


def test_standard_is_the_cifar_recipe_and_the_same_generator_gives_the_same_batch():
    assert augmentation_steps("standard") == [{"name": "random_crop", "padding": 4}, {"name": "hflip", "p": 0.5}]
    assert augmentation_steps(None) == []
    augment = Augment(augmentation_steps("standard"))
    x = _images()
    a, b = augment(x, torch.Generator().manual_seed(1)), augment(x, torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, augment(x, torch.Generator().manual_seed(2)))
    assert torch.equal(x, _images())  # the input is left alone
    assert not Augment([{"name": "normalize", "mean": [0.5], "std": [0.2]}])  # nothing random to apply


def test_normalisation_applies_to_every_split_once_per_process():
    steps = [{"name": "normalize", "mean": [0.25], "std": [0.5]}]
    data = dataset_for("digits")
    normal = dataset_for("digits", augmentation=steps)
    for split in ("train", "val", "test"):
        assert torch.allclose(getattr(normal, split)[0], (getattr(data, split)[0] - 0.25) / 0.5)
        assert torch.equal(getattr(normal, split)[1], getattr(data, split)[1])
    assert dataset_for("digits", augmentation=steps) is normal
    with pytest.raises(ZooError, match="normalize has 3 means and stds, but digits has 1 channels"):
        normalized(data, [{"name": "normalize", "mean": [0.5] * 3, "std": [0.2] * 3}])


@pytest.mark.parametrize("spec, message", [
    ("fancy", "augmentation must be None, 'standard' or a list of steps, got 'fancy'"),
    ([{"name": "rotate", "degrees": 10}], r"augmentation step 0 \({'name': 'rotate'.*one of \['hflip', 'normalize'"),
    ([{"name": "hflip"}], r"step 0 \(hflip\) takes the settings \['p'\], got \[\]"),
    ([{"name": "hflip", "p": 1.5}], r"step 0 \(hflip\): p must be a probability in \[0, 1\], got 1.5"),
    ([{"name": "hflip", "p": 0.5}, {"name": "random_crop", "padding": -1}],
     "step 1 .random_crop.: padding must be a non-negative int, got -1"),
    ([{"name": "normalize", "mean": [0.5], "std": [0.0]}], "step 0 .normalize.: mean and std .*std positive"),
])
def test_a_bad_augmentation_is_refused_naming_the_step(spec, message):
    with pytest.raises(ZooError, match=message):
        augmentation_steps(spec)
