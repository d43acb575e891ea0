"""Datasets of the course: one registry, offline first, with cleaning and data cards.

``load_images(name, split, image_size)`` returns ``(images, labels)`` with images in
``[-1, 1]`` of shape ``(N, C, H, W)``; ``available()`` lists the names.

``augment_batch`` and ``augmentations`` are imported on first use: they need torchvision,
which costs 1.5-3 s to import on this machine and nothing else here needs (every model
kind, the command line and the service import this package).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aigc_course.data.card import DataCard, make_data_card
from aigc_course.data.cleaning import (
    CorruptReport,
    detection_scores,
    find_corrupt,
    find_exact_duplicates,
    find_near_duplicates,
    find_suspicious_labels,
    flip_labels,
    perceptual_hash,
    plant_corruption,
    plant_duplicates,
)
from aigc_course.data.online import DatasetUnavailableError, cache_dir
from aigc_course.data.registry import (
    SPLITS,
    DatasetInfo,
    available,
    info,
    load_images,
    load_points,
    resize,
    split_indices,
)

if TYPE_CHECKING:
    from aigc_course.data.augment import augment_batch, augmentations

_LAZY = {"augment_batch", "augmentations"}


def __getattr__(name: str) -> Any:
    """The torchvision-backed names, imported when first asked for (PEP 562)."""
    if name in _LAZY:
        from aigc_course.data import augment

        return getattr(augment, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "SPLITS",
    "CorruptReport",
    "DataCard",
    "augment_batch",
    "augmentations",
    "detection_scores",
    "find_corrupt",
    "find_exact_duplicates",
    "find_near_duplicates",
    "find_suspicious_labels",
    "flip_labels",
    "make_data_card",
    "perceptual_hash",
    "plant_corruption",
    "plant_duplicates",
    "DatasetInfo",
    "DatasetUnavailableError",
    "available",
    "cache_dir",
    "info",
    "load_images",
    "load_points",
    "resize",
    "split_indices",
]
