"""The downloadable datasets: MNIST, Fashion-MNIST and CIFAR-10 through torchvision.

They are downloaded once into :func:`cache_dir` (``$AIGC_DATA_DIR``, default
``~/.cache/aigc_course/data``). Without a network -- or with ``AIGC_OFFLINE=1``, which
skips the attempt -- loading fails fast with :class:`DatasetUnavailableError`, whose
message names the offline datasets to use instead, never with a bare ``URLError``.

A download is atomic. torchvision downloads, checks (md5) and extracts the files into a
private folder of the cache, ``<cache>/.partial-<name>-<pid>``; only when all of that
succeeded is the dataset's folder (``MNIST/``, ``FashionMNIST/``,
``cifar-10-batches-py/``) moved into the cache with :func:`os.replace`. On any failure --
no network, a timeout, a truncated or corrupted file -- the private folder is removed,
so the cache never holds half a dataset and the next call downloads it again.
"""

from __future__ import annotations

import os
import shutil
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
PARTIAL_PREFIX = ".partial-"


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
    """The torchvision dataset object, from the cache or downloaded into it.

    Args:
        name: a key of :data:`DATASETS`.
        train: the training set (``True``) or the test set.

    Returns:
        The torchvision dataset (``.data``, ``.targets``), read from :func:`cache_dir`.

    Raises:
        DatasetUnavailableError: the dataset is not cached, and ``AIGC_OFFLINE`` is set
            (no connection is made) or the download failed (nothing is cached then).
    """
    import torchvision

    cls = getattr(torchvision.datasets, DATASETS[name].torchvision_class)
    root = cache_dir()
    try:
        return cls(root=str(root), train=train, download=False)
    except RuntimeError:
        pass  # not cached yet
    if _offline():
        raise _unavailable(name, "AIGC_OFFLINE is set")
    _download(name, cls, root, train)
    try:
        return cls(root=str(root), train=train, download=False)
    except RuntimeError as err:
        raise _unavailable(name, f"it was downloaded but does not load from the cache: "
                                 f"{_one_line(err)}") from err


def _download(name: str, cls: type, root: Path, train: bool) -> None:
    """Download dataset ``name`` into ``root``, all of it or nothing.

    torchvision downloads, checks and extracts into ``root/.partial-<name>-<pid>``; then
    each folder it made there is moved into ``root`` with :func:`os.replace`. The partial
    folder is removed whatever happens.

    Raises:
        DatasetUnavailableError: any failure, with the URLs tried and the cause.
    """
    partial = root / f"{PARTIAL_PREFIX}{name}-{os.getpid()}"
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(partial, ignore_errors=True)  # left by an earlier, killed run
        partial.mkdir()
        cls(root=str(partial), train=train, download=True)  # raises unless md5s match
        folders = sorted(p for p in partial.iterdir() if p.is_dir())  # archives stay behind
        if not folders:
            raise RuntimeError(f"torchvision wrote no dataset folder into {partial}")
        for folder in folders:
            _replace_dir(folder, root / folder.name)
    except Exception as err:  # URLError, timeouts, md5 mismatch, EOFError of a cut archive
        raise _unavailable(name, _download_failure(cls, err)) from err
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(partial, ignore_errors=True)


def _replace_dir(src: Path, dst: Path) -> None:
    """Move folder ``src`` to ``dst`` with :func:`os.replace`, replacing a stale ``dst``."""
    if not os.path.lexists(dst):
        os.replace(src, dst)
        return
    # os.replace cannot overwrite a non-empty folder (here one that failed to load, e.g.
    # written by a non-atomic download): move it aside, move the new one in, delete it.
    stale = dst.with_name(f".stale-{dst.name}-{os.getpid()}")
    shutil.rmtree(stale, ignore_errors=True)
    os.replace(dst, stale)
    try:
        os.replace(src, dst)
    finally:
        shutil.rmtree(stale, ignore_errors=True)


def _download_failure(cls: type, err: BaseException) -> str:
    """What went wrong in a download, with the URLs tried, as one line."""
    mirrors = getattr(cls, "mirrors", None) or [getattr(cls, "url", None)]
    urls = ", ".join(str(m) for m in mirrors if m)
    reason = f"the download{f' from {urls}' if urls else ''} failed, nothing was cached"
    reason += f" ({type(err).__name__}: {_one_line(err)})"
    if "corrupted" in str(err):  # torchvision's words for an md5 mismatch
        reason += "; a file did not match its md5 checksum (a truncated or corrupted download)"
    return reason


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


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
