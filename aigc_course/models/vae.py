"""A small convolutional VAE for digit images, optionally class-conditional.

Kingma & Welling (2014), "Auto-encoding variational Bayes"; the conditional variant
feeds a one-hot label to both encoder and decoder (Sohn, Lee & Yan 2015, "Learning
structured output representation using deep conditional generative models").

The network only maps: :meth:`ConvVAE.encode` gives $\\mu, \\log\\sigma^2$ of
$q_\\phi(z \\mid x)$, :meth:`ConvVAE.reparameterise` draws $z$, :meth:`ConvVAE.decode`
gives per-pixel logits of $p_\\theta(x \\mid z)$. The losses live in
:mod:`aigc_course.losses`, the training loop in :mod:`aigc_course.train.vae`. For 2-D
points, chapter 02's :class:`aigc_course.models.mlp.MLPVAE` is the MLP VAE.

Simplified: two stride-2 convolutions down and two transposed ones up, so the image
side must be a multiple of 4 (8, 16, 28, 32 all work).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aigc_course.kinds import ClassConditional

Tensor = torch.Tensor


@dataclass
class VAEConfig:
    """The architecture of a :class:`ConvVAE`.

    Attributes:
        image_size: side length (a multiple of 4).
        channels: image channels (1 for digits).
        latent_dim: dimension of $z$.
        width: channels of the first convolution (doubled after each downsampling).
        num_classes: ``0`` for an unconditional VAE, else the number of classes the
            encoder and decoder are conditioned on.
    """

    image_size: int = 16
    channels: int = 1
    latent_dim: int = 16
    width: int = 16
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.image_size < 4 or self.image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4, got {self.image_size}")
        for name in ("channels", "latent_dim", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")

    def to_dict(self) -> dict[str, int]:
        """Plain values, for a checkpoint."""
        return dataclasses.asdict(self)


def decoder_mean(logits: Tensor) -> Tensor:
    """The decoder's mean image in $[-1, 1]$: $2\\sigma(\\text{logits}) - 1$ (same shape)."""
    return 2 * torch.sigmoid(logits) - 1


class ConvVAE(ClassConditional, nn.Module):
    """Encoder $q_\\phi(z \\mid x[, y])$ and decoder $p_\\theta(x \\mid z[, y])$ of a VAE.

    Args:
        config: the architecture; ``None`` uses the defaults.
    """

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or VAEConfig()
        w, s = c.width, c.image_size // 4
        self.feature_shape = (2 * w, s, s)
        flat = 2 * w * s * s
        self.encoder = nn.Sequential(
            nn.Conv2d(c.channels, w, 3, padding=1), nn.SiLU(),
            nn.Conv2d(w, w, 4, stride=2, padding=1), nn.SiLU(),            # H/2
            nn.Conv2d(w, 2 * w, 4, stride=2, padding=1), nn.SiLU(),        # H/4
            nn.Flatten(),
        )
        self.to_stats = nn.Linear(flat + c.num_classes, 2 * c.latent_dim)
        self.from_z = nn.Sequential(nn.Linear(c.latent_dim + c.num_classes, flat), nn.SiLU())
        self.decoder = nn.Sequential(
            nn.ConvTranspose2d(2 * w, w, 4, stride=2, padding=1), nn.SiLU(),   # H/2
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.SiLU(),       # H
            nn.Conv2d(w, c.channels, 3, padding=1),
        )



    def _with_label(self, h: Tensor, y: Tensor | None) -> Tensor:
        if not self.conditional:
            return h
        if y is None:
            raise ValueError("this VAE is class-conditional: pass labels y")
        one_hot = F.one_hot(y.long(), self.config.num_classes).to(h)      # (B, K)
        return torch.cat([h, one_hot], dim=1)                              # (B, F+K)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(B, C, H, W)`` images -> ``mu``, ``logvar`` each ``(B, latent_dim)``."""
        c = self.config
        if x.ndim != 4 or tuple(x.shape[1:]) != (c.channels, c.image_size, c.image_size):
            raise ValueError(f"expected images (B, {c.channels}, {c.image_size}, "
                             f"{c.image_size}), got {tuple(x.shape)}")
        h = self._with_label(self.encoder(x), y)                           # (B, F[+K])
        mu, logvar = self.to_stats(h).chunk(2, dim=1)
        return mu, logvar.clamp(-12, 8)

    @staticmethod
    def reparameterise(mu: Tensor, logvar: Tensor,
                       generator: torch.Generator | None = None,
                       eps: Tensor | None = None) -> Tensor:
        """$z = \\mu + \\sigma \\odot \\epsilon$, $\\epsilon \\sim \\mathcal N(0, I)$.

        The reparameterisation trick (Kingma & Welling 2014, eq. 10); ``eps`` drawn
        outside (data-parallel ranks keep their slice of the global batch's), else here.
        """
        eps = (torch.randn(mu.shape, generator=generator) if eps is None else eps).to(mu)
        return mu + torch.exp(0.5 * logvar) * eps

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """``(B, latent_dim)`` -> per-pixel logits ``(B, C, H, W)``."""
        h = self.from_z(self._with_label(z, y))                            # (B, F)
        return self.decoder(h.view(len(z), *self.feature_shape))           # (B, 2w, H/4, W/4) in

    def forward(self, x: Tensor, y: Tensor | None = None,
                generator: torch.Generator | None = None,
                eps: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """Encode, reparameterise (with ``eps`` if given), decode: logits, ``mu``, ``logvar``."""
        mu, logvar = self.encode(x, y)
        z = self.reparameterise(mu, logvar, generator, eps)
        return self.decode(z, y), mu, logvar

    @torch.no_grad()
    def decode_mean(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder mean for latents ``(B, latent_dim)``: ``(B, C, H, W)`` in $[-1, 1]$."""
        return decoder_mean(self.decode(z, y))

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The decoder mean at $z = \\mu(x)$: images in $[-1, 1]$, like ``x``."""
        mu, _ = self.encode(x, y)
        return decoder_mean(self.decode(mu, y))

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """The shape of one sample's starting noise $z$: ``(latent_dim,)``."""
        return (self.config.latent_dim,)

    @torch.no_grad()
    def sample(self, n: int, *, y: Tensor | None = None,
               generator: torch.Generator | None = None, noise: Tensor | None = None
               ) -> Tensor:
        """$z \\sim \\mathcal N(0, I)$, decoder mean: ``(n, C, H, W)`` in $[-1, 1]$.

        Args:
            n: how many.
            y: ``(n,)`` labels for a conditional model (``None``: cycle through classes).
            generator: random generator for $z$.
            noise: the latents $z$ ``(n, latent_dim)`` (``None``: drawn with ``generator``).
        """
        device = next(self.parameters()).device
        if self.conditional and y is None:
            y = torch.arange(n) % self.config.num_classes
        y = None if y is None else y.to(device)
        z = (torch.randn(n, self.config.latent_dim, generator=generator)
             if noise is None else noise).to(device)
        return decoder_mean(self.decode(z, y))
