"""Solutions to the exercises of chapter 07 (training at scale)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path


def warmup_cosine(step: int, steps: int, warmup: int, lr: float, min_lr: float) -> float:
    """The learning rate of 0-based ``step`` of ``steps``: linear warm-up over ``warmup``
    steps, then a cosine from ``lr`` to ``min_lr`` at the last step (eq. eq-07-schedule),
    in plain Python."""
    warmup = min(warmup, steps - 1)
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, steps - 1 - warmup))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def mean_of_shard_means(losses: Sequence[float], world_size: int) -> float:
    """Split ``losses`` (one per example of the global batch) into ``world_size``
    contiguous shards, average each, then average the averages: what data-parallel ranks
    compute (eq. eq-07-ddp). It equals the global mean when the shards are equally large
    (the batch divides by the ranks); with a remainder the last shard's examples weigh
    more."""
    per = math.ceil(len(losses) / world_size)
    shards = [losses[i:i + per] for i in range(0, len(losses), per)]
    return sum(sum(s) / len(s) for s in shards) / len(shards)


def save_atomically(data: bytes, path: str | Path) -> Path:
    """Write ``data`` to ``path`` so a reader (or a kill) never sees half a file: a scratch
    file in the same folder, flushed and ``fsync``-ed, then ``os.replace`` over ``path``
    (atomic on POSIX and Windows). On an error the scratch file is removed and ``path``
    keeps its old content."""
    path = Path(path)
    handle, scratch = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(scratch, path)
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return path
