"""DPM-Solver++(2M): parity with diffusers, convergence to DDIM's ODE solution, bad input.

Parity: diffusers' ``DPMSolverMultistepScheduler`` (``algorithm_type="dpmsolver++"``,
``solver_order=2``) on the course's betas (``trained_betas``), with its default
``timestep_spacing="linspace"``, the spacing of :func:`dpm_solver_timesteps` (both start
at $t = T - 1$; DDIM's "leading" spacing starts lower), fed the same $x_T$ and the same
deterministic network; every intermediate $x_t$ is compared.

The network is the exact $\\epsilon$ of a fixed data prediction,
$\\hat x_0(x, t) = \\tanh(2x + 3\\bar\\alpha_t)$, so the paths stay in $[-4, 4]$ (a
network that ignores the schedule sends them to $10^4$ and hides relative agreement).

Tolerances, from measured max abs differences over the whole path (float32):
* linear schedule: <= 3e-6 per step, 2.2e-5 when the last step is second order into
  ``"sigma_min"`` (large $h$); tolerance 1e-4.
* cosine schedule: up to 1.5e-3 (5 steps), 7.5e-4 (10). The first step is
  ill-conditioned, not wrong: $\\bar\\alpha_{999} \\approx 2.4 \\times 10^{-9}$, so the data
  prediction divides float32 rounding of $\\epsilon$ by $\\alpha \\approx 5 \\times 10^{-5}$.
  Each implementation is 3e-4 (ours) and 1e-3 (diffusers) away from our sampler run in
  float64; tolerance 5e-3. Clipping $x_\\theta$ (diffusers' thresholding with its
  threshold fixed at 1) bounds it: measured 5e-4, tolerance 5e-3.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aigc_course.diffusion import DDIM, DPMSolver, NoiseSchedule, dpm_solver_timesteps

diffusers = pytest.importorskip("diffusers")
# diffusers' set_timesteps calls np.array on a tensor (numpy 2's copy keyword): its warning
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class _Tanh(nn.Module):
    """The $\\epsilon$ whose data prediction is $\\tanh(2x + 3\\bar\\alpha_t)$."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.alpha_bar = schedule.alpha_bar

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        ab = self.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1))).to(xt.dtype)  # (B, 1, ...)
        x0 = torch.tanh(2 * xt + 3 * ab)
        return (xt - ab.sqrt() * x0) / (1 - ab).sqrt()


class _Mixture(nn.Module):
    """The exact $\\epsilon$ of per-pixel data $\\frac12\\mathcal N(-m, s^2) +
    \\frac12\\mathcal N(m, s^2)$: $E[x_0 \\mid x_t]$ in closed form, a smooth nonlinear
    probability-flow ODE."""

    def __init__(self, schedule: NoiseSchedule, m: float = 0.6, s: float = 0.3) -> None:
        super().__init__()
        self.alpha_bar, self.m, self.s = schedule.alpha_bar.double(), m, s

    def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
        ab = self.alpha_bar[t].reshape(-1, *([1] * (xt.ndim - 1))).to(xt.dtype)  # (B, 1, ...)
        alpha, var = ab.sqrt(), ab * self.s**2 + 1 - ab            # var of x_t per component
        centres = torch.tensor([-self.m, self.m], dtype=xt.dtype).reshape(2, *[1] * xt.ndim)
        mu = alpha * centres                                                 # (2, B, ...)
        weights = torch.softmax(-(xt - mu) ** 2 / (2 * var), dim=0)         # responsibilities
        x0 = (weights * (centres + alpha * self.s**2 / var * (xt - mu))).sum(0)
        return (xt - alpha * x0) / (1 - ab).sqrt()


def _reference_path(schedule: NoiseSchedule, net: nn.Module, x_T: torch.Tensor, steps: int,
                    **options: object) -> tuple[list[int], torch.Tensor]:
    ref = diffusers.DPMSolverMultistepScheduler(
        num_train_timesteps=schedule.T, trained_betas=schedule.beta.numpy(),
        algorithm_type="dpmsolver++", solver_order=2, **options)
    ref.set_timesteps(steps)
    x, path = x_T.clone(), [x_T]
    for t in ref.timesteps:
        x = ref.step(net(x, torch.full((len(x),), int(t))), t, x).prev_sample
        path.append(x)
    return ref.timesteps.tolist(), torch.stack(path)


def test_timesteps_match_diffusers_linspace() -> None:
    for steps in (1, 5, 10, 25, 50):
        ref = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=1000)
        ref.set_timesteps(steps)
        assert dpm_solver_timesteps(1000, steps) == ref.timesteps.tolist()
    assert dpm_solver_timesteps(1000, 10)[:3] == [999, 899, 799]


@pytest.mark.parametrize("name,steps,clip,lower_order_final,final", [
    ("linear", 5, False, True, "zero"),
    ("linear", 20, False, True, "zero"),
    ("linear", 10, False, False, "sigma_min"),      # the last step second order
    ("linear", 10, False, True, "sigma_min"),
    ("cosine", 5, False, True, "zero"),
    ("cosine", 10, True, True, "zero"),
    ("cosine", 20, False, True, "sigma_min"),
])
def test_every_step_matches_diffusers(name: str, steps: int, clip: bool,
                                      lower_order_final: bool, final: str) -> None:
    schedule = NoiseSchedule.linear(1000) if name == "linear" else NoiseSchedule.cosine(1000)
    net = _Tanh(schedule)
    x_T = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    timesteps, expected = _reference_path(
        schedule, net, x_T, steps, lower_order_final=lower_order_final,
        final_sigmas_type=final, thresholding=clip, sample_max_value=1.0)
    assert timesteps == dpm_solver_timesteps(1000, steps)
    sampler = DPMSolver(net, schedule, clip_x0=clip, lower_order_final=lower_order_final,
                        final_sigmas_type=final)  # type: ignore[arg-type]
    ours = sampler.sample(x_T.shape, steps, x_T=x_T, return_path=True)
    assert ours.shape == (steps + 1, *x_T.shape)
    tolerance = 1e-4 if name == "linear" else 5e-3      # see the module docstring
    assert (ours - expected).abs().max() < tolerance


def test_first_step_is_a_ddim_step() -> None:
    """DPM-Solver++'s first-order update is DDIM with eta = 0 (Lu et al., section 3.1)."""
    schedule = NoiseSchedule.cosine(1000)
    net, x = _Tanh(schedule), torch.randn(4, 1, 8, 8)
    eps = net(x, torch.full((4,), 700))
    sampler = DPMSolver(net, schedule)
    ours = sampler.step(x, 700, 500, sampler.data_prediction(x, 700, eps))
    assert torch.allclose(ours, DDIM(net, schedule).step(x, 700, 500, eps), atol=1e-5)


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_many_steps_converge_to_the_ddim_solution(name: str) -> None:
    """Both solve the probability-flow ODE: with many steps they agree, and at 20 steps
    the second-order solver is closer to that solution than DDIM.

    Measured max abs distance to DDIM with 1,000 steps (cosine / linear): DPM-Solver++
    at 200 steps 2.3e-3 / 4.2e-3, which is DDIM-1000's own first-order error (DDIM 500
    vs 1000 steps: 2.8e-3 / 5.2e-3), tolerance 1e-2; at 20 steps DPM-Solver++ 0.036 /
    0.16 against DDIM's 0.13 / 0.23.
    """
    schedule = NoiseSchedule.linear(1000) if name == "linear" else NoiseSchedule.cosine(1000)
    net = _Mixture(schedule)
    x_T = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)).double()
    solution = DDIM(net, schedule).sample(x_T.shape, 1000, x_T=x_T)
    dpm = DPMSolver(net, schedule)
    assert (dpm.sample(x_T.shape, 200, x_T=x_T) - solution).abs().max() < 1e-2
    error_dpm = (dpm.sample(x_T.shape, 20, x_T=x_T) - solution).abs().max()
    error_ddim = (DDIM(net, schedule).sample(x_T.shape, 20, x_T=x_T) - solution).abs().max()
    assert error_dpm < 0.7 * error_ddim


def test_conditional_network_and_generator() -> None:
    class _Labelled(nn.Module):
        def forward(self, xt: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None):
            shift = 0.0 if y is None else y.float().reshape(-1, 1, 1, 1) / 10  # (B, 1, 1, 1)
            return 0.5 * xt + shift

    schedule = NoiseSchedule.cosine(100)
    sampler = DPMSolver(_Labelled(), schedule, clip_x0=True)
    y = torch.tensor([0, 5])
    a = sampler.sample((2, 1, 4, 4), 5, y, torch.Generator().manual_seed(3))
    b = sampler.sample((2, 1, 4, 4), 5, y, torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.abs().max() <= 1
    assert not torch.equal(a, sampler.sample((2, 1, 4, 4), 5, None,
                                             torch.Generator().manual_seed(3)))


def test_bad_input() -> None:
    schedule = NoiseSchedule.cosine(100)
    with pytest.raises(ValueError, match=r"steps must be in \[1, 100\]"):
        dpm_solver_timesteps(100, 0)
    with pytest.raises(ValueError, match=r"steps must be in \[1, 100\]"):
        DPMSolver(_Tanh(schedule), schedule).sample((1, 1, 4, 4), 101)
    with pytest.raises(ValueError, match="valid: zero, sigma_min"):
        DPMSolver(_Tanh(schedule), schedule, final_sigmas_type="last")  # type: ignore[arg-type]
