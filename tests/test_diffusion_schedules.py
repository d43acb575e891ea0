"""Noise schedules (pinned values) and DDPM: the closed-form forward process against iterated
single steps, and ancestral sampling with the exact noise predictor of Gaussian data.
(Parity with diffusers' schedulers: tests/test_diffusion_parity.py.)"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aigc_course.diffusion import DDPM, NoiseSchedule
from aigc_course.models.mlp import MLPConfig, MLPNoisePredictor


def test_linear_schedule_pinned() -> None:
    s = NoiseSchedule.linear(1000)
    assert s.T == 1000 and s.beta.shape == s.alpha.shape == s.alpha_bar.shape == (1000,)
    assert s.beta[0].item() == pytest.approx(1e-4) and s.beta[-1].item() == pytest.approx(0.02)
    # prod_{t=1}^{1000} (1 - beta_t) with beta_t = 1e-4 + (0.02 - 1e-4) (t - 1) / 999
    assert s.alpha_bar[-1].item() == pytest.approx(4.0358296e-05, rel=1e-5)
    exact = math.prod(1 - (1e-4 + (0.02 - 1e-4) * i / 999) for i in range(1000))
    assert s.alpha_bar[-1].item() == pytest.approx(exact, rel=1e-5)
    assert torch.allclose(s.alpha, 1 - s.beta)
    assert torch.allclose(s.alpha_bar, torch.cumprod(s.alpha.double(), 0).float(), rtol=1e-6)
    assert s.alpha_bar[0].item() == pytest.approx(1 - 1e-4)


def test_cosine_schedule_pinned() -> None:
    s = NoiseSchedule.cosine(1000)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2   # Nichol eq. 17
    assert s.alpha_bar[499].item() == pytest.approx(f(500) / f(0), rel=1e-5)  # step t = 500
    assert s.alpha_bar[499].item() == pytest.approx(0.49384359, rel=1e-5)
    assert (s.alpha_bar[1:] < s.alpha_bar[:-1]).all() and s.alpha_bar[-1] < 1e-6
    assert s.beta.max().item() == pytest.approx(0.999)                       # clipped at the end


def test_schedule_by_name() -> None:
    assert torch.equal(NoiseSchedule.from_name("linear", 1000).alpha_bar,
                       NoiseSchedule.linear(1000).alpha_bar)
    short = NoiseSchedule.from_name("linear", 100)          # end points scaled by 1000 / T
    assert short.beta[-1].item() == pytest.approx(0.2) and short.alpha_bar[-1] < 1e-4
    assert torch.equal(NoiseSchedule.from_name("cosine", 50).beta, NoiseSchedule.cosine(50).beta)
    with pytest.raises(ValueError, match="valid: linear, cosine"):
        NoiseSchedule.from_name("sigmoid", 10)  # type: ignore[arg-type]


def test_schedule_bad_input() -> None:
    with pytest.raises(ValueError, match="T must be"):
        NoiseSchedule.linear(0)
    with pytest.raises(ValueError, match="beta_start"):
        NoiseSchedule.linear(10, beta_start=0.5, beta_end=0.1)
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        NoiseSchedule.from_beta(torch.tensor([0.1, 1.0]))


class _Zero(nn.Module):
    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(xt)


def test_closed_form_forward_matches_iterated_steps() -> None:
    """q(x_t | x_0) by eq. 4 and by t steps of eq. 2 have the same mean and variance."""
    ddpm = DDPM(_Zero(), NoiseSchedule.linear(1000))
    g = torch.Generator().manual_seed(0)
    n, t = 40_000, 300
    x0 = torch.full((n, 2), 1.5)
    x = x0.clone()
    for i in range(t + 1):                                   # steps 0..t (0-based)
        x = ddpm.q_step(x, i, generator=g)
    closed = ddpm.q_sample(x0, t, generator=g)
    alpha_bar = ddpm.schedule.alpha_bar[t].item()
    mean, var = math.sqrt(alpha_bar) * 1.5, 1 - alpha_bar
    se_mean, se_var = math.sqrt(var / n), var * math.sqrt(2 / (n - 1))
    for sample in (x, closed):
        assert (sample.mean(0) - mean).abs().max() < 4 * se_mean
        assert (sample.var(0) - var).abs().max() < 4 * se_var
    # and q_sample with given noise is exactly eq. 4
    eps = torch.randn(5, 2, generator=g)
    xt = ddpm.q_sample(torch.ones(5, 2), torch.arange(5), eps)
    ab = ddpm.schedule.alpha_bar[:5, None]
    assert torch.allclose(xt, ab.sqrt() + (1 - ab).sqrt() * eps)


class _GaussianOracle(nn.Module):
    """The exact E[eps | x_t] for data N(0, s^2): sqrt(1 - ab) x_t / (ab s^2 + 1 - ab)."""

    def __init__(self, schedule: NoiseSchedule, s: float) -> None:
        super().__init__()
        self.alpha_bar, self.s2 = schedule.alpha_bar, s * s

    def forward(self, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bar[t][:, None]
        return (1 - ab).sqrt() * xt / (ab * self.s2 + 1 - ab)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
def test_sampling_with_the_exact_noise_predictor_recovers_the_data(variance: str) -> None:
    schedule = NoiseSchedule.linear(1000)
    ddpm = DDPM(_GaussianOracle(schedule, 0.5), schedule, variance=variance)  # type: ignore
    n = 20_000
    x = ddpm.sample((n, 1), generator=torch.Generator().manual_seed(1))
    # exact variance of this discrete sampler: 0.2508 (beta), 0.2461 (beta_tilde)
    assert abs(x.mean().item()) < 4 * math.sqrt(0.25 / n)
    assert abs(x.var().item() - 0.25) < 4 * 0.25 * math.sqrt(2 / n) + 0.004


def test_loss_and_steps_with_a_network() -> None:
    net = MLPNoisePredictor(MLPConfig(data_dim=3))
    ddpm = DDPM(net, NoiseSchedule.cosine(50))
    x0 = torch.randn(16, 3)
    loss = ddpm.loss(x0, torch.Generator().manual_seed(0))
    assert loss.ndim == 0 and loss.item() > 0
    loss.backward()
    assert all(p.grad is not None for p in net.parameters())
    assert ddpm.p_sample(x0, 10).shape == (16, 3)
    assert ddpm.sample((4, 3), torch.Generator().manual_seed(0)).shape == (4, 3)
    # no noise is added at the last reverse step (t = 0): it is deterministic
    assert torch.equal(ddpm.p_sample(x0, 0), ddpm.p_sample(x0, 0))
    # image-shaped batches broadcast the per-step scalars over (C, H, W)
    images = DDPM(_Zero(), NoiseSchedule.linear(20))
    x0 = torch.randn(4, 1, 8, 8)
    xt = images.q_sample(x0, torch.tensor([0, 5, 10, 19]))
    assert xt.shape == (4, 1, 8, 8) and images.p_sample(xt, 19).shape == (4, 1, 8, 8)
    assert images.sample((2, 1, 8, 8)).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\[0, 49\]"):
        ddpm.q_sample(x0, 50)
    with pytest.raises(ValueError, match="valid: beta, beta_tilde"):
        DDPM(net, NoiseSchedule.cosine(50), variance="learned")  # type: ignore[arg-type]
