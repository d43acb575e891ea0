"""Data augmentation that respects the data: which transforms keep an image's label.

An augmentation must map an image to another plausible image *of the same class*.
For digits that rules out flips (a mirrored 2 is not a 2, a flipped 6 is a 9) but
allows small rotations, shifts and zooms (Simard et al. 2003, "Best Practices for
Convolutional Neural Networks Applied to Visual Document Analysis"). Clothes and
natural photos are left-right symmetric in distribution, so horizontal flips plus
padded random crops are the classic recipe (He et al. 2016, "Deep Residual Learning
for Image Recognition", section 4.2).

All transforms are ``torchvision.transforms.v2`` and work on float tensors in
``[-1, 1]``: geometric only (v2's colour transforms assume ``[0, 1]``), bilinear
interpolation, and a fill equal to the background, so values stay in range.

A v2 transform applied to a batch ``(N, C, H, W)`` draws *one* set of random
parameters for the whole batch; :func:`augment_batch` draws them per image.

Simplified: no colour, cutout or mixup augmentation.
"""

from __future__ import annotations

from functools import partial
from typing import Literal, get_args

import torch
from torchvision.transforms import v2

from aigc_course.utils import num_threads

Tensor = torch.Tensor
Strength = Literal["light", "strong"]
STRENGTHS: tuple[str, ...] = get_args(Strength)
DIGIT_LIKE = ("digits", "mnist5k", "mnist")
DATASETS: tuple[str, ...] = (*DIGIT_LIKE, "fashion_mnist", "shapes", "cifar10")
BILINEAR = v2.InterpolationMode.BILINEAR
BLACK = -1.0                     # the background of the digit and clothing sets in [-1, 1]
SHAPES_BACKGROUND = -0.84        # shapes.make_shapes paints 0.08 in [0, 1]: 0.08 * 2 - 1


def _affine(degrees: float, translate: float, scale: float, fill: float) -> v2.RandomAffine:
    """Rotation in ``[-degrees, degrees]``, shift up to ``translate`` of the side
    (whole pixels), zoom in ``[1 - scale, 1 + scale]``; ``fill`` where nothing maps."""
    return v2.RandomAffine(degrees=degrees, translate=(translate, translate),
                           scale=(1 - scale, 1 + scale), interpolation=BILINEAR, fill=fill)


def _steps(dataset: str, strong: bool) -> list[v2.Transform]:
    """The label-preserving transforms of ``dataset``."""
    if dataset in DIGIT_LIKE:                                           # never flip a digit
        return [_affine(15, 0.15, 0.15, BLACK) if strong else _affine(10, 0.1, 0.1, BLACK)]
    if dataset == "fashion_mnist":                                      # clothes mirror well
        return [v2.RandomHorizontalFlip(),
                _affine(10, 0.1, 0.1, BLACK) if strong else _affine(5, 0.05, 0.05, BLACK)]
    if dataset == "shapes":                             # no vertical flip: triangles point up
        steps = [v2.RandomHorizontalFlip(), v2.RandomCrop(32, padding=6 if strong else 3,
                                                          padding_mode="edge")]
        return [*steps, _affine(10, 0.0, 0.1, SHAPES_BACKGROUND)] if strong else steps
    if strong:                                                          # cifar10
        return [v2.RandomHorizontalFlip(), v2.RandomResizedCrop(32, scale=(0.5, 1.0),
                                                                antialias=True)]
    return [v2.RandomHorizontalFlip(), v2.RandomCrop(32, padding=4, padding_mode="reflect")]


def augmentations(dataset: str, strength: Strength = "light") -> v2.Compose:
    """The augmentation pipeline of ``dataset``.

    ============================== =========================================================
    dataset                        transforms
    ============================== =========================================================
    digits, mnist5k, mnist         small rotation/shift/zoom (light: 10 deg, 10%, 10%;
                                   strong: 15 deg, 15%, 15%); no flips
    fashion_mnist                  horizontal flip, small rotation/shift/zoom
    shapes                         horizontal flip, shift by an edge-padded crop (3 px;
                                   strong: 6 px and a 10 deg rotation/10% zoom)
    cifar10                        horizontal flip, reflect-padded crop (4 px; strong:
                                   a resized crop of 50-100% of the area)
    ============================== =========================================================

    Args:
        dataset: one of :data:`DATASETS`.
        strength: ``"light"`` or ``"strong"``.

    Returns:
        A ``v2.Compose`` for ``(C, H, W)`` or ``(N, C, H, W)`` float tensors in
        ``[-1, 1]`` (a batch shares one draw; see :func:`augment_batch`). Its output
        keeps shape, dtype and range (a final clamp removes rounding overshoot).

    Raises:
        ValueError: an unknown dataset or strength.
    """
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; valid: {', '.join(DATASETS)}")
    if strength not in STRENGTHS:
        raise ValueError(f"unknown strength {strength!r}; valid: {', '.join(STRENGTHS)}")
    clamp = v2.Lambda(partial(torch.clamp, min=-1.0, max=1.0))          # picklable, no lambda
    return v2.Compose([*_steps(dataset, strength == "strong"), clamp])


def augment_batch(images: Tensor, dataset: str, strength: Strength = "light",
                  generator: torch.Generator | None = None) -> Tensor:
    """Augment every image of a batch with its own random draw.

    Args:
        images: ``(N, C, H, W)`` float in ``[-1, 1]``.
        dataset: one of :data:`DATASETS`.
        strength: ``"light"`` or ``"strong"``.
        generator: makes the result reproducible; ``None`` uses (and advances) the
            global torch RNG. The global RNG is left untouched when one is given.

    Returns:
        ``(N, C, H, W)``, same dtype, in ``[-1, 1]``.
    """
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"images must be a 4-D (N, C, H, W) tensor, got {got}")
    transform = augmentations(dataset, strength)
    if generator is None:
        if len(images) == 0:
            return images
        # One image is too small a job to share: with 2 threads on 2 busy cores the
        # loop ran 40x slower (threads waiting on each other), with 1 it takes ~0.4 ms
        # per 28x28 image.
        with num_threads(1):
            return torch.stack([transform(image) for image in images])
    seed = int(torch.randint(0, 2**62, (), generator=generator))
    with torch.random.fork_rng(devices=[]):             # v2 draws from the global RNG
        torch.manual_seed(seed)
        return augment_batch(images, dataset, strength)
