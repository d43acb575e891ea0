"""Solutions to the exercises of chapter 05 (diffusion models)."""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def q_sample(x0: Tensor, t: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """Sample q(x_t | x_0) in closed form: sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps.

    Args:
        x0: ``(B, ...)`` clean data; t: ``(B,)`` 0-based steps; eps: ``(B, ...)`` noise;
        alpha_bar: ``(T,)`` the schedule's cumulative products.

    Returns:
        ``(B, ...)`` noisy data x_t.
    """
    a = alpha_bar[t].reshape(-1, *([1] * (x0.ndim - 1)))                 # (B, 1, ..., 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps


def posterior(x0: Tensor, xt: Tensor, t: int, beta: Tensor,
              alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, eqs. 6-7).

    mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0
         + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) xt,
    variance = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t, with alpha_bar_{-1} = 1.

    Args:
        x0, xt: ``(B, ...)``; t: 0-based step (>= 0); beta, alpha_bar: ``(T,)``.

    Returns:
        ``mean`` ``(B, ...)`` and the scalar ``variance`` (a 0-d tensor).
    """
    alpha_bar_t = alpha_bar[t]
    alpha_bar_prev = alpha_bar[t - 1] if t > 0 else alpha_bar.new_tensor(1.0)
    alpha_t = 1 - beta[t]
    mean = (alpha_bar_prev.sqrt() * beta[t] / (1 - alpha_bar_t) * x0
            + alpha_t.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * xt)
    variance = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta[t]
    return mean, variance


def guided_eps(eps_cond: Tensor, eps_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance: (1 + w) eps_cond - w eps_uncond (Ho & Salimans 2022, eq. 6)."""
    return (1 + w) * eps_cond - w * eps_uncond
