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

Weights can be stored as int8 (``save_checkpoint(..., int8_weights=True)`` or
:func:`pack_checkpoint`), about 4 times smaller: each floating-point tensor of two or
more dimensions (the weights of linear, convolution and embedding layers) becomes an
int8 tensor ``"<name>:int8"`` and a float32 scale per slice along its first axis
``"<name>:scale"``, symmetric round-to-nearest,
$q = \\mathrm{clamp}(\\lfloor w / s \\rceil, -127, 127)$ with $s = \\max|w| / 127$ per slice
(biases and batch-norm statistics stay float32). :func:`read_checkpoint` turns them back
into float32 weights $\\hat w = s q$, so every loader reads such a file unchanged; the
``:`` in the key cannot occur in a module's parameter name. Quantising $\\hat w$ again
gives the same $q$ and $s$ (the largest $|q|$ of a slice is 127), so a file can be
re-packed without further loss.

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
#: the key suffixes of a weight stored as int8 and of its per-channel scale
INT8_KEY, SCALE_KEY = ":int8", ":scale"
Tensor = torch.Tensor


def save_checkpoint(path: str | Path, kind: str, model: nn.Module, config: dict[str, Any],
                    metadata: dict[str, Any] | None = None, int8_weights: bool = False
                    ) -> Path:
    """Write ``model``'s weights with its kind, config and metadata; returns the path.

    Args:
        int8_weights: store the weights as int8 with a scale per output channel
            (:func:`pack_int8`; about 4 times smaller, loads transparently).

    Raises:
        ValueError: a config or metadata value ``weights_only`` loading refuses.
    """
    state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return _write(path, kind, config, state_dict, metadata, int8_weights)


def _write(path: str | Path, kind: str, config: dict[str, Any], state_dict: dict[str, Tensor],
           metadata: dict[str, Any] | None, int8_weights: bool) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {**(metadata or {}), "torch_version": str(torch.__version__)}
    if int8_weights:
        state_dict = pack_int8(state_dict)
        metadata["weights"] = "int8, symmetric, one scale per output channel"
    checkpoint = {
        "format": FORMAT,
        "kind": kind,
        "config": dict(config),
        "state_dict": state_dict,
        "metadata": metadata,
    }
    with atomic_write(path) as scratch:
        torch.save(checkpoint, scratch)
        read_checkpoint(scratch, kind)          # fail now, not at load time
    return path


def pack_checkpoint(source: str | Path, destination: str | Path) -> Path:
    """Write a copy of the checkpoint ``source`` with int8 weights; returns ``destination``.

    Raises:
        FileNotFoundError, ValueError: as :func:`read_checkpoint` for ``source``.
    """
    checkpoint = read_checkpoint(source)
    return _write(destination, checkpoint["kind"], checkpoint["config"],
                  checkpoint["state_dict"], checkpoint.get("metadata"), int8_weights=True)


def int8_per_channel(w: Tensor) -> tuple[Tensor, Tensor]:
    """Symmetric int8 with one scale per slice along the first axis.

    $s_c = \\max |w_c| / 127$ (1 for an all-zero slice),
    $q = \\mathrm{clamp}(\\lfloor w / s \\rceil, -127, 127)$.

    Args:
        w: a float tensor ``(C, ...)``.

    Returns:
        ``q`` int8 of ``w``'s shape and ``scale`` float32 ``(C,)``.
    """
    w = w.detach().float()
    scale = w.abs().flatten(1).amax(dim=1) / 127                        # (C,)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = torch.clamp(torch.round(w / scale.view(shape)), -127, 127)     # (C, ...) / (C, 1, ..)
    return q.to(torch.int8), scale


def pack_int8(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """``state_dict`` with each floating tensor of 2+ dimensions as ``:int8`` and ``:scale``."""
    packed: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if value.is_floating_point() and value.ndim >= 2:
            packed[key + INT8_KEY], packed[key + SCALE_KEY] = int8_per_channel(value)
        else:
            packed[key] = value
    return packed


def unpack_int8(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """Undo :func:`pack_int8`: $\\hat w = s q$ float32 (a plain state dict is returned as is)."""
    if not any(key.endswith(INT8_KEY) for key in state_dict):
        return state_dict
    unpacked: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith(INT8_KEY):
            name = key[:-len(INT8_KEY)]
            scale = state_dict[name + SCALE_KEY]
            unpacked[name] = value.float() * scale.view((-1,) + (1,) * (value.ndim - 1))
        elif not key.endswith(SCALE_KEY):
            unpacked[key] = value
    return unpacked


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
        The dict with keys ``format``, ``kind``, ``config``, ``state_dict``, ``metadata``;
        int8 weights (:func:`pack_int8`) are returned dequantised, float32.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a corrupt file, a foreign one (not this format), or another kind.
    """
    checkpoint = load_checked(path, FORMAT, "an aigc_course model checkpoint")
    if kind is not None and checkpoint.get("kind") != kind:
        raise ValueError(f"{path} holds a {checkpoint.get('kind')!r} model, not {kind!r}")
    state_dict = checkpoint.get("state_dict")
    if isinstance(state_dict, dict):
        try:
            checkpoint["state_dict"] = unpack_int8(state_dict)
        except (KeyError, AttributeError, RuntimeError) as error:
            raise ValueError(f"{path}: an int8 weight without its scale, or of another "
                             f"shape ({error})") from error
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

