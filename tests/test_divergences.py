"""Divergences and sample distances: closed forms, Monte Carlo within its standard error,
grid integrals, identities and bounds, and parity with torch.distributions and scipy."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from aigc_course import divergences as dv
from aigc_course.metrics.distances import energy_distance, median_bandwidth, mmd2
from aigc_course.models.mixture import GaussianMixture

Normal = torch.distributions.Normal
MVN = torch.distributions.MultivariateNormal


def _spd(d: int, generator: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=generator, dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


def test_kl_gaussian_pinned_1d() -> None:
    # KL(N(0, 1) || N(1, 2^2)) = log 2 + (1 + 1) / 8 - 1/2
    value = dv.kl_gaussian_diag(torch.zeros(1), torch.zeros(1), torch.ones(1),
                                torch.full((1,), math.log(4.0)))
    assert value.item() == pytest.approx(math.log(2) + 0.25 - 0.5, rel=1e-6)
    assert dv.kl_gaussian_diag(torch.zeros(3), torch.zeros(3)).item() == 0.0


def test_kl_gaussian_matches_torch_distributions() -> None:
    g = torch.Generator().manual_seed(0)
    for d in (1, 2, 5):
        mu_p, mu_q = torch.randn(2, d, generator=g, dtype=torch.float64)
        cov_p, cov_q = _spd(d, g), _spd(d, g)
        ours = dv.kl_gaussian(mu_p, cov_p, mu_q, cov_q)
        ref = torch.distributions.kl_divergence(MVN(mu_p, cov_p), MVN(mu_q, cov_q))
        assert ours.item() == pytest.approx(ref.item(), rel=1e-9)
    # diagonal covariances: the two closed forms agree, batched
    mu_p, mu_q, lv_p, lv_q = torch.randn(4, 7, 3, generator=g, dtype=torch.float64)
    full = dv.kl_gaussian(mu_p, torch.diag_embed(lv_p.exp()), mu_q, torch.diag_embed(lv_q.exp()))
    assert torch.allclose(dv.kl_gaussian_diag(mu_p, lv_p, mu_q, lv_q), full, rtol=1e-9)
    with pytest.raises(ValueError, match="cov_q must have shape"):
        dv.kl_gaussian(mu_p[0], torch.eye(3), mu_q[0], torch.eye(2))


def test_gaussian_log_prob_matches_scipy() -> None:
    g = torch.Generator().manual_seed(1)
    mu, cov = torch.randn(2, dtype=torch.float64, generator=g), _spd(2, g)
    x = torch.randn(50, 2, dtype=torch.float64, generator=g)
    ref = stats.multivariate_normal(mu.numpy(), cov.numpy()).logpdf(x.numpy())
    assert torch.allclose(dv.gaussian_log_prob(x, mu, cov), torch.from_numpy(ref), atol=1e-10)


def test_kl_monte_carlo_within_its_standard_error() -> None:
    g = torch.Generator().manual_seed(2)
    mu_p, mu_q = torch.tensor([0.0, 0.0]), torch.tensor([1.0, -0.5])
    cov_p = torch.tensor([[1.0, 0.6], [0.6, 1.5]])
    cov_q = torch.tensor([[2.0, -0.3], [-0.3, 0.8]])
    exact = dv.kl_gaussian(mu_p.double(), cov_p.double(), mu_q.double(), cov_q.double()).item()
    p, q = MVN(mu_p, cov_p), MVN(mu_q, cov_q)
    chol = torch.linalg.cholesky(cov_p)
    estimates = []
    for n in (4_000, 16_000, 64_000):
        x = mu_p + torch.randn(n, 2, generator=g) @ chol.T
        est = dv.kl_monte_carlo(x, p.log_prob, q.log_prob)
        assert abs(est.estimate - exact) < 4 * est.stderr, (n, est, exact)
        estimates.append(est)
    # the standard error shrinks as 1/sqrt(n): x4 samples, /2 error (within 10%)
    for small, large in zip(estimates, estimates[1:], strict=False):
        assert small.stderr / large.stderr == pytest.approx(2.0, rel=0.1)
    with pytest.raises(ValueError, match="at least 2"):
        dv.kl_monte_carlo(x[:1], p.log_prob, q.log_prob)


def test_grid_kl_matches_closed_form_and_bounds_hold() -> None:
    x, dx = dv.grid_1d(-12, 12, 4000)
    p = Normal(0.0, 1.0).log_prob(x).exp()
    q = Normal(1.0, 2.0).log_prob(x).exp()
    exact = math.log(2) + 0.25 - 0.5
    assert dv.kl_on_grid(p, q, dx) == pytest.approx(exact, abs=1e-6)
    js, tv = dv.js_on_grid(p, q, dx), dv.tv_on_grid(p, q, dx)
    assert js == pytest.approx(dv.js_on_grid(q, p, dx), abs=1e-12)       # symmetric
    assert 0 < js < math.log(2) and 0 < tv < 1
    assert tv <= math.sqrt(exact / 2)                                      # Pinsker
    assert js <= math.log(2) * tv                                          # Lin (1991)
    assert dv.js_on_grid(p, p, dx) == pytest.approx(0, abs=1e-12)
    far = Normal(-8.0, 0.3).log_prob(x).exp()
    near = Normal(8.0, 0.3).log_prob(x).exp()
    assert dv.js_on_grid(far, near, dx) == pytest.approx(math.log(2), abs=1e-6)
    assert dv.tv_on_grid(far, near, dx) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(ValueError, match="same grid"):
        dv.js_on_grid(p, q[:-1], dx)


def test_grid_2d_integrates_a_mixture_to_one() -> None:
    points, area = dv.grid_2d(3.0, 300)
    assert points.shape == (300 * 300, 2)
    mix = GaussianMixture.isotropic(torch.tensor([[0.0, 1.0], [-1.0, -0.5]]), 0.3)
    assert float(mix.log_prob(points).exp().sum() * area) == pytest.approx(1.0, abs=1e-4)


def test_wasserstein1_1d() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(500, generator=g, dtype=torch.float64)
    y = 0.5 * torch.randn(300, generator=g, dtype=torch.float64) + 1
    ref = stats.wasserstein_distance(x.numpy(), y.numpy())
    assert dv.wasserstein1_1d(x, y) == pytest.approx(ref, rel=1e-9)
    # a shift by delta moves every quantile by delta: W1 = delta exactly
    assert dv.wasserstein1_1d(x, x + 2.5) == pytest.approx(2.5, rel=1e-9)
    with pytest.raises(ValueError, match="1-D"):
        dv.wasserstein1_1d(x[:, None], y)


def test_forward_kl_matches_moments_reverse_kl_seeks_a_mode() -> None:
    x, _ = dv.grid_1d(-8, 8, 1600)
    target = GaussianMixture.isotropic(torch.tensor([[-2.0], [2.0]]), 0.5)
    p = target.log_prob(x[:, None]).exp()
    forward = dv.fit_gaussian_1d(p, x, "forward", mu=1.0, sigma=1.0, steps=600)
    # the best Gaussian under forward KL matches the mixture's mean 0 and variance 4.25
    assert forward.mu == pytest.approx(0.0, abs=1e-2)
    assert forward.sigma == pytest.approx(math.sqrt(4.25), rel=1e-2)
    reverse = dv.fit_gaussian_1d(p, x, "reverse", mu=1.0, sigma=1.0, steps=600)
    assert reverse.mu == pytest.approx(2.0, abs=0.02) and reverse.sigma == pytest.approx(0.5,
                                                                                        rel=0.03)
    # reverse KL of the mode-seeking fit: log 2 (it misses half the mass), far below the
    # reverse KL of the mode-covering fit
    assert reverse.kl == pytest.approx(math.log(2), abs=0.01)
    q_forward = forward.density(x)
    cell = float(x[1] - x[0])
    assert dv.kl_on_grid(q_forward, p, cell) > 2 * reverse.kl
    with pytest.raises(ValueError, match="valid: forward, reverse"):
        dv.fit_gaussian_1d(p, x, "both")  # type: ignore[arg-type]


def test_energy_distance_matches_scipy_and_is_zero_for_the_same_distribution() -> None:
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(400, 1, generator=g), 1.5 * torch.randn(300, 1, generator=g) + 0.5
    ours = energy_distance(x, y)
    # scipy: sqrt of the V-statistic version (within-sample means include the zero diagonal)
    n, m = len(x), len(y)
    xx = torch.cdist(x.double(), x.double()).sum() / (n * (n - 1))
    yy = torch.cdist(y.double(), y.double()).sum() / (m * (m - 1))
    v_stat = ours + float(xx) / n + float(yy) / m
    assert math.sqrt(v_stat) == pytest.approx(stats.energy_distance(x[:, 0], y[:, 0]), rel=1e-9)
    same = [energy_distance(torch.randn(300, 2, generator=g), torch.randn(300, 2, generator=g))
            for _ in range(20)]
    mean, se = sum(same) / 20, torch.tensor(same).std().item() / math.sqrt(20)
    assert abs(mean) < 4 * se                                              # unbiased: E = 0
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)


def _mmd2_gaussians(mu1: float, s1: float, mu2: float, s2: float, sigma: float, d: int) -> float:
    """Closed-form MMD^2 between N(mu1, s1^2 I) and N(mu2, s2^2 I), Gaussian kernel."""
    def e_k(shift2: float, var: float) -> float:
        return (sigma**2 / (sigma**2 + var)) ** (d / 2) * math.exp(-shift2 / (2 * (sigma**2 + var)))
    shift2 = d * (mu1 - mu2) ** 2
    return e_k(0, 2 * s1**2) + e_k(0, 2 * s2**2) - 2 * e_k(shift2, s1**2 + s2**2)


def test_mmd2_matches_closed_form_within_standard_error() -> None:
    g = torch.Generator().manual_seed(5)
    exact = _mmd2_gaussians(0.0, 1.0, 0.5, 0.7, sigma=1.0, d=2)
    draws = [mmd2(torch.randn(300, 2, generator=g), 0.7 * torch.randn(300, 2, generator=g) + 0.5,
                  bandwidth=1.0) for _ in range(30)]
    mean, se = sum(draws) / 30, torch.tensor(draws).std().item() / math.sqrt(30)
    assert abs(mean - exact) < 4 * se, (mean, exact, se)


def test_mmd2_bandwidth_rule_and_errors() -> None:
    g = torch.Generator().manual_seed(6)
    x = torch.randn(200, 2, generator=g)
    d = torch.cdist(x, x)
    i, j = torch.triu_indices(200, 200, offset=1)
    assert median_bandwidth(x) == pytest.approx(float(d[i, j].median()), rel=1e-6)
    y = x + 3.0
    assert mmd2(x, y) == pytest.approx(mmd2(x, y, bandwidth=median_bandwidth(x)), rel=1e-12)
    with pytest.raises(ValueError, match="'median'"):
        mmd2(x, y, bandwidth="mean")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"\(n, D\)"):
        energy_distance(x, y[:, :1])


def test_mode_coverage_counts_modes_and_on_mode_share() -> None:
    from aigc_course.data.toy2d import ring_centres
    from aigc_course.metrics.distances import mode_coverage

    centres = ring_centres()                                            # (8, 2)
    samples = torch.cat([centres[:3], centres[:1] + 0.1, torch.zeros(4, 2)])   # 3 modes hit
    result = mode_coverage(samples, centres, radius=0.25)
    assert result["modes"] == 3 and result["on_mode"] == pytest.approx(4 / 8)
    assert mode_coverage(torch.zeros(5, 2), centres)["modes"] == 0
    with pytest.raises(ValueError, match="share D"):
        mode_coverage(torch.zeros(5, 3), centres)
