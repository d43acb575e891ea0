"""The Fréchet distance between two Gaussians, the formula behind FID.

For $\\mathcal N(\\mu_1, \\Sigma_1)$ and $\\mathcal N(\\mu_2, \\Sigma_2)$ the squared
2-Wasserstein (Fréchet) distance is (Dowson & Landau 1982, "The Fréchet distance
between multivariate normal distributions"; Heusel et al. 2017, eq. 6, FID)

$$d^2 = \\lVert \\mu_1 - \\mu_2 \\rVert^2 + \\operatorname{tr}\\big(\\Sigma_1 + \\Sigma_2
- 2 (\\Sigma_1 \\Sigma_2)^{1/2}\\big).$$

FID fits the two Gaussians to features of real and generated images. The reference
implementation (``pytorch-fid``) takes ``scipy.linalg.sqrtm`` of the non-symmetric
product $\\Sigma_1 \\Sigma_2$, which can return complex values and needs an
``eps * I`` fix for singular covariances. Here the trace is computed from symmetric
eigendecompositions only: with $A = \\Sigma_1^{1/2}$, the matrix $\\Sigma_1\\Sigma_2$ is
similar to the symmetric positive semi-definite $A \\Sigma_2 A$, so

$$\\operatorname{tr}(\\Sigma_1 \\Sigma_2)^{1/2} = \\sum_i \\sqrt{\\lambda_i(A \\Sigma_2 A)},$$

all in float64, with round-off negatives clipped to zero. Nothing is simplified
except that the result is clipped at zero (a distance cannot be negative).
"""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor


def _as_float64(x: ArrayLike | object, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().double().numpy()
    array = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return array


def _check_covariance(sigma: np.ndarray, dim: int, name: str) -> np.ndarray:
    if sigma.ndim != 2 or sigma.shape[0] != sigma.shape[1]:
        raise ValueError(f"{name} must be a square (d, d) matrix, got shape {sigma.shape}")
    if sigma.shape[0] != dim:
        raise ValueError(f"{name} is {sigma.shape[0]}x{sigma.shape[1]} but the means have "
                         f"dimension {dim}")
    scale = max(float(np.abs(sigma).max()), 1e-300)
    if np.abs(sigma - sigma.T).max() > 1e-5 * scale:   # float32 round-off passes
        raise ValueError(f"{name} is not symmetric; a covariance matrix must be")
    return (sigma + sigma.T) / 2


def _sqrt_psd(sigma: np.ndarray) -> np.ndarray:
    """Symmetric square root $U \\operatorname{diag}(\\sqrt{\\lambda}) U^\\top$ of a PSD matrix."""
    eigvals, eigvecs = np.linalg.eigh(sigma)
    return (eigvecs * np.sqrt(np.clip(eigvals, 0.0, None))) @ eigvecs.T


def frechet_distance(mu1: ArrayLike, sigma1: ArrayLike, mu2: ArrayLike,
                     sigma2: ArrayLike) -> float:
    """Squared Fréchet distance between two Gaussians (the FID formula).

    $d^2 = \\lVert\\mu_1-\\mu_2\\rVert^2 + \\operatorname{tr}\\Sigma_1 + \\operatorname{tr}\\Sigma_2
    - 2\\operatorname{tr}(\\Sigma_1\\Sigma_2)^{1/2}$ (Heusel et al. 2017, eq. 6).

    Args:
        mu1: mean ``(d,)`` of the first Gaussian (NumPy array or tensor).
        sigma1: covariance ``(d, d)`` of the first Gaussian, symmetric PSD.
        mu2: mean ``(d,)`` of the second Gaussian.
        sigma2: covariance ``(d, d)`` of the second Gaussian.

    Returns:
        $d^2 \\ge 0$ as a Python float (computed in float64).

    Raises:
        ValueError: means not 1-D or of different lengths, a covariance that is not
            square, not symmetric, of the wrong size, not PSD, or non-finite values.
    """
    mu1, mu2 = _as_float64(mu1, "mu1"), _as_float64(mu2, "mu2")
    if mu1.ndim != 1 or mu2.ndim != 1:
        raise ValueError(f"means must be 1-D (d,), got shapes {mu1.shape} and {mu2.shape}")
    if mu1.shape != mu2.shape:
        raise ValueError(f"means have different dimensions: {mu1.shape[0]} and {mu2.shape[0]}")
    dim = mu1.shape[0]
    sigma1 = _check_covariance(_as_float64(sigma1, "sigma1"), dim, "sigma1")
    sigma2 = _check_covariance(_as_float64(sigma2, "sigma2"), dim, "sigma2")
    for name, sigma in (("sigma1", sigma1), ("sigma2", sigma2)):
        lowest = np.linalg.eigvalsh(sigma)[0]
        if lowest < -1e-5 * max(float(np.abs(sigma).max()), 1e-300):
            raise ValueError(f"{name} is not positive semi-definite (eigenvalue {lowest:.3g})")

    root1 = _sqrt_psd(sigma1)                                  # A = Sigma1^{1/2}
    middle = root1 @ sigma2 @ root1                            # A S2 A, similar to S1 S2
    middle = (middle + middle.T) / 2                           # symmetric up to round-off
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0.0, None)).sum()  # tr (S1 S2)^{1/2}
    diff = mu1 - mu2
    d2 = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_sqrt   # eq. 6
    return max(float(d2), 0.0)


def gaussian_stats(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of features, the Gaussian fit of FID.

    $\\mu = \\frac1N\\sum_i f_i$, $\\Sigma = \\frac{1}{N-1}\\sum_i (f_i-\\mu)(f_i-\\mu)^\\top$.
    With fewer samples than dimensions $\\Sigma$ is singular; the distance is still
    defined but biased upwards, so use many more samples than dimensions.

    Args:
        features: ``(N, d)`` with ``N >= 2``.

    Returns:
        ``mu`` ``(d,)`` and ``sigma`` ``(d, d)``, float64 NumPy arrays.

    Raises:
        ValueError: not 2-D, fewer than 2 samples, or non-finite values.
    """
    f = _as_float64(features, "features")
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (N, d), got shape {f.shape}")
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 samples, got {f.shape[0]}")
    mu = f.mean(axis=0)                                        # (d,)
    centred = f - mu                                           # (N, d)
    sigma = centred.T @ centred / (f.shape[0] - 1)             # (d, d), unbiased
    return mu, sigma


def frechet_distance_from_features(features1: ArrayLike, features2: ArrayLike) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    Args:
        features1: ``(N1, d)``, ``N1 >= 2``.
        features2: ``(N2, d)``, ``N2 >= 2``; the same ``d``.

    Returns:
        The squared Fréchet distance, a float.

    Raises:
        ValueError: different feature dimensions, or see :func:`gaussian_stats`.
    """
    mu1, sigma1 = gaussian_stats(features1)
    mu2, sigma2 = gaussian_stats(features2)
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} and {mu2.shape[0]}")
    return frechet_distance(mu1, sigma1, mu2, sigma2)
