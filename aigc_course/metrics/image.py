"""PSNR and SSIM, from scratch, for images in $[-1, 1]$.

* PSNR: $10\\log_{10}(R^2 / \\mathrm{MSE})$ with data range $R$ ($R = 2$ for $[-1, 1]$).
* SSIM: Wang, Bovik, Sheikh & Simoncelli (2004), "Image quality assessment: from error
  visibility to structural similarity", eq. 13, with an $11\\times11$ Gaussian window
  ($\\sigma = 1.5$), $K_1 = 0.01$, $K_2 = 0.03$, averaged over the valid window positions
  (no padding), as scikit-image's ``structural_similarity(..., gaussian_weights=True,
  use_sample_covariance=False, data_range=R)`` does; tests check parity with it.

Simplified: small images (8x8) are smaller than the 11-pixel window, so the window is
shrunk to the largest odd size that fits and the Gaussian truncated to it; scikit-image
instead filters the reflected image with the full Gaussian, so at 8x8 the two differ
(by up to 0.2 measured). Compare SSIM values only at one image size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def _check_pair(x: Tensor, y: Tensor) -> None:
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"expected two (N, C, H, W) tensors of one shape, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")


def psnr(x: Tensor, y: Tensor, data_range: float = 2.0, eps: float = 1e-10) -> Tensor:
    """Peak signal-to-noise ratio per image, in dB: $10\\log_{10}(R^2 / \\mathrm{MSE})$.

    Args:
        x, y: ``(N, C, H, W)`` images.
        data_range: $R$, the span of valid values (2 for $[-1, 1]$).
        eps: floor on the MSE (identical images give $10\\log_{10}(R^2/\\epsilon)$).

    Returns:
        ``(N,)`` PSNR values.
    """
    _check_pair(x, y)
    mse = (x.double() - y.double()).pow(2).flatten(1).mean(1)            # (N,)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(eps))).float()


def gaussian_window(size: int = 11, sigma: float = 1.5) -> Tensor:
    """A normalised ``(size, size)`` Gaussian window, float64."""
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-r.pow(2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]                                        # (size, size)


def ssim(x: Tensor, y: Tensor, data_range: float = 2.0, win_size: int | None = None,
         sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> Tensor:
    """Mean structural similarity per image (Wang et al. 2004, eq. 13).

    $$\\mathrm{SSIM}(x, y) = \\frac{(2\\mu_x\\mu_y + C_1)(2\\sigma_{xy} + C_2)}
    {(\\mu_x^2 + \\mu_y^2 + C_1)(\\sigma_x^2 + \\sigma_y^2 + C_2)},\\quad
    C_1 = (K_1 R)^2,\\ C_2 = (K_2 R)^2,$$
    with local statistics under a Gaussian window, averaged over the valid positions
    and the channels.

    Args:
        x, y: ``(N, C, H, W)`` images.
        data_range: $R$ (2 for $[-1, 1]$).
        win_size: odd window side (``None``: 11, or the largest odd size fitting).
        sigma: the window's standard deviation.
        k1, k2: the stabilising constants.

    Returns:
        ``(N,)`` SSIM values in $[-1, 1]$.
    """
    _check_pair(x, y)
    n, c, h, w = x.shape
    if win_size is None:
        win_size = min(11, h - (h + 1) % 2, w - (w + 1) % 2)
    if win_size < 1 or win_size % 2 == 0 or win_size > min(h, w):
        raise ValueError(f"win_size must be odd and at most the image side, got {win_size}")
    window = gaussian_window(win_size, sigma).expand(c, 1, -1, -1)       # (C, 1, k, k)
    x, y = x.double(), y.double()

    def local_mean(t: Tensor) -> Tensor:
        return F.conv2d(t, window, groups=c)                              # (N, C, H-k+1, W-k+1)

    mu_x, mu_y = local_mean(x), local_mean(y)
    var_x = local_mean(x * x) - mu_x.pow(2)
    var_y = local_mean(y * y) - mu_y.pow(2)
    cov_xy = local_mean(x * y) - mu_x * mu_y
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * cov_xy + c2)) / \
        ((mu_x.pow(2) + mu_y.pow(2) + c1) * (var_x + var_y + c2))        # eq. 13
    return s.flatten(1).mean(1).float()


def psnr_of_mse(mse: float, data_range: float = 2.0) -> float:
    """PSNR in dB of a given mean squared error (a helper for reading loss curves)."""
    return 10 * math.log10(data_range**2 / mse)
