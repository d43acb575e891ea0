"""DDIM and classifier-free guidance: closed-form checks with known networks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aigc_course.diffusion import DDIM, DDPM, Guided, NoiseSchedule, ddim_timesteps, drop_labels
from aigc_course.models.unet import DenoiserConfig, FlatDenoiser


class _Exact(nn.Module):
    """The exact $\\epsilon$ for data concentrated at one point ``x0``."""

    def __init__(self, x0: torch.Tensor, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.x0, self.alpha_bar = x0, schedule.alpha_bar

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        ab = self.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1)))        # (B, 1, ...)
        return (xt - ab.sqrt() * self.x0) / (1 - ab).sqrt()


def test_timesteps() -> None:
    assert ddim_timesteps(1000, 10) == list(range(900, -1, -100))
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    with pytest.raises(ValueError, match="steps must be in"):
        ddim_timesteps(100, 0)


@pytest.mark.parametrize("steps", [1, 10, 50])
def test_ddim_with_the_exact_network_lands_on_the_data(steps: int) -> None:
    schedule = NoiseSchedule.cosine(1000)
    x0 = torch.tensor([0.5, -0.25])
    out = DDIM(_Exact(x0, schedule), schedule).sample((64, 2), steps,
                                                      generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, x0.expand(64, 2), atol=1e-4)


def test_ddim_is_deterministic_at_eta_0_and_full_ddim_eta_1_is_ddpm() -> None:
    schedule = NoiseSchedule.linear(50, 2e-3, 0.2)
    net = FlatDenoiser(DenoiserConfig(arch="mlp", image_size=4, hidden=16, depth=1))
    torch.nn.init.normal_(net.out[-1].weight, std=0.1)
    x_T = torch.randn(3, 1, 4, 4)
    a = DDIM(net, schedule).sample(x_T.shape, 10, x_T=x_T)
    b = DDIM(net, schedule).sample(x_T.shape, 10, x_T=x_T)
    assert torch.equal(a, b)
    # eta = 1 with all T steps: sigma_t^2 = beta_tilde_t, DDPM's step (Song et al. sec. 4.1)
    xt = torch.randn(3, 1, 4, 4)
    for t in (49, 20, 1):
        tt = torch.full((3,), t)
        ddim = DDIM(net, schedule, eta=1.0).step(xt, t, t - 1, net(xt, tt),
                                                 torch.Generator().manual_seed(t))
        ddpm = DDPM(net, schedule, "beta_tilde").p_sample(xt, t, torch.Generator().manual_seed(t))
        assert torch.allclose(ddim, ddpm, atol=1e-5)


def test_guidance_formula() -> None:
    torch.manual_seed(0)
    net = FlatDenoiser(DenoiserConfig(arch="mlp", image_size=4, hidden=16, num_classes=3))
    torch.nn.init.normal_(net.out[-1].weight)
    x, t, y = torch.randn(5, 1, 4, 4), torch.arange(5), torch.tensor([0, 1, 2, 0, 1])
    cond, uncond = net(x, t, y), net(x, t)
    assert torch.allclose(Guided(net, 0.0)(x, t, y), cond)
    assert torch.allclose(Guided(net, 3.0)(x, t, y), 4 * cond - 3 * uncond, atol=1e-5)
    assert torch.allclose(Guided(net, 3.0)(x, t), uncond)
    with pytest.raises(ValueError, match=">= 0"):
        Guided(net, -1.0)


def test_drop_labels() -> None:
    y = torch.zeros(20_000, dtype=torch.long)
    dropped = drop_labels(y, 0.1, 10, torch.Generator().manual_seed(0))
    assert set(dropped.unique().tolist()) == {0, 10}
    assert abs((dropped == 10).float().mean().item() - 0.1) < 0.01
    with pytest.raises(ValueError, match="p_uncond"):
        drop_labels(y, 1.5, 10)


def test_exercise_solutions() -> None:
    from aigc_course.exercises.ch05 import guided_eps, posterior, q_sample

    schedule = NoiseSchedule.linear(1000)
    x0, eps = torch.randn(4, 3), torch.randn(4, 3)
    t = torch.tensor([0, 10, 500, 999])
    ddpm = DDPM(_Exact(x0, schedule), schedule, "beta_tilde")
    assert torch.allclose(q_sample(x0, t, eps, schedule.alpha_bar), ddpm.q_sample(x0, t, eps))
    # With x0 recovered from the exact eps, the posterior mean is DDPM's eq. 11 mean.
    xt = ddpm.q_sample(x0, 300, eps)
    mean, var = posterior(x0, xt, 300, schedule.beta, schedule.alpha_bar)
    g = torch.Generator().manual_seed(0)
    z = torch.randn(xt.shape, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ddpm.p_sample(xt, 300, g), mean + var.sqrt() * z, atol=1e-5)
    a, b = torch.randn(3), torch.randn(3)
    assert torch.allclose(guided_eps(a, b, 0.0), a)
