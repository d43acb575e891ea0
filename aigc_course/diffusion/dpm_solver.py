"""DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++"): a second-order ODE solver in few steps.

DDIM with $\\eta = 0$ is the first-order solver of the probability-flow ODE; DPM-Solver++
solves the same ODE in the log-SNR variable $\\lambda_t = \\log(\\alpha_t/\\sigma_t)$, with
$\\alpha_t = \\sqrt{\\bar\\alpha_t}$, $\\sigma_t = \\sqrt{1 - \\bar\\alpha_t}$, on the
*data prediction* $x_\\theta(x_t, t) = (x_t - \\sigma_t\\,\\epsilon_\\theta(x_t, t))/\\alpha_t$
(Lu et al. 2022, section 3). With $h_i = \\lambda_{t_i} - \\lambda_{t_{i-1}}$, their
Algorithm 2 (the multistep "2M" solver) is:

* first step, first order (= one DDIM step):
  $\\tilde x_{t_i} = \\frac{\\sigma_{t_i}}{\\sigma_{t_{i-1}}}\\tilde x_{t_{i-1}}
  - \\alpha_{t_i}(e^{-h_i} - 1)\\, x_\\theta(\\tilde x_{t_{i-1}}, t_{i-1})$ (DPM-Solver++1);
* every later step reuses the previous data prediction, $r_i = h_{i-1}/h_i$,
  $D_i = (1 + \\frac{1}{2 r_i})\\, x_\\theta(\\tilde x_{t_{i-1}}, t_{i-1})
  - \\frac{1}{2 r_i}\\, x_\\theta(\\tilde x_{t_{i-2}}, t_{i-2})$ and
  $\\tilde x_{t_i} = \\frac{\\sigma_{t_i}}{\\sigma_{t_{i-1}}}\\tilde x_{t_{i-1}}
  - \\alpha_{t_i}(e^{-h_i} - 1)\\, D_i$.

One network call per step, as DDIM. The $S$ steps are $t_k = \\mathrm{round}(k (T-1)/S)$,
$k = S, \\dots, 1$ (diffusers' default ``"linspace"`` spacing: the first step starts at
$t = T - 1$, where $x_T$ is pure noise), then one step to the data ($\\bar\\alpha = 1$,
``final_sigmas_type="zero"``, necessarily first order since $\\lambda = \\infty$ there)
or to the least noisy level $\\bar\\alpha_0$ (``"sigma_min"``). ``lower_order_final``
takes that last step first order too when $S < 15$ (diffusers' stabilisation for few
steps; with ``"zero"`` it is first order anyway).

Simplified: second order only (no 3M, no SDE variant); clipping of $x_\\theta$ to
$[-1, 1]$ (``clip_x0``) stands in for the paper's dynamic thresholding (its threshold
fixed at 1). With the cosine schedule $\\alpha_{T-1}$ is about $5 \\times 10^{-5}$, so the
first data prediction amplifies the network's error; clip images (diffusers' cure is
``lambda_min_clipped``, which starts later).

Measured on the shipped 16x16 conditional DDPM (guidance w = 2, clipped; judge FID of
1,000 samples, seeds 0 / 1 / 2): DPM-Solver++(2M) 10 steps 6.04 / 5.81 / 5.86 and 5 steps
7.14 / 7.98 / 7.15, against DDIM 50 steps 6.84 / 6.45 / 6.84, 10 steps 7.11 / 6.92 / 7.40
and 5 steps 7.61 / 7.23 / 7.33.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import nn
from tqdm.auto import tqdm

from aigc_course.diffusion.schedules import NoiseSchedule

Tensor = torch.Tensor
FinalSigma = Literal["zero", "sigma_min"]
FINAL_SIGMAS: tuple[str, ...] = get_args(FinalSigma)


def dpm_solver_timesteps(T: int, steps: int) -> list[int]:
    """The 0-based steps visited, largest first: $\\mathrm{round}(k (T-1)/S)$, $k = S..1$."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    grid = torch.linspace(0, T - 1, steps + 1, dtype=torch.float64).round().long()
    return grid.flip(0)[:-1].tolist()


class DPMSolver:
    """The DPM-Solver++(2M) sampler around $\\epsilon_\\theta$ on a DDPM's schedule.

    A drop-in for :class:`~aigc_course.diffusion.DDIM` (same ``sample`` signature).

    Args:
        eps_model: ``eps_model(xt, t)`` or, with labels, ``eps_model(xt, t, y)``
            (e.g. a :class:`~aigc_course.diffusion.guidance.Guided` network).
        schedule: the schedule the network was trained with.
        clip_x0: clip the data prediction $x_\\theta$ to $[-1, 1]$ (images).
        lower_order_final: take the last step first order when ``steps < 15``.
        final_sigmas_type: where the last step lands: ``"zero"`` (the data,
            $\\bar\\alpha = 1$) or ``"sigma_min"`` (the level of step 0, $\\bar\\alpha_0$).
    """

    def __init__(self, eps_model: nn.Module, schedule: NoiseSchedule, clip_x0: bool = False,
                 lower_order_final: bool = True, final_sigmas_type: FinalSigma = "zero") -> None:
        if final_sigmas_type not in FINAL_SIGMAS:
            raise ValueError(f"unknown final_sigmas_type {final_sigmas_type!r}; valid: "
                             f"{', '.join(FINAL_SIGMAS)}")
        self.eps_model, self.clip_x0 = eps_model, clip_x0
        self.lower_order_final, self.final_sigmas_type = lower_order_final, final_sigmas_type
        param = next(eps_model.parameters(), None)
        self.schedule = schedule.to(param.device if param is not None else "cpu")

    def _alpha_sigma(self, t: int) -> tuple[Tensor, Tensor]:
        """$(\\alpha_t, \\sigma_t)$ in float64; ``t = -1`` is the data, $(1, 0)$."""
        ab = self.schedule.alpha_bar.double()
        alpha_bar = ab[t] if t >= 0 else ab.new_tensor(1.0)
        return alpha_bar.sqrt(), (1 - alpha_bar).sqrt()

    def _lambda(self, t: int) -> Tensor:
        """$\\lambda_t = \\log\\alpha_t - \\log\\sigma_t$ (log half-SNR); $+\\infty$ at the data."""
        alpha, sigma = self._alpha_sigma(t)
        return alpha.log() - sigma.log()

    def data_prediction(self, xt: Tensor, t: int, eps: Tensor) -> Tensor:
        """$x_\\theta = (x_t - \\sigma_t \\epsilon_\\theta)/\\alpha_t$ (Lu et al., section 3),
        clipped to $[-1, 1]$ with ``clip_x0``."""
        alpha, sigma = self._alpha_sigma(t)
        x0 = (xt - sigma.float() * eps) / alpha.float()                   # x_theta
        return x0.clamp(-1, 1) if self.clip_x0 else x0

    def step(self, xt: Tensor, t: int, t_prev: int, x0: Tensor,
             x0_before: Tensor | None = None, t_before: int | None = None) -> Tensor:
        """One update $x_t \\to x_{t_\\text{prev}}$ given $x_\\theta(x_t, t)$ ``x0``.

        Args:
            xt: ``(B, ...)`` the current point.
            t: its step; ``t_prev`` the next (smaller) one, ``-1`` for the data.
            x0: $x_\\theta(x_t, t)$, ``(B, ...)``.
            x0_before: the previous step's data prediction at ``t_before`` (the larger
                step before ``t``); ``None`` takes a first-order step.

        Returns:
            $x_{t_\\text{prev}}$, ``(B, ...)``.
        """
        alpha_prev, sigma_prev = self._alpha_sigma(t_prev)
        if t_prev < 0:            # the data: lambda = inf, e^{-h} = 0, sigma = 0, alpha = 1
            return x0                                                     # the limit h -> inf
        _, sigma = self._alpha_sigma(t)
        h = self._lambda(t_prev) - self._lambda(t)                        # h_i
        ratio = (sigma_prev / sigma).float()                    # sigma_{t_i} / sigma_{t_{i-1}}
        coef = (alpha_prev * torch.expm1(-h)).float()           # alpha_{t_i} (e^{-h_i} - 1)
        if x0_before is None or t_before is None:
            return ratio * xt - coef * x0                     # DPM-Solver++1 (= DDIM), Alg. 2
        r = float((self._lambda(t) - self._lambda(t_before)) / h)         # r_i = h_{i-1}/h_i
        d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_before              # D_i, Alg. 2
        return ratio * xt - coef * d                                      # x_{t_i}, Alg. 2

    @torch.no_grad()
    def sample(self, shape: tuple[int, ...], steps: int = 10, y: Tensor | None = None,
               generator: torch.Generator | None = None, progress: bool = False,
               x_T: Tensor | None = None, return_path: bool = False) -> Tensor:
        """Draw $x_T \\sim \\mathcal N(0, I)$ and take ``steps`` DPM-Solver++(2M) steps.

        Args:
            shape: ``(B, ...)``.
            steps: $S \\le T$ (network calls).
            y: optional ``(B,)`` labels.
            generator: CPU random generator (for $x_T$ only: the solver is deterministic).
            progress: a ``tqdm`` bar.
            x_T: the starting noise (``shape``); drawn when ``None``.
            return_path: return every intermediate $x$, ``(S + 1, B, ...)``.

        Returns:
            $x_0$ ``shape`` (or the path).
        """
        was_training = getattr(self.eps_model, "training", False)
        self.eps_model.eval()
        device = self.schedule.beta.device
        x = (torch.randn(shape, generator=generator) if x_T is None else x_T).to(device)
        path = [x]
        ts = dpm_solver_timesteps(self.schedule.T, steps)
        last = 0 if self.final_sigmas_type == "sigma_min" else -1
        x0_before: Tensor | None = None
        for k, t in enumerate(tqdm(ts, disable=not progress, desc="DPM-Solver++ sampling")):
            t_prev = ts[k + 1] if k + 1 < len(ts) else last
            tt = torch.full((shape[0],), t, dtype=torch.long, device=device)  # (B,)
            eps = self.eps_model(x, tt) if y is None else self.eps_model(x, tt, y)
            x0 = self.data_prediction(x, t, eps)
            final = k == len(ts) - 1 and (self.final_sigmas_type == "zero"
                                          or (self.lower_order_final and len(ts) < 15))
            first_order = k == 0 or final
            x = self.step(x, t, t_prev, x0, None if first_order else x0_before,
                          None if first_order else ts[k - 1])
            x0_before = x0
            path.append(x)
        self.eps_model.train(was_training)
        return torch.stack(path) if return_path else x
