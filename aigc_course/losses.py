"""Loss functions, one per equation: the VAE chapter's ELBO, its terms and the IWAE bound;
the GAN chapter's minimax, non-saturating, hinge and Wasserstein losses and gradient penalty.

Kingma & Welling (2014), "Auto-encoding variational Bayes" (eq. 3 the ELBO, eq. 10 the
Gaussian KL in closed form); Burda, Grosse & Salakhutdinov (2016), "Importance weighted
autoencoders" (eq. 8, the $k$-sample bound). Every function returns per-example values
``(B,)`` in nats (summed over pixels / latent dimensions), so callers choose how to
average, and the loss scale stays visible.

Images are in $[-1, 1]$ as everywhere in the course; the decoder outputs one real number
per pixel, ``logits``, and its mean image is $2\\sigma(\\text{logits}) - 1$ for all three
likelihoods (Bernoulli on the pixel intensity $(x+1)/2 \\in [0, 1]$, used as a soft target,
or a Gaussian with a fixed standard deviation around that mean, or a categorical over the
discrete grey levels of the data). Only the categorical is a normalised distribution over
discrete images, so only its nats bound $\\log P(x)$: the Bernoulli on grey targets is a
training loss, and the Gaussian a density on a continuum the data do not fill. Simplified:
the Gaussian decoder has one fixed $\\sigma_x$, not a learned one, and the categorical
reuses the one output per pixel (a Gaussian kernel around the mean, normalised over the
levels) instead of one logit per level.

The GAN losses (Goodfellow et al. 2014; Lim & Ye 2017; Arjovsky et al. 2017; Gulrajani et
al. 2017, see the section below) take the discriminator's logits and return batch means:
scalars to minimise, as the training loop of :mod:`aigc_course.train.gan` uses them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal, get_args

import torch
import torch.nn.functional as F

from aigc_course.divergences import LOG_2PI, kl_gaussian_diag
from aigc_course.models.vae import decoder_mean

Tensor = torch.Tensor
Likelihood = Literal["bernoulli", "gaussian", "categorical"]
LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)


def _check_likelihood(likelihood: str) -> None:
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"unknown likelihood {likelihood!r}; valid: {', '.join(LIKELIHOODS)}")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """$\\mathrm{KL}(\\mathcal N(\\mu, \\operatorname{diag}\\sigma^2) \\Vert \\mathcal N(0, I))$.

    $$\\mathrm{KL} = \\tfrac12 \\sum_j \\left(\\mu_j^2 + \\sigma_j^2
    - \\log\\sigma_j^2 - 1\\right)$$
    (Kingma & Welling 2014, appendix B).

    Args:
        mu, logvar: ``(B, D)`` mean and log-variance of $q(z \\mid x)$.

    Returns:
        ``(B,)`` nats.
    """
    return kl_gaussian_diag(mu, logvar)            # the general form with q = N(0, I)


def gaussian_log_density(z: Tensor, mu: Tensor | float = 0.0,
                         logvar: Tensor | float = 0.0) -> Tensor:
    """$\\log \\mathcal N(z; \\mu, \\operatorname{diag} e^{\\text{logvar}})$, summed over axis -1.

    Args:
        z: ``(..., D)`` points; ``mu``, ``logvar`` broadcast to it (default $\\mathcal N(0, I)$).

    Returns:
        ``(...)`` log densities.
    """
    logvar = torch.as_tensor(logvar, dtype=z.dtype)
    return -0.5 * (LOG_2PI + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


def bernoulli_log_likelihood(x: Tensor, logits: Tensor) -> Tensor:
    """Bernoulli $\\log p(x \\mid z) = \\sum_i t_i \\log p_i + (1 - t_i) \\log(1 - p_i)$.

    Targets $t = (x+1)/2$, probabilities $p = \\sigma(\\text{logits})$.

    Args:
        x: ``(B, C, H, W)`` images in $[-1, 1]$ (grey levels act as soft targets).
        logits: ``(B, C, H, W)`` decoder outputs.

    Returns:
        ``(B,)`` nats (negative: its maximum for a grey target is not 0).
    """
    target = (x + 1) / 2
    return -F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def gaussian_log_likelihood(x: Tensor, logits: Tensor, sigma: float = 0.1) -> Tensor:
    """Gaussian $\\log \\mathcal N(x; \\hat x, \\sigma^2 I)$.

    $$\\log p(x \\mid z) = -\\frac{\\lVert x - \\hat x\\rVert^2}{2\\sigma^2}
    - \\frac D2 \\log(2\\pi\\sigma^2)$$

    Args:
        x: ``(B, C, H, W)`` images in $[-1, 1]$.
        logits: decoder outputs; the mean is :func:`decoder_mean` of them.
        sigma: the fixed decoder standard deviation (pixel units of $[-1, 1]$).

    Returns:
        ``(B,)`` nats.
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x_hat = decoder_mean(logits)
    d = x[0].numel()
    squared = (x - x_hat).pow(2).flatten(1).sum(1)                       # (B,)
    return -squared / (2 * sigma**2) - 0.5 * d * (LOG_2PI + 2 * math.log(sigma))


#: grey levels of the ``digits`` images (scikit-learn's integers 0..16, mapped to $[-1, 1]$)
DIGIT_LEVELS = 17


def categorical_level_log_probs(logits: Tensor, sigma: float = 0.1,
                                levels: int = DIGIT_LEVELS) -> Tensor:
    """Log-probabilities of each of ``levels`` grey levels $v_k = -1 + \\frac{2k}{L-1}$.

    A categorical whose probabilities are a Gaussian kernel around the decoder mean
    $\\hat x$, normalised over the $L$ levels (a softmax, so they sum to 1):
    $$\\log P(v_k \\mid z) = -\\frac{(v_k - \\hat x)^2}{2\\sigma^2}
    - \\log \\sum_{j=0}^{L-1} e^{-(v_j - \\hat x)^2 / 2\\sigma^2}.$$

    Args:
        logits: ``(B, C, H, W)`` decoder outputs; the mean is :func:`decoder_mean` of them.
        sigma: the kernel's width (pixel units of $[-1, 1]$).
        levels: $L \\ge 2$.

    Returns:
        ``(B, C, H, W, L)`` log-probabilities.
    """
    if sigma <= 0 or levels < 2:
        raise ValueError(f"need sigma > 0 and levels >= 2, got {sigma}, {levels}")
    grid = torch.linspace(-1, 1, levels, dtype=logits.dtype, device=logits.device)   # (L,)
    x_hat = decoder_mean(logits).unsqueeze(-1)                            # (B, C, H, W, 1)
    return torch.log_softmax(-(grid - x_hat).pow(2) / (2 * sigma**2), dim=-1)  # (..., L)


def categorical_log_likelihood(x: Tensor, logits: Tensor, sigma: float = 0.1,
                               levels: int = DIGIT_LEVELS) -> Tensor:
    """Categorical $\\log P(x \\mid z) = \\sum_i \\log P(x_i \\mid z)$ over discrete grey levels.

    Normalised over the $L^D$ possible images, so $-\\log P \\ge 0$ and an ELBO with it
    is a true lower bound on $\\log P(x)$ (:func:`categorical_level_log_probs`).

    Args:
        x: ``(B, C, H, W)`` images whose pixels lie on the grid $-1 + \\frac{2k}{L-1}$.
        logits: ``(B, C, H, W)`` decoder outputs.

    Returns:
        ``(B,)`` nats (at most 0).

    Raises:
        ValueError: a pixel is off the grid (resized images are not discrete).
    """
    position = (x + 1) / 2 * (levels - 1)
    index = position.round()
    if (position - index).abs().max() > 1e-3 or index.min() < 0 or index.max() > levels - 1:
        raise ValueError(f"the categorical likelihood needs pixels on the {levels} grey levels "
                         "(load digits at their native 8x8)")
    log_p = categorical_level_log_probs(logits, sigma, levels)            # (B, C, H, W, L)
    picked = log_p.gather(-1, index.long().unsqueeze(-1)).squeeze(-1)     # (B, C, H, W)
    return picked.flatten(1).sum(1)


def log_likelihood(x: Tensor, logits: Tensor, likelihood: Likelihood = "bernoulli",
                   sigma: float = 0.1) -> Tensor:
    """$\\log p_\\theta(x \\mid z)$ per example ``(B,)`` for any of the decoder likelihoods.

    ``sigma`` is the Gaussian's standard deviation or the categorical's kernel width
    (over the 17 grey levels of ``digits``).
    """
    _check_likelihood(likelihood)
    if likelihood == "bernoulli":
        return bernoulli_log_likelihood(x, logits)
    if likelihood == "categorical":
        return categorical_log_likelihood(x, logits, sigma)
    return gaussian_log_likelihood(x, logits, sigma)


def elbo_terms(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor,
               likelihood: Likelihood = "bernoulli", sigma: float = 0.1
               ) -> dict[str, Tensor]:
    """The two terms of the ELBO with one reparameterised sample (Kingma & Welling 2014, eq. 10).

    $$\\mathrm{ELBO}(x) =
    \\underbrace{\\mathbb E_{q}[\\log p_\\theta(x \\mid z)]}_{-\\text{reconstruction}}
    - \\underbrace{\\mathrm{KL}(q_\\phi(z \\mid x) \\Vert p(z))}_{\\text{kl}}$$

    Args:
        x: ``(B, C, H, W)`` images; ``logits``: decoder outputs for $z \\sim q(z \\mid x)$.
        mu, logvar: ``(B, D)`` of $q(z \\mid x)$.

    Returns:
        ``{"reconstruction": (B,), "kl": (B,)}`` in nats: reconstruction is
        $-\\log p(x \\mid z)$, so $-\\mathrm{ELBO}$ = reconstruction + kl.
    """
    return {"reconstruction": -log_likelihood(x, logits, likelihood, sigma),
            "kl": gaussian_kl(mu, logvar)}


def beta_vae_loss(terms: dict[str, Tensor], beta: float = 1.0) -> Tensor:
    """The $\\beta$-VAE objective (Higgins et al. 2017, eq. 4), averaged over the batch.

    $\\frac1B\\sum_b \\text{reconstruction}_b + \\beta\\,\\text{kl}_b$;
    $\\beta = 1$ is $-$ELBO; ``terms`` as returned by :func:`elbo_terms`.
    """
    return (terms["reconstruction"] + beta * terms["kl"]).mean()


def iwae_bound(log_px_given_z: Tensor, log_pz: Tensor, log_qz: Tensor) -> Tensor:
    """The importance-weighted bound of Burda et al. (2016, eq. 8) from $k$ samples.

    $$\\mathcal L_k(x) = \\log \\frac1k \\sum_{i=1}^k
    \\frac{p_\\theta(x, z_i)}{q_\\phi(z_i \\mid x)}, \\quad z_i \\sim q_\\phi(z \\mid x);$$
    $\\mathcal L_1$ is the ELBO, and in expectation
    $\\mathcal L_k \\le \\mathcal L_{k+1} \\le \\log p(x)$.

    Args:
        log_px_given_z, log_pz, log_qz: ``(k, B)`` log densities of the $k$ samples.

    Returns:
        ``(B,)`` nats.
    """
    log_w = log_px_given_z + log_pz - log_qz                              # (k, B)
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])


def reparameterised_gradients(f: Callable[[Tensor], Tensor], mu: float, sigma: float,
                              n: int, generator: torch.Generator | None = None) -> Tensor:
    """$n$ pathwise estimates of $\\partial_\\mu \\mathbb E f(z)$, $z$ from a Gaussian.

    The pathwise (reparameterisation) estimator (Kingma & Welling 2014, sec. 2.4):
    $z = \\mu + \\sigma\\epsilon$, so $\\partial_\\mu f(z) = f'(\\mu + \\sigma\\epsilon)$.

    Args:
        f: an elementwise differentiable function of a tensor.
        mu, sigma: the Gaussian's parameters.
        n: how many independent estimates.

    Returns:
        ``(n,)`` estimates (their mean is unbiased; their variance is what matters).
    """
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    z_each = (mu + sigma * eps).requires_grad_(True)                      # (n,) leaf per sample
    (grads,) = torch.autograd.grad(f(z_each).sum(), z_each)               # f'(z_i), dz/dmu = 1
    return grads.detach()


def score_function_gradients(f: Callable[[Tensor], Tensor], mu: float, sigma: float,
                             n: int, generator: torch.Generator | None = None) -> Tensor:
    """$n$ one-sample REINFORCE estimates of the same gradient (Williams 1992).

    $\\partial_\\mu \\mathbb E[f(z)]
    = \\mathbb E[f(z)\\,\\partial_\\mu \\log \\mathcal N(z; \\mu, \\sigma^2)]
    = \\mathbb E[f(z)\\,(z - \\mu)/\\sigma^2]$: it needs values of $f$ only, not $f'$.

    Returns:
        ``(n,)`` estimates.
    """
    z = mu + sigma * torch.randn(n, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        return f(z) * (z - mu) / sigma**2


# --- GANs (chapter 03) ---------------------------------------------------------------
# Goodfellow et al. (2014), "Generative adversarial nets" (eq. 1, the minimax value, and
# section 3, the non-saturating generator loss); Lim & Ye (2017) / Miyato et al. (2018)
# the hinge loss; Arjovsky et al. (2017) the Wasserstein critic loss and Gulrajani et al.
# (2017, eq. 3) its gradient penalty. Every function takes the discriminator's *logits*
# (or critic values) $h = D(\cdot)$ ``(B,)``, with $D(x) = \sigma(h)$ the probability
# "real", and returns the batch mean, a scalar to minimise.

GANLoss = Literal["minimax", "non_saturating", "hinge", "wgan_gp"]
GAN_LOSSES: tuple[str, ...] = get_args(GANLoss)


def d_loss_minimax(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """$D$'s loss of the minimax game and of the non-saturating GAN (Goodfellow et al. 2014, eq. 1).

    $$L_D = -\\mathbb E_x[\\log D(x)] - \\mathbb E_z[\\log(1 - D(G(z)))]$$
    with $\\log\\sigma(h) = -\\operatorname{softplus}(-h)$ and
    $\\log(1 - \\sigma(h)) = -\\operatorname{softplus}(h)$ (stable for large $|h|$).

    Args:
        real_logits: ``(B,)`` $D$'s logits on data. fake_logits: ``(B,)`` on $G(z)$.
    """
    # -log D(x) - log(1 - D(G(z))), averaged over the batch
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_minimax(fake_logits: Tensor) -> Tensor:
    """$G$'s loss in the minimax game: $L_G = \\mathbb E_z[\\log(1 - D(G(z)))]$ (eq. 1).

    Its gradient vanishes when $D$ confidently rejects the fakes ($D(G(z)) \\to 0$):
    $\\partial L_G / \\partial h = -\\sigma(h)$.
    """
    return -F.softplus(fake_logits).mean()                                # log(1 - sigma(h))


def g_loss_non_saturating(fake_logits: Tensor) -> Tensor:
    """$G$'s non-saturating loss $L_G = -\\mathbb E_z[\\log D(G(z))]$ (Goodfellow et al. 2014).

    Section 3 of the paper.

    Same fixed point as the minimax loss, but a strong gradient early in training:
    $\\partial L_G / \\partial h = \\sigma(h) - 1$.
    """
    return F.softplus(-fake_logits).mean()                                # -log sigma(h)


def d_loss_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Hinge loss of $D$ (Lim & Ye 2017; Miyato et al. 2018, eq. 16).

    $$L_D = \\mathbb E_x[\\max(0, 1 - h(x))] + \\mathbb E_z[\\max(0, 1 + h(G(z)))]$$
    """
    return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()


def g_loss_hinge(fake_logits: Tensor) -> Tensor:
    """Hinge loss of $G$: $L_G = -\\mathbb E_z[h(G(z))]$ (Miyato et al. 2018, eq. 17)."""
    return -fake_logits.mean()


def d_loss_wasserstein(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Wasserstein critic loss $L_D = \\mathbb E_z[f(G(z))] - \\mathbb E_x[f(x)]$.

    Arjovsky, Chintala & Bottou (2017), eq. 3, with $D$'s output as the critic $f$.

    Add :func:`gradient_penalty` to keep $f$ near 1-Lipschitz (WGAN-GP).
    """
    return fake_logits.mean() - real_logits.mean()


def g_loss_wasserstein(fake_logits: Tensor) -> Tensor:
    """Wasserstein generator loss $L_G = -\\mathbb E_z[f(G(z))]$."""
    return -fake_logits.mean()


def gradient_penalty(critic: Callable[[Tensor], Tensor], real: Tensor, fake: Tensor,
                     generator: torch.Generator | None = None,
                     alpha: Tensor | None = None) -> Tensor:
    """WGAN-GP's gradient penalty (Gulrajani et al. 2017).

    $$\\text{GP} = \\mathbb E_{\\hat x}\\left[(\\lVert\\nabla_{\\hat x} f(\\hat x)\\rVert_2
    - 1)^2\\right]$$

    $\\hat x = \\alpha x + (1 - \\alpha)\\tilde x$ with $\\alpha \\sim U[0, 1]$ per example,
    on lines between real $x$ and fake $\\tilde x$ (Gulrajani et al. 2017, eq. 3 and
    Algorithm 1; the weight $\\lambda = 10$ is the caller's).

    Args:
        critic: $f$, mapping ``(B, ...)`` to ``(B,)`` (close over labels if conditional).
        real, fake: ``(B, ...)`` examples; ``fake`` should be detached.
        generator: random generator for $\\alpha$.
        alpha: ``(B,)`` fixed mixing weights instead of random ones (tests).

    Returns:
        A scalar, differentiable with respect to the critic's parameters.
    """
    if alpha is None:
        alpha = torch.rand(real.shape[0], generator=generator).to(real.device)
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))                     # (B, 1, ...)
    x_hat = (alpha * real + (1 - alpha) * fake).detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = grad.flatten(1).norm(dim=1)                                    # (B,) ||grad f(x_hat)||
    return (norm - 1).pow(2).mean()                                       # (||grad|| - 1)^2


def gan_losses(loss: GANLoss) -> tuple[Callable[[Tensor, Tensor], Tensor],
                                       Callable[[Tensor], Tensor]]:
    """The ``(d_loss(real_logits, fake_logits), g_loss(fake_logits))`` pair of a GAN loss.

    ``"wgan_gp"`` returns the Wasserstein pair; the training loop adds the penalty.

    Raises:
        ValueError: an unknown ``loss`` (valid: minimax, non_saturating, hinge, wgan_gp).
    """
    pairs = {"minimax": (d_loss_minimax, g_loss_minimax),
             "non_saturating": (d_loss_minimax, g_loss_non_saturating),
             "hinge": (d_loss_hinge, g_loss_hinge),
             "wgan_gp": (d_loss_wasserstein, g_loss_wasserstein)}
    if loss not in pairs:
        raise ValueError(f"unknown GAN loss {loss!r}; valid: {', '.join(GAN_LOSSES)}")
    return pairs[loss]
