"""Model checkpoints any chapter writes: a plain dict that loads with ``weights_only=True``.

A checkpoint records its ``kind`` (``"vae"``; later ``"gan"``, ``"diffusion"``), the
model's ``config`` as plain values, its ``state_dict`` and free ``metadata``, under a
format tag, so ``aigc-course sample`` knows what to build. Loading never runs code from
the file (``torch.load(..., weights_only=True)``); a corrupt or foreign file raises a
``ValueError`` that says what was found, as :mod:`aigc_course.judge` does for the judge.
"""

from __future__ import annotations

import pickle
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
    torch.save(checkpoint, path)
    read_checkpoint(path, kind)                 # fail now, not at load time
    return path


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


def sample_labels(n: int, label: int | None, num_classes: int) -> torch.Tensor:
    """The labels ``aigc-course sample`` draws ``n`` samples for, ``(n,)``.

    A conditional model (``num_classes > 0``) gets ``label`` for every sample, or the
    classes in turn when ``label`` is ``None``; an unconditional one gets ``-1`` (and
    ``label`` must be ``None``).

    Raises:
        ValueError: ``--label`` for an unconditional model, or out of ``0..num_classes-1``.
    """
    if not num_classes:
        if label is not None:
            raise ValueError("--label needs a class-conditional model (train with --conditional)")
        return torch.full((n,), -1)
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(f"--label must be in 0..{num_classes - 1}, got {label}")
    return torch.full((n,), label) if label is not None else torch.arange(n) % num_classes
