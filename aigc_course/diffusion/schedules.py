"""Noise schedules of denoising diffusion: $\\beta_t$, $\\alpha_t = 1 - \\beta_t$, $\\bar\\alpha_t$.

The forward process adds Gaussian noise of variance $\\beta_t$ at step $t$ (Ho et al.
2020, eq. 2); after $t$ steps the signal left is $\\bar\\alpha_t = \\prod_{s \\le t}
\\alpha_s$ (their eq. 4). Two schedules:

* :meth:`NoiseSchedule.linear` -- $\\beta_t$ linear from $10^{-4}$ to $0.02$ over
  $T = 1000$ steps (Ho et al. 2020, section 4);
* :meth:`NoiseSchedule.cosine` -- $\\bar\\alpha_t = f(t)/f(0)$,
  $f(t) = \\cos^2\\!\\big(\\frac{t/T + s}{1 + s}\\frac\\pi2\\big)$, $s = 0.008$, with
  $\\beta_t = 1 - \\bar\\alpha_t / \\bar\\alpha_{t-1}$ clipped at 0.999 (Nichol & Dhariwal
  2021, "Improved denoising diffusion probabilistic models", eq. 17), which destroys
  information more slowly at the start.

**Indexing.** The papers number steps $t = 1, \\dots, T$; the tensors here are 0-based,
so ``beta[i]`` is $\\beta_{i+1}$ and ``alpha_bar[-1]`` is $\\bar\\alpha_T$. Samplers and
networks see the 0-based index ``i`` (as in diffusers and Ho et al.'s code).

Computed in float64, stored as float32 (the products of 1,000 factors are then exact to
about $10^{-7}$ relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch

Tensor = torch.Tensor
ScheduleName = Literal["linear", "cosine"]
SCHEDULES: tuple[str, ...] = get_args(ScheduleName)


@dataclass(frozen=True)
class NoiseSchedule:
    """The per-step tensors of a diffusion process, each of shape ``(T,)``.

    Attributes:
        beta: $\\beta_t$, the variance of the noise added at each step.
        alpha: $\\alpha_t = 1 - \\beta_t$.
        alpha_bar: $\\bar\\alpha_t = \\prod_{s=1}^t \\alpha_s$ (Ho et al. 2020, eq. 4).
    """

    beta: Tensor
    alpha: Tensor
    alpha_bar: Tensor

    @classmethod
    def from_beta(cls, beta: Tensor) -> NoiseSchedule:
        """A schedule from its $\\beta_t$ ``(T,)``, each in $(0, 1)$."""
        beta = torch.as_tensor(beta, dtype=torch.float64)
        if beta.ndim != 1 or len(beta) == 0 or not bool(((beta > 0) & (beta < 1)).all()):
            raise ValueError("beta must be a non-empty 1-D tensor with values in (0, 1)")
        alpha = 1.0 - beta
        alpha_bar = torch.cumprod(alpha, dim=0)                          # Ho et al. eq. 4
        return cls(beta.float(), alpha.float(), alpha_bar.float())

    @classmethod
    def linear(cls, T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> NoiseSchedule:
        """$\\beta_t$ evenly spaced from ``beta_start`` to ``beta_end`` (Ho et al. 2020, section 4).

        With $T = 1000$ (the paper's setting) $\\bar\\alpha_T \\approx 4.04 \\times 10^{-5}$:
        almost no signal is left. With far fewer steps the same end points leave too
        much; scale both by $1000/T$ (as Nichol & Dhariwal's code does).
        """
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        if not 0 < beta_start <= beta_end < 1:
            raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
        return cls.from_beta(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))

    @classmethod
    def cosine(cls, T: int, s: float = 0.008, max_beta: float = 0.999) -> NoiseSchedule:
        """The cosine schedule (Nichol & Dhariwal 2021, eq. 17), $\\beta_t \\le$ ``max_beta``."""
        if T < 1:
            raise ValueError(f"T must be >= 1, got {T}")
        steps = torch.arange(T + 1, dtype=torch.float64)                  # t = 0 .. T
        f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2      # f(t), eq. 17
        alpha_bar = f / f[0]                                             # (T+1,)
        beta = 1 - alpha_bar[1:] / alpha_bar[:-1]                        # (T,)
        return cls.from_beta(beta.clamp(max=max_beta))

    @classmethod
    def from_name(cls, name: ScheduleName, T: int) -> NoiseSchedule:
        """``"linear"`` or ``"cosine"`` with ``T`` steps, usable for any ``T``.

        ``"linear"`` scales Ho et al.'s end points by $1000/T$ (capped at 0.999), as
        Nichol & Dhariwal's code does, so that $\\bar\\alpha_T \\approx 0$ with few steps
        too; at $T = 1000$ it is exactly :meth:`linear`.
        """
        if name == "linear":
            scale = 1000 / T
            return cls.linear(T, 1e-4 * scale, min(0.02 * scale, 0.999))
        if name == "cosine":
            return cls.cosine(T)
        raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULES)}")

    @property
    def T(self) -> int:
        """The number of steps."""
        return len(self.beta)

    def to(self, device: torch.device | str) -> NoiseSchedule:
        """The same schedule with its tensors on ``device``."""
        return NoiseSchedule(self.beta.to(device), self.alpha.to(device),
                             self.alpha_bar.to(device))
