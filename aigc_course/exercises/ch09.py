"""Solutions to the exercises of chapter 09 (compression)."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def fake_quantize_rows(w: Tensor, bits: int) -> Tensor:
    """Symmetric per-output-channel fake quantisation of ``w`` ``(C, ...)`` to ``bits`` bits.

    $s_c = \\max|w_c| / (2^{b-1} - 1)$, $q = \\mathrm{clamp}(\\lfloor w / s_c \\rceil,
    -(2^{b-1} - 1), 2^{b-1} - 1)$, $\\hat w = s_c q$ (eq. eq-09-quant, one scale per row).
    """
    top = 2 ** (bits - 1) - 1
    s = w.abs().flatten(1).amax(dim=1).clamp_min(1e-12) / top         # (C,)
    s = s.view(-1, *([1] * (w.ndim - 1)))                             # (C, 1, ...)
    return torch.clamp(torch.round(w / s), -top, top) * s


def global_magnitude_masks(weights: list[Tensor], sparsity: float) -> list[Tensor]:
    """Masks keeping all but the ``round(sparsity * N)`` smallest ``|w|`` of all tensors
    together (eq. eq-09-magnitude; one threshold for every layer, ties broken by position)."""
    flat = torch.cat([w.detach().abs().flatten() for w in weights])    # (N,)
    k = round(sparsity * flat.numel())
    keep = torch.ones_like(flat, dtype=torch.bool)
    if k:
        keep[flat.argsort(stable=True)[:k]] = False
    masks, start = [], 0
    for w in weights:
        masks.append(keep[start:start + w.numel()].view_as(w))
        start += w.numel()
    return masks
