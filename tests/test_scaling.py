"""Chapter 06's scaling-law fit: the Chinchilla form recovered from points it generated,
and the compute-optimal split against a brute-force search on the line 6ND = C."""

from __future__ import annotations

import numpy as np
import pytest

from aigc_course.train.scaling import ChinchillaFit, fit_chinchilla, sweep_points

TRUE = ChinchillaFit(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28, rmse_log=0.0, points=0)


def test_fit_recovers_known_coefficients() -> None:
    """Noise-free points from Hoffmann et al.'s own coefficients (their eq. 10) come back.

    Tolerance: the optimiser stops at a gradient tolerance, and exponents trade against
    amplitudes along a shallow valley; 2% on the exponents and E, 15% on A and B (they
    enter as exp(a)) still pin the form (a wrong exponent shifts predictions by > 5%).
    """
    N, D = np.meshgrid(np.geomspace(1e4, 1e7, 6), np.geomspace(1e5, 1e9, 7))
    L = TRUE.predict(N.ravel(), D.ravel())
    fit = fit_chinchilla(N.ravel(), D.ravel(), L)
    assert fit.rmse_log < 1e-3 and fit.points == 42
    assert fit.E == pytest.approx(TRUE.E, rel=0.02)
    assert fit.alpha == pytest.approx(TRUE.alpha, rel=0.02)
    assert fit.beta == pytest.approx(TRUE.beta, rel=0.02)
    assert fit.A == pytest.approx(TRUE.A, rel=0.15)
    assert fit.B == pytest.approx(TRUE.B, rel=0.15)


def test_fit_is_robust_to_noise() -> None:
    rng = np.random.default_rng(0)
    N, D = np.meshgrid(np.geomspace(1e4, 1e7, 5), np.geomspace(1e5, 1e9, 6))
    L = TRUE.predict(N.ravel(), D.ravel()) * np.exp(rng.normal(0, 0.005, N.size))
    fit = fit_chinchilla(N.ravel(), D.ravel(), L)
    assert fit.rmse_log < 0.01
    predicted = fit.predict(1e6, 1e8)
    assert predicted == pytest.approx(TRUE.predict(1e6, 1e8), rel=0.02)


@pytest.mark.parametrize("C", [1e12, 1e15, 1e18])
def test_compute_optimal_matches_a_brute_force_search(C: float) -> None:
    N_opt, D_opt = TRUE.compute_optimal(C)
    assert 6 * N_opt * D_opt == pytest.approx(C)
    grid = np.geomspace(N_opt / 100, N_opt * 100, 200_001)
    best = grid[np.argmin(TRUE.predict(grid, C / (6 * grid)))]
    assert N_opt == pytest.approx(best, rel=1e-3)


def test_bad_points_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 5 points"):
        fit_chinchilla([1, 2], [1, 2], [1, 2])
    with pytest.raises(ValueError, match="must be positive"):
        fit_chinchilla([1, 2, 3, 4, -5], [1] * 5, [1] * 5)


def test_sweep_points_skip_each_runs_first_evaluations() -> None:
    rows = [{"params": 10, "tokens": [1.0, 2.0, 3.0], "curve_bpc": [5.0, 4.0, 3.0]},
            {"params": 20, "tokens": [1.0, 2.0], "curve_bpc": [4.5, 3.5]}]
    assert sweep_points(rows) == ([10.0, 10.0, 20.0], [2.0, 3.0, 2.0], [4.0, 3.0, 3.5])
