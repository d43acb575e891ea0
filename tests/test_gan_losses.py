"""GAN losses against hand-computed values; WGAN-GP on a critic with a known gradient."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course import losses
from aigc_course.losses import (
    d_loss_hinge,
    d_loss_minimax,
    d_loss_wasserstein,
    g_loss_hinge,
    g_loss_minimax,
    g_loss_non_saturating,
    g_loss_wasserstein,
    gan_losses,
    gradient_penalty,
)

REAL = torch.tensor([2.0, -0.5])
FAKE = torch.tensor([0.0, 1.5])


def _sigmoid(h: float) -> float:
    return 1 / (1 + math.exp(-h))


def test_minimax_d_loss_by_hand() -> None:
    # -mean log D(x) - mean log(1 - D(G(z))) with D = sigmoid(h)
    expected = (-(math.log(_sigmoid(2.0)) + math.log(_sigmoid(-0.5))) / 2
                - (math.log(1 - _sigmoid(0.0)) + math.log(1 - _sigmoid(1.5))) / 2)
    assert d_loss_minimax(REAL, FAKE).item() == pytest.approx(expected, rel=1e-6)


def test_minimax_d_loss_at_the_optimum_is_2_log_2() -> None:
    """D = 1/2 everywhere (p_g = p_data): V(D, G) = -log 4 (Goodfellow et al. 2014, Thm 1)."""
    zeros = torch.zeros(5)
    assert d_loss_minimax(zeros, zeros).item() == pytest.approx(math.log(4), rel=1e-6)


def test_generator_losses_by_hand() -> None:
    assert g_loss_minimax(FAKE).item() == pytest.approx(
        (math.log(1 - _sigmoid(0.0)) + math.log(1 - _sigmoid(1.5))) / 2, rel=1e-6)
    assert g_loss_non_saturating(FAKE).item() == pytest.approx(
        -(math.log(_sigmoid(0.0)) + math.log(_sigmoid(1.5))) / 2, rel=1e-6)
    assert g_loss_hinge(FAKE).item() == pytest.approx(-0.75)
    assert g_loss_wasserstein(FAKE).item() == pytest.approx(-0.75)


def test_hinge_and_wasserstein_d_losses_by_hand() -> None:
    # relu(1 - [2, -0.5]) = [0, 1.5], relu(1 + [0, 1.5]) = [1, 2.5]
    assert d_loss_hinge(REAL, FAKE).item() == pytest.approx(0.75 + 1.75)
    assert d_loss_wasserstein(REAL, FAKE).item() == pytest.approx(0.75 - 0.75)


def test_stable_for_large_logits() -> None:
    big = torch.tensor([200.0, -200.0])
    for value in (d_loss_minimax(big, -big), g_loss_minimax(big), g_loss_non_saturating(-big)):
        assert torch.isfinite(value)
    assert g_loss_non_saturating(torch.tensor([-200.0])).item() == pytest.approx(200.0)


def test_saturation_gradients_at_the_same_d() -> None:
    """Where D rejects the fakes (h = -5): d/dh of the minimax G loss is -sigma(h) ~ -0.0067,
    of the non-saturating one sigma(h) - 1 ~ -0.9933 (Goodfellow et al. 2014, sec. 3)."""
    h = torch.tensor([-5.0], requires_grad=True)
    (g_minimax,) = torch.autograd.grad(g_loss_minimax(h), h)
    (g_non_saturating,) = torch.autograd.grad(g_loss_non_saturating(h), h)
    assert g_minimax.item() == pytest.approx(-_sigmoid(-5.0), rel=1e-5)
    assert g_non_saturating.item() == pytest.approx(_sigmoid(-5.0) - 1, rel=1e-5)
    assert abs(g_non_saturating.item()) > 100 * abs(g_minimax.item())
    # both descend in the same direction (push h up), and agree where D(G(z)) = 1/2
    h0 = torch.tensor([0.0], requires_grad=True)
    (a,) = torch.autograd.grad(g_loss_minimax(h0), h0)
    (b,) = torch.autograd.grad(g_loss_non_saturating(h0), h0)
    assert a.item() == pytest.approx(b.item()) == pytest.approx(-0.5)


@pytest.mark.parametrize("w", [[3.0, 4.0], [0.6, 0.8], [0.1, 0.0, 0.2]])
def test_gradient_penalty_of_a_linear_critic(w: list[float]) -> None:
    """f(x) = w.x + b has gradient w everywhere, so GP = (|w| - 1)^2 exactly."""
    weight = torch.tensor(w)
    critic = torch.nn.Linear(len(w), 1)
    with torch.no_grad():
        critic.weight.copy_(weight[None])
    real, fake = torch.randn(16, len(w)), torch.randn(16, len(w))
    gp = gradient_penalty(lambda x: critic(x).squeeze(1), real, fake,
                          torch.Generator().manual_seed(0))
    assert gp.item() == pytest.approx((weight.norm().item() - 1) ** 2, rel=1e-5, abs=1e-7)
    # it is differentiable in the critic's weights: d/dw (|w| - 1)^2 = 2 (|w| - 1) w / |w|
    gp.backward()
    expected = 2 * (weight.norm() - 1) * weight / weight.norm()
    assert torch.allclose(critic.weight.grad[0], expected, atol=1e-5)


def test_gradient_penalty_on_images_and_fixed_alpha() -> None:
    """f(x) = sum(x^2) / 2 has gradient x: with alpha = 1 the penalty is at the real points."""
    real = torch.full((3, 1, 2, 2), 0.25)                           # |x| = 0.5 per example
    fake = torch.zeros_like(real)
    gp = gradient_penalty(lambda x: 0.5 * x.pow(2).flatten(1).sum(1), real, fake,
                          alpha=torch.ones(3))
    assert gp.item() == pytest.approx(0.25)                         # (0.5 - 1)^2


def test_gan_losses_lookup() -> None:
    assert gan_losses("non_saturating") == (d_loss_minimax, g_loss_non_saturating)
    assert gan_losses("wgan_gp") == (d_loss_wasserstein, g_loss_wasserstein)
    assert set(losses.GAN_LOSSES) == {"minimax", "non_saturating", "hinge", "wgan_gp"}
    with pytest.raises(ValueError, match="valid: minimax, non_saturating, hinge, wgan_gp"):
        gan_losses("lsgan")  # type: ignore[arg-type]
