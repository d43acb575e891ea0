"""Planting fixtures: duplicates, flipped labels and corruption at known positions.

The helpers that plant each problem the checks look for, so the notebook and the
tests can show "plant, then find" with measured precision and recall
(:func:`detection_scores`).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Literal, get_args

import torch

from aigc_course.data.cleaning._common import Tensor, _check_batch
from aigc_course.data.cleaning.corrupt import CORRUPT_KINDS, CorruptKind

CopyKind = Literal["exact", "noise", "brightness", "shift", "mixed"]
COPY_KINDS: tuple[str, ...] = get_args(CopyKind)


# --- planting problems (for the notebook and the tests) ---------------------------------

def _copy(x: Tensor, kind: str, generator: torch.Generator, noise_std: float) -> Tensor:
    """One near-copy of ``x`` ``(C, H, W)`` in ``[-1, 1]``."""
    if kind == "noise":
        return (x + noise_std * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    if kind == "brightness":
        contrast = 0.8 + 0.2 * torch.rand((), generator=generator)      # in [0.8, 1.0]
        shift = 0.2 * torch.rand((), generator=generator) - 0.1         # in [-0.1, 0.1]
        return (contrast * x + shift).clamp(-1, 1)
    if kind == "shift":
        dim = int(torch.randint(1, 3, (), generator=generator))         # 1: rows, 2: columns
        step = 1 if torch.rand((), generator=generator) < 0.5 else -1
        out = torch.roll(x, step, dims=dim)
        edge = 0 if step == 1 else -1
        out.select(dim, edge).fill_(float(x.min()))                     # background, no wrap
        return out
    return x.clone()


def plant_duplicates(images: Tensor, labels: Tensor, n: int, generator: torch.Generator,
                     kind: CopyKind = "mixed", noise_std: float = 0.05,
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Append ``n`` (near-)copies of ``n`` distinct random images.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: ``(N,)``.
        n: number of copies, at most ``N``.
        generator: the source of randomness.
        kind: ``"exact"``; ``"noise"`` (Gaussian, std ``noise_std``); ``"brightness"``
            (contrast in [0.8, 1], shift in [-0.1, 0.1]); ``"shift"`` (one pixel up,
            down, left or right); ``"mixed"`` cycles through exact, noise and
            brightness (the copies :func:`find_near_duplicates` is built to find).
        noise_std: standard deviation of the ``"noise"`` copies.

    Returns:
        ``images`` ``(N + n, C, H, W)``, ``labels`` ``(N + n,)`` (the copies at the end)
        and ``pairs`` ``(n, 2)``: ``(source index, copy index)``.
    """
    x = _check_batch(images)
    if kind not in COPY_KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(COPY_KINDS)}")
    if not 0 <= n <= len(x):
        raise ValueError(f"n must be in [0, {len(x)}], got {n}")
    sources = torch.randperm(len(x), generator=generator)[:n]
    kinds = ("exact", "noise", "brightness") if kind == "mixed" else (kind,)
    copies = [_copy(x[s], kinds[k % len(kinds)], generator, noise_std)
              for k, s in enumerate(sources.tolist())]
    copies_t = torch.stack(copies) if copies else x[:0]
    pairs = torch.stack([sources, len(x) + torch.arange(n)], dim=1)     # (n, 2)
    return torch.cat([x, copies_t]), torch.cat([labels, labels[sources]]), pairs


def flip_labels(labels: Tensor, fraction: float, num_classes: int,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Give a random ``fraction`` of items a wrong label, uniform over the other classes.

    Args:
        labels: ``(N,)`` int in ``[0, num_classes)``.
        fraction: share of items to flip, in ``[0, 1]`` (rounded to whole items).
        num_classes: number of classes (at least 2).
        generator: the source of randomness.

    Returns:
        ``new_labels`` ``(N,)`` and ``flipped`` ``(M,)`` the sorted flipped indices.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    labels = torch.as_tensor(labels).long()
    flipped = torch.randperm(len(labels), generator=generator)[:round(fraction * len(labels))]
    offset = torch.randint(1, num_classes, (len(flipped),), generator=generator)
    new_labels = labels.clone()
    new_labels[flipped] = (labels[flipped] + offset) % num_classes      # never the old label
    return new_labels, flipped.sort().values


def _corrupt(x: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """A corrupt version of ``x`` ``(C, H, W)`` in ``[-1, 1]``: a common real bug per kind."""
    if kind == "non_finite":                                            # a failed decode
        out = x.clone()
        pixel = int(torch.randint(0, x.numel(), (), generator=generator))
        out.view(-1)[pixel] = float("nan")
        return out
    if kind == "out_of_range":                                          # left in 0..255
        return (x + 1) * 127.5
    if kind == "constant":                                              # a blank frame
        return torch.full_like(x, -1.0)
    return x.permute(1, 2, 0)                                           # (H, W, C): channels last


def plant_corruption(images: Tensor, n_per_kind: int, generator: torch.Generator,
                     kinds: Sequence[CorruptKind] = CORRUPT_KINDS,
                     ) -> tuple[list[Tensor], dict[str, list[int]]]:
    """Corrupt ``n_per_kind`` distinct random items per kind, as real pipelines do.

    Kinds: ``"non_finite"`` (one pixel NaN), ``"out_of_range"`` (left in
    ``0..255``), ``"constant"`` (a blank image), ``"wrong_shape"`` (channels last,
    ``(H, W, C)``).

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        n_per_kind: items per kind; ``len(kinds) * n_per_kind`` must not exceed ``N``.
        generator: the source of randomness.
        kinds: which kinds to plant.

    Returns:
        The ``N`` items as a list of tensors (shapes may now differ; ``torch.stack``
        them when no ``"wrong_shape"`` was planted) and ``{kind: sorted indices}``.
    """
    x = _check_batch(images)
    unknown = [k for k in kinds if k not in CORRUPT_KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; valid: {', '.join(CORRUPT_KINDS)}")
    if n_per_kind < 0 or n_per_kind * len(kinds) > len(x):
        raise ValueError(f"n_per_kind must be in [0, {len(x) // max(len(kinds), 1)}], "
                         f"got {n_per_kind}")
    chosen = torch.randperm(len(x), generator=generator)[:n_per_kind * len(kinds)]
    items: list[Tensor] = list(x)
    planted: dict[str, list[int]] = {}
    for k, kind in enumerate(kinds):
        idx = chosen[k * n_per_kind:(k + 1) * n_per_kind].sort().values.tolist()
        for i in idx:
            items[i] = _corrupt(x[i], kind, generator)
        planted[kind] = idx
    return items, planted


def detection_scores(found: Iterable[Hashable], planted: Iterable[Hashable]) -> dict[str, float]:
    """Precision and recall of what a check ``found`` against the ``planted`` truth.

    Items are anything hashable: indices, or ``(i, j)`` pairs with ``i < j``.
    Precision is $|F \\cap P| / |F|$ (1 when nothing was found), recall
    $|F \\cap P| / |P|$ (1 when nothing was planted).
    """
    found_set, planted_set = set(found), set(planted)
    hits = len(found_set & planted_set)
    return {"precision": hits / len(found_set) if found_set else 1.0,
            "recall": hits / len(planted_set) if planted_set else 1.0,
            "found": float(len(found_set)), "planted": float(len(planted_set))}
