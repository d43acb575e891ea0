"""Solutions to the exercises of chapter 04 (variational autoencoders)."""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def kl_to_standard_normal(mu: Tensor, logvar: Tensor) -> Tensor:
    """The KL divergence from a diagonal Gaussian to the standard normal, per row.

    Closed form: 0.5 * sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1).

    Args:
        mu: ``(B, D)`` means; logvar: ``(B, D)`` log-variances log(sigma^2).

    Returns:
        ``(B,)`` KL in nats.
    """
    var = logvar.exp()
    per_dim = 0.5 * (mu**2 + var - logvar - 1)          # (B, D), each term >= 0
    return per_dim.sum(dim=1)


def iwae_from_log_weights(log_w: Tensor) -> Tensor:
    """The IWAE bound log((w_1 + ... + w_k) / k) from log-weights, computed stably.

    Args:
        log_w: ``(k, B)`` values log p(x, z_i) - log q(z_i | x).

    Returns:
        ``(B,)`` bounds in nats.
    """
    k = log_w.shape[0]
    top = log_w.max(dim=0).values                        # (B,) subtract the max: no overflow
    return top + torch.log(torch.exp(log_w - top).sum(dim=0)) - math.log(k)


def slerp(z0: Tensor, z1: Tensor, t: Tensor) -> Tensor:
    """Spherical interpolation between two latents.

    Args:
        z0, z1: ``(D,)`` latent vectors.
        t: ``(T,)`` positions in ``[0, 1]``.

    Returns:
        ``(T, D)`` latents; ``t=0`` gives ``z0``, ``t=1`` gives ``z1``.
    """
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7))                 # angle between them
    t = t[:, None]                                                        # (T, 1)
    return (torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1) / torch.sin(omega)
