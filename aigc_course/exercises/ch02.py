"""Solutions to the exercises of chapter 02 (generative modelling foundations).

Docstrings use plain-text math: ``make student`` copies them into the stubs.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def kl_normal(mu1: float, sigma1: float, mu2: float, sigma2: float) -> float:
    """KL(N(mu1, sigma1^2) || N(mu2, sigma2^2)) between two 1-D Gaussians, in nats.

    Derivation: log p(x) - log q(x) = log(sigma2 / sigma1) - (x - mu1)^2 / (2 sigma1^2)
    + (x - mu2)^2 / (2 sigma2^2). Under x ~ p, E(x - mu1)^2 = sigma1^2 and
    E(x - mu2)^2 = sigma1^2 + (mu1 - mu2)^2, so
    KL = log(sigma2 / sigma1) + (sigma1^2 + (mu1 - mu2)^2) / (2 sigma2^2) - 1/2.

    Args:
        mu1, sigma1: mean and standard deviation (> 0) of p.
        mu2, sigma2: mean and standard deviation (> 0) of q.
    """
    return (math.log(sigma2 / sigma1) + (sigma1**2 + (mu1 - mu2) ** 2) / (2 * sigma2**2)
            - 0.5)


def mc_error_curve(sizes: list[int], repeats: int = 200, seed: int = 0) -> list[float]:
    """RMS error of the Monte Carlo estimate of KL(p || q), per sample size.

    p = N(0, 1), q = N(1, 2^2). For each n in ``sizes``, draw ``repeats`` independent
    estimates mean_i [log p(x_i) - log q(x_i)], x_i ~ p, and compare them with the
    closed form. The error should fall as 1 / sqrt(n).

    Args:
        sizes: sample sizes n.
        repeats: independent estimates per size.
        seed: seeds the draws.

    Returns:
        One RMS error per size.
    """
    g = torch.Generator().manual_seed(seed)
    exact = kl_normal(0.0, 1.0, 1.0, 2.0)
    errors = []
    for n in sizes:
        x = torch.randn(repeats, n, generator=g, dtype=torch.float64)       # (repeats, n) ~ p
        log_p = -0.5 * x**2                                                 # constants cancel
        log_q = -0.5 * ((x - 1) / 2) ** 2 - math.log(2)
        estimates = (log_p - log_q).mean(1)                                 # (repeats,)
        errors.append(float(((estimates - exact) ** 2).mean().sqrt()))
    return errors


def wasserstein1_sorted(x: Tensor, y: Tensor) -> float:
    """W1 between two 1-D samples of the same size: match the sorted values.

    In 1-D the optimal transport plan sends the i-th smallest x to the i-th smallest y,
    so W1 = mean_i |x_(i) - y_(i)|.

    Args:
        x, y: ``(n,)`` samples.
    """
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of the same size, got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}")
    return float((x.double().sort().values - y.double().sort().values).abs().mean())
