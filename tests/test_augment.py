"""Augmentation: keeps shape, dtype and range; per-image random; never flips a digit."""

from __future__ import annotations

import pickle

import pytest
import torch

from aigc_course.data.augment import DATASETS, STRENGTHS, augment_batch, augmentations

SHAPES = {"digits": (1, 8, 8), "mnist5k": (1, 28, 28), "mnist": (1, 28, 28),
          "fashion_mnist": (1, 28, 28), "shapes": (3, 32, 32), "cifar10": (3, 32, 32)}


def _batch(dataset: str, n: int = 16) -> torch.Tensor:
    return torch.rand(n, *SHAPES[dataset], generator=torch.Generator().manual_seed(0)) * 2 - 1


def _left_block(dataset: str) -> torch.Tensor:
    """A black image with a bright block in its left third: mirrored, it sits on the right."""
    c, h, w = SHAPES[dataset]
    image = torch.full((1, c, h, w), -1.0)
    image[..., h // 4: 3 * h // 4, : w // 3] = 1.0
    return image


def _right_heavy(images: torch.Tensor) -> torch.Tensor:
    """``(N,)`` bool: more brightness in the right half than in the left."""
    w = images.shape[-1]
    mass = images + 1                                                   # (N, C, H, W) >= 0
    return mass[..., w // 2:].sum((1, 2, 3)) > mass[..., : w // 2].sum((1, 2, 3))


@pytest.mark.parametrize("strength", STRENGTHS)
@pytest.mark.parametrize("dataset", DATASETS)
def test_shape_dtype_and_range_are_kept(dataset: str, strength: str) -> None:
    x = _batch(dataset)
    for out in (augmentations(dataset, strength)(x),
                augment_batch(x, dataset, strength, torch.Generator().manual_seed(0))):
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= -1 and out.max() <= 1


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_image_gets_its_own_draw(dataset: str) -> None:
    x = _batch(dataset, 1).expand(8, -1, -1, -1).contiguous()          # 8 copies of one image
    shared = augmentations(dataset, "strong")(x)                        # one draw for the batch
    assert all(torch.equal(shared[0], s) for s in shared)
    own = augment_batch(x, dataset, "strong", torch.Generator().manual_seed(0))
    assert len({tuple(o.flatten().tolist()) for o in own}) > 1


def test_augment_batch_is_reproducible_and_leaves_the_global_rng_alone() -> None:
    x = _batch("digits")
    state = torch.get_rng_state()
    a = augment_batch(x, "digits", generator=torch.Generator().manual_seed(3))
    b = augment_batch(x, "digits", generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state)


@pytest.mark.parametrize("strength", STRENGTHS)
@pytest.mark.parametrize("dataset", ["digits", "mnist5k", "mnist"])
def test_digits_are_never_mirrored(dataset: str, strength: str) -> None:
    x = _left_block(dataset).expand(300, -1, -1, -1)
    out = augment_batch(x, dataset, strength, torch.Generator().manual_seed(0))
    assert not _right_heavy(out).any()


@pytest.mark.parametrize("dataset", ["fashion_mnist", "shapes", "cifar10"])
def test_flip_tolerant_sets_are_flipped_about_half_the_time(dataset: str) -> None:
    x = _left_block(dataset).expand(200, -1, -1, -1)
    out = augment_batch(x, dataset, "light", torch.Generator().manual_seed(0))
    assert 0.3 < _right_heavy(out).float().mean() < 0.7


def test_pipelines_pickle_for_dataloader_workers() -> None:
    for dataset in DATASETS:
        pickle.loads(pickle.dumps(augmentations(dataset, "strong")))


def test_bad_input_raises_with_the_valid_values() -> None:
    with pytest.raises(ValueError, match="valid: digits, mnist5k, mnist, fashion_mnist"):
        augmentations("cats")
    with pytest.raises(ValueError, match="valid: light, strong"):
        augmentations("digits", "extreme")
    with pytest.raises(ValueError, match=r"4-D \(N, C, H, W\)"):
        augment_batch(torch.zeros(1, 8, 8), "digits")
