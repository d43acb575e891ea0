"""Corrupt items: NaN/Inf, values out of range, blank images, wrong shapes.

The failures real loading pipelines produce (a failed decode, pixels left in
``0..255``, a blank frame, channels last), each found by a direct test on the values
or the shape of every item; no model is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import numpy as np
import torch

from aigc_course.data.cleaning._common import Tensor, _check_batch

CorruptKind = Literal["non_finite", "out_of_range", "constant", "wrong_shape"]
CORRUPT_KINDS: tuple[CorruptKind, ...] = get_args(CorruptKind)


# --- corrupt items ----------------------------------------------------------------------

@dataclass
class CorruptReport:
    """Indices of corrupt items, by kind (an item can appear under several kinds).

    Attributes:
        non_finite: items holding a NaN or an infinity.
        out_of_range: items with a finite value outside ``value_range``.
        constant: blank items (all finite values equal).
        wrong_shape: items whose shape differs from the expected one (lists only).
    """

    non_finite: list[int] = field(default_factory=list)
    out_of_range: list[int] = field(default_factory=list)
    constant: list[int] = field(default_factory=list)
    wrong_shape: list[int] = field(default_factory=list)

    def indices(self) -> list[int]:
        """Every corrupt item once, sorted."""
        return sorted(set().union(*(getattr(self, f.name) for f in fields(self))))

    def to_dict(self) -> dict[str, list[int]]:
        """``{kind: indices}`` for each kind in :data:`CORRUPT_KINDS`."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    def __len__(self) -> int:
        return len(self.indices())


def _flags(x: Tensor, value_range: tuple[float, float], tol: float) -> Tensor:
    """``(N, 3)`` bool: non-finite, out of range, constant, for ``x`` ``(N, D)``."""
    finite = torch.isfinite(x)
    high = torch.where(finite, x, -torch.inf).amax(dim=1)               # (N,) -inf: none finite
    low = torch.where(finite, x, torch.inf).amin(dim=1)
    lo, hi = value_range
    out_of_range = (low < lo - tol) | (high > hi + tol)
    constant = finite.any(dim=1) & (high - low <= tol)
    return torch.stack([~finite.all(dim=1), out_of_range, constant], dim=1)


def _as_items(images: Any) -> tuple[list[Tensor], bool]:
    """``images`` as a list of float tensors, and whether it was one 4-D batch."""
    if isinstance(images, (Tensor, np.ndarray)):
        return list(_check_batch(images)), True
    if not isinstance(images, (list, tuple)):
        raise ValueError("images must be a 4-D (N, C, H, W) tensor or a list of (C, H, W) "
                         f"arrays, got {type(images).__name__}")
    items = []
    for k, item in enumerate(images):
        if not isinstance(item, (Tensor, np.ndarray)):
            raise ValueError(f"images[{k}] must be a tensor or an array, got "
                             f"{type(item).__name__}")
        items.append(torch.as_tensor(item).float())
    return items, False


def find_corrupt(images: Tensor | Sequence[Tensor | np.ndarray],
                 expected_shape: tuple[int, int, int] | None = None,
                 value_range: tuple[float, float] = (-1.0, 1.0),
                 tol: float = 1e-6) -> CorruptReport:
    """Find NaN/Inf, out-of-range, blank and wrongly shaped items.

    Args:
        images: a ``(N, C, H, W)`` tensor or array, or a list of ``N`` arrays that may
            differ in shape (as read from files).
        expected_shape: the ``(C, H, W)`` every item should have; ``None``: the most
            common shape in the list (a 4-D batch always has one shape).
        value_range: the valid ``(low, high)`` pixel values.
        tol: slack for the range test and for calling an item constant.

    Returns:
        A :class:`CorruptReport`.

    Raises:
        ValueError: ``images`` is neither a 4-D tensor nor a list of arrays, or
            ``value_range``/``expected_shape`` is malformed.
    """
    lo, hi = value_range
    if not lo < hi:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if expected_shape is not None and len(expected_shape) != 3:
        raise ValueError(f"expected_shape must be (C, H, W), got {expected_shape}")
    items, is_batch = _as_items(images)
    report = CorruptReport()
    if not items:
        return report
    shapes = [tuple(item.shape) for item in items]
    expected = (tuple(expected_shape) if expected_shape is not None
                else max(set(shapes), key=shapes.count))
    report.wrong_shape = [k for k, s in enumerate(shapes) if s != expected]
    if is_batch:
        flags = _flags(torch.stack(items).flatten(1), value_range, tol)  # (N, 3)
    else:
        flags = torch.cat([_flags(item.reshape(1, -1), value_range, tol) for item in items])
    report.non_finite, report.out_of_range, report.constant = (
        torch.nonzero(flags[:, k]).flatten().tolist() for k in range(3))
    return report
