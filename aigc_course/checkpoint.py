"""The one checkpoint format of the package: a plain dict that loads with ``weights_only=True``.

Every model the course saves (the model kinds of :mod:`aigc_course.kinds`: ``gan``,
``vae``, ``ddpm``; and the per-dataset judges of :mod:`aigc_course.metrics.judge`, kind
``judge``) is written by :func:`save_checkpoint` as
``{"format": FORMAT, "kind", "config", "state_dict", "metadata"}``: the model's
``config`` as plain values, its ``state_dict`` and free ``metadata``, so ``aigc-course
sample`` knows what to build. Loading never runs code from the file
(``torch.load(..., weights_only=True)``); a corrupt or foreign file, or one of another
kind, raises a ``ValueError`` that says what was found. Writes are atomic: the file is
written beside its destination and renamed over it, so an interrupted save never leaves
a half-written checkpoint where a good one was.

This module is a leaf: it imports nothing from the package.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "aigc_course.checkpoint/v1"


def save_checkpoint(path: str | Path, kind: str, model: nn.Module, config: dict[str, Any],
                    metadata: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights with its kind, config and metadata; returns the path.

    Raises:
        ValueError: a config or metadata value ``weights_only`` loading refuses.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    checkpoint = {
        "format": FORMAT,
        "kind": kind,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "metadata": {**(metadata or {}), "torch_version": str(torch.__version__)},
    }
    with atomic_write(path) as scratch:
        torch.save(checkpoint, scratch)
        read_checkpoint(scratch, kind)          # fail now, not at load time
    return path


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a scratch path beside ``path``; on success rename it over ``path``.

    The rename is atomic (POSIX and Windows), so a reader never sees a half-written file
    and an error inside the block leaves the previous file as it was (the scratch file is
    removed). Parent folders are created.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.",
                                    suffix=path.suffix)
    os.close(handle)
    scratch = Path(name)
    umask = os.umask(0)                     # mkstemp makes 0600; give the usual 0666 & ~umask
    os.umask(umask)
    os.chmod(scratch, 0o666 & ~umask)
    try:
        yield scratch
        os.replace(scratch, path)
    finally:
        if scratch.exists():
            scratch.unlink()


def read_checkpoint(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Read and check a checkpoint without building its model.

    Args:
        path: the ``.pt`` file.
        kind: the expected kind (``None``: any).

    Returns:
        The dict with keys ``format``, ``kind``, ``config``, ``state_dict``, ``metadata``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a corrupt file, a foreign one (not this format), or another kind.
    """
    checkpoint = load_checked(path, FORMAT, "an aigc_course model checkpoint")
    if kind is not None and checkpoint.get("kind") != kind:
        raise ValueError(f"{path} holds a {checkpoint.get('kind')!r} model, not {kind!r}")
    return checkpoint


def load_checked(path: str | Path, format_tag: str, what: str, hint: str = "") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True`` and check its format tag.

    Args:
        path: the ``.pt`` file.
        format_tag: the ``"format"`` value the dict must carry.
        what: how errors name the expected file, e.g. ``"a digits-judge checkpoint"``.
        hint: appended to every error, e.g. how to regenerate the file.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a corrupt file, one holding objects ``weights_only`` refuses, or a
            foreign one (not a dict with this format tag).
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}{tail}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:  # objects weights_only loading refuses
        raise ValueError(f"{path} is not {what}: it holds objects other than tensors and "
                         "plain values, which weights_only loading refuses (it may also be "
                         f"corrupt){tail}") from error
    except Exception as error:  # not a zip, truncated file, bad magic number, ...
        raise ValueError(f"{path} is not a readable torch checkpoint "
                         f"({type(error).__name__}); it may be corrupt or truncated{tail}"
                         ) from error
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != format_tag:
        found = (f"a dict with keys {sorted(map(str, checkpoint))[:6]}"
                 if isinstance(checkpoint, dict) else f"a {type(checkpoint).__name__}")
        raise ValueError(f"{path} is not {what} (expected a dict with format={format_tag!r}, "
                         f"found {found}){tail}")
    return checkpoint

