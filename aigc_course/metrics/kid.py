"""Kernel Inception Distance (KID): an unbiased MMD² between feature sets.

Bińkowski, Sutherland, Arbel & Gretton (2018), "Demystifying MMD GANs", section 4:
KID is the squared maximum mean discrepancy (Gretton et al. 2012) between real and
generated features with the cubic polynomial kernel

$$k(x, y) = \\Big(\\frac{x^\\top y}{d} + 1\\Big)^3,$$

estimated without bias (the U-statistic, $i \\ne i'$ in the within-set terms):

$$\\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{m(m-1)}\\sum_{i\\ne i'} k(x_i, x_{i'})
+ \\frac{1}{n(n-1)}\\sum_{j\\ne j'} k(y_j, y_{j'}) - \\frac{2}{mn}\\sum_{i,j} k(x_i, y_j).$$

Unlike FID, its expected value does not depend on the sample size, so KIDs of
different sample sizes are comparable; it can be slightly negative. The reference
code averages over ``subsets`` random subsets of ``subset_size`` points of each set
(drawn without replacement) and reports the mean and the standard deviation over
subsets; this module does the same, with torch-fidelity's random draws (NumPy
``RandomState(seed).choice``, generated first), so a seed gives torch-fidelity's number.
Nothing is simplified.
"""

from __future__ import annotations

import numpy as np

from aigc_course.metrics.frechet import ArrayLike, _as_float64


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                      coef: float = 1.0) -> np.ndarray:
    """$k(x, y) = (\\gamma\\, x^\\top y + c)^{p}$ for all pairs, $\\gamma = 1/d$ by default.

    Args:
        x: ``(m, d)``; y: ``(n, d)``.
        degree: $p$. gamma: $\\gamma$ (``None``: $1/d$). coef: $c$.

    Returns:
        ``(m, n)`` kernel matrix.
    """
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (gamma * (x @ y.T) + coef) ** degree                           # (m, n)


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """The unbiased MMD² from the three kernel matrices (Gretton et al. 2012, eq. 3)."""
    m, n = len(k_xx), len(k_yy)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))             # i != i'
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))             # j != j'
    return float(within_x + within_y - 2.0 * k_xy.mean())                # - 2/(mn) sum k(x, y)


def kid_values(real: ArrayLike, fake: ArrayLike, subsets: int = 100,
               subset_size: int | None = 1000, degree: int = 3, gamma: float | None = None,
               coef: float = 1.0, seed: int = 0) -> np.ndarray:
    """The MMD² of each random subset pair (see :func:`kid_from_features`), ``(subsets,)``."""
    x, y = _as_float64(real, "real"), _as_float64(fake, "fake")
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake must be (M, d) and (N, d), got {x.shape} and {y.shape}")
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    size = min(len(x), len(y), subset_size if subset_size is not None else len(x))
    if size < 2:
        raise ValueError(f"KID needs at least 2 points per set, got {len(x)} and {len(y)}")
    k_xx = polynomial_kernel(x, x, degree, gamma, coef)                 # (M, M), once
    k_yy = polynomial_kernel(y, y, degree, gamma, coef)                 # (N, N)
    k_xy = polynomial_kernel(x, y, degree, gamma, coef)                 # (M, N)
    rng = np.random.RandomState(seed)
    values = np.zeros(subsets)
    for s in range(subsets):
        j = rng.choice(len(y), size, replace=False)                     # generated first,
        i = rng.choice(len(x), size, replace=False)                     # as torch-fidelity
        a = np.zeros(len(x))
        a[i] = 1.0                                                      # subset indicators, so
        b = np.zeros(len(y))
        b[j] = 1.0                                                      # a^T K b sums a block
        within_x = (a @ k_xx @ a - np.diag(k_xx)[i].sum()) / (size * (size - 1))   # i != i'
        within_y = (b @ k_yy @ b - np.diag(k_yy)[j].sum()) / (size * (size - 1))   # j != j'
        values[s] = within_x + within_y - 2.0 * (a @ k_xy @ b) / size**2          # MMD²_u
    return values


def kid_from_features(real: ArrayLike, fake: ArrayLike, subsets: int = 100,
                      subset_size: int | None = 1000, degree: int = 3,
                      gamma: float | None = None, coef: float = 1.0,
                      seed: int = 0) -> tuple[float, float]:
    """KID between real and generated features: mean and std of MMD² over subsets.

    Args:
        real: ``(M, d)`` features of real images.
        fake: ``(N, d)`` features of generated images.
        subsets: how many random subset pairs to average over.
        subset_size: points per subset, clipped to ``min(M, N)`` (``None``: ``min(M, N)``).
            With ``subset_size = M = N`` every subset is the whole set.
        degree, gamma, coef: the polynomial kernel (defaults: the cubic kernel of KID).
        seed: seeds ``numpy.random.RandomState`` for the subsets.

    Returns:
        ``(mean, std)`` of $\\widehat{\\mathrm{MMD}}^2_u$ over subsets (std with ``ddof=0``,
        as torch-fidelity).

    Raises:
        ValueError: not 2-D, different ``d``, fewer than 2 points, or ``subsets < 1``.
    """
    values = kid_values(real, fake, subsets, subset_size, degree, gamma, coef, seed)
    return float(values.mean()), float(values.std())
