"""Diffusion algorithms that take a network: noise schedules and DDPM (Ho et al. 2020).

``NoiseSchedule.linear(T)`` / ``NoiseSchedule.cosine(T)`` give $\\beta$, $\\alpha$,
$\\bar\\alpha$; ``DDPM(eps_model, schedule)`` offers ``q_sample``, ``loss``, ``p_sample``
and ``sample``; ``DDIM(eps_model, schedule, eta)`` samples in few steps (Song et al. 2021);
``DPMSolver(eps_model, schedule)`` is DPM-Solver++(2M) (Lu et al. 2022), the same ODE in
fewer steps; ``Guided(eps_model, w)`` is classifier-free guidance (Ho & Salimans 2022).
The theory, checked in closed form: :mod:`~aigc_course.diffusion.vlb` (the variational
bound term by term, the weights the simple loss drops) and
:mod:`~aigc_course.diffusion.mixture_score` (a noised Gaussian mixture's density and score,
$\\epsilon^* = -\\sqrt{1 - \\bar\\alpha_t}\\,\\nabla \\log p_t$, the exact denoiser).
"""

from aigc_course.diffusion.ddim import DDIM, ddim_timesteps
from aigc_course.diffusion.ddpm import DDPM
from aigc_course.diffusion.dpm_solver import DPMSolver, dpm_solver_timesteps
from aigc_course.diffusion.guidance import Guided, drop_labels
from aigc_course.diffusion.schedules import NoiseSchedule

__all__ = ["DDIM", "DDPM", "DPMSolver", "Guided", "NoiseSchedule", "ddim_timesteps",
           "dpm_solver_timesteps", "drop_labels"]
