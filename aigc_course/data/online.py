"""The downloadable datasets: MNIST, Fashion-MNIST and CIFAR-10 through torchvision.

They are downloaded once into :func:`cache_dir` (``$AIGC_DATA_DIR``, default
``~/.cache/aigc_course/data``). Without a network -- or with ``AIGC_OFFLINE=1``, which
skips the attempt -- loading fails fast with :class:`DatasetUnavailableError`, whose
message names the offline datasets to use instead, never with a bare ``URLError``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

Tensor = torch.Tensor
OFFLINE_ALTERNATIVES = "digits (8x8), mnist5k (28x28) or shapes (32x32 RGB)"
VAL_FRACTION = 0.10
DOWNLOAD_TIMEOUT_S = 15.0


class DatasetUnavailableError(RuntimeError):
    """An online dataset is neither cached nor downloadable."""


@dataclass(frozen=True)
class OnlineDataset:
    """How to fetch one torchvision dataset and what it is."""

    torchvision_class: str
    description: str
    source: str
    licence: str
    channels: int
    size: int
    class_names: tuple[str, ...]


DATASETS: dict[str, OnlineDataset] = {
    "mnist": OnlineDataset(
        "MNIST", "70,000 handwritten digits, 28x28 grey", "torchvision.datasets.MNIST",
        "CC BY-SA 3.0", 1, 28, tuple(str(d) for d in range(10))),
    "fashion_mnist": OnlineDataset(
        "FashionMNIST", "70,000 Zalando article images, 28x28 grey",
        "torchvision.datasets.FashionMNIST", "MIT", 1, 28,
        ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker",
         "bag", "ankle boot")),
    "cifar10": OnlineDataset(
        "CIFAR10", "60,000 natural images in 10 classes, 32x32 RGB",
        "torchvision.datasets.CIFAR10", "MIT-style (Krizhevsky 2009, free for research)", 3, 32,
        ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck")),
}


def cache_dir() -> Path:
    """Where online datasets are stored: ``$AIGC_DATA_DIR`` or ``~/.cache/aigc_course/data``."""
    root = os.environ.get("AIGC_DATA_DIR") or Path.home() / ".cache" / "aigc_course" / "data"
    return Path(root)


def _offline() -> bool:
    return os.environ.get("AIGC_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _unavailable(name: str, reason: str) -> DatasetUnavailableError:
    return DatasetUnavailableError(
        f"dataset {name!r} is not in the cache ({cache_dir()}) and cannot be downloaded: "
        f"{reason}. Use an offline dataset instead: {OFFLINE_ALTERNATIVES}, e.g. "
        f"load_images('mnist5k') or resolve('gpu', dataset='mnist5k')."
    )


def fetch(name: str, train: bool) -> Any:
    """The torchvision dataset object, from the cache or downloaded into it."""
    import torchvision

    cls = getattr(torchvision.datasets, DATASETS[name].torchvision_class)
    root = cache_dir()
    try:
        return cls(root=str(root), train=train, download=False)
    except RuntimeError:
        pass  # not cached yet
    if _offline():
        raise _unavailable(name, "AIGC_OFFLINE is set")
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return cls(root=str(root), train=train, download=True)
    except (OSError, RuntimeError) as err:  # URLError and socket errors are OSErrors
        raise _unavailable(name, f"{type(err).__name__}: {err}") from err
    finally:
        socket.setdefaulttimeout(old_timeout)


def to_tensors(dataset: Any) -> tuple[Tensor, Tensor]:
    """A torchvision MNIST-like or CIFAR-like dataset as ``(images in [-1, 1], labels)``."""
    data = dataset.data
    data = torch.as_tensor(np.asarray(data))
    if data.ndim == 3:
        data = data[:, None]                                            # (N, 1, H, W)
    else:
        data = data.permute(0, 3, 1, 2)                                 # (N, C, H, W)
    images = data.float() / 255.0 * 2 - 1
    labels = torch.as_tensor(np.asarray(dataset.targets)).long()
    return images.contiguous(), labels


def load(name: str, split: str, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Split ``split`` of online dataset ``name``; ``val`` is 10% carved from train."""
    images, labels = to_tensors(fetch(name, train=split != "test"))
    if split == "test":
        return images, labels
    if split == "all":
        test_images, test_labels = to_tensors(fetch(name, train=False))
        return torch.cat([images, test_images]), torch.cat([labels, test_labels])
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = int(round(VAL_FRACTION * len(labels)))
    idx = perm[:n_val] if split == "val" else perm[n_val:]
    idx = idx.sort().values
    return images[idx], labels[idx]
