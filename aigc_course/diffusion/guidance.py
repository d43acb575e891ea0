"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a conditional network.

Train one network with labels dropped (replaced by the null label $\\varnothing$) with
probability $p_\\text{uncond}$; sample with
$$\\tilde\\epsilon_\\theta(x_t, t, y) = (1 + w)\\,\\epsilon_\\theta(x_t, t, y)
- w\\,\\epsilon_\\theta(x_t, t, \\varnothing)$$
(Ho & Salimans 2022, eq. 6). $w = 0$ is the plain conditional model; larger $w$ trades
diversity for fidelity to the label. :class:`Guided` is itself an ``eps_model``, so
:class:`~aigc_course.diffusion.DDPM` and :class:`~aigc_course.diffusion.DDIM` use it
unchanged. One batched call evaluates both branches.
"""

from __future__ import annotations

import torch
from torch import nn

from aigc_course.diffusion.mixture_score import MixtureDenoiser
from aigc_course.models.unet import FlatDenoiser, UNet

Tensor = torch.Tensor


def drop_labels(y: Tensor, p_uncond: float, num_classes: int,
                generator: torch.Generator | None = None) -> Tensor:
    """Replace each label by the null label ``num_classes`` with probability ``p_uncond``."""
    if not 0 <= p_uncond <= 1:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond}")
    drop = torch.rand(y.shape, generator=generator).to(y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, num_classes), y)


class Guided(nn.Module):
    """$\\tilde\\epsilon_\\theta(x_t, t, y)$ with guidance scale ``w`` (Ho & Salimans eq. 6).

    Args:
        eps_model: a conditional network ``eps_model(xt, t, y)`` that reads ``y=None`` as
            the null label (or the exact denoiser of a mixture, :class:`MixtureDenoiser`).
        w: guidance scale, ``>= 0``.
    """

    eps_model: UNet | FlatDenoiser | MixtureDenoiser

    def __init__(self, eps_model: UNet | FlatDenoiser | MixtureDenoiser, w: float) -> None:
        super().__init__()
        if w < 0:
            raise ValueError(f"guidance scale w must be >= 0, got {w}")
        self.eps_model, self.w = eps_model, float(w)

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None or self.w == 0:
            return self.eps_model(xt, t, y)
        b = xt.shape[0]
        null = torch.full_like(y, self.eps_model.config.num_classes)
        eps = self.eps_model(torch.cat([xt, xt]), torch.cat([t, t]), torch.cat([y, null]))
        eps_cond, eps_uncond = eps[:b], eps[b:]                           # (B, ...) each
        return (1 + self.w) * eps_cond - self.w * eps_uncond              # eq. 6
