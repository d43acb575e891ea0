"""Two-sample distances: how far generated points are from real ones, with no density.

A GAN or a diffusion model gives samples, not a density, so KL cannot be computed.
Two-sample distances compare the samples directly:

* :func:`energy_distance` -- Székely & Rizzo (2013), "Energy statistics: a class of
  statistics based on distances", eq. (2.1):
  $\\mathcal E(P, Q) = 2\\,\\mathbb E\\lVert X - Y\\rVert - \\mathbb E\\lVert X - X'\\rVert
  - \\mathbb E\\lVert Y - Y'\\rVert \\ge 0$, zero only when $P = Q$. No bandwidth to choose.
* :func:`mmd2` -- the squared maximum mean discrepancy with a Gaussian kernel
  $k(a, b) = \\exp(-\\lVert a - b\\rVert^2 / 2\\sigma^2)$, unbiased estimator of Gretton et
  al. (2012), "A kernel two-sample test", eq. (3). The bandwidth rule is the median
  heuristic (their section 8): $\\sigma$ is the median distance between points of the
  *reference* sample ``x``, so every model compared with the same real data is measured
  with the same kernel. (Energy distance is MMD with the kernel
  $-\\lVert a - b\\rVert$, Sejdinovic et al. 2013.)

Both use U-statistics for the within-sample terms (the diagonal $i = j$ left out), so the
expected value for two samples of the same distribution is 0 and an estimate can be
slightly negative. Cost is $O(nm)$ memory and time: a few thousand points in 2-D.

Simplified: one kernel bandwidth rather than a family; no permutation test (chapter 08
discusses how many samples a metric needs).
"""

from __future__ import annotations

from typing import Literal

import torch

Tensor = torch.Tensor
Bandwidth = float | Literal["median"]


def _check_pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must be (n, D) and (m, D), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    if len(x) < 2 or len(y) < 2:
        raise ValueError(f"need at least 2 points in each sample, got {len(x)} and {len(y)}")
    return x.detach().double(), y.detach().double()


def _mean_off_diagonal(matrix: Tensor) -> Tensor:
    """Mean of a square matrix's entries with $i \\ne j$ (a U-statistic)."""
    n = matrix.shape[0]
    return (matrix.sum() - matrix.diagonal().sum()) / (n * (n - 1))


def median_bandwidth(x: Tensor) -> float:
    """The median heuristic: the median of the distances $\\lVert x_i - x_j\\rVert$, $i < j$."""
    x = x.detach().double()
    d = torch.cdist(x, x)                                               # (n, n)
    i, j = torch.triu_indices(len(x), len(x), offset=1)
    return float(d[i, j].median())


def energy_distance(x: Tensor, y: Tensor) -> float:
    """Energy distance between samples ``x`` ``(n, D)`` and ``y`` ``(m, D)``.

    $$\\hat{\\mathcal E} = \\frac{2}{nm} \\sum_{i,j} \\lVert x_i - y_j\\rVert
    - \\frac{1}{n(n-1)} \\sum_{i \\ne i'} \\lVert x_i - x_{i'}\\rVert
    - \\frac{1}{m(m-1)} \\sum_{j \\ne j'} \\lVert y_j - y_{j'}\\rVert$$
    (Székely & Rizzo 2013, eq. 2.1, with U-statistics). Units: those of the points.
    """
    x, y = _check_pair(x, y)
    xy = torch.cdist(x, y).mean()                                       # E||X - Y||
    xx = _mean_off_diagonal(torch.cdist(x, x))                          # E||X - X'||
    yy = _mean_off_diagonal(torch.cdist(y, y))                          # E||Y - Y'||
    return float(2 * xy - xx - yy)


def mmd2(x: Tensor, y: Tensor, bandwidth: Bandwidth = "median") -> float:
    """Unbiased squared MMD with a Gaussian kernel (Gretton et al. 2012, eq. 3).

    $$\\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{n(n-1)}\\sum_{i\\ne i'} k(x_i, x_{i'})
    + \\frac{1}{m(m-1)}\\sum_{j \\ne j'} k(y_j, y_{j'}) - \\frac{2}{nm}\\sum_{i,j} k(x_i, y_j)$$

    Args:
        x: ``(n, D)`` the reference (real) sample; the median heuristic uses it alone.
        y: ``(m, D)`` the sample to judge.
        bandwidth: the kernel's $\\sigma$ (in the points' units), or ``"median"``.

    Returns:
        $\\widehat{\\mathrm{MMD}}^2_u$, in $[-1, 2]$ (0 in expectation when $P = Q$).
    """
    x, y = _check_pair(x, y)
    if bandwidth == "median":
        sigma = median_bandwidth(x)
    elif isinstance(bandwidth, int | float) and bandwidth > 0:
        sigma = float(bandwidth)
    else:
        raise ValueError(f"bandwidth must be a positive number or 'median', got {bandwidth!r}")
    gamma = 1.0 / (2 * sigma**2)
    k_xx = torch.exp(-gamma * torch.cdist(x, x).pow(2))                 # (n, n)
    k_yy = torch.exp(-gamma * torch.cdist(y, y).pow(2))                 # (m, m)
    k_xy = torch.exp(-gamma * torch.cdist(x, y).pow(2))                 # (n, m)
    return float(_mean_off_diagonal(k_xx) + _mean_off_diagonal(k_yy) - 2 * k_xy.mean())


def mode_coverage(samples: Tensor, centres: Tensor, radius: float = 0.25) -> dict[str, float]:
    """How many modes samples reach, and what share of them sit on a mode.

    A sample is *on* mode $k$ when it lies within ``radius`` of centre $c_k$ and of no
    closer centre; a mode is *covered* when at least one sample is on it (the mode count
    of the ring-of-Gaussians benchmark, Metz et al. 2017).

    Args:
        samples: ``(N, D)`` points.
        centres: ``(K, D)`` mode centres.
        radius: the largest distance that counts as on a mode.

    Returns:
        ``modes``: covered modes (0 to K); ``on_mode``: share of samples on a mode.
    """
    if samples.ndim != 2 or centres.ndim != 2 or samples.shape[1] != centres.shape[1]:
        raise ValueError(f"samples (N, D) and centres (K, D) must share D, got "
                         f"{tuple(samples.shape)} and {tuple(centres.shape)}")
    nearest = torch.cdist(samples, centres).min(dim=1)                 # (N,) distances, indices
    near = nearest.values < radius
    return {"modes": torch.unique(nearest.indices[near]).numel(),
            "on_mode": near.float().mean().item()}
