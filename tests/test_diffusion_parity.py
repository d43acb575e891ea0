"""Parity of the package's schedules and sampler steps with diffusers (a test-only reference).

Same inputs, same noise (both draw ``torch.randn(shape, generator=g)``): the DDPM
ancestral step (``DDPMScheduler``, ``variance_type="fixed_small"`` = $\\tilde\\beta_t$)
and the DDIM step (``DDIMScheduler``, ``eta`` 0, 0.5 and 1, with and without clipping of
$\\hat x_0$, then ``use_clipped_model_output`` as in GLIDE).
Measured max abs differences: schedules <= 3e-7, steps <= 1.1e-6 (float32; 1.9e-4 for the
DDPM step at t = 1, see there); tolerances 2e-6 / 1e-5 (5e-4). Both step spacings
(``timestep_spacing="leading"`` and ``"trailing"``): the same steps, and ten-step sampling
loops within 5e-7.
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


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_spacing_matches_diffusers(spacing: str) -> None:
    # diffusers' "trailing" is np.round(np.arange(T, 0, -T/S)) - 1 in floats; ours rounds the
    # exact T - kT/S (half to even, as np.round). They agree for every S < 48 at T = 1000;
    # from S = 48 on, float error in diffusers' arange moves an exact half (e.g. 937.5 ->
    # 936.9999) or adds a step (S = 61 gives 62 steps there).
    for steps in range(1, 48):
        ref = diffusers.DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
        ref.set_timesteps(steps)
        ours = ddim_timesteps(1000, steps, spacing)  # type: ignore[arg-type]
        assert ours == ref.timesteps.tolist(), steps


class _Smooth(nn.Module):
    """A made-up network whose output depends on $x_t$ and $t$, so that the steps visited
    change the samples."""

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        return torch.tanh(xt) * (1 - t.float().reshape(-1, 1, 1, 1) / 2000) + 0.1


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_ddim_sampling_loop_matches_diffusers_for_both_spacings(spacing: str) -> None:
    # S = 10 divides T, so diffusers' step to t - T//S is the next step of the list (with
    # S not dividing T, its "trailing" steps go to t - T//S, not the listed next step).
    # x0_hat clipped to [-1, 1] (images; unclipped, the made-up eps at t = 999, where
    # sqrt(alpha_bar) = 5e-5, sends x0_hat to 1e4). Ten float32 steps: measured max
    # differences 3e-7 (leading) and 5e-7 (trailing); tolerance 1e-5.
    schedule, net = NoiseSchedule.cosine(1000), _Smooth()
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    ours = DDIM(net, schedule, clip_x0=True).sample(x_T.shape, 10, x_T=x_T,
                                                    spacing=spacing)  # type: ignore[arg-type]
    ref = diffusers.DDIMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2",
                                  clip_sample=True, set_alpha_to_one=True,
                                  timestep_spacing=spacing)
    ref.set_timesteps(10)
    x = x_T.clone()
    for t in ref.timesteps:
        x = ref.step(net(x, t.expand(4)), int(t), x, eta=0.0,
                     use_clipped_model_output=True).prev_sample
    assert (ours - x).abs().max() < 1e-5
    if spacing == "leading":                                  # the two spacings differ
        trailing = DDIM(net, schedule, clip_x0=True).sample(x_T.shape, 10, x_T=x_T,
                                                            spacing="trailing")
        assert (ours - trailing).abs().max() > 1e-2
