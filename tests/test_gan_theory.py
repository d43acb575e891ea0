"""GAN theory in 1-D: the optimal discriminator (Goodfellow et al. 2014, eq. 2), the value at
the optimum, 2 JS - log 4 (theorem 1), and the generator losses' gradients in closed form."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course import gan_theory as gt
from aigc_course.divergences import grid_1d

PAIRS = [(0.0, 1.0, 0.0, 1.0), (0.0, 1.0, 1.0, 1.0), (0.0, 1.0, 3.0, 0.5),
         (-1.0, 2.0, 2.0, 1.0), (0.0, 1.0, 8.0, 1.0), (0.5, 0.3, -0.5, 1.5)]


@pytest.fixture(scope="module")
def grid() -> tuple[torch.Tensor, float]:
    return grid_1d(-15.0, 15.0, 6001)


def test_gaussian_density_matches_torch_distributions() -> None:
    x = torch.linspace(-4, 4, 9, dtype=torch.float64)
    ref = torch.distributions.Normal(0.5, 1.5).log_prob(x).exp()
    assert torch.allclose(gt.gaussian_density(x, 0.5, 1.5), ref, rtol=1e-12)


def test_optimal_discriminator_closed_form() -> None:
    # equal variances: D*(x) = sigmoid(log p_data - log p_g), a logistic curve in x with
    # logit (mu_d - mu_g) x / s^2 + (mu_g^2 - mu_d^2) / (2 s^2)
    curve = gt.optimal_discriminator_curve(mu_data=0.0, sigma_data=1.0, mu_g=2.0, sigma_g=1.0)
    expected = torch.sigmoid(-2.0 * curve.x + 2.0)
    assert torch.allclose(curve.d_star, expected, atol=1e-12)
    assert curve.d_star.shape == curve.x.shape == curve.p_data.shape
    # where both densities vanish D* is 1/2; equal densities give 1/2
    d = gt.optimal_discriminator(torch.tensor([0.0, 2.0, 1.0]), torch.tensor([0.0, 2.0, 3.0]))
    assert d.tolist() == [0.5, 0.5, 0.25]


@pytest.mark.parametrize("pair", PAIRS)
def test_value_at_optimum_is_two_js_minus_log4(pair, grid) -> None:
    x, cell = grid
    mu_d, s_d, mu_g, s_g = pair
    check = gt.optimal_value_check(gt.gaussian_density(x, mu_d, s_d),
                                   gt.gaussian_density(x, mu_g, s_g), cell)
    assert check.error < 1e-6
    assert -math.log(4) - 1e-9 <= check.value <= 1e-9       # JS in [0, log 2]


def test_value_sweep_minimum_at_data_mean() -> None:
    sweep = gt.value_vs_generator_mean(torch.linspace(-3.0, 3.0, 13, dtype=torch.float64))
    assert torch.allclose(sweep.value, sweep.two_js_minus_log4, atol=1e-6)
    i = int(sweep.value.argmin())
    assert sweep.means[i].item() == pytest.approx(0.0, abs=1e-12)
    assert sweep.value[i].item() == pytest.approx(-math.log(4), abs=1e-9)


@pytest.mark.parametrize("pair", PAIRS[:4])
def test_optimal_discriminator_beats_perturbations(pair, grid) -> None:
    x, cell = grid
    mu_d, s_d, mu_g, s_g = pair
    check = gt.perturbation_check(gt.gaussian_density(x, mu_d, s_d),
                                  gt.gaussian_density(x, mu_g, s_g), x, cell, n=10)
    assert check.optimal_wins
    assert len(check.values_perturbed) == 10


def test_pointwise_objective_peaks_at_a_over_a_plus_b() -> None:
    y = torch.linspace(1e-4, 1 - 1e-4, 99_999, dtype=torch.float64)
    for a, b in [(1.0, 1.0), (0.3, 2.0), (5.0, 0.1)]:
        peak = y[gt.pointwise_objective(a, b, y).argmax()].item()
        assert peak == pytest.approx(a / (a + b), abs=1e-4)


def test_generator_gradients_match_closed_forms() -> None:
    grads = gt.generator_loss_gradients()
    assert torch.allclose(grads.saturating, -grads.d, atol=1e-12)          # -sigmoid(a) = -D
    assert torch.allclose(grads.non_saturating, -(1 - grads.d), atol=1e-12)  # -(1 - D)
    # early in training D(G(z)) ~ 0: the saturating gradient vanishes, the other does not
    early = gt.generator_loss_gradients(torch.tensor([1e-3]))
    assert abs(early.saturating.item()) < 1e-2 < 0.99 < abs(early.non_saturating.item())


def test_bad_input_raises() -> None:
    p = torch.ones(5)
    with pytest.raises(ValueError, match="open interval"):
        gt.generator_loss_gradients(torch.tensor([0.0, 0.5]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        gt.value_function(torch.full((5,), 1.5), p, p, 0.1)
    with pytest.raises(ValueError, match="same grid"):
        gt.optimal_discriminator(torch.ones(5), torch.ones(4))
    with pytest.raises(ValueError, match="cell"):
        gt.value_function(torch.full((5,), 0.5), p, p, 0.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        gt.gaussian_density(torch.zeros(1), 0.0, 0.0)
    with pytest.raises(ValueError, match="open interval"):
        gt.pointwise_objective(1.0, 1.0, torch.tensor([1.0]))
