"""The VAE chapter's equations, pinned to closed forms and to torch.distributions."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course import losses
from aigc_course.divergences import kl_gaussian_diag
from aigc_course.exercises.ch04 import iwae_from_log_weights, kl_to_standard_normal, slerp
from aigc_course.widgets import interpolate_latents


def test_gaussian_kl_pinned_values() -> None:
    assert losses.gaussian_kl(torch.zeros(1, 3), torch.zeros(1, 3)).item() == 0.0
    # mu = 1, sigma = 1: KL = mu^2 / 2
    assert losses.gaussian_kl(torch.ones(1, 1), torch.zeros(1, 1)).item() == pytest.approx(0.5)
    # mu = 0, sigma^2 = e: KL = (e - 1 - 1) / 2
    value = losses.gaussian_kl(torch.zeros(1, 1), torch.ones(1, 1)).item()
    assert value == pytest.approx((math.e - 2) / 2)


def test_gaussian_kl_matches_monte_carlo_within_its_standard_error() -> None:
    g = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.7]], dtype=torch.float64)
    z = mu + (0.5 * logvar).exp() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    log_ratio = losses.gaussian_log_density(z, mu, logvar) - losses.gaussian_log_density(z)
    estimate, se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(len(z))
    exact = losses.gaussian_kl(mu, logvar).item()
    assert abs(estimate - exact) < 4 * se, (estimate, exact, se)


def test_gaussian_kl_agrees_with_chapter_02_and_the_exercise() -> None:
    g = torch.Generator().manual_seed(1)
    mu, logvar = torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g)
    assert torch.allclose(losses.gaussian_kl(mu, logvar), kl_gaussian_diag(mu, logvar), atol=1e-6)
    assert torch.allclose(losses.gaussian_kl(mu, logvar), kl_to_standard_normal(mu, logvar))


def test_log_likelihoods_match_torch_distributions() -> None:
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    binary = (torch.rand(3, 1, 4, 4, generator=g) > 0.5).float() * 2 - 1     # {-1, 1}
    ref = torch.distributions.Bernoulli(logits=logits).log_prob((binary + 1) / 2).flatten(1).sum(1)
    assert torch.allclose(losses.bernoulli_log_likelihood(binary, logits), ref, atol=1e-5)
    x = torch.rand(3, 1, 4, 4, generator=g) * 2 - 1
    normal = torch.distributions.Normal(losses.decoder_mean(logits), 0.2)
    assert torch.allclose(losses.gaussian_log_likelihood(x, logits, 0.2),
                          normal.log_prob(x).flatten(1).sum(1), atol=1e-4)
    with pytest.raises(ValueError, match="bernoulli, gaussian"):
        losses.log_likelihood(x, logits, "laplace")  # type: ignore[arg-type]


def test_categorical_likelihood_is_normalised_over_the_17_levels() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(3, 1, 4, 4, generator=g)
    log_p = losses.categorical_level_log_probs(logits, 0.1)                # (3, 1, 4, 4, 17)
    assert log_p.shape == (3, 1, 4, 4, losses.DIGIT_LEVELS)
    assert torch.allclose(log_p.exp().sum(-1), torch.ones(3, 1, 4, 4), atol=1e-6)
    k = torch.randint(0, 17, (3, 1, 4, 4), generator=g)
    x = k / 8 - 1                                                         # levels in [-1, 1]
    ref = torch.distributions.Categorical(logits=log_p).log_prob(k).flatten(1).sum(1)
    value = losses.log_likelihood(x, logits, "categorical", 0.1)
    assert torch.allclose(value, ref, atol=1e-5) and (value <= 0).all()
    # a 2-pixel image: P sums to 1 over all 17^2 images, so its nats bound log P(x)
    pairs = torch.cartesian_prod(torch.arange(17), torch.arange(17)).float() / 8 - 1   # (289, 2)
    one = torch.randn(1, 1, 1, 2, generator=g).expand(289, 1, 1, 2)
    total = losses.categorical_log_likelihood(pairs.reshape(289, 1, 1, 2), one, 0.3).exp().sum()
    assert total.item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="17 grey levels"):
        losses.categorical_log_likelihood(x + 0.03, logits)


def test_native_digits_lie_on_the_17_levels() -> None:
    from aigc_course.data import load_images

    x, _ = load_images("digits", "val", image_size=8, max_items=64)
    assert torch.isfinite(losses.categorical_log_likelihood(x, torch.zeros_like(x))).all()


def test_elbo_terms_and_beta_loss() -> None:
    x = torch.zeros(2, 1, 4, 4)
    terms = losses.elbo_terms(x, torch.zeros(2, 1, 4, 4), torch.zeros(2, 3), torch.zeros(2, 3))
    # logits 0 -> p = 1/2 against target 1/2: 16 pixels x log 2 nats; q = p(z): KL 0
    assert torch.allclose(terms["reconstruction"], torch.full((2,), 16 * math.log(2)))
    assert torch.equal(terms["kl"], torch.zeros(2))
    terms["kl"] = torch.ones(2)
    assert losses.beta_vae_loss(terms, 4.0).item() == pytest.approx(16 * math.log(2) + 4)


def test_iwae_bound_k1_is_the_elbo_and_k_is_tighter() -> None:
    g = torch.Generator().manual_seed(3)
    log_w = torch.randn(64, 10, generator=g)
    zeros = torch.zeros_like(log_w)
    assert torch.allclose(losses.iwae_bound(log_w[:1], zeros[:1], zeros[:1]), log_w[0])
    bound = losses.iwae_bound(log_w, zeros, zeros)
    assert (bound >= log_w.mean(0)).all()                                   # Jensen
    assert torch.allclose(iwae_from_log_weights(log_w), bound, atol=1e-6)
    big = torch.full((4, 2), 1000.0)                                        # no overflow
    assert torch.allclose(iwae_from_log_weights(big), torch.full((2,), 1000.0))


def test_elbo_gap_is_the_kl_to_the_true_posterior() -> None:
    """z ~ N(0, 1), x | z ~ N(z, s^2): log p(x) - ELBO(q) = KL(q || p(z | x)) for any q."""
    s2, x = 0.5, 1.3
    log_px = losses.gaussian_log_density(torch.tensor([x]), 0.0, math.log(1 + s2)).item()
    post_mu, post_var = x / (1 + s2), s2 / (1 + s2)
    mu, logvar = torch.tensor([[0.4]]), torch.tensor([[-1.5]])              # a poor q
    var = math.exp(-1.5)
    # ELBO in closed form: E_q log N(x; z, s2) - KL(q || N(0, 1))
    expected_log_lik = -0.5 * (math.log(2 * math.pi * s2) + ((x - 0.4) ** 2 + var) / s2)
    elbo = expected_log_lik - losses.gaussian_kl(mu, logvar).item()
    gap = kl_gaussian_diag(mu, logvar, torch.tensor([[post_mu]]),
                           torch.tensor([[math.log(post_var)]])).item()
    assert log_px - elbo == pytest.approx(gap, rel=1e-5)
    assert gap > 0


def test_reparameterised_gradients_have_far_lower_variance() -> None:
    g = torch.Generator().manual_seed(4)
    f = lambda z: (z - 3) ** 2                                              # noqa: E731
    path = losses.reparameterised_gradients(f, 1.0, 1.0, 20_000, g)
    score = losses.score_function_gradients(f, 1.0, 1.0, 20_000, g)
    for est in (path, score):                                               # both unbiased: -4
        assert abs(est.mean().item() + 4) < 4 * est.std().item() / math.sqrt(len(est))
    # exact variances: pathwise 4 sigma^2 = 4; score function about 85 (measured 85.0)
    assert path.var().item() == pytest.approx(4.0, rel=0.05)
    assert score.var().item() / path.var().item() > 10


def test_slerp_solution_matches_the_package() -> None:
    g = torch.Generator().manual_seed(5)
    z0, z1 = torch.randn(8, generator=g), torch.randn(8, generator=g)
    t = torch.linspace(0, 1, 7)
    assert torch.allclose(slerp(z0, z1, t), interpolate_latents(z0, z1, 7, "slerp"), atol=1e-5)
    assert torch.allclose(slerp(z0, z1, t)[0], z0, atol=1e-5)
