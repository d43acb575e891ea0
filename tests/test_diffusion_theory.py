"""Chapter 05's theory in closed form: the noised mixture's score and the variational bound.

Float64 closed forms are compared with autograd and with each other to 1e-9 (rounding
only); Monte Carlo estimates are compared within 4 standard errors (a false alarm about
once in 16,000 runs), the standard error computed from the same samples.
"""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course.data.toy2d import ring_centres
from aigc_course.diffusion import DDIM, Guided, NoiseSchedule, ddim_timesteps
from aigc_course.diffusion.mixture_score import (
    MixtureDenoiser,
    loss_decomposition,
    noised_log_prob,
    noised_score,
    optimal_eps,
    posterior_eps,
    tilted_density_grid,
)
from aigc_course.diffusion.vlb import (
    decoder_nll,
    posterior_kl,
    prior_kl,
    reverse_variance,
    schedule64,
    simple_loss_weights,
    vlb_chain,
    vlb_terms,
)
from aigc_course.divergences import kl_gaussian_diag
from aigc_course.models.mixture import GaussianMixture


def _full_cov_mixture() -> GaussianMixture:
    """Three 2-D components with random (well-conditioned) full covariances."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 2, 2, generator=g, dtype=torch.float64)
    covs = a @ a.transpose(1, 2) * 0.1 + 0.05 * torch.eye(2, dtype=torch.float64)
    return GaussianMixture(torch.tensor([0.2, 0.3, 0.5]),
                           torch.randn(3, 2, generator=g, dtype=torch.float64) * 2, covs)


# --- DDIM spacing -----------------------------------------------------------------------

def test_trailing_spacing_starts_at_the_last_step() -> None:
    assert ddim_timesteps(1000, 10, "trailing") == list(range(999, 0, -100))
    assert ddim_timesteps(1000, 10) == list(range(900, -1, -100))    # leading, the default
    assert ddim_timesteps(10, 10, "trailing") == list(range(9, -1, -1))
    assert ddim_timesteps(1000, 3, "trailing") == [999, 666, 332]   # 1000 - k 1000/3, rounded
    for steps in (1, 7, 33, 999):
        ts = ddim_timesteps(1000, steps, "trailing")
        assert len(set(ts)) == steps and ts[0] == 999 and ts == sorted(ts, reverse=True)
    with pytest.raises(ValueError, match="leading, trailing"):
        ddim_timesteps(1000, 10, "linspace")  # type: ignore[arg-type]


def test_leading_spacing_under_cosine_starts_with_signal_left() -> None:
    # The first leading step at S = 10 is index 900 (paper t = 901): sqrt(alpha_bar) there is
    # cos((0.901 + s)/(1 + s) pi/2) / cos(s/(1 + s) pi/2), s = 0.008: 0.1537; at 999 ~5e-5.
    ab = NoiseSchedule.cosine(1000).alpha_bar
    s = 0.008
    exact = math.cos((0.901 + s) / (1 + s) * math.pi / 2) / math.cos(s / (1 + s) * math.pi / 2)
    assert abs(ab[900].sqrt().item() - exact) < 1e-6 and abs(exact - 0.1537) < 1e-4
    assert ab[999].sqrt().item() < 1e-4


# --- the noised mixture -----------------------------------------------------------------

@pytest.mark.parametrize("alpha_bar", [1.0, 0.999, 0.5, 0.01, 0.0])
def test_noised_score_is_the_gradient_of_the_noised_log_density(alpha_bar: float) -> None:
    mixture = _full_cov_mixture()
    x = torch.randn(200, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(noised_log_prob(mixture, x, alpha_bar).sum(), x)
    assert torch.allclose(noised_score(mixture, x.detach(), alpha_bar), grad, atol=1e-9)
    k = torch.arange(200) % 3                                             # one component each
    (grad_k,) = torch.autograd.grad(noised_log_prob(mixture, x, alpha_bar, k).sum(), x)
    assert torch.allclose(noised_score(mixture, x.detach(), alpha_bar, k), grad_k, atol=1e-9)


def test_noised_mixture_ends_are_the_data_and_the_standard_normal() -> None:
    mixture = _full_cov_mixture()
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    assert torch.allclose(noised_log_prob(mixture, x, 1.0), mixture.log_prob(x), atol=1e-12)
    standard = -0.5 * x.pow(2).sum(1) - math.log(2 * math.pi)
    assert torch.allclose(noised_log_prob(mixture, x, 0.0), standard, atol=1e-12)
    # a per-point alpha_bar is the same as one alpha_bar per call
    ab = torch.linspace(0, 1, 50, dtype=torch.float64)
    one_by_one = torch.cat([noised_log_prob(mixture, x[i:i + 1], ab[i]) for i in range(50)])
    assert torch.allclose(noised_log_prob(mixture, x, ab), one_by_one, atol=1e-12)


def test_noised_mixture_moments_match_noised_samples() -> None:
    # x_t = sqrt(ab) x0 + sqrt(1 - ab) eps of 200,000 mixture samples: the mean and covariance
    # of the closed-form p_t (on a grid) within 4 standard errors (std/sqrt(n) ~ 0.003)
    mixture, ab, n = _full_cov_mixture(), 0.3, 200_000
    g = torch.Generator().manual_seed(3)
    x0, _ = mixture.sample(n, g)
    xt = ab**0.5 * x0.double() + (1 - ab) ** 0.5 * torch.randn(n, 2, generator=g,
                                                                 dtype=torch.float64)
    from aigc_course.divergences import grid_2d
    points, cell = grid_2d(6.0, 400)
    p = noised_log_prob(mixture, points, ab).exp() * cell                 # (n*n,)
    assert abs(p.sum().item() - 1) < 1e-4
    mean = (p[:, None] * points).sum(0)
    var = (p[:, None] * (points - mean).pow(2)).sum(0)
    assert torch.allclose(xt.mean(0), mean, atol=4 * xt.std(0).max().item() / n**0.5)
    assert torch.allclose(xt.var(0), var, atol=4 * 1.5 * var.max().item() * (2 / n) ** 0.5)


@pytest.mark.parametrize("alpha_bar", [0.9, 0.5, 0.1])
def test_optimal_eps_is_the_posterior_mean_of_the_noise(alpha_bar: float) -> None:
    # Tweedie: E[eps | x_t] = -sqrt(1 - ab) grad log p_t. Self-normalised importance sampling
    # over 20,000 data samples estimates it with an error ~ 1/sqrt(ESS) of the noise's scale;
    # the median ESS here is 2,500 .. 15,000, so a mean squared error below 1e-3 leaves >10x
    # room (measured 2e-5 .. 7e-5).
    mixture = GaussianMixture.isotropic(ring_centres(), 0.05)
    g = torch.Generator().manual_seed(4)
    data, _ = mixture.sample(20_000, g)
    x0, _ = mixture.sample(100, g)
    xt = alpha_bar**0.5 * x0.double() + (1 - alpha_bar) ** 0.5 * torch.randn(
        100, 2, generator=g, dtype=torch.float64)
    estimate, ess = posterior_eps(data, xt, alpha_bar)
    exact = optimal_eps(mixture, xt, alpha_bar)
    assert ess.median() > 1000
    assert (estimate - exact).pow(2).sum(1).mean() < 1e-3
    with pytest.raises(ValueError, match="alpha_bar"):
        posterior_eps(data, xt, 1.0)


def test_optimal_eps_minimises_the_simple_loss() -> None:
    # E||eps - eps*||^2 + E||eps* - f||^2 = E||eps - f||^2 for any f (eps* is the conditional
    # mean): checked for f = 0.9 eps*, on the same 100,000 draws, to 4 standard errors.
    mixture, ab = GaussianMixture.isotropic(ring_centres(), 0.3), 0.4
    g = torch.Generator().manual_seed(5)
    x0, _ = mixture.sample(100_000, g)
    eps = torch.randn(100_000, 2, generator=g, dtype=torch.float64)
    xt = ab**0.5 * x0.double() + (1 - ab) ** 0.5 * eps
    best = optimal_eps(mixture, xt, ab)
    other = 0.9 * best
    pythagoras = (eps - best).pow(2).sum(1) + (best - other).pow(2).sum(1)
    direct = (eps - other).pow(2).sum(1)
    diff = pythagoras - direct
    assert abs(diff.mean()) < 4 * diff.std() / 100_000**0.5
    assert (eps - best).pow(2).sum(1).mean() < direct.mean()


class _Shrunk(torch.nn.Module):
    """0.9 eps*: a network with a known error."""

    def __init__(self, exact: MixtureDenoiser) -> None:
        super().__init__()
        self.exact = exact

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return 0.9 * self.exact(xt, t)


def test_loss_decomposition_splits_the_simple_loss() -> None:
    mixture, schedule = GaussianMixture.isotropic(ring_centres(), 0.05), NoiseSchedule.cosine(20)
    exact = MixtureDenoiser(mixture, schedule)
    x0, _ = mixture.sample(2000, torch.Generator().manual_seed(13))
    best = loss_decomposition(exact, exact, schedule, x0, torch.Generator().manual_seed(14))
    assert torch.equal(best["loss"], best["floor"]) and best["gap"].abs().max() == 0
    split = loss_decomposition(_Shrunk(exact), exact, schedule, x0,
                               torch.Generator().manual_seed(14))
    # the same draws (same seed): the same floor; loss = floor + gap + cross as an identity
    assert torch.allclose(split["floor"], best["floor"])
    assert torch.allclose(split["loss"], split["floor"] + split["gap"] + split["cross"],
                          atol=1e-12)
    # gap = 0.01 E|eps*|^2 per step; the cross term is zero in expectation: its mean over the
    # 20 steps of 4,000 numbers each is within 0.01 of 0 (measured 8e-5)
    assert (split["gap"] > 0).all() and abs(split["cross"].mean()) < 0.01
    assert split["loss"].mean() > split["floor"].mean()


def test_mixture_denoiser_as_a_conditional_network() -> None:
    mixture = GaussianMixture.isotropic(ring_centres(3, 1.0), 0.4)
    schedule = NoiseSchedule.cosine(100)
    net = MixtureDenoiser(mixture, schedule)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(6))
    t, y = torch.tensor([0, 10, 50, 90, 99, 30]), torch.tensor([0, 1, 2, 3, 0, 3])  # 3: null
    ab = schedule.alpha_bar.double()[t]
    uncond, cond = net(x, t), net(x, t, y)
    assert uncond.dtype == torch.float32 and net.config.num_classes == 3
    assert torch.allclose(uncond.double(), optimal_eps(mixture, x, ab), atol=1e-6)
    assert torch.allclose(cond[y == 3], uncond[y == 3])
    assert torch.allclose(cond[y < 3].double(),
                          optimal_eps(mixture, x[y < 3], ab[y < 3], y[y < 3]), atol=1e-6)
    # classifier-free guidance with exact scores: eq. 6 of Ho & Salimans on the components
    y3 = torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.allclose(Guided(net, 2.0)(x, t, y3), 3 * net(x, t, y3) - 2 * uncond,
                          atol=1e-6)


def test_exact_denoiser_with_w0_samples_its_component() -> None:
    # DDIM (eta = 0, 100 steps: the probability-flow ODE discretised) on the exact eps of
    # component 0 (guidance w = 0) lands on it: its mean within 0.05 of mu_0 and its std within
    # 10% of 0.4 (measured 0.018 and 2%; 2,000 samples have a standard error of 0.009).
    mixture = GaussianMixture.isotropic(ring_centres(3, 1.0), 0.4)
    schedule = NoiseSchedule.cosine(1000)
    net = MixtureDenoiser(mixture, schedule)
    y = torch.zeros(2000, dtype=torch.long)
    samples = DDIM(Guided(net, 0.0), schedule).sample(
        (2000, 2), 100, y=y, generator=torch.Generator().manual_seed(7)).double()
    assert (samples.mean(0) - mixture.means[0]).norm() < 0.05
    assert ((samples.std(0) / 0.4) - 1).abs().max() < 0.1


def test_tilted_density() -> None:
    mixture = GaussianMixture.isotropic(ring_centres(3, 1.0), 0.4)
    density, points, cell = tilted_density_grid(mixture, 0, 0.0, limit=4.0, n=160)
    assert abs(density.sum().item() * cell - 1) < 1e-9
    exact = noised_log_prob(mixture, points, 1.0, torch.zeros(len(points))).exp()
    assert torch.allclose(density.reshape(-1), exact, atol=1e-4)        # w = 0: p(x | y)
    # w > 0 moves the mass away from the other classes (they sit at x < 0): measured +0.054
    tilted, _, _ = tilted_density_grid(mixture, 0, 3.0, limit=4.0, n=160)
    mean_x = lambda d: (d.reshape(-1) * points[:, 0]).sum().item() * cell  # noqa: E731
    assert mean_x(tilted) > mean_x(density) + 0.03


# --- the variational bound --------------------------------------------------------------

def test_reverse_variance_and_simple_loss_weights() -> None:
    s = NoiseSchedule.linear(1000)
    beta, alpha, ab = schedule64(s)
    assert torch.allclose(ab, s.alpha_bar.double(), rtol=1e-6)          # the stored float32
    assert 1 - ab[0] == beta[0]                                          # consistent to rounding
    lam = simple_loss_weights(s, "beta")
    assert torch.allclose(lam, beta / (2 * alpha * (1 - ab)))            # sigma^2 = beta
    assert abs(lam[0].item() - 1 / (2 * alpha[0].item())) < 1e-12        # lambda_1 = 1/(2 a_1)
    lam_tilde = simple_loss_weights(s, "beta_tilde")
    assert torch.allclose(lam_tilde[1:], beta[1:] / (2 * alpha[1:] * (1 - ab[:-1])))
    var = reverse_variance(s, "beta_tilde")
    assert var[0] == var[1] and torch.allclose(var[1:], (1 - ab[:-1]) / (1 - ab[1:]) * beta[1:])
    assert lam.argmax() == 0 and lam[0] / lam[-1] > 20                   # small t weigh most
    with pytest.raises(ValueError, match="beta, beta_tilde"):
        reverse_variance(s, "learned")  # type: ignore[arg-type]


def test_prior_kl_is_the_gaussian_kl() -> None:
    s = NoiseSchedule.linear(1000)
    x0 = torch.randn(5, 1, 4, 4, generator=torch.Generator().manual_seed(8))
    ab = schedule64(s)[2][-1]
    mu, logvar = ab.sqrt() * x0.double().reshape(5, -1), torch.log1p(-ab).expand(5, 16)
    assert torch.allclose(prior_kl(x0, s), kl_gaussian_diag(mu, logvar), atol=1e-12)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_posterior_kl_closed_form_and_the_simple_loss_weight(variance: str) -> None:
    s = NoiseSchedule.cosine(1000)
    g = torch.Generator().manual_seed(9)
    x0, eps = torch.randn(4, 6, generator=g), torch.randn(4, 6, generator=g)
    eps_pred = eps + 0.3 * torch.randn(4, 6, generator=g)
    t = torch.tensor([1, 10, 500, 999])
    beta, _, alpha_bar = schedule64(s)
    ab, ab_prev, beta = alpha_bar[t, None], alpha_bar[t - 1, None], beta[t, None]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    kl = posterior_kl(x0, xt, t, eps_pred, s, variance)                  # type: ignore[arg-type]
    # against divergences.kl_gaussian_diag with the posterior (eq. 7) and model (eq. 11) means
    mu_tilde = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (
        1 - ab) * xt
    mu = (xt - beta / (1 - ab).sqrt() * eps_pred) / (1 - beta).sqrt()
    sigma2 = reverse_variance(s, variance)[t, None]                      # type: ignore[arg-type]
    beta_tilde = (1 - ab_prev) / (1 - ab) * beta
    expected = kl_gaussian_diag(mu_tilde, beta_tilde.log().expand(4, 6), mu,
                                sigma2.log().expand(4, 6))
    assert torch.allclose(kl, expected, rtol=1e-9, atol=1e-9)
    # eq. 12: the mean part is lambda_t ||eps - eps_theta||^2 (plus a constant for beta)
    lam = simple_loss_weights(s, variance)[t]                            # type: ignore[arg-type]
    ratio = (beta_tilde / sigma2).squeeze(1)
    constant = 3 * (ratio - 1 - ratio.log())
    assert torch.allclose(kl, constant + lam * (eps - eps_pred).double().pow(2).sum(1),
                          rtol=1e-6)
    with pytest.raises(ValueError, match="t >= 1"):
        posterior_kl(x0, xt, torch.zeros(4, dtype=torch.long), eps_pred, s)


def test_posterior_kl_against_monte_carlo() -> None:
    # KL(q || p) = E_q[log q - log p] with 200,000 draws of x_{t-1} ~ q(x_{t-1} | x_t, x_0)
    s, t = NoiseSchedule.cosine(1000), 300
    g = torch.Generator().manual_seed(10)
    x0, eps = torch.randn(1, 3, generator=g), torch.randn(1, 3, generator=g)
    beta, _, alpha_bar = schedule64(s)
    ab, ab_prev, beta = alpha_bar[t], alpha_bar[t - 1], beta[t]
    xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
    eps_pred = eps + 0.5
    kl = posterior_kl(x0, xt, torch.tensor([t]), eps_pred, s).item()
    mu_tilde = ab_prev.sqrt() * beta / (1 - ab) * x0 + (1 - beta).sqrt() * (1 - ab_prev) / (
        1 - ab) * xt
    beta_tilde = (1 - ab_prev) / (1 - ab) * beta
    mu = (xt - beta / (1 - ab).sqrt() * eps_pred) / (1 - beta).sqrt()
    x = mu_tilde + beta_tilde.sqrt() * torch.randn(200_000, 3, generator=g, dtype=torch.float64)
    log_q = -0.5 * ((x - mu_tilde).pow(2) / beta_tilde + beta_tilde.log()).sum(1)
    log_p = -0.5 * ((x - mu).pow(2) / beta + beta.log()).sum(1)
    ratio = log_q - log_p
    assert abs(ratio.mean().item() - kl) < 4 * ratio.std().item() / 200_000**0.5


def test_decoder_nll_continuous_and_discretised() -> None:
    s = NoiseSchedule.cosine(1000)
    g = torch.Generator().manual_seed(11)
    x1, eps_pred = torch.randn(3, 5, generator=g), torch.randn(3, 5, generator=g)
    levels = 17
    grid = -1 + 2 * torch.arange(levels) / (levels - 1)                  # the 17 values
    # one pixel's probabilities over all levels sum to 1 (the end bins are open)
    x1_one, eps_one = x1[:1, :1].expand(levels, 1), eps_pred[:1, :1].expand(levels, 1)
    p = (-decoder_nll(grid[:, None], x1_one, eps_one, s, levels=levels)).exp()
    assert abs(p.sum().item() - 1) < 1e-9
    # continuous: a Gaussian density at mu = x0_hat (eq. 11 at t = 1), sigma_1^2 = beta_1
    ab = 1 - s.beta.double()[0]                                          # alpha_bar_1 = alpha_1
    mu = (x1.double() - (1 - ab).sqrt() * eps_pred.double()) / ab.sqrt()
    x0 = mu + 0.01
    expected = 0.5 * ((0.01**2) / s.beta.double()[0] + s.beta.double()[0].log()
                      + math.log(2 * math.pi)) * 5
    assert torch.allclose(decoder_nll(x0, x1, eps_pred, s), expected.expand(3), atol=1e-9)
    # many levels and a wide decoder: mass ~ density x bin width (midpoint rule, relative
    # error ~ (bin / sigma)^2 / 24 ~ 1e-7), for pixels within 2 sigma of the mean (further out
    # the 1e-12 floor of Ho et al.'s code can bite) and inside the end bins
    wide, fine_levels = NoiseSchedule.linear(10, 0.2, 0.3), 2001
    a1 = 1 - wide.beta.double()[0]
    mu_wide = (x1.double() - (1 - a1).sqrt() * eps_pred.double()) / a1.sqrt()
    near = (mu_wide + 0.4 * torch.randn(3, 5, generator=g, dtype=torch.float64)).clamp(-0.99, 0.99)
    x0_grid = ((near + 1) * (fine_levels - 1) / 2).round() * 2 / (fine_levels - 1) - 1
    continuous = decoder_nll(x0_grid, x1, eps_pred, wide)
    discrete = decoder_nll(x0_grid, x1, eps_pred, wide, levels=fine_levels)
    assert torch.allclose(discrete, continuous - 5 * math.log(2 / (fine_levels - 1)), atol=1e-4)
    with pytest.raises(ValueError, match="17 values"):
        decoder_nll(grid[:, None] + 0.01, x1_one, eps_one, s, levels=levels)
    with pytest.raises(ValueError, match="levels must be"):
        decoder_nll(grid[:, None], x1_one, eps_one, s, levels=1)


@pytest.mark.parametrize("levels", [None, 9])
def test_vlb_terms_sum_to_the_chain_estimate_of_the_bound(levels: int | None) -> None:
    # The decomposition (eq. 5, closed-form KLs) and the definition (eq. 3, whole chains)
    # estimate the same bound: paired over the points, the difference within 4 standard
    # errors. The exact denoiser of 1-D data: a Gaussian (std 0.5, 50 steps, sigma^2 = beta,
    # optimal for spread-out data), or 9 levels (narrow Gaussians, std 1e-3, whose points
    # are put on the levels; 200 steps, sigma^2 = beta_tilde, optimal for point masses:
    # Ho et al. 2020, section 3.2).
    if levels is None:
        s, variance = NoiseSchedule.cosine(50), "beta"
        mixture = GaussianMixture.isotropic(torch.zeros(1, 1), 0.5)
    else:
        s, variance = NoiseSchedule.cosine(200), "beta_tilde"
        grid = (-1 + 2 * torch.arange(levels) / (levels - 1)).reshape(-1, 1)
        weights = torch.distributions.Binomial(levels - 1, 0.4).log_prob(
            torch.arange(levels).float()).exp()
        mixture = GaussianMixture.isotropic(grid, 1e-3, weights / weights.sum())
    net = MixtureDenoiser(mixture, s)
    g = torch.Generator().manual_seed(12)
    n = 2000
    x0, k = mixture.sample(n, g)
    if levels is not None:
        x0 = mixture.means[k].float()                                    # on the levels
    terms = vlb_terms(net, s, x0, variance, levels, generator=g)        # type: ignore[arg-type]
    chain = vlb_chain(net, s, x0, variance, levels, generator=g)        # type: ignore[arg-type]
    diff = terms.total - chain
    assert terms.terms.shape == (n, s.T) and terms.dims == 1
    assert abs(diff.mean().item()) < 4 * diff.std().item() / n**0.5
    bound, stderr = terms.total.mean().item(), terms.total.std().item() / n**0.5
    if levels is None:
        # above the data's entropy, 0.5 log(2 pi e 0.25) = 0.726 nats (Gibbs; measured 0.766)
        entropy = 0.5 * math.log(2 * math.pi * math.e * 0.25)
        assert entropy - 4 * stderr < bound < entropy + 0.2
    else:
        # above the levels' entropy, 1.740 nats (measured 1.88: the gap shrinks with T,
        # 2.54 at T = 50)
        entropy = -(mixture.weights * mixture.weights.log()).sum().item()
        assert entropy - 4 * stderr < bound < entropy + 0.4
        assert abs(terms.bits_per_dim() - bound / math.log(2)) < 1e-12
