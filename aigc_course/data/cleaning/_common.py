"""What the cleaning checks share: the batch check and 8-bit quantisation.

Every check takes images as a ``(N, C, H, W)`` tensor (or array) and goes through
:func:`_check_batch`; :func:`quantise` maps ``[-1, 1]`` floats to the 256 levels an
8-bit image file holds (the exact-duplicate rule of
:mod:`aigc_course.data.cleaning.duplicates`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

Tensor = torch.Tensor


# --- input checks -----------------------------------------------------------------------

def _check_batch(images: Any, name: str = "images") -> Tensor:
    """``images`` as a float ``(N, C, H, W)`` tensor, or a ``ValueError``."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"{name} must be a 4-D (N, C, H, W) tensor, got {got}")
    return images.float()


def quantise(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Map images in ``value_range`` to ``uint8`` levels ``0..255`` (clamped, rounded).

    Args:
        images: ``(N, C, H, W)`` floats.
        value_range: the values that map to 0 and 255.

    Returns:
        ``(N, C, H, W)`` ``uint8``.
    """
    lo, hi = value_range
    x = (_check_batch(images) - lo) / (hi - lo) * 255.0
    return x.nan_to_num(0.0).round().clamp(0, 255).to(torch.uint8)
