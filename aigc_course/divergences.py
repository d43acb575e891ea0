"""Divergences between distributions: closed forms, Monte Carlo and grid estimates.

How far is a model $p_\\theta$ from the data distribution $p$? This module holds the
answers chapter 02 compares, each with the estimator a student can check it against:

* :func:`kl_gaussian_diag`, :func:`kl_gaussian` -- the Kullback--Leibler divergence
  between two Gaussians in closed form (diagonal and full covariance).
* :func:`kl_monte_carlo` -- $\\mathrm{KL}(p \\Vert q) \\approx \\frac1n \\sum_i
  \\log p(x_i) - \\log q(x_i)$, $x_i \\sim p$, with its standard error, for any two
  densities that can be evaluated.
* :func:`kl_on_grid`, :func:`js_on_grid`, :func:`tv_on_grid` -- KL, Jensen--Shannon and
  total variation of densities tabulated on a regular grid (numerical integration by
  the midpoint rule: fine in 1-D and 2-D, hopeless in high dimension).
* :func:`wasserstein1_1d` -- the Wasserstein-1 (earth mover's) distance between two 1-D
  samples as the area between their empirical CDFs.
* :func:`fit_gaussian_1d` -- a single Gaussian fitted to a 1-D target by minimising KL in
  either direction: forward KL is mode covering, reverse KL mode seeking (Minka 2005,
  "Divergence measures and message passing", section 4).

References: Kullback & Leibler (1951); Lin (1991), "Divergence measures based on the
Shannon entropy" (JS and its bounds); Arjovsky, Chintala & Bottou (2017), "Wasserstein
GAN", section 2 (why W1 keeps a gradient where JS saturates). Sample-based distances for
judging generated points (MMD, energy distance) live in
:mod:`aigc_course.metrics.distances`.

Simplified: grid integration assumes the densities' mass lies inside the grid; the
1-D Gaussian fit minimises the grid integral by Adam rather than in closed form, so the
same code serves both directions.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import torch

Tensor = torch.Tensor
Direction = Literal["forward", "reverse"]
DIRECTIONS: tuple[str, ...] = get_args(Direction)
LOG_2PI = math.log(2 * math.pi)


# --- closed forms -----------------------------------------------------------------------

def kl_gaussian_diag(mu_p: Tensor, logvar_p: Tensor, mu_q: Tensor | float = 0.0,
                     logvar_q: Tensor | float = 0.0) -> Tensor:
    """KL between two diagonal Gaussians, summed over the last dimension.

    $$\\mathrm{KL}(\\mathcal N(\\mu_p, \\sigma_p^2) \\Vert \\mathcal N(\\mu_q, \\sigma_q^2))
    = \\frac12 \\sum_j \\Big[\\log\\frac{\\sigma_{q,j}^2}{\\sigma_{p,j}^2}
    + \\frac{\\sigma_{p,j}^2 + (\\mu_{p,j} - \\mu_{q,j})^2}{\\sigma_{q,j}^2} - 1\\Big].$$
    With the defaults $q = \\mathcal N(0, I)$ this is the VAE's KL term (Kingma & Welling
    2014, appendix B).

    Args:
        mu_p, logvar_p: ``(..., D)`` mean and $\\log\\sigma^2$ of $p$.
        mu_q, logvar_q: ``(..., D)`` (or broadcastable, or scalars) of $q$.

    Returns:
        ``(...)`` KL in nats, one value per leading index.
    """
    mu_q = torch.as_tensor(mu_q, dtype=mu_p.dtype, device=mu_p.device)
    logvar_q = torch.as_tensor(logvar_q, dtype=mu_p.dtype, device=mu_p.device)
    var_ratio = torch.exp(logvar_p - logvar_q)                         # sigma_p^2 / sigma_q^2
    mean_term = (mu_p - mu_q).pow(2) * torch.exp(-logvar_q)            # (mu_p - mu_q)^2 / s_q^2
    return 0.5 * (var_ratio + mean_term - 1 - (logvar_p - logvar_q)).sum(-1)


def kl_gaussian(mu_p: Tensor, cov_p: Tensor, mu_q: Tensor, cov_q: Tensor) -> Tensor:
    """KL between two full-covariance Gaussians.

    $$\\mathrm{KL}(\\mathcal N(\\mu_p, \\Sigma_p) \\Vert \\mathcal N(\\mu_q, \\Sigma_q))
    = \\frac12\\Big[\\operatorname{tr}(\\Sigma_q^{-1}\\Sigma_p)
    + (\\mu_q - \\mu_p)^\\top \\Sigma_q^{-1} (\\mu_q - \\mu_p) - D
    + \\log\\frac{\\det\\Sigma_q}{\\det\\Sigma_p}\\Big].$$

    Computed with Cholesky factors (no explicit inverse), in the inputs' dtype.

    Args:
        mu_p, mu_q: ``(..., D)`` means.
        cov_p, cov_q: ``(..., D, D)`` symmetric positive-definite covariances.

    Returns:
        ``(...)`` KL in nats.

    Raises:
        ValueError: if the shapes do not fit together.
    """
    d = mu_p.shape[-1]
    for name, cov in (("cov_p", cov_p), ("cov_q", cov_q)):
        if cov.shape[-2:] != (d, d):
            raise ValueError(f"{name} must have shape (..., {d}, {d}), got {tuple(cov.shape)}")
    chol_q = torch.linalg.cholesky(cov_q)                               # (..., D, D)
    chol_p = torch.linalg.cholesky(cov_p)                               # (..., D, D)
    a = torch.linalg.solve_triangular(chol_q, chol_p, upper=False)      # L_q^-1 L_p
    trace = a.pow(2).sum((-2, -1))                                      # tr(S_q^-1 S_p)
    diff = (mu_q - mu_p).unsqueeze(-1)                                  # (..., D, 1)
    m = torch.linalg.solve_triangular(chol_q, diff, upper=False)        # L_q^-1 (mu_q - mu_p)
    mahalanobis = m.pow(2).sum((-2, -1))
    log_det_q = 2 * torch.diagonal(chol_q, dim1=-2, dim2=-1).log().sum(-1)
    log_det_p = 2 * torch.diagonal(chol_p, dim1=-2, dim2=-1).log().sum(-1)
    return 0.5 * (trace + mahalanobis - d + log_det_q - log_det_p)


def gaussian_log_prob(x: Tensor, mu: Tensor, cov: Tensor) -> Tensor:
    """$\\log \\mathcal N(x; \\mu, \\Sigma)$ for points ``x`` ``(N, D)``; returns ``(N,)``."""
    chol = torch.linalg.cholesky(cov)                                   # (D, D)
    z = torch.linalg.solve_triangular(chol, (x - mu).T, upper=False)    # (D, N)
    log_det = 2 * torch.diagonal(chol).log().sum()
    return -0.5 * (z.pow(2).sum(0) + log_det + x.shape[-1] * LOG_2PI)


# --- Monte Carlo ------------------------------------------------------------------------

@dataclass(frozen=True)
class MonteCarloEstimate:
    """A Monte Carlo estimate and its standard error $s / \\sqrt n$."""

    estimate: float
    stderr: float
    n: int

    def __str__(self) -> str:
        return f"{self.estimate:.4f} ± {self.stderr:.4f} (n={self.n:,})"


def kl_monte_carlo(samples_p: Tensor, log_p: Callable[[Tensor], Tensor],
                   log_q: Callable[[Tensor], Tensor]) -> MonteCarloEstimate:
    """Monte Carlo estimate of $\\mathrm{KL}(p \\Vert q)$ from samples of $p$.

    $$\\widehat{\\mathrm{KL}} = \\frac1n \\sum_{i=1}^n \\big[\\log p(x_i) - \\log q(x_i)\\big],
    \\quad x_i \\sim p,$$
    unbiased, with standard error $\\hat s / \\sqrt n$ where $\\hat s$ is the sample standard
    deviation of the log ratios (central limit theorem).

    Args:
        samples_p: ``(n, ...)`` draws from $p$, ``n >= 2``.
        log_p, log_q: map ``(n, ...)`` points to ``(n,)`` log densities.

    Returns:
        The estimate, its standard error and ``n``.
    """
    n = samples_p.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 samples for a standard error, got {n}")
    log_ratio = (log_p(samples_p) - log_q(samples_p)).double()          # (n,)
    return MonteCarloEstimate(float(log_ratio.mean()), float(log_ratio.std() / math.sqrt(n)), n)


# --- densities on a grid ----------------------------------------------------------------

def grid_1d(low: float, high: float, n: int) -> tuple[Tensor, float]:
    """``n`` midpoints of equal cells covering ``[low, high]`` and the cell length."""
    if not high > low or n < 2:
        raise ValueError(f"need high > low and n >= 2, got [{low}, {high}], n={n}")
    dx = (high - low) / n
    return low + dx * (torch.arange(n, dtype=torch.float64) + 0.5), dx


def grid_2d(limit: float, n: int) -> tuple[Tensor, float]:
    """Midpoints of an ``n x n`` grid on ``[-limit, limit]^2`` as ``(n*n, 2)``, and the cell area.

    Row-major: ``points.reshape(n, n, 2)[i, j]`` is the point at ``y[i], x[j]``, so a
    density ``(n*n,)`` reshaped to ``(n, n)`` plots with ``imshow``/``contour`` directly.
    """
    axis, dx = grid_1d(-limit, limit, n)
    yy, xx = torch.meshgrid(axis, axis, indexing="ij")                  # (n, n) each
    return torch.stack([xx, yy], dim=-1).reshape(-1, 2), dx * dx        # (n*n, 2)


def _check_densities(p: Tensor, q: Tensor, cell: float) -> tuple[Tensor, Tensor]:
    if p.shape != q.shape:
        raise ValueError(f"p and q must be tabulated on the same grid, got {tuple(p.shape)} "
                         f"and {tuple(q.shape)}")
    if cell <= 0:
        raise ValueError(f"cell (length, area or volume of a grid cell) must be > 0, got {cell}")
    return p.double().clamp_min(0), q.double().clamp_min(0)


def kl_on_grid(p: Tensor, q: Tensor, cell: float) -> float:
    """$\\mathrm{KL}(p \\Vert q) \\approx \\sum_k p_k \\log(p_k / q_k)\\, \\Delta$ (midpoint rule).

    Args:
        p, q: densities evaluated at the same grid points, any shape.
        cell: the grid cell's length (1-D) or area (2-D), $\\Delta$.

    Returns:
        KL in nats; ``inf`` when $q = 0$ somewhere $p > 0$.
    """
    p, q = _check_densities(p, q, cell)
    support = p > 0
    return float(torch.sum(p[support] * (p[support].log() - q[support].log())) * cell)


def js_on_grid(p: Tensor, q: Tensor, cell: float) -> float:
    """Jensen--Shannon divergence, $\\frac12 \\mathrm{KL}(p\\Vert m) + \\frac12
    \\mathrm{KL}(q\\Vert m)$ with $m = \\frac12(p+q)$ (Lin 1991, eq. 4.1); in $[0, \\log 2]$."""
    p, q = _check_densities(p, q, cell)
    m = 0.5 * (p + q)
    return 0.5 * kl_on_grid(p, m, cell) + 0.5 * kl_on_grid(q, m, cell)


def tv_on_grid(p: Tensor, q: Tensor, cell: float) -> float:
    """Total variation, $\\frac12 \\int |p - q|$; in $[0, 1]$."""
    p, q = _check_densities(p, q, cell)
    return float(0.5 * (p - q).abs().sum() * cell)


# --- Wasserstein-1 in 1-D ---------------------------------------------------------------

def wasserstein1_1d(x: Tensor, y: Tensor) -> float:
    """Wasserstein-1 distance between two 1-D samples (any sizes).

    In one dimension the optimal transport plan matches quantiles, and
    $$W_1(P, Q) = \\int_{-\\infty}^{\\infty} |F_P(t) - F_Q(t)|\\, dt$$
    (Villani 2009, remark 2.19): the area between the two empirical CDFs, exact for
    empirical distributions. For equal sizes it equals
    $\\frac1n \\sum_i |x_{(i)} - y_{(i)}|$ over sorted samples.

    Args:
        x: ``(n,)`` samples of $P$; y: ``(m,)`` samples of $Q$.

    Returns:
        $W_1$ in the samples' units.
    """
    if x.ndim != 1 or y.ndim != 1 or len(x) == 0 or len(y) == 0:
        raise ValueError(f"x and y must be non-empty 1-D tensors, got shapes {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    x, y = x.double().sort().values, y.double().sort().values
    points = torch.cat([x, y]).sort().values                            # (n+m,) all jumps
    widths = points[1:] - points[:-1]                                   # (n+m-1,)
    left = points[:-1]
    cdf_x = torch.searchsorted(x, left, right=True).double() / len(x)   # F_P on each interval
    cdf_y = torch.searchsorted(y, left, right=True).double() / len(y)   # F_Q on each interval
    return float(((cdf_x - cdf_y).abs() * widths).sum())


# --- fitting a single Gaussian by forward or reverse KL ---------------------------------

@dataclass(frozen=True)
class GaussianFit:
    """A 1-D Gaussian $\\mathcal N(\\mu, \\sigma^2)$ fitted by minimising a KL divergence."""

    mu: float
    sigma: float
    direction: Direction
    kl: float
    history: list[float]

    def density(self, x: Tensor) -> Tensor:
        """$\\mathcal N(x; \\mu, \\sigma^2)$ at ``x`` (any shape)."""
        return torch.exp(-0.5 * ((x - self.mu) / self.sigma) ** 2 - 0.5 * LOG_2PI) / self.sigma


def fit_gaussian_1d(p: Tensor, x: Tensor, direction: Direction, mu: float = 0.0,
                    sigma: float = 1.0, steps: int = 500, lr: float = 0.05) -> GaussianFit:
    """Fit $q = \\mathcal N(\\mu, \\sigma^2)$ to a 1-D density $p$ tabulated on a grid.

    ``"forward"`` minimises $\\mathrm{KL}(p \\Vert q)$: $q$ must put mass wherever $p$ has
    some, so it covers every mode (for a Gaussian $q$ the optimum matches $p$'s mean and
    variance). ``"reverse"`` minimises $\\mathrm{KL}(q \\Vert p)$: $q$ is punished for mass
    where $p$ has little, so it seeks one mode (Minka 2005, fig. 1). The reverse fit
    depends on the start ``mu``: each mode is a local optimum.

    Args:
        p: ``(n,)`` target density on the grid ``x`` (``(n,)``, equally spaced midpoints).
        direction: ``"forward"`` or ``"reverse"``.
        mu, sigma: the starting Gaussian.
        steps, lr: Adam steps on $(\\mu, \\log\\sigma)$ and its learning rate.

    Returns:
        The fitted :class:`GaussianFit` (its ``kl`` is the final divergence, in nats).
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; valid: {', '.join(DIRECTIONS)}")
    x = x.double()
    cell = float(x[1] - x[0])
    p = p.double().clamp_min(1e-300)
    log_p = p.log()
    params = torch.tensor([mu, math.log(sigma)], dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.Adam([params], lr=lr)
    history = []
    for _ in range(steps):
        optimiser.zero_grad()
        m, log_s = params[0], params[1]
        log_q = -0.5 * ((x - m) / log_s.exp()) ** 2 - log_s - 0.5 * LOG_2PI   # (n,)
        if direction == "forward":
            loss = torch.sum(p * (log_p - log_q)) * cell                  # KL(p || q)
        else:
            loss = torch.sum(log_q.exp() * (log_q - log_p)) * cell        # KL(q || p)
        loss.backward()
        optimiser.step()
        history.append(loss.item())
    m, log_s = params.detach().tolist()
    s = math.exp(log_s)
    return GaussianFit(m, s, direction, history[-1], history)
