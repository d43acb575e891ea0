"""Small helpers every chapter uses: seeding, devices, parameter counts, timing, hashes.

This module is the only copy of these helpers; chapters import them from here.
"""

from __future__ import annotations

import hashlib
import os
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA), and ask torch for determinism.

    Args:
        seed: the seed, a non-negative integer.
        deterministic: also switch torch to deterministic algorithms where it has
            them (``warn_only``, so an op without one still runs).

    Returns:
        A ``torch.Generator`` seeded with ``seed``, for code that takes one.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (the legacy global state is what others use)
    torch.manual_seed(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.Generator().manual_seed(seed)


@contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed torch for one block and give the caller's random state back afterwards.

    Inside the block torch's global generators (CPU and every CUDA device) are seeded
    with ``seed``, so weight initialisation and dropout are reproducible; on exit they
    are restored (:func:`torch.random.fork_rng`), and nothing else global changes (no
    ``torch.use_deterministic_algorithms``): what training functions use instead of
    :func:`seed_everything`, which is for the top of a notebook.

    Yields:
        A ``torch.Generator`` seeded with ``seed`` for minibatches and noise.
    """
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield torch.Generator().manual_seed(seed)


@dataclass(frozen=True)
class Ranks:
    """This process's place in a data-parallel run (``world_size == 1``: alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that logs and writes files."""
        return self.rank == 0


def ranks_from_env() -> Ranks:
    """The ranks ``torchrun`` sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); alone without."""
    return Ranks(int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
                 int(os.environ.get("LOCAL_RANK", "0")))


def get_device(prefer: str = "auto") -> torch.device:
    """The device to compute on.

    Args:
        prefer: ``"auto"`` (CUDA if available, else Apple ``mps``, else CPU),
            ``"cpu"``, ``"cuda"`` or ``"mps"``.

    Raises:
        ValueError: for an unknown name, or a device this machine does not have.
    """
    valid = ("auto", "cpu", "cuda", "mps")
    if prefer not in valid:
        raise ValueError(f"unknown device {prefer!r}; valid: {', '.join(valid)}")
    has_mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if prefer == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if has_mps else torch.device("cpu")
    if prefer == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' requested but CUDA is not available; use 'cpu' or 'auto'")
    if prefer == "mps" and not has_mps:
        raise ValueError("device 'mps' requested but it is not available; use 'cpu' or 'auto'")
    return torch.device(prefer)


def count_params(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters of ``model`` (only those with ``requires_grad`` by default)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


class Timer:
    """Wall-clock seconds of a ``with`` block: ``with Timer() as t: ...; t.seconds``."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __enter__(self) -> Timer:
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._start


@contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Temporarily set torch's CPU thread count (``None`` leaves it alone)."""
    old = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def time_training_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int = 10,
                       warmup: int = 2) -> float:
    """Median wall-clock milliseconds of one classifier training step on ``(x, y)``.

    One step is the plain loop every chapter uses:
    ``zero_grad -> forward -> loss -> backward -> step`` (Adam, cross-entropy).

    Args:
        model: maps ``x`` to logits ``(N, num_classes)``.
        x: a batch of inputs; ``y``: ``(N,)`` integer labels.
        steps: timed steps; ``warmup``: untimed steps first.
    """
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimiser.step()
        if x.device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000)


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, in hex (read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
