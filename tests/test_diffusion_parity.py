"""Parity of the package's schedules and sampler steps with diffusers (a test-only reference).

Same inputs, same noise (both draw ``torch.randn(shape, generator=g)``): the DDPM
ancestral step (``DDPMScheduler``, ``variance_type="fixed_small"`` = $\\tilde\\beta_t$)
and the DDIM step (``DDIMScheduler``, ``eta`` 0, 0.5 and 1, with and without clipping of
$\\hat x_0$, then ``use_clipped_model_output`` as in GLIDE).
Measured max abs differences: schedules <= 3e-7, steps <= 1.1e-6 (float32; 1.9e-4 for the
DDPM step at t = 1, see there); tolerances 2e-6 / 1e-5 (5e-4).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aigc_course.diffusion import DDIM, DDPM, NoiseSchedule, ddim_timesteps

diffusers = pytest.importorskip("diffusers")


class _Fixed(nn.Module):
    """An "network" that returns a fixed $\\epsilon$ whatever the input."""

    def __init__(self, eps: torch.Tensor) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        return self.eps


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_matches_diffusers(name: str) -> None:
    ours = NoiseSchedule.linear(1000) if name == "linear" else NoiseSchedule.cosine(1000)
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02,
                                  beta_schedule="linear" if name == "linear"
                                  else "squaredcos_cap_v2")
    assert torch.allclose(ours.beta, ref.betas.float(), atol=2e-6)
    assert torch.allclose(ours.alpha_bar, ref.alphas_cumprod.float(), atol=2e-6)


@pytest.mark.parametrize("t", [999, 500, 1])
def test_ddpm_step_matches_diffusers(t: int) -> None:
    g = torch.Generator().manual_seed(0)
    xt, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    ddpm = DDPM(_Fixed(eps), NoiseSchedule.linear(1000), variance="beta_tilde")
    ours = ddpm.p_sample(xt, t, torch.Generator().manual_seed(1))
    ref = diffusers.DDPMScheduler(num_train_timesteps=1000, variance_type="fixed_small",
                                  clip_sample=False)
    ref.set_timesteps(1000)
    expected = ref.step(eps, t, xt, generator=torch.Generator().manual_seed(1)).prev_sample
    # diffusers computes x0 first, then the posterior mean (eq. 7); DDPM.p_sample uses the
    # algebraically equal eq. 11. In float32 they differ by rounding that grows as
    # 1 - alpha_bar_t -> 0: measured 2e-7 at t = 999, 1.1e-6 at 500, 1.9e-4 at t = 1.
    assert (ours - expected).abs().max() < (5e-4 if t < 10 else 1e-5)


def test_ddim_timesteps_match_diffusers() -> None:
    for steps in (10, 25, 50, 1000):
        ref = diffusers.DDIMScheduler(num_train_timesteps=1000)
        ref.set_timesteps(steps)
        assert ddim_timesteps(1000, steps) == ref.timesteps.tolist()


@pytest.mark.parametrize("eta,clip", [(0.0, False), (0.0, True), (1.0, False), (0.5, True)])
def test_ddim_step_matches_diffusers(eta: float, clip: bool) -> None:
    g = torch.Generator().manual_seed(0)
    xt, eps = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g)
    schedule = NoiseSchedule.cosine(1000)
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                  clip_sample=clip, set_alpha_to_one=True)
    ref.set_timesteps(50)
    sampler = DDIM(_Fixed(eps), schedule, eta=eta, clip_x0=clip)
    ts = ddim_timesteps(1000, 50)
    for k in (0, 25, 49):
        t, t_prev = ts[k], (ts[k + 1] if k + 1 < len(ts) else -1)
        ours = sampler.step(xt, t, t_prev, eps, torch.Generator().manual_seed(1))
        expected = ref.step(eps, t, xt, eta=eta, use_clipped_model_output=clip,
                            generator=torch.Generator().manual_seed(1)).prev_sample
        assert (ours - expected).abs().max() < 1e-5, (t, eta, clip)
