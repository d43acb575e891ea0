"""Denoising diffusion probabilistic models (DDPM): forward noising, loss, ancestral sampling.

Ho, Jain & Abbeel (2020), "Denoising diffusion probabilistic models":

* forward process, one step: $q(x_t \\mid x_{t-1}) = \\mathcal N(\\sqrt{\\alpha_t}\\,
  x_{t-1}, \\beta_t I)$ (eq. 2), :meth:`DDPM.q_step`;
* in closed form: $x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1 - \\bar\\alpha_t}\\,
  \\epsilon$ (eq. 4), :meth:`DDPM.q_sample`;
* training (Algorithm 1): $\\lVert \\epsilon - \\epsilon_\\theta(x_t, t)\\rVert^2$ with
  $t$ uniform (eq. 14, the "simple" loss), :meth:`DDPM.loss`;
* sampling (Algorithm 2): $x_{t-1} = \\frac{1}{\\sqrt{\\alpha_t}}\\big(x_t -
  \\frac{\\beta_t}{\\sqrt{1 - \\bar\\alpha_t}} \\epsilon_\\theta(x_t, t)\\big) + \\sigma_t z$
  (eq. 11), with $\\sigma_t^2 = \\beta_t$ or $\\tilde\\beta_t = \\frac{1 -
  \\bar\\alpha_{t-1}}{1 - \\bar\\alpha_t}\\beta_t$ (eqs. 6--7, section 3.2),
  :meth:`DDPM.p_sample` and :meth:`DDPM.sample`.

The network is an argument (any ``eps_model(xt, t)`` with ``t`` the 0-based step index,
``(B,)`` long): the algorithm does not care whether it is an MLP or a U-Net.
Steps are 0-based in code: index ``i`` is the paper's $t = i + 1$
(:mod:`aigc_course.diffusion.schedules`).

Simplified: no clipping of the predicted $x_0$ (Ho et al.'s image code clips to
$[-1, 1]$; 2-D points have no such range), no learned variances.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn
from tqdm.auto import tqdm

from aigc_course.diffusion.schedules import NoiseSchedule

Tensor = torch.Tensor
Variance = Literal["beta", "beta_tilde"]
VARIANCES: tuple[str, ...] = get_args(Variance)


def _at(values: Tensor, t: Tensor, ndim: int) -> Tensor:
    """``values[t]`` shaped ``(B, 1, ..., 1)`` to broadcast over a ``ndim``-d batch."""
    return values[t].reshape(-1, *([1] * (ndim - 1)))                    # (B, 1, ..., 1)


class DDPM:
    """The DDPM algorithm around a noise-prediction network $\\epsilon_\\theta$.

    Args:
        eps_model: maps ``xt`` ``(B, ...)`` and ``t`` ``(B,)`` to predicted noise ``(B, ...)``.
        schedule: the :class:`NoiseSchedule` (moved to the model's device).
        variance: the reverse-step variance $\\sigma_t^2$: ``"beta"`` ($\\beta_t$) or
            ``"beta_tilde"`` ($\\tilde\\beta_t$); Ho et al. found both similar (section 3.2).
    """

    def __init__(self, eps_model: nn.Module, schedule: NoiseSchedule,
                 variance: Variance = "beta") -> None:
        if variance not in VARIANCES:
            raise ValueError(f"unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
        self.eps_model = eps_model
        self.variance = variance
        param = next(eps_model.parameters(), None)
        self.schedule = schedule.to(param.device if param is not None else "cpu")

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return self.schedule.T

    @property
    def device(self) -> torch.device:
        return self.schedule.beta.device

    def to(self, device: torch.device | str) -> DDPM:
        """Move the network and the schedule to ``device``; returns ``self``."""
        self.eps_model.to(device)
        self.schedule = self.schedule.to(device)
        return self

    def _steps(self, t: int | Tensor, batch: int) -> Tensor:
        t = torch.as_tensor(t, dtype=torch.long, device=self.device)
        if t.ndim == 0:
            t = t.expand(batch)                                           # (B,)
        if t.shape != (batch,) or bool(((t < 0) | (t >= self.T)).any()):
            raise ValueError(f"t must be an int or a (B,)={batch} tensor of steps in "
                             f"[0, {self.T - 1}]")
        return t

    def q_step(self, x_prev: Tensor, t: int | Tensor, eps: Tensor | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """One forward step, $x_t = \\sqrt{\\alpha_t}\\, x_{t-1} + \\sqrt{\\beta_t}\\, \\epsilon$
        (eq. 2).

        Args:
            x_prev: ``(B, ...)`` points at step ``t - 1`` (the data when ``t = 0``).
            t: 0-based step index, an int or ``(B,)``.
            eps: ``(B, ...)`` noise; drawn when ``None``.
        """
        t = self._steps(t, x_prev.shape[0])
        if eps is None:
            eps = torch.randn(x_prev.shape, generator=generator).to(x_prev.device)
        alpha = _at(self.schedule.alpha, t, x_prev.ndim)                  # (B, 1, ...)
        beta = _at(self.schedule.beta, t, x_prev.ndim)
        return alpha.sqrt() * x_prev + beta.sqrt() * eps                  # eq. 2

    def q_sample(self, x0: Tensor, t: int | Tensor, eps: Tensor | None = None,
                 generator: torch.Generator | None = None) -> Tensor:
        """Sample $q(x_t \\mid x_0)$ in closed form (eq. 4):
        $x_t = \\sqrt{\\bar\\alpha_t}\\, x_0 + \\sqrt{1-\\bar\\alpha_t}\\, \\epsilon$.

        Args:
            x0: ``(B, ...)`` clean data.
            t: 0-based step index, an int or ``(B,)``.
            eps: ``(B, ...)`` standard Gaussian noise; drawn when ``None``.

        Returns:
            ``xt``, ``(B, ...)``.
        """
        t = self._steps(t, x0.shape[0])
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        alpha_bar = _at(self.schedule.alpha_bar, t, x0.ndim)              # (B, 1, ...)
        return alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps       # eq. 4

    def eps(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """$\\epsilon_\\theta(x_t, t)$, or $\\epsilon_\\theta(x_t, t, y)$ when labels ``y`` ``(B,)``
        are given (a class-conditional network; chapter 05)."""
        return self.eps_model(xt, t) if y is None else self.eps_model(xt, t, y)

    def loss(self, x0: Tensor, generator: torch.Generator | None = None,
             y: Tensor | None = None, *, t: Tensor | None = None,
             eps: Tensor | None = None) -> Tensor:
        """The simple loss (eq. 14; Algorithm 1), averaged over the batch and the dimensions:
        $\\mathbb E_{t, x_0, \\epsilon} \\lVert \\epsilon - \\epsilon_\\theta(x_t, t)\\rVert^2$.

        Args:
            x0: ``(B, ...)`` a batch of training data.
            y: optional ``(B,)`` class labels passed to a conditional network.
            t, eps: the steps ``(B,)`` and noise ``(B, ...)`` drawn outside (``None``: drawn
                here from ``generator``, $t$ first), so data-parallel ranks can draw the
                global batch's and keep their slice.

        Returns:
            A scalar tensor, differentiable with respect to the network's parameters.
        """
        b = x0.shape[0]
        if t is None:
            t = torch.randint(0, self.T, (b,), generator=generator).to(x0.device)  # t ~ U{1..T}
        if eps is None:
            eps = torch.randn(x0.shape, generator=generator).to(x0.device)
        xt = self.q_sample(x0, t, eps)
        return (eps - self.eps(xt, t, y)).pow(2).mean()

    @torch.no_grad()
    def p_sample(self, xt: Tensor, t: int | Tensor,
                 generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        """One reverse step $x_t \\to x_{t-1}$ (eq. 11; Algorithm 2, line 4).

        Args:
            xt: ``(B, ...)`` points at step ``t``.
            t: 0-based step index (an int or ``(B,)``); no noise is added at ``t = 0``.

        Returns:
            $x_{t-1}$, ``(B, ...)``.
        """
        t = self._steps(t, xt.shape[0])
        s = self.schedule
        alpha, beta = _at(s.alpha, t, xt.ndim), _at(s.beta, t, xt.ndim)  # (B, 1, ...)
        alpha_bar = _at(s.alpha_bar, t, xt.ndim)
        eps = self.eps(xt, t, y)
        mean = (xt - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()  # eq. 11
        if self.variance == "beta":
            var = beta
        else:                                                             # eq. 7
            alpha_bar_prev = _at(torch.cat([s.alpha_bar.new_ones(1), s.alpha_bar[:-1]]), t,
                                 xt.ndim)
            var = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta
        z = torch.randn(xt.shape, generator=generator).to(xt.device)
        nonzero = (t > 0).float().reshape(-1, *([1] * (xt.ndim - 1)))     # (B, 1, ...)
        return mean + nonzero * var.sqrt() * z

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None,
               progress: bool = False, y: Tensor | None = None) -> Tensor:
        """Ancestral sampling (Algorithm 2): $x_T \\sim \\mathcal N(0, I)$, then $T$ reverse steps.

        Args:
            shape: ``(B, ...)`` the batch shape of the samples.
            generator: random generator (CPU) for $x_T$ and every step's noise.
            progress: show a ``tqdm`` bar over the steps.
            y: optional ``(B,)`` class labels for a conditional network.

        Returns:
            $x_0$, ``shape``.
        """
        was_training = self.eps_model.training
        self.eps_model.eval()
        x = torch.randn(shape, generator=generator).to(self.device)         # x_T
        for i in tqdm(reversed(range(self.T)), total=self.T, disable=not progress,
                      desc="DDPM sampling"):
            x = self.p_sample(x, i, generator, y)
        self.eps_model.train(was_training)
        return x
