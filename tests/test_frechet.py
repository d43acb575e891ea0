"""The Fréchet distance against closed forms and an independent scipy.linalg.sqrtm reference."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from aigc_course.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    gaussian_stats,
)


def reference_fd(mu1, sigma1, mu2, sigma2) -> float:
    """The pytorch-fid formula: sqrtm of the non-symmetric product, real part."""
    covmean = scipy.linalg.sqrtm(sigma1 @ sigma2)
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def random_gaussian(rng: np.random.Generator, d: int, n: int = 200):
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    return rng.normal(size=d), np.atleast_2d(np.cov(a, rowvar=False))  # (d, d)


@pytest.mark.parametrize("d", [1, 2, 8, 64])
def test_matches_scipy_sqrtm_reference(d):
    rng = np.random.default_rng(d)
    mu1, sigma1 = random_gaussian(rng, d)
    mu2, sigma2 = random_gaussian(rng, d)
    expected = reference_fd(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-6)


def test_identical_gaussians_give_zero():
    mu, sigma = random_gaussian(np.random.default_rng(0), 16)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0.0, abs=1e-8)


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    s1, s2 = rng.uniform(0.1, 3.0, size=5), rng.uniform(0.1, 3.0, size=5)
    # commuting covariances: |mu1-mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_symmetric_in_its_arguments():
    rng = np.random.default_rng(2)
    mu1, sigma1 = random_gaussian(rng, 10)
    mu2, sigma2 = random_gaussian(rng, 10)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(
        frechet_distance(mu2, sigma2, mu1, sigma1), rel=1e-9)


def test_translation_adds_squared_norm():
    rng = np.random.default_rng(3)
    mu, sigma = random_gaussian(rng, 12)
    shift = rng.normal(size=12)
    assert frechet_distance(mu, sigma, mu + shift, sigma) == pytest.approx(
        shift @ shift, rel=1e-8)


def test_singular_covariance_is_finite_and_matches_reference():
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))  # rank 4 < 8
    mu1, sigma1 = gaussian_stats(f1)
    mu2, sigma2 = gaussian_stats(f2)
    got = frechet_distance(mu1, sigma1, mu2, sigma2)
    assert np.isfinite(got) and got >= 0
    assert got == pytest.approx(reference_fd(mu1, sigma1, mu2, sigma2), rel=1e-4)


def test_gaussian_stats_match_numpy_and_accept_tensors():
    f = np.random.default_rng(5).normal(size=(50, 6))
    mu, sigma = gaussian_stats(torch.from_numpy(f).float())
    np.testing.assert_allclose(mu, f.mean(0), atol=1e-6)
    np.testing.assert_allclose(sigma, np.cov(f, rowvar=False), atol=1e-6)


def test_from_features_equals_from_stats():
    rng = np.random.default_rng(6)
    f1, f2 = rng.normal(size=(300, 4)), rng.normal(1.0, 2.0, size=(200, 4))
    expected = frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
    assert frechet_distance_from_features(f1, f2) == pytest.approx(expected)


@pytest.mark.parametrize("args, match", [
    ((np.zeros(3), np.eye(3), np.zeros(4), np.eye(4)), "different dimensions"),
    ((np.zeros(3), np.ones((3, 2)), np.zeros(3), np.eye(3)), "square"),
    ((np.zeros(3), np.eye(4), np.zeros(3), np.eye(3)), "dimension 3"),
    ((np.zeros((3, 1)), np.eye(3), np.zeros(3), np.eye(3)), "1-D"),
    ((np.zeros(2), np.array([[1.0, 0.5], [0.0, 1.0]]), np.zeros(2), np.eye(2)), "symmetric"),
    ((np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2)), "positive semi-definite"),
    ((np.array([np.nan, 0.0]), np.eye(2), np.zeros(2), np.eye(2)), "NaN"),
])
def test_bad_inputs_raise(args, match):
    with pytest.raises(ValueError, match=match):
        frechet_distance(*args)


def test_bad_features_raise():
    with pytest.raises(ValueError, match="at least 2 samples"):
        gaussian_stats(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="2-D"):
        gaussian_stats(np.zeros(4))
    with pytest.raises(ValueError, match="feature dimensions differ"):
        frechet_distance_from_features(np.zeros((5, 3)), np.zeros((5, 4)))
