"""Tiny multilayer perceptrons for 2-D points: one network per generative family.

Chapter 02 previews the three families of the course on 2-D data, and chapters 03--05
reuse these networks for their toy experiments:

* GAN (Goodfellow et al. 2014): :class:`MLPGenerator` $G(z)$ and
  :class:`MLPDiscriminator` $D(x)$ (it returns the *logit* of $D$; losses use
  ``binary_cross_entropy_with_logits`` for stability), bundled in :class:`MLPGAN`.
* VAE (Kingma & Welling 2014): :class:`MLPVAE`, an encoder to $(\\mu, \\log\\sigma^2)$ of
  $q_\\phi(z \\mid x)$ and a decoder to the mean of $p_\\theta(x \\mid z)$.
* Diffusion (Ho et al. 2020): :class:`MLPNoisePredictor`, $\\epsilon_\\theta(x_t, t)$
  with the sinusoidal time embedding of Vaswani et al. (2017, section 3.5), which DDPM
  borrows (Ho et al. 2020, appendix B).

Networks only: losses, training loops and samplers take them as arguments
(:mod:`aigc_course.train.toy2d`, :mod:`aigc_course.diffusion`). Simplified with respect
to the papers: plain MLPs (no residual blocks, no normalisation layers), the time
embedding concatenated to the input rather than added inside each block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import nn

Tensor = torch.Tensor
Activation = Literal["relu", "leaky_relu", "silu", "tanh"]
ACTIVATIONS: tuple[str, ...] = get_args(Activation)


def _activation(name: Activation) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2)
    if name == "silu":
        return nn.SiLU()
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; valid: {', '.join(ACTIVATIONS)}")


def mlp(in_dim: int, out_dim: int, hidden: int = 64, depth: int = 3,
        activation: Activation = "silu") -> nn.Sequential:
    """``depth`` hidden layers of width ``hidden``, an activation after each, a linear output.

    Args:
        in_dim, out_dim: input and output features.
        hidden: width of each hidden layer.
        depth: number of hidden layers (``>= 1``).
        activation: ``"relu"``, ``"leaky_relu"``, ``"silu"`` or ``"tanh"``.
    """
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), _activation(activation)]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class MLPConfig:
    """Sizes of the toy networks.

    Attributes:
        data_dim: dimension of a data point (2 for the toy sets).
        latent_dim: dimension of $z$ (GAN and VAE).
        hidden: width of the hidden layers.
        depth: number of hidden layers.
        time_dim: size of the diffusion model's sinusoidal time embedding.
    """

    data_dim: int = 2
    latent_dim: int = 2
    hidden: int = 64
    depth: int = 3
    time_dim: int = 32


class MLPGenerator(nn.Module):
    """$G: z \\mapsto x$, from ``(B, latent_dim)`` noise to ``(B, data_dim)`` points."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or MLPConfig()
        c = self.config
        self.net = mlp(c.latent_dim, c.data_dim, c.hidden, c.depth, "relu")

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """$D: x \\mapsto$ logit of "real", from ``(B, data_dim)`` to ``(B,)``.

    $D(x) = \\sigma(\\text{logit})$ is the probability that $x$ is real.
    """

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or MLPConfig()
        c = self.config
        self.net = mlp(c.data_dim, 1, c.hidden, c.depth, "leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)                                     # (B,)


class MLPGAN(nn.Module):
    """A generator and a discriminator, kept together; :meth:`sample` draws $G(z)$."""

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or MLPConfig()
        self.generator = MLPGenerator(self.config)
        self.discriminator = MLPDiscriminator(self.config)

    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """$z \\sim \\mathcal N(0, I)$, ``(n, latent_dim)``, on the model's device."""
        device = next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` generated points $G(z)$, ``(n, data_dim)``."""
        return self.generator(self.latent(n, generator))


class MLPVAE(nn.Module):
    """A VAE for points: an encoder and a decoder, each an MLP.

    Encoder $q_\\phi(z \\mid x) = \\mathcal N(\\mu, \\operatorname{diag}\\sigma^2)$; decoder
    $p_\\theta(x \\mid z) = \\mathcal N(\\text{decode}(z), \\sigma_x^2 I)$.

    Args:
        config: network sizes.
        decoder_std: the decoder's fixed standard deviation $\\sigma_x$ (data units): it
            sets the reconstruction term's weight in the ELBO and the noise
            :meth:`sample` adds.
    """

    def __init__(self, config: MLPConfig | None = None, decoder_std: float = 0.1) -> None:
        super().__init__()
        self.config = config or MLPConfig()
        c = self.config
        if decoder_std <= 0:
            raise ValueError(f"decoder_std must be > 0, got {decoder_std}")
        self.decoder_std = decoder_std
        self.encoder = mlp(c.data_dim, 2 * c.latent_dim, c.hidden, c.depth, "silu")
        self.decoder = mlp(c.latent_dim, c.data_dim, c.hidden, c.depth, "silu")

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, data_dim)`` -> ``mu``, ``logvar``, each ``(B, latent_dim)``."""
        mu, logvar = self.encoder(x).chunk(2, dim=-1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """``(B, latent_dim)`` -> the decoder's mean ``(B, data_dim)``."""
        return self.decoder(z)

    def forward(self, x: Tensor, generator: torch.Generator | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        """Encode, reparameterise, decode.

        Reparameterisation: $z = \\mu + \\sigma \\epsilon$, $\\epsilon \\sim \\mathcal N(0, I)$
        (Kingma & Welling 2014, eq. 10), so gradients flow through $\\mu$ and $\\sigma$.

        Returns:
            ``x_hat`` ``(B, data_dim)``, ``mu`` and ``logvar`` ``(B, latent_dim)``.
        """
        mu, logvar = self.encode(x)
        eps = torch.randn(mu.shape, generator=generator).to(mu.device)
        z = mu + torch.exp(0.5 * logvar) * eps
        return self.decode(z), mu, logvar

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               noise: bool = True) -> Tensor:
        """``(n, data_dim)`` samples: $z \\sim \\mathcal N(0, I)$, $x \\sim p_\\theta(x \\mid z)$.

        Args:
            n: number of samples.
            generator: random generator.
            noise: add the decoder's noise $\\sigma_x \\epsilon$ (``False``: the mean only).
        """
        device = next(self.parameters()).device
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(device)
        x = self.decode(z)
        if noise:
            x = x + self.decoder_std * torch.randn(x.shape, generator=generator).to(device)
        return x


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding of integer steps (Vaswani et al. 2017, section 3.5).

    $$\\mathrm{emb}(t)_{2i} = \\sin(t\\, \\omega_i), \\quad \\mathrm{emb}(t)_{2i+1} =
    \\cos(t\\, \\omega_i), \\quad \\omega_i = \\text{max\\_period}^{-2i/\\text{dim}}$$
    (here the sines come first, then the cosines, as in Ho et al.'s code).

    Args:
        t: ``(B,)`` steps (integers or floats).
        dim: embedding size, even.

    Returns:
        ``(B, dim)``.
    """
    if dim % 2:
        raise ValueError(f"dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * freqs[None]                              # (B, half)
    return torch.cat([angles.sin(), angles.cos()], dim=1)                  # (B, dim)


class MLPNoisePredictor(nn.Module):
    """$\\epsilon_\\theta(x_t, t)$: points ``(B, data_dim)`` and steps ``(B,)`` -> noise.

    The step is embedded by :func:`sinusoidal_embedding` and concatenated to $x_t$.
    """

    def __init__(self, config: MLPConfig | None = None) -> None:
        super().__init__()
        self.config = config or MLPConfig()
        c = self.config
        self.net = mlp(c.data_dim + c.time_dim, c.data_dim, c.hidden, c.depth, "silu")

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        emb = sinusoidal_embedding(t, self.config.time_dim)               # (B, time_dim)
        return self.net(torch.cat([xt, emb], dim=1))                       # (B, data_dim)
