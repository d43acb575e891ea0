"""A noised Gaussian mixture in closed form: its density, its score and the best denoiser.

When the data are a Gaussian mixture $p_0(x) = \\sum_k \\pi_k \\mathcal N(x; \\mu_k, \\Sigma_k)$
(the ring of 8 Gaussians is one), the forward process (Ho et al. 2020, eq. 4) keeps it a
mixture: given the component,
$\\sqrt{\\bar\\alpha_t}\\,x_0 + \\sqrt{1 - \\bar\\alpha_t}\\,\\epsilon$ is a sum of
independent Gaussians, so
$$p_t(x) = \\sum_k \\pi_k\\, \\mathcal N\\big(x;\\ \\sqrt{\\bar\\alpha_t}\\,\\mu_k,\\ C_k\\big),
\\qquad C_k = \\bar\\alpha_t \\Sigma_k + (1 - \\bar\\alpha_t) I,$$
with the closed-form score
$\\nabla_x \\log p_t(x) = -\\sum_k \\gamma_k(x)\\, C_k^{-1}(x - \\sqrt{\\bar\\alpha_t}\\,\\mu_k)$,
$\\gamma_k(x) = p_t(k \\mid x)$ (:func:`noised_log_prob`, :func:`noised_score`).

The noise predictor that minimises the simple loss at step $t$ is the posterior mean
$\\epsilon^*(x_t, t) = \\mathbb E[\\epsilon \\mid x_t] = -\\sqrt{1 - \\bar\\alpha_t}\\,
\\nabla \\log p_t(x_t)$ (Tweedie's formula, Efron 2011; Vincent 2011; Song et al. 2021,
"Score-based generative modeling through stochastic differential equations"), so a
network $\\epsilon_\\theta$ is a scaled score (:func:`optimal_eps`). :func:`posterior_eps`
estimates the same expectation from data samples alone (self-normalised importance
sampling), a check that needs no closed form, and :class:`MixtureDenoiser` is
$\\epsilon^*$ as a network the package's samplers and :class:`~aigc_course.diffusion.Guided`
take, with the components as classes: $\\epsilon^*(x_t, t, y)$ is the exact
noise predictor of component $y$ alone, and the null label $K$ that of the mixture.

Classifier-free guidance at one noise level follows the score of
$p_t(x \\mid y)\\, p_t(y \\mid x)^w \\propto p_t(x \\mid y)^{1 + w} / p_t(x)^w$
(Ho & Salimans 2022, section 3.2); :func:`tilted_density_grid` tabulates that density
at $t = 0$, which guided samples do *not* follow (the tilted densities of different
noise levels are not one diffusion's marginals).

Float64 throughout; outputs of :class:`MixtureDenoiser` in the input's dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aigc_course.diffusion.schedules import NoiseSchedule
from aigc_course.divergences import LOG_2PI, grid_2d
from aigc_course.models.mixture import GaussianMixture

Tensor = torch.Tensor


def _per_point(alpha_bar: Tensor | float, n: int) -> Tensor:
    """$\\bar\\alpha$ as ``(n,)`` float64 (a scalar is broadcast)."""
    ab = torch.as_tensor(alpha_bar, dtype=torch.float64).reshape(-1)
    if ab.numel() == 1:
        ab = ab.expand(n)
    if ab.shape != (n,) or bool(((ab < 0) | (ab > 1)).any()):
        raise ValueError(f"alpha_bar must be a scalar or ({n},) in [0, 1], got {tuple(ab.shape)}")
    return ab


def _noised(mixture: GaussianMixture, x: Tensor, alpha_bar: Tensor | float
            ) -> tuple[Tensor, Tensor, Tensor]:
    """The noised components at each point: ``(diff, chol, log N)`` with ``diff`` =
    $x - \\sqrt{\\bar\\alpha}\\mu_k$ ``(B, K, D, 1)``, ``chol`` the Cholesky factors of $C_k$
    ``(B, K, D, D)`` and $\\log \\mathcal N(x; \\sqrt{\\bar\\alpha}\\mu_k, C_k)$ ``(B, K)``."""
    x = x.double()
    b, d = x.shape
    ab = _per_point(alpha_bar, b)[:, None, None, None]                     # (B, 1, 1, 1)
    eye = torch.eye(d, dtype=torch.float64)
    cov = ab * mixture.covs[None] + (1 - ab) * eye                         # (B, K, D, D)
    chol = torch.linalg.cholesky(cov)
    diff = (x[:, None] - ab[..., 0].sqrt() * mixture.means[None])[..., None]  # (B, K, D, 1)
    z = torch.linalg.solve_triangular(chol, diff, upper=False)             # (B, K, D, 1)
    log_det = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)      # (B, K)
    return diff, chol, -0.5 * (z.pow(2).sum((-2, -1)) + log_det + d * LOG_2PI)


def noised_log_prob(mixture: GaussianMixture, x: Tensor, alpha_bar: Tensor | float,
                    component: Tensor | None = None) -> Tensor:
    """$\\log p_t(x)$ of the noised mixture, or $\\log p_t(x \\mid k)$ of one component.

    Args:
        mixture: the data distribution $p_0$.
        x: ``(B, D)`` points.
        alpha_bar: $\\bar\\alpha_t$, a scalar or ``(B,)`` (1: the data, 0: pure noise).
        component: ``None`` (the mixture) or ``(B,)`` component indices.

    Returns:
        ``(B,)`` float64.
    """
    _, _, log_normal = _noised(mixture, x, alpha_bar)
    if component is not None:
        return log_normal.gather(1, component.long().reshape(-1, 1)).squeeze(1)
    return torch.logsumexp(log_normal + mixture.weights.log(), dim=1)


def noised_score(mixture: GaussianMixture, x: Tensor, alpha_bar: Tensor | float,
                 component: Tensor | None = None) -> Tensor:
    """$\\nabla_x \\log p_t(x) = -\\sum_k \\gamma_k(x)\\,C_k^{-1}(x - \\sqrt{\\bar\\alpha_t}\\mu_k)$
    in closed form (or one component's score, $-C_k^{-1}(x - \\sqrt{\\bar\\alpha_t}\\mu_k)$).

    Args: as :func:`noised_log_prob`.

    Returns:
        ``(B, D)`` float64.
    """
    diff, chol, log_normal = _noised(mixture, x, alpha_bar)
    scores = -torch.cholesky_solve(diff, chol).squeeze(-1)                 # (B, K, D)
    if component is not None:
        return scores[torch.arange(len(x)), component.long()]             # (B, D)
    gamma = torch.softmax(log_normal + mixture.weights.log(), dim=1)       # (B, K) p_t(k|x)
    return (gamma[..., None] * scores).sum(1)


def optimal_eps(mixture: GaussianMixture, x: Tensor, alpha_bar: Tensor | float,
                component: Tensor | None = None) -> Tensor:
    """$\\epsilon^*(x_t) = \\mathbb E[\\epsilon \\mid x_t] = -\\sqrt{1 - \\bar\\alpha_t}\\,
    \\nabla \\log p_t(x_t)$, the minimiser of the simple loss, ``(B, D)`` float64."""
    ab = _per_point(alpha_bar, len(x))[:, None]                            # (B, 1)
    return -(1 - ab).sqrt() * noised_score(mixture, x, alpha_bar, component)


@torch.no_grad()
def posterior_eps(x0: Tensor, xt: Tensor, alpha_bar: float, chunk: int = 256
                  ) -> tuple[Tensor, Tensor]:
    """$\\mathbb E[\\epsilon \\mid x_t]$ by Monte Carlo from data samples alone.

    Each data sample $x_0^{(j)} \\sim p_0$ is weighted by its likelihood
    $w_j \\propto \\mathcal N(x_t; \\sqrt{\\bar\\alpha}\\,x_0^{(j)}, (1 - \\bar\\alpha) I)$
    (Bayes: $q(x_0 \\mid x_t) \\propto q(x_t \\mid x_0)\\,p_0(x_0)$), and
    $\\hat\\epsilon = \\sum_j w_j (x_t - \\sqrt{\\bar\\alpha}\\,x_0^{(j)})/\\sqrt{1 - \\bar\\alpha}$
    with $\\sum_j w_j = 1$ (self-normalised importance sampling, consistent as $N \\to \\infty$).

    Args:
        x0: ``(N, D)`` data samples.
        xt: ``(B, D)`` noised points.
        alpha_bar: $\\bar\\alpha_t$ in ``(0, 1)``.
        chunk: points ``xt`` per block (memory ``chunk x N``).

    Returns:
        The estimates ``(B, D)`` and the effective sample size $1/\\sum_j w_j^2$ of each
        ``(B,)``: few effective samples (small noise) mean a poor estimate.
    """
    if not 0 < alpha_bar < 1:
        raise ValueError(f"alpha_bar must be in (0, 1), got {alpha_bar}")
    x0, xt = x0.double(), xt.double()
    a, s = alpha_bar**0.5, (1 - alpha_bar) ** 0.5
    estimates, ess = [], []
    for block in xt.split(chunk):
        log_w = -torch.cdist(block, a * x0).pow(2) / (2 * s**2)            # (b, N)
        w = torch.softmax(log_w, dim=1)
        estimates.append((block - a * (w @ x0)) / s)                       # (b, D)
        ess.append(1 / w.pow(2).sum(1))
    return torch.cat(estimates), torch.cat(ess)


@dataclass(frozen=True)
class MixtureClasses:
    """The class count :class:`~aigc_course.diffusion.Guided` reads (its null label)."""

    num_classes: int


class MixtureDenoiser(nn.Module):
    """The exact $\\epsilon^*(x_t, t[, y])$ of a mixture on a schedule, as a network.

    ``y`` in ``0..K-1`` is component ``y``'s own noise predictor (the classes are the
    components), ``y = K`` (the null label) or ``None`` the mixture's, so
    ``Guided(MixtureDenoiser(...), w)`` is classifier-free guidance with exact scores.

    Args:
        mixture: the data distribution.
        schedule: the diffusion's schedule; ``t`` are its 0-based steps.
    """

    def __init__(self, mixture: GaussianMixture, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.mixture, self.alpha_bar = mixture, schedule.alpha_bar.double()
        self.config = MixtureClasses(mixture.num_components)

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        ab = self.alpha_bar[t.long().cpu()]                                # (B,)
        eps = optimal_eps(self.mixture, xt.cpu(), ab)
        if y is not None:
            k = self.mixture.num_components
            cond = y.long().cpu() < k
            per_class = optimal_eps(self.mixture, xt.cpu(), ab, y.long().cpu().clamp(max=k - 1))
            eps = torch.where(cond[:, None], per_class, eps)
        return eps.to(xt.dtype).to(xt.device)


@torch.no_grad()
def loss_decomposition(eps_model: nn.Module, exact: nn.Module, schedule: NoiseSchedule,
                       x0: Tensor, generator: torch.Generator | None = None) -> dict[str, Tensor]:
    """A network's simple loss at each step, split into the floor and its own error.

    $\\epsilon^*$ is the conditional mean of $\\epsilon$ given $x_t$, so for any network
    $\\mathbb E\\lVert\\epsilon - \\epsilon_\\theta\\rVert^2 = \\mathbb E\\lVert\\epsilon -
    \\epsilon^*\\rVert^2 + \\mathbb E\\lVert\\epsilon^* - \\epsilon_\\theta\\rVert^2$ (the cross
    term has mean zero): the first part, the loss of $\\epsilon^*$ itself, is a floor no
    network can go below ($x_t$ does not determine the noise that made it).

    Args:
        eps_model: the network ``eps_model(xt, t)``.
        exact: $\\epsilon^*$ (a :class:`MixtureDenoiser`).
        schedule: the schedule of both.
        x0: ``(B, D)`` data points; each step draws its own $\\epsilon$.
        generator: for the noise.

    Returns:
        ``loss``, ``floor``, ``gap`` and ``cross`` ($2\\,\\mathbb E[(\\epsilon - \\epsilon^*)
        \\cdot (\\epsilon^* - \\epsilon_\\theta)]$, zero in expectation), each ``(T,)``,
        averaged over points and dimensions like :meth:`~aigc_course.diffusion.DDPM.loss`:
        ``loss = floor + gap + cross``.
    """
    rows = []
    for t in range(schedule.T):
        eps = torch.randn(x0.shape, generator=generator)
        ab = schedule.alpha_bar[t]
        xt = ab.sqrt() * x0 + (1 - ab).sqrt() * eps                       # eq. 4
        tt = torch.full((len(x0),), t, dtype=torch.long)
        pred, best = eps_model(xt, tt).double(), exact(xt, tt).double()
        eps = eps.double()
        rows.append(torch.stack([(eps - pred).pow(2).mean(), (eps - best).pow(2).mean(),
                                 (best - pred).pow(2).mean(),
                                 2 * ((eps - best) * (best - pred)).mean()]))
    table = torch.stack(rows)                                             # (T, 4)
    return dict(zip(("loss", "floor", "gap", "cross"), table.unbind(1), strict=True))


def tilted_density_grid(mixture: GaussianMixture, component: int, w: float,
                        limit: float = 3.0, n: int = 200) -> tuple[Tensor, Tensor, float]:
    """The density $\\propto p_0(x \\mid y)^{1 + w} / p_0(x)^w = p_0(x \\mid y)\\,
    p_0(y \\mid x)^w / \\pi_y^w$ of a 2-D mixture on a grid, normalised there.

    What guided sampling would draw if the tilt of the clean data were the target; the
    guided scores are this tilt of each *noised* density instead.

    Args:
        mixture: a 2-D mixture.
        component: the class $y$.
        w: the guidance scale.
        limit, n: the grid, ``n x n`` over $[-\\text{limit}, \\text{limit}]^2$.

    Returns:
        The density ``(n, n)`` (rows $y$, columns $x$, as
        :meth:`GaussianMixture.density_grid`), the grid points ``(n*n, 2)`` and the cell area.
    """
    points, cell = grid_2d(limit, n)
    y = torch.full((len(points),), component)
    log_density = ((1 + w) * noised_log_prob(mixture, points, 1.0, y)
                   - w * noised_log_prob(mixture, points, 1.0))
    density = torch.softmax(log_density, dim=0) / cell                     # sums to 1/cell
    return density.reshape(n, n), points, cell
