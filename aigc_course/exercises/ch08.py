"""Solutions to the exercises of chapter 08 (evaluating generative models)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    """The Fréchet distance between Gaussians fitted to two feature sets.

    $d^2 = \\lVert \\mu_r - \\mu_g \\rVert^2 + \\mathrm{tr}(\\Sigma_r + \\Sigma_g
    - 2 (\\Sigma_r \\Sigma_g)^{1/2})$ (Heusel et al. 2017). Only the *trace* of the square
    root is needed: $\\Sigma_r \\Sigma_g$ is similar to the symmetric PSD matrix
    $\\Sigma_r^{1/2} \\Sigma_g \\Sigma_r^{1/2}$, so its eigenvalues $\\lambda_i$ are real and
    $\\ge 0$ and $\\mathrm{tr}(\\Sigma_r \\Sigma_g)^{1/2} = \\sum_i \\sqrt{\\lambda_i}$. Round-off
    makes some of them slightly negative or complex when a covariance is singular (dead
    features): keep the real part and clip at 0.

    Args:
        real: ``(M, d)`` features; fake: ``(N, d)`` features.

    Returns:
        The squared distance (the FID when the features are Inception's).
    """
    mu_r, mu_g = real.mean(axis=0), fake.mean(axis=0)                  # (d,), (d,)
    sigma_r = np.cov(real, rowvar=False)                                # (d, d), 1/(M-1)
    sigma_g = np.cov(fake, rowvar=False)                                # (d, d)
    lam = np.linalg.eigvals(sigma_r @ sigma_g).real.clip(min=0)        # (d,) eigenvalues
    trace_sqrt = np.sqrt(lam).sum()                                     # tr (Sigma_r Sigma_g)^1/2
    return float(((mu_r - mu_g) ** 2).sum() + np.trace(sigma_r) + np.trace(sigma_g)
                 - 2 * trace_sqrt)


def kid_single(real: np.ndarray, fake: np.ndarray) -> float:
    """The unbiased MMD² with the cubic kernel $k(x, y) = (x^\\top y / d + 1)^3$: KID on one set.

    $\\widehat{\\mathrm{MMD}}^2_u = \\frac{1}{m(m-1)}\\sum_{i \\ne i'} k(x_i, x_{i'})
    + \\frac{1}{n(n-1)}\\sum_{j \\ne j'} k(y_j, y_{j'}) - \\frac{2}{mn}\\sum_{i,j} k(x_i, y_j)$
    (Gretton et al. 2012; Bińkowski et al. 2018): the diagonal $k(x_i, x_i)$ is left out,
    which is what makes it unbiased (and able to go slightly below zero).

    Args:
        real: ``(m, d)`` features; fake: ``(n, d)`` features.
    """
    d = real.shape[1]
    k_xx = (real @ real.T / d + 1) ** 3                                 # (m, m)
    k_yy = (fake @ fake.T / d + 1) ** 3                                 # (n, n)
    k_xy = (real @ fake.T / d + 1) ** 3                                 # (m, n)
    m, n = len(real), len(fake)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
                 + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1)) - 2 * k_xy.mean())


def knn_precision(real: np.ndarray, fake: np.ndarray, k: int = 3) -> float:
    """Improved precision (Kynkäänniemi et al. 2019): the share of fakes inside the real manifold.

    Each real feature $\\phi_r$ gets a ball whose radius is the distance to its $k$-th
    nearest real neighbour; a fake counts when it falls in at least one ball.

    Args:
        real: ``(M, d)`` features; fake: ``(N, d)`` features; k: the neighbourhood size.
    """
    d_rr = cdist(real, real)                                            # (M, M)
    radii = np.sort(d_rr, axis=1)[:, k]                                 # (M,); column 0 is self
    d_fr = cdist(fake, real)                                            # (N, M)
    return float((d_fr <= radii[None, :]).any(axis=1).mean())

