"""The variational bound of a DDPM, term by term, and the weights the simple loss drops.

Ho, Jain & Abbeel (2020), eq. 5: for any $\\epsilon_\\theta$,
$$-\\log p_\\theta(x_0) \\le L_T + \\sum_{t=2}^T L_{t-1} + L_0,$$
$L_T = D_\\mathrm{KL}(q(x_T \\mid x_0) \\Vert \\mathcal N(0, I))$ (no parameters),
$L_{t-1} = D_\\mathrm{KL}(q(x_{t-1} \\mid x_t, x_0) \\Vert p_\\theta(x_{t-1} \\mid x_t))$, a KL
between two Gaussians, $\\mathcal N(\\tilde\\mu_t, \\tilde\\beta_t I)$ (their eqs. 6--7) and
$\\mathcal N(\\mu_\\theta, \\sigma_t^2 I)$, and $L_0 = -\\log p_\\theta(x_0 \\mid x_1)$. With
$\\mu_\\theta = (x_t - \\frac{\\beta_t}{\\sqrt{1 - \\bar\\alpha_t}}\\epsilon_\\theta)
/\\sqrt{\\alpha_t}$ (eq. 11) the mean part of each KL is a weighted noise error (eq. 12),
$$L_{t-1} = \\frac{d}{2}\\Big(\\frac{\\tilde\\beta_t}{\\sigma_t^2} - 1
- \\log\\frac{\\tilde\\beta_t}{\\sigma_t^2}\\Big)
+ \\lambda_t \\lVert \\epsilon - \\epsilon_\\theta(x_t, t)\\rVert^2, \\qquad
\\lambda_t = \\frac{\\beta_t^2}{2\\sigma_t^2\\,\\alpha_t\\,(1 - \\bar\\alpha_t)},$$
and the simple loss (eq. 14) is this with $\\lambda_t$ replaced by 1
(:func:`simple_loss_weights`).

* :func:`vlb_terms` -- every term for a batch of $x_0$, each KL in closed form at one
  $x_t \\sim q(x_t \\mid x_0)$ per step (Ho et al.'s evaluation, their ``calc_bpd_loop``);
* :func:`vlb_chain` -- the same bound as the expectation that defines it (eq. 3),
  $\\mathbb E_q[-\\log p(x_T) - \\sum_{t \\ge 1} \\log p_\\theta(x_{t-1} \\mid x_t)
  + \\sum_{t \\ge 1} \\log q(x_t \\mid x_{t-1})]$ along whole forward chains: unbiased,
  far noisier; the two agree within its standard error, which checks the decomposition.

$L_0$ is a Gaussian density for continuous data (2-D points) or, for images whose pixels
take ``levels`` evenly spaced values in $[-1, 1]$, Ho et al.'s discretised decoder
(eq. 13): the Gaussian's mass on each pixel's bin, the end bins open to $\\pm\\infty$, so the
bound is a number of bits of a discrete image.

Steps are 0-based in code (:mod:`aigc_course.diffusion.schedules`): ``terms[:, i]`` is
$L_i$, the term of code step ``i`` (paper $t = i + 1$): $L_0$ the decoder, $L_i$ for
$i \\ge 1$ the KL from $x_{i+1}$ to $x_i$ in the paper's numbering. With
$\\sigma_t^2 = \\tilde\\beta_t$ the decoder at $t = 1$ would have zero variance; as in Ho et
al.'s code (``posterior_log_variance_clipped``) it uses $\\tilde\\beta_2$.

Float64, with $\\bar\\alpha_t = \\prod_{s \\le t}(1 - \\beta_s)$ recomputed from the stored
$\\beta$ (:func:`schedule64`): the stored float32 $\\bar\\alpha$ keeps only about four digits
of $1 - \\bar\\alpha_t$ at the first steps ($1 - \\bar\\alpha_1 \\approx 4 \\times 10^{-5}$ under
the cosine schedule), and the KLs there divide by it, so the eq. 12 identity would hold
to 1% instead of $10^{-9}$.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aigc_course.diffusion.ddpm import VARIANCES, Variance
from aigc_course.diffusion.schedules import NoiseSchedule
from aigc_course.divergences import LOG_2PI

Tensor = torch.Tensor


def schedule64(schedule: NoiseSchedule) -> tuple[Tensor, Tensor, Tensor]:
    """$\\beta_t$, $\\alpha_t = 1 - \\beta_t$ and $\\bar\\alpha_t = \\prod_{s \\le t} \\alpha_s$
    ``(T,)`` each in float64, consistent to rounding (so $1 - \\bar\\alpha_1 = \\beta_1$)."""
    beta = schedule.beta.double().cpu()
    alpha = 1 - beta
    return beta, alpha, torch.cumprod(alpha, 0)                             # Ho et al. eq. 4


def reverse_variance(schedule: NoiseSchedule, variance: Variance = "beta") -> Tensor:
    """$\\sigma_t^2$ ``(T,)``: $\\beta_t$, or $\\tilde\\beta_t = \\frac{1 - \\bar\\alpha_{t-1}}
    {1 - \\bar\\alpha_t}\\beta_t$ (Ho et al. eq. 7) with step 0 clipped to $\\tilde\\beta$ of
    step 1 (their code), float64."""
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; valid: {', '.join(VARIANCES)}")
    beta, _, alpha_bar = schedule64(schedule)
    if variance == "beta":
        return beta
    alpha_bar_prev = torch.cat([alpha_bar.new_ones(1), alpha_bar[:-1]])   # (T,)
    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta             # eq. 7
    if len(beta_tilde) > 1:
        beta_tilde[0] = beta_tilde[1]
    return beta_tilde


def simple_loss_weights(schedule: NoiseSchedule, variance: Variance = "beta") -> Tensor:
    """$\\lambda_t = \\beta_t^2 / (2\\sigma_t^2\\alpha_t(1 - \\bar\\alpha_t))$ ``(T,)``, the
    weight of $\\lVert\\epsilon - \\epsilon_\\theta\\rVert^2$ in $L_{t-1}$ (Ho et al. eq. 12)
    that the simple loss (eq. 14) sets to 1."""
    beta, alpha, alpha_bar = schedule64(schedule)
    return beta**2 / (2 * reverse_variance(schedule, variance) * alpha * (1 - alpha_bar))


def _flat(x: Tensor) -> Tensor:
    return x.double().reshape(len(x), -1)                                  # (B, d)


def prior_kl(x0: Tensor, schedule: NoiseSchedule) -> Tensor:
    """$L_T = D_\\mathrm{KL}(\\mathcal N(\\sqrt{\\bar\\alpha_T}x_0, (1 - \\bar\\alpha_T)I)
    \\Vert \\mathcal N(0, I))$ in nats, ``(B,)`` for ``x0`` ``(B, ...)``."""
    x0 = _flat(x0)
    ab = schedule64(schedule)[2][-1]
    d = x0.shape[1]
    return 0.5 * (ab * x0.pow(2).sum(1) + d * (-ab - torch.log1p(-ab)))


def _model_mean(xt: Tensor, eps: Tensor, t: Tensor, schedule: NoiseSchedule) -> Tensor:
    """$\\mu_\\theta = (x_t - \\beta_t \\epsilon_\\theta / \\sqrt{1 - \\bar\\alpha_t})
    /\\sqrt{\\alpha_t}$ (eq. 11) for flat ``(B, d)`` inputs and steps ``t`` ``(B,)``."""
    beta, alpha, alpha_bar = (v[t, None] for v in schedule64(schedule))    # (B, 1) each
    return (xt - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()


def posterior_kl(x0: Tensor, xt: Tensor, t: Tensor, eps_pred: Tensor, schedule: NoiseSchedule,
                 variance: Variance = "beta") -> Tensor:
    """$L_{t-1} = D_\\mathrm{KL}(q(x_{t-1} \\mid x_t, x_0) \\Vert p_\\theta(x_{t-1} \\mid x_t))$
    in closed form, nats.

    Args:
        x0, xt, eps_pred: ``(B, ...)`` the data, the noised point at step ``t`` and
            $\\epsilon_\\theta(x_t, t)$.
        t: ``(B,)`` 0-based steps, each ``>= 1`` (step 0 has the decoder, :func:`decoder_nll`).
        variance: $\\sigma_t^2$ of $p_\\theta$ (:func:`reverse_variance`).

    Returns:
        ``(B,)``.
    """
    t = torch.as_tensor(t, dtype=torch.long).reshape(-1)
    if bool((t < 1).any()):
        raise ValueError("posterior_kl needs steps t >= 1; step 0 is the decoder (decoder_nll)")
    x0, xt, eps_pred = _flat(x0), _flat(xt), _flat(eps_pred)
    beta, _, alpha_bar = schedule64(schedule)
    beta, ab, ab_prev = beta[t, None], alpha_bar[t, None], alpha_bar[t - 1, None]  # (B, 1)
    mu_tilde = (ab_prev.sqrt() * beta / (1 - ab) * x0                     # eq. 7
                + (1 - beta).sqrt() * (1 - ab_prev) / (1 - ab) * xt)
    beta_tilde = ((1 - ab_prev) / (1 - ab) * beta).squeeze(1)              # (B,)
    sigma2 = reverse_variance(schedule, variance)[t]                       # (B,)
    mu = _model_mean(xt, eps_pred, t, schedule)
    d = x0.shape[1]
    ratio = beta_tilde / sigma2
    return (0.5 * d * (ratio - 1 - ratio.log())
            + (mu_tilde - mu).pow(2).sum(1) / (2 * sigma2))


def decoder_nll(x0: Tensor, x1: Tensor, eps_pred: Tensor, schedule: NoiseSchedule,
                variance: Variance = "beta", levels: int | None = None) -> Tensor:
    """$L_0 = -\\log p_\\theta(x_0 \\mid x_1)$ in nats, ``(B,)``.

    Args:
        x0, x1, eps_pred: ``(B, ...)`` the data, the point at step 0 and
            $\\epsilon_\\theta(x_1, 0)$.
        variance: $\\sigma_1^2$ (:func:`reverse_variance`).
        levels: ``None``: a Gaussian density $\\mathcal N(x_0; \\mu_\\theta, \\sigma_1^2 I)$
            (continuous data). An int $K \\ge 2$: $x_0$ takes the $K$ values
            $-1 + 2j/(K - 1)$ and $p_\\theta$ is the Gaussian's mass on each value's bin of
            half-width $1/(K - 1)$, the end bins extended to $\\pm\\infty$ (Ho et al. eq. 13,
            their $K = 256$); their code's floor of $10^{-12}$ on a bin's mass.

    Raises:
        ValueError: with ``levels``, a pixel off the grid of levels.
    """
    x0, x1 = _flat(x0), _flat(x1)
    t = torch.zeros(len(x0), dtype=torch.long)
    mu = _model_mean(x1, _flat(eps_pred), t, schedule)                     # (B, d)
    sigma2 = reverse_variance(schedule, variance)[0]
    if levels is None:
        return 0.5 * ((x0 - mu).pow(2) / sigma2 + sigma2.log() + LOG_2PI).sum(1)
    if levels < 2:
        raise ValueError(f"levels must be >= 2 (or None for continuous data), got {levels}")
    half = 1.0 / (levels - 1)
    index = (x0 + 1) / (2 * half)
    if not torch.allclose(index, index.round(), atol=1e-4) or bool((x0.abs() > 1 + 1e-6).any()):
        raise ValueError(f"x0 must take the {levels} values -1 + 2j/{levels - 1} in [-1, 1]")
    sigma = sigma2.sqrt()
    top, bottom = (x0 + half - mu) / sigma, (x0 - half - mu) / sigma       # the bin, standardised
    ndtr = torch.special.ndtr
    mass = torch.where(bottom > 0, ndtr(-bottom) - ndtr(-top),             # in the upper tail
                       ndtr(top) - ndtr(bottom))                            # without cancelling
    log_mass = torch.where(
        x0 < -1 + half, torch.special.log_ndtr(top),                           # (-inf, top]
        torch.where(x0 > 1 - half, torch.special.log_ndtr(-bottom),           # [bottom, inf)
                    mass.clamp(min=1e-12).log()))                              # eq. 13
    return -log_mass.sum(1)


@dataclass
class VLBTerms:
    """The bound's terms for a batch of ``B`` data points, in nats.

    Attributes:
        prior: $L_T$ ``(B,)``.
        terms: ``(B, T)``, column ``i`` is $L_i$: the decoder $L_0$, then the KLs.
        dims: the data's dimension $d$ (pixels), for bits per dimension.
    """

    prior: Tensor
    terms: Tensor
    dims: int

    @property
    def total(self) -> Tensor:
        """$L_T + \\sum_{i \\ge 1} L_i + L_0$ per data point, ``(B,)``."""
        return self.prior + self.terms.sum(1)

    def bits_per_dim(self) -> float:
        """The mean bound in bits per dimension, $\\bar L / (d \\ln 2)$."""
        return float(self.total.mean()) / (self.dims * math.log(2))


def _eps(eps_model: nn.Module, xt: Tensor, t: int, y: Tensor | None) -> Tensor:
    tt = torch.full((len(xt),), t, dtype=torch.long)
    return eps_model(xt, tt) if y is None else eps_model(xt, tt, y)


@torch.no_grad()
def vlb_terms(eps_model: nn.Module, schedule: NoiseSchedule, x0: Tensor,
              variance: Variance = "beta", levels: int | None = None,
              y: Tensor | None = None, generator: torch.Generator | None = None) -> VLBTerms:
    """Every term of the bound (eq. 5) at one $x_t \\sim q(x_t \\mid x_0)$ per step and point.

    Each KL is exact given its $x_t$ (:func:`posterior_kl`), so the sum is an unbiased,
    low-variance estimate of the bound; ``T`` network calls on the batch.

    Args:
        eps_model: ``eps_model(xt, t)`` (or ``(xt, t, y)``) on the schedule, CPU.
        schedule: its schedule.
        x0: ``(B, ...)`` data points (in ``[-1, 1]`` on ``levels`` values for images).
        variance: $\\sigma_t^2$ of the reverse steps (:func:`reverse_variance`).
        levels: the decoder (:func:`decoder_nll`).
        y: optional ``(B,)`` labels: the bound on $-\\log p_\\theta(x_0 \\mid y)$.
        generator: for the noise.
    """
    alpha_bar = schedule64(schedule)[2]
    terms = []
    for t in range(schedule.T):
        eps = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
        xt = alpha_bar[t].sqrt() * x0.double() + (1 - alpha_bar[t]).sqrt() * eps  # eq. 4
        eps_pred = _eps(eps_model, xt.float(), t, y)
        if t == 0:
            terms.append(decoder_nll(x0, xt, eps_pred, schedule, variance, levels))
        else:
            steps = torch.full((len(x0),), t, dtype=torch.long)
            terms.append(posterior_kl(x0, xt, steps, eps_pred, schedule, variance))
    return VLBTerms(prior_kl(x0, schedule), torch.stack(terms, 1), _flat(x0).shape[1])


def _log_normal(x: Tensor, mean: Tensor, var: Tensor) -> Tensor:
    """$\\log \\mathcal N(x; \\text{mean}, \\text{var}\\, I)$ of flat ``(B, d)``, ``(B,)``."""
    return -0.5 * ((x - mean).pow(2) / var + var.log() + LOG_2PI).sum(1)


@torch.no_grad()
def vlb_chain(eps_model: nn.Module, schedule: NoiseSchedule, x0: Tensor,
              variance: Variance = "beta", levels: int | None = None,
              y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
    """One-sample estimates of the bound along whole forward chains (Ho et al. eq. 3).

    $x_1, \\dots, x_T$ drawn step by step (eq. 2), then
    $-\\log p(x_T) - \\sum_{t=2}^T \\log p_\\theta(x_{t-1} \\mid x_t) - \\log p_\\theta(x_0
    \\mid x_1) + \\sum_{t=1}^T \\log q(x_t \\mid x_{t-1})$: its mean over chains is the bound
    :func:`vlb_terms` sums, with a standard deviation that grows like $\\sqrt{T d}$.

    Args: as :func:`vlb_terms`.

    Returns:
        ``(B,)`` one estimate per chain, nats.
    """
    x_prev = _flat(x0)
    beta = schedule64(schedule)[0]
    sigma2 = reverse_variance(schedule, variance)
    log_ratio = torch.zeros(len(x_prev), dtype=torch.float64)
    for t in range(schedule.T):
        xt = (1 - beta[t]).sqrt() * x_prev + beta[t].sqrt() * torch.randn(
            x_prev.shape, generator=generator, dtype=torch.float64)           # eq. 2
        log_ratio += _log_normal(xt, (1 - beta[t]).sqrt() * x_prev, beta[t])  # log q(x_t|x_t-1)
        eps_pred = _flat(_eps(eps_model, xt.float().reshape(x0.shape), t, y))
        if t == 0:
            log_ratio -= -decoder_nll(x0, xt, eps_pred, schedule, variance, levels)
        else:
            mu = _model_mean(xt, eps_pred, torch.full((len(xt),), t), schedule)
            log_ratio -= _log_normal(x_prev, mu, sigma2[t])               # log p(x_t-1|x_t)
        x_prev = xt
    return log_ratio - _log_normal(x_prev, torch.zeros_like(x_prev), x_prev.new_tensor(1.0))
