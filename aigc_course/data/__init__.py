"""Datasets of the course: one registry, offline first, with cleaning and data cards.

``load_images(name, split, image_size)`` returns ``(images, labels)`` with images in
``[-1, 1]`` of shape ``(N, C, H, W)``; ``available()`` lists the names.
"""

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

__all__ = [
    "SPLITS",
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
