"""A Gaussian mixture fitted by maximum likelihood with expectation--maximisation (EM).

$$p_\\theta(x) = \\sum_{k=1}^K \\pi_k\\, \\mathcal N(x; \\mu_k, \\Sigma_k)$$

The simplest model that has all three things chapter 02 talks about: a density you can
evaluate (:meth:`GaussianMixture.log_prob`), samples you can draw
(:meth:`GaussianMixture.sample`), and a likelihood you can maximise (:func:`fit_em`).

EM (Dempster, Laird & Rubin 1977; Bishop 2006, "Pattern recognition and machine
learning", section 9.2.2) alternates two steps, and each can only raise the
log-likelihood of the training points (Bishop, section 9.4), which the tests check:

* **E-step**: responsibilities $\\gamma_{ik} = p(k \\mid x_i)$ (Bishop eq. 9.23);
* **M-step**: the weighted maximum-likelihood $\\pi_k, \\mu_k, \\Sigma_k$ (eqs. 9.24--9.26).

Simplified: a fixed number of EM steps (plus an early stop on a tiny improvement), a
small ridge ``reg_covar`` added to each covariance so a component that shrinks onto
one point cannot make the likelihood infinite (scikit-learn does the same), and a
k-means++-style start (Arthur & Vassilvitskii 2007) instead of k-means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch

from aigc_course.divergences import LOG_2PI, grid_2d

Tensor = torch.Tensor
Init = Literal["kmeans++", "random"]
INITS: tuple[str, ...] = get_args(Init)


@dataclass
class GaussianMixture:
    """A mixture of ``K`` full-covariance Gaussians in ``D`` dimensions (float64).

    Attributes:
        weights: ``(K,)`` mixing proportions $\\pi_k$, summing to 1.
        means: ``(K, D)`` component means $\\mu_k$.
        covs: ``(K, D, D)`` component covariances $\\Sigma_k$.
    """

    weights: Tensor
    means: Tensor
    covs: Tensor

    def __post_init__(self) -> None:
        self.weights, self.means, self.covs = (t.double() for t in
                                               (self.weights, self.means, self.covs))
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError(f"weights (K,), means (K, D), covs (K, D, D) expected, got "
                             f"{tuple(self.weights.shape)}, {tuple(self.means.shape)}, "
                             f"{tuple(self.covs.shape)}")

    @property
    def num_components(self) -> int:
        return self.means.shape[0]

    @classmethod
    def isotropic(cls, means: Tensor, std: float, weights: Tensor | None = None
                  ) -> GaussianMixture:
        """Components $\\mathcal N(\\mu_k, \\mathrm{std}^2 I)$, equal weights by default.

        ``GaussianMixture.isotropic(toy2d.ring_centres(), 0.05)`` is the exact density of
        the ``toy2d_ring`` data.
        """
        k, d = means.shape
        weights = torch.full((k,), 1.0 / k) if weights is None else weights
        return cls(weights, means, (std**2) * torch.eye(d).expand(k, d, d).clone())

    def component_log_prob(self, x: Tensor) -> Tensor:
        """$\\log \\pi_k + \\log \\mathcal N(x_i; \\mu_k, \\Sigma_k)$ for each point and component.

        Args:
            x: ``(N, D)`` points.

        Returns:
            ``(N, K)`` joint log densities $\\log p(x_i, k)$.
        """
        x = x.double()
        chol = torch.linalg.cholesky(self.covs)                            # (K, D, D)
        diff = (x[None] - self.means[:, None]).transpose(1, 2)             # (K, D, N)
        z = torch.linalg.solve_triangular(chol, diff, upper=False)         # (K, D, N)
        log_det = 2 * torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)  # (K,)
        d = x.shape[1]
        log_normal = -0.5 * (z.pow(2).sum(1) + log_det[:, None] + d * LOG_2PI)  # (K, N)
        return (log_normal + self.weights.log()[:, None]).T                # (N, K)

    def log_prob(self, x: Tensor) -> Tensor:
        """$\\log p_\\theta(x) = \\log \\sum_k \\pi_k \\mathcal N(x; \\mu_k, \\Sigma_k)$: ``(N,)``.

        Args:
            x: ``(N, D)`` points.
        """
        return torch.logsumexp(self.component_log_prob(x), dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        """$\\gamma_{ik} = p(k \\mid x_i)$ (Bishop eq. 9.23), ``(N, K)``, rows sum to 1."""
        return torch.softmax(self.component_log_prob(x), dim=1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Ancestral sampling: $k \\sim \\mathrm{Cat}(\\pi)$, then $x = \\mu_k + L_k \\epsilon$.

        Args:
            n: number of points.
            generator: random generator (``None``: torch's global one).

        Returns:
            ``(n, D)`` float32 points and ``(n,)`` their components.
        """
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)  # (n,)
        eps = torch.randn(n, self.means.shape[1], generator=generator, dtype=torch.float64)
        chol = torch.linalg.cholesky(self.covs)[k]                         # (n, D, D)
        x = self.means[k] + (chol @ eps[:, :, None]).squeeze(-1)           # (n, D)
        return x.float(), k

    def density_grid(self, limit: float = 3.0, n: int = 200) -> Tensor:
        """The density $p_\\theta$ on an ``n x n`` grid over $[-\\text{limit}, \\text{limit}]^2$.

        Returns:
            ``(n, n)``: row ``i`` is $y_i$, column ``j`` is $x_j$ (for ``contour``/``imshow``
            with ``extent=(-limit, limit, -limit, limit)``, ``origin="lower"``).
        """
        if self.means.shape[1] != 2:
            raise ValueError(f"density_grid needs a 2-D mixture, got D={self.means.shape[1]}")
        points, _ = grid_2d(limit, n)                                      # (n*n, 2)
        return self.log_prob(points).exp().reshape(n, n)                   # (n, n)


@dataclass(frozen=True)
class EMConfig:
    """How :func:`fit_em` runs.

    Attributes:
        components: $K$.
        steps: at most this many EM iterations.
        tol: stop when the mean log-likelihood improves by less than this.
        reg_covar: ridge added to each covariance's diagonal.
        init: ``"kmeans++"`` (spread-out data points as means) or ``"random"``.
        restarts: run EM from this many starts and keep the fit with the highest
            training log-likelihood (EM only finds a local maximum).
    """

    components: int = 8
    steps: int = 100
    tol: float = 1e-6
    reg_covar: float = 1e-6
    init: Init = "kmeans++"
    restarts: int = 1


def _initial_means(x: Tensor, k: int, init: Init, generator: torch.Generator | None) -> Tensor:
    """``k`` data points as starting means: random, or k-means++ ($D^2$ sampling)."""
    if init == "random":
        return x[torch.randperm(len(x), generator=generator)[:k]].clone()
    means = x[torch.randint(len(x), (1,), generator=generator)]            # (1, D)
    for _ in range(k - 1):
        d2 = torch.cdist(x, means).pow(2).min(dim=1).values                # (N,)
        pick = torch.multinomial(d2 / d2.sum(), 1, generator=generator)
        means = torch.cat([means, x[pick]])                                # (j+1, D)
    return means


def fit_em(x: Tensor, config: EMConfig | None = None,
           generator: torch.Generator | None = None) -> tuple[GaussianMixture, list[float]]:
    """Fit a :class:`GaussianMixture` to points by EM (the best of ``config.restarts`` runs).

    Args:
        x: ``(N, D)`` training points, ``N >= components``.
        config: the :class:`EMConfig` (defaults: 8 components, 100 steps, k-means++).
        generator: random generator for the starts.

    Returns:
        The mixture, and the mean training log-likelihood $\\frac1N\\sum_i \\log
        p_\\theta(x_i)$ before each M-step and after the last one (non-decreasing), of the
        run that was kept.
    """
    config = config or EMConfig()
    if config.init not in INITS:
        raise ValueError(f"unknown init {config.init!r}; valid: {', '.join(INITS)}")
    if not 1 <= config.components <= len(x) or config.restarts < 1:
        raise ValueError(f"need 1 <= components <= N={len(x)} and restarts >= 1, got "
                         f"components={config.components}, restarts={config.restarts}")
    runs = [_em_run(x.double(), config, generator) for _ in range(config.restarts)]
    return max(runs, key=lambda run: run[1][-1])


def _em_run(x: Tensor, config: EMConfig, generator: torch.Generator | None
            ) -> tuple[GaussianMixture, list[float]]:
    """One EM run from one start."""
    n, d = x.shape
    k = config.components
    eye = torch.eye(d, dtype=torch.float64)
    start_cov = torch.cov(x.T).reshape(d, d) + config.reg_covar * eye      # (D, D)
    model = GaussianMixture(torch.full((k,), 1.0 / k),
                            _initial_means(x, k, config.init, generator),
                            start_cov.expand(k, d, d).clone())
    history: list[float] = []
    for _ in range(config.steps):
        # E-step: log-likelihood and responsibilities (Bishop eq. 9.23)
        joint = model.component_log_prob(x)                                # (N, K)
        history.append(float(torch.logsumexp(joint, dim=1).mean()))
        gamma = torch.softmax(joint, dim=1)                                # (N, K)
        if len(history) > 1 and history[-1] - history[-2] < config.tol:
            break
        # M-step (Bishop eqs. 9.24-9.27)
        n_k = gamma.sum(0) + 1e-12                                         # (K,)
        means = (gamma.T @ x) / n_k[:, None]                               # (K, D)   eq. 9.24
        diff = x[None] - means[:, None]                                    # (K, N, D)
        covs = torch.einsum("nk,kni,knj->kij", gamma, diff, diff) / n_k[:, None, None]  # 9.25
        model = GaussianMixture(n_k / n, means, covs + config.reg_covar * eye)  # eq. 9.26
    else:
        history.append(float(model.log_prob(x).mean()))
    return model, history


def mean_log_likelihood(model: GaussianMixture, x: Tensor) -> float:
    """$\\frac1N \\sum_i \\log p_\\theta(x_i)$ in nats per point (held-out points: a fair score)."""
    return float(model.log_prob(x).mean())
