"""The GAN value function, its optimal discriminator and the generator's gradients, checked in 1-D.

Goodfellow et al. 2014 ("Generative Adversarial Nets") define the two-player game

$$V(D, G) = \\mathbb{E}_{x \\sim p_\\text{data}}[\\log D(x)]
          + \\mathbb{E}_{x \\sim p_g}[\\log(1 - D(x))]$$

(eq. 1, with $x = G(z)$ in the second term). This module checks its two central results on
densities a student can see:

* Proposition 1: for a fixed generator the best discriminator is
  $D^*(x) = p_\\text{data}(x) / (p_\\text{data}(x) + p_g(x))$ (eq. 2), because the integrand
  $a \\log y + b \\log(1 - y)$ peaks at $y = a / (a + b)$ (:func:`pointwise_objective`,
  :func:`optimal_discriminator`, :func:`perturbation_check`);
* Theorem 1: at $D^*$ the generator's objective is
  $C(G) = V(D^*, G) = 2\\,\\mathrm{JS}(p_\\text{data} \\Vert p_g) - \\log 4$ (eq. 6), minimal,
  $-\\log 4$, exactly when $p_g = p_\\text{data}$ (:func:`optimal_value_check`,
  :func:`value_vs_generator_mean`);
* section 3: the "saturating" generator loss $\\log(1 - D(G(z)))$ has almost no gradient
  when $D$ rejects the fakes, the "non-saturating" $-\\log D(G(z))$ has its largest gradient
  there (:func:`generator_loss_gradients`).

Simplified: the expectations are integrals over 1-D Gaussian densities in closed form,
computed by the midpoint rule on a grid (:func:`aigc_course.divergences.grid_1d`, with the
JS divergence from :func:`aigc_course.divergences.js_on_grid`), in float64. A real GAN only
has samples and a parametric $D$; the grid makes both theorems checkable to 1e-6.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aigc_course.divergences import LOG_2PI, grid_1d, js_on_grid
from aigc_course.losses import g_loss_minimax, g_loss_non_saturating

Tensor = torch.Tensor
LOG_4 = math.log(4.0)


def gaussian_density(x: Tensor, mu: float, sigma: float) -> Tensor:
    """$\\mathcal N(x; \\mu, \\sigma^2)$ in closed form, at ``x`` (any shape), in float64.

    Raises:
        ValueError: if ``sigma <= 0``.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.exp(-0.5 * ((x - mu) / sigma) ** 2 - 0.5 * LOG_2PI) / sigma


def _check_pair(p_data: Tensor, p_g: Tensor) -> tuple[Tensor, Tensor]:
    if p_data.shape != p_g.shape:
        raise ValueError(f"p_data and p_g must be tabulated on the same grid, got "
                         f"{tuple(p_data.shape)} and {tuple(p_g.shape)}")
    if (p_data < 0).any() or (p_g < 0).any():
        raise ValueError("densities must be >= 0")
    return p_data.double(), p_g.double()


def _xlogy(weight: Tensor, y: Tensor) -> Tensor:
    """$w \\log y$ with the convention $0 \\log 0 = 0$ (no mass, no contribution)."""
    return torch.where(weight > 0, weight * torch.log(y), torch.zeros_like(weight))


# --- the value function and its optimum -------------------------------------------------

def value_function(d_values: Tensor, p_data: Tensor, p_g: Tensor, cell: float,
                   one_minus_d: Tensor | None = None) -> float:
    """$V(D, G) = \\int p_\\text{data}(x) \\log D(x) + p_g(x) \\log(1 - D(x))\\, dx$ on a grid.

    Goodfellow et al. 2014, eq. 1, written as one integral over $x$ (the proof of
    proposition 1 does the same). Midpoint rule: $\\sum_k (\\dots)_k \\Delta$.

    Args:
        d_values: ``(n,)`` discriminator outputs $D(x_k) \\in [0, 1]$ at the grid points.
        p_data, p_g: ``(n,)`` the two densities at the same points.
        cell: the grid cell's length $\\Delta > 0$.
        one_minus_d: ``(n,)`` optional $1 - D(x_k)$ computed without cancellation; in
            float64 $1 - D$ rounds to 0 once $D > 1 - 10^{-16}$, which happens in the tails.

    Returns:
        $V$ in nats (``-inf`` if $D = 0$ where $p_\\text{data} > 0$ or $D = 1$ where $p_g > 0$).

    Raises:
        ValueError: if shapes differ, ``cell <= 0``, a density is negative or $D \\notin [0, 1]$.
    """
    p_data, p_g = _check_pair(p_data, p_g)
    if d_values.shape != p_data.shape:
        raise ValueError(f"d_values must have the densities' shape {tuple(p_data.shape)}, "
                         f"got {tuple(d_values.shape)}")
    if cell <= 0:
        raise ValueError(f"cell (length of a grid cell) must be > 0, got {cell}")
    d_values = d_values.double()
    if (d_values < 0).any() or (d_values > 1).any():
        raise ValueError("d_values must lie in [0, 1]: D(x) is a probability")
    if one_minus_d is None:
        one_minus_d = 1 - d_values
    integrand = _xlogy(p_data, d_values) + _xlogy(p_g, one_minus_d.double())   # (n,)
    return float(integrand.sum() * cell)


def optimal_discriminator(p_data: Tensor, p_g: Tensor) -> Tensor:
    """$D^*_G(x) = \\dfrac{p_\\text{data}(x)}{p_\\text{data}(x) + p_g(x)}$ (Goodfellow et al.
    2014, eq. 2); $\\tfrac12$ where both densities vanish (any value is optimal there).

    Args:
        p_data, p_g: densities at the same points, any (equal) shape.

    Returns:
        $D^*$ at those points, float64, same shape.
    """
    p_data, p_g = _check_pair(p_data, p_g)
    total = p_data + p_g
    return torch.where(total > 0, p_data / total.clamp_min(1e-300), torch.full_like(total, 0.5))


def pointwise_objective(a: float, b: float, y: Tensor) -> Tensor:
    """$f(y) = a \\log y + b \\log(1 - y)$, the integrand of $V$ at one $x$ with
    $a = p_\\text{data}(x)$, $b = p_g(x)$; for $a, b > 0$ its maximum on $(0, 1)$ is at
    $y = a / (a + b)$ (set $f'(y) = a/y - b/(1-y) = 0$).

    Args:
        a, b: non-negative weights.
        y: ``(m,)`` points in $(0, 1)$.

    Returns:
        ``(m,)`` $f(y)$.
    """
    if a < 0 or b < 0:
        raise ValueError(f"a and b must be >= 0, got a={a}, b={b}")
    y = torch.as_tensor(y, dtype=torch.float64)
    if (y <= 0).any() or (y >= 1).any():
        raise ValueError("y must lie in the open interval (0, 1)")
    return a * torch.log(y) + b * torch.log1p(-y)


@dataclass(frozen=True)
class PerturbationCheck:
    """$V(D^*)$ against $V$ of ``n`` perturbed discriminators $D^* + $ bumps."""

    value_optimal: float
    values_perturbed: list[float]

    @property
    def optimal_wins(self) -> bool:
        """True when every perturbation lowered $V$."""
        return all(v < self.value_optimal for v in self.values_perturbed)


def perturbation_check(p_data: Tensor, p_g: Tensor, x: Tensor, cell: float, n: int = 20,
                       amplitude: float = 0.05, seed: int = 0) -> PerturbationCheck:
    """Perturb $D^*$ by random Gaussian bumps and compare the value functions.

    Each perturbation is $D = \\mathrm{clip}(D^* + \\sum_j c_j e^{-(x - m_j)^2 / 2 w_j^2},
    10^{-6}, 1 - 10^{-6})$ with random signs and sizes $|c_j| \\le$ ``amplitude``, centres
    $m_j$ within three standard deviations of the mixture $\\frac12(p_\\text{data} + p_g)$ (where
    the mass is) and widths $w_j \\in [0.2, 1]$. Since $D^*$ maximises the concave
    integrand pointwise, every such $D$ has $V(D) < V(D^*)$.

    Args:
        p_data, p_g: ``(n_grid,)`` densities on the grid ``x`` ``(n_grid,)``.
        cell: the grid's cell length.
        n: number of perturbed discriminators.
        amplitude: largest bump height.
        seed: seed of the bumps.

    Returns:
        :class:`PerturbationCheck`.
    """
    if n < 1 or amplitude <= 0:
        raise ValueError(f"need n >= 1 and amplitude > 0, got n={n}, amplitude={amplitude}")
    generator = torch.Generator().manual_seed(seed)
    x = x.double()
    d_star = optimal_discriminator(p_data, p_g)
    mixture = 0.5 * (p_data.double() + p_g.double()) * cell             # (n_grid,) masses
    mean = float((mixture * x).sum() / mixture.sum())
    spread = 3 * math.sqrt(float((mixture * (x - mean) ** 2).sum() / mixture.sum()))
    low, high = mean - spread, mean + spread
    values = []
    for _ in range(n):
        params = torch.rand(3, 3, generator=generator, dtype=torch.float64)   # 3 bumps
        heights = amplitude * (2 * params[0] - 1)                           # (3,)
        centres = low + (high - low) * params[1]                            # (3,)
        widths = 0.2 + 0.8 * params[2]                                      # (3,)
        bumps = heights[:, None] * torch.exp(
            -0.5 * ((x[None, :] - centres[:, None]) / widths[:, None]) ** 2)  # (3, n_grid)
        d_values = (d_star + bumps.sum(0)).clamp(1e-6, 1 - 1e-6)
        values.append(value_function(d_values, p_data, p_g, cell))
    value_optimal = value_function(d_star, p_data, p_g, cell, optimal_discriminator(p_g, p_data))
    return PerturbationCheck(value_optimal, values)


@dataclass(frozen=True)
class OptimalValueCheck:
    """$C(G) = V(D^*, G)$ next to $2\\,\\mathrm{JS}(p_\\text{data} \\Vert p_g) - \\log 4$."""

    value: float
    js: float

    @property
    def two_js_minus_log4(self) -> float:
        """$2\\,\\mathrm{JS} - \\log 4$ (Goodfellow et al. 2014, eq. 6)."""
        return 2 * self.js - LOG_4

    @property
    def error(self) -> float:
        """$|V(D^*, G) - (2\\,\\mathrm{JS} - \\log 4)|$."""
        return abs(self.value - self.two_js_minus_log4)


def optimal_value_check(p_data: Tensor, p_g: Tensor, cell: float) -> OptimalValueCheck:
    """$V(D^*, G)$ by numerical integration, and JS by :func:`~aigc_course.divergences.js_on_grid`.

    Args:
        p_data, p_g: ``(n,)`` densities on a grid with cell length ``cell``.

    Returns:
        :class:`OptimalValueCheck`; its ``error`` is the grid's disagreement with theorem 1.
    """
    d_star = optimal_discriminator(p_data, p_g)
    one_minus_d_star = optimal_discriminator(p_g, p_data)               # p_g / (p_data + p_g)
    return OptimalValueCheck(value_function(d_star, p_data, p_g, cell, one_minus_d_star),
                             js_on_grid(p_data, p_g, cell))


# --- what the notebook plots ------------------------------------------------------------

@dataclass(frozen=True)
class DiscriminatorCurve:
    """Two 1-D Gaussians and $D^*$ on a grid: plot ``p_data``, ``p_g`` and ``d_star`` over ``x``."""

    x: Tensor
    p_data: Tensor
    p_g: Tensor
    d_star: Tensor


def optimal_discriminator_curve(mu_data: float = 0.0, sigma_data: float = 1.0,
                                mu_g: float = 2.0, sigma_g: float = 0.5,
                                low: float = -6.0, high: float = 8.0,
                                n: int = 2001) -> DiscriminatorCurve:
    """$D^*(x)$ for $p_\\text{data} = \\mathcal N(\\mu_\\text{data}, \\sigma_\\text{data}^2)$ and
    $p_g = \\mathcal N(\\mu_g, \\sigma_g^2)$ on ``n`` midpoints of ``[low, high]``; all ``(n,)``."""
    x, _ = grid_1d(low, high, n)
    p_data = gaussian_density(x, mu_data, sigma_data)
    p_g = gaussian_density(x, mu_g, sigma_g)
    return DiscriminatorCurve(x, p_data, p_g, optimal_discriminator(p_data, p_g))


@dataclass(frozen=True)
class ValueSweep:
    """$V(D^*, G)$ and $2\\,\\mathrm{JS} - \\log 4$ as the generator's mean moves.

    Plot ``value`` and ``two_js_minus_log4`` (``(m,)``) against ``means``; both reach
    $-\\log 4$ at ``means == mu_data`` (when ``sigma_g == sigma_data``).
    """

    means: Tensor
    value: Tensor
    two_js_minus_log4: Tensor


def value_vs_generator_mean(means: Tensor | None = None, mu_data: float = 0.0,
                            sigma_data: float = 1.0, sigma_g: float = 1.0,
                            low: float = -12.0, high: float = 12.0,
                            n: int = 4001) -> ValueSweep:
    """Sweep $p_g = \\mathcal N(\\mu_g, \\sigma_g^2)$ over ``means`` (default 41 points in
    $[-5, 5]$) and return $C(G)$ both ways (grid ``[low, high]`` with ``n`` cells)."""
    if means is None:
        means = torch.linspace(-5.0, 5.0, 41, dtype=torch.float64)
    x, cell = grid_1d(low, high, n)
    p_data = gaussian_density(x, mu_data, sigma_data)
    checks = [optimal_value_check(p_data, gaussian_density(x, float(m), sigma_g), cell)
              for m in means]
    return ValueSweep(torch.as_tensor(means, dtype=torch.float64),
                      torch.tensor([c.value for c in checks], dtype=torch.float64),
                      torch.tensor([c.two_js_minus_log4 for c in checks], dtype=torch.float64))


# --- saturating vs non-saturating generator loss ----------------------------------------

@dataclass(frozen=True)
class GeneratorGradients:
    """$\\partial \\ell / \\partial a$ for both generator losses at $D = \\sigma(a)$.

    Plot ``saturating`` and ``non_saturating`` (``(m,)``) against ``d``. Closed forms:
    saturating $-D$ (vanishes as $D \\to 0$, when $D$ confidently rejects the fakes, which is
    early in training), non-saturating $-(1 - D)$ (largest there).
    """

    d: Tensor
    saturating: Tensor
    non_saturating: Tensor


def generator_loss_gradients(d_values: Tensor | None = None) -> GeneratorGradients:
    """Gradients of both generator losses with respect to the discriminator's logit, by autograd.

    Args:
        d_values: ``(m,)`` values of $D(G(z))$ in the open interval $(0, 1)$; default 199
            points in $[0.005, 0.995]$.

    Returns:
        :class:`GeneratorGradients`.

    Raises:
        ValueError: if a value is outside $(0, 1)$.
    """
    if d_values is None:
        d_values = torch.linspace(0.005, 0.995, 199, dtype=torch.float64)
    d_values = torch.as_tensor(d_values, dtype=torch.float64).reshape(-1)   # (m,)
    if d_values.numel() == 0 or (d_values <= 0).any() or (d_values >= 1).any():
        raise ValueError("d_values must be non-empty and lie in the open interval (0, 1)")
    gradients = {}
    for kind, loss in (("saturating", g_loss_minimax), ("non_saturating", g_loss_non_saturating)):
        logits = torch.logit(d_values).requires_grad_(True)            # a = log(D / (1 - D))
        (len(logits) * loss(logits)).backward()                        # sum: entry i is dl_i/da_i
        assert logits.grad is not None                                 # a leaf that needs grad
        gradients[kind] = logits.grad.detach()
    return GeneratorGradients(d_values, gradients["saturating"], gradients["non_saturating"])
