"""Two-dimensional toy distributions for the math chapters.

Each generator returns ``(points, labels)``: ``points`` of shape ``(n, 2)``
(float32) and ``labels`` of shape ``(n,)`` (int64) naming the mode, moon or arm a
point was drawn from, so mode coverage can be counted.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def ring(n: int, generator: torch.Generator, modes: int = 8, radius: float = 2.0,
         std: float = 0.05) -> tuple[Tensor, Tensor]:
    """A ring of ``modes`` Gaussians with standard deviation ``std`` on a circle.

    The ring of 8 Gaussians is the standard mode-collapse benchmark (Metz et al. 2017).
    """
    labels = torch.randint(0, modes, (n,), generator=generator)
    angle = 2 * math.pi * labels.float() / modes                       # (n,)
    centres = radius * torch.stack([angle.cos(), angle.sin()], dim=1)  # (n, 2)
    points = centres + std * torch.randn(n, 2, generator=generator)
    return points.float(), labels.long()


def ring_centres(modes: int = 8, radius: float = 2.0) -> Tensor:
    """The ``(modes, 2)`` centres of :func:`ring`'s Gaussians."""
    angle = 2 * math.pi * torch.arange(modes).float() / modes
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


def moons(n: int, generator: torch.Generator, noise: float = 0.08) -> tuple[Tensor, Tensor]:
    """Two interleaving half circles (as scikit-learn's ``make_moons``), centred."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    t = math.pi * torch.rand(n, generator=generator)                   # (n,)
    upper = torch.stack([t.cos(), t.sin()], dim=1)                     # (n, 2)
    lower = torch.stack([1 - t.cos(), 0.5 - t.sin()], dim=1)           # (n, 2)
    points = torch.where(labels[:, None] == 0, upper, lower)
    points = points - torch.tensor([0.5, 0.25])
    points = points + noise * torch.randn(n, 2, generator=generator)
    return points.float(), labels.long()


def spiral(n: int, generator: torch.Generator, arms: int = 2, turns: float = 1.5,
           noise: float = 0.05) -> tuple[Tensor, Tensor]:
    """``arms`` interleaved Archimedean spiral arms in roughly ``[-2, 2]^2``."""
    labels = torch.randint(0, arms, (n,), generator=generator)
    u = torch.rand(n, generator=generator).sqrt()                      # denser far out
    theta = 2 * math.pi * turns * u + 2 * math.pi * labels.float() / arms
    r = 2.0 * u
    points = torch.stack([r * theta.cos(), r * theta.sin()], dim=1)    # (n, 2)
    points = points + noise * torch.randn(n, 2, generator=generator)
    return points.float(), labels.long()
