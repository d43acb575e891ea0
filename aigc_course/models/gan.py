"""DCGAN generator and discriminator for small images, optionally class-conditional.

Radford, Metz & Chintala (2016), "Unsupervised representation learning with deep
convolutional generative adversarial networks" (DCGAN): strided convolutions, batch
normalisation, ReLU in $G$ and LeakyReLU(0.2) in $D$, a $\\tanh$ output and weights drawn
from $\\mathcal N(0, 0.02^2)$ (standard deviation 0.02; batch-norm scales from
$\\mathcal N(1, 0.02^2)$). Options the chapter compares:

* upsampling by a transposed convolution or by nearest-neighbour resize then a
  convolution (Odena, Dumoulin & Olah 2016, "Deconvolution and checkerboard artifacts");
* class conditioning: a label embedding concatenated to $z$ in $G$; in $D$ either the
  projection discriminator (Miyato & Koyama 2018, eq. 3:
  $D(x, y) = \\psi(\\phi(x)) + e_y^\\top \\phi(x)$) or one-hot label planes concatenated
  to the image (Mirza & Osindero 2014);
* spectral normalisation of $D$'s layers (Miyato et al. 2018) and a minibatch
  standard-deviation feature (Karras et al. 2018, section 3), two fixes for mode collapse.

For 2-D points the chapter reuses chapter 02's :class:`aigc_course.models.mlp.MLPGAN`;
:func:`build_gan` builds it from an :class:`MLPGANConfig` (optionally with spectral
normalisation). $D$ always returns a *logit* / critic value ``(B,)``; the losses live in
:mod:`aigc_course.losses`, the training loop in :mod:`aigc_course.train.gan`.

Simplified: a linear layer maps $z$ to a $4\\times4$ feature map, each upsampling block
doubles the side (so sides 8, 16 and 32), and a $3\\times3$ convolution makes the image;
the minibatch standard deviation is one scalar over the whole batch (group = batch).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aigc_course.kinds import ClassConditional
from aigc_course.models.mlp import MLPGAN, MLPConfig

Tensor = torch.Tensor
Upsample = Literal["transposed", "resize"]
UPSAMPLES: tuple[str, ...] = get_args(Upsample)
Conditioning = Literal["projection", "concat"]
CONDITIONINGS: tuple[str, ...] = get_args(Conditioning)
DiscriminatorNorm = Literal["batch", "none"]
NORMS: tuple[str, ...] = get_args(DiscriminatorNorm)
IMAGE_SIZES: tuple[int, ...] = (8, 16, 32)


def upsample_block(in_channels: int, out_channels: int, mode: Upsample) -> nn.Module:
    """A layer that doubles height and width: ``(B, in, H, W) -> (B, out, 2H, 2W)``.

    Args:
        in_channels, out_channels: channels in and out.
        mode: ``"transposed"`` (a $4\\times4$ transposed convolution, stride 2, as in DCGAN)
            or ``"resize"`` (nearest-neighbour $2\\times$ resize, then a $3\\times3$
            convolution; no checkerboard pattern, Odena et al. 2016).

    Raises:
        ValueError: an unknown ``mode``.
    """
    if mode == "transposed":
        return nn.ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1)
    if mode == "resize":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(in_channels, out_channels, 3, padding=1))
    raise ValueError(f"unknown upsampling mode {mode!r}; valid: {', '.join(UPSAMPLES)}")


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation (Radford et al. 2016, section 4), for ``module.apply``.

    Convolution, transposed-convolution and linear weights $\\sim \\mathcal N(0, 0.02^2)$;
    batch-norm scales $\\sim \\mathcal N(1, 0.02^2)$ (standard deviation 0.02); biases 0.
    """
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def add_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectrally normalise every convolution, linear and embedding layer of ``module``.

    $W \\mapsto W / \\sigma(W)$ with $\\sigma$ the largest singular value, estimated by one
    power iteration per forward pass (Miyato et al. 2018, Algorithm 1); $D$ becomes
    (about) 1-Lipschitz per layer. Modifies ``module`` in place and returns it.
    """
    for child in list(module.modules()):
        if isinstance(child, (nn.Conv2d, nn.Linear, nn.Embedding)):
            spectral_norm(child)
    return module


class MinibatchStd(nn.Module):
    """Append the batch's average feature standard deviation as one more channel.

    $s = \\operatorname{mean}_{c,h,w} \\sqrt{\\operatorname{Var}_b[x_{bchw}] + 10^{-8}}$
    (Karras et al. 2018, section 3): a $D$ that sees $s$ can tell a collapsed batch (small
    $s$) from a varied real one. ``(B, C, H, W) -> (B, C + 1, H, W)``.
    """

    def forward(self, x: Tensor) -> Tensor:
        s = torch.sqrt(x.var(dim=0, unbiased=False) + 1e-8).mean()          # scalar
        return torch.cat([x, s.expand(x.shape[0], 1, *x.shape[2:])], dim=1)  # (B, C+1, H, W)


@dataclass(frozen=True)
class GANConfig:
    """The architecture of a :class:`DCGAN`.

    Attributes:
        image_size: side length, 8, 16 or 32.
        channels: image channels, 1 or 3.
        latent_dim: dimension of $z$.
        width: channels at full resolution; doubled at each halving of the side.
        num_classes: 0 for an unconditional GAN, else the number of classes.
        upsample: ``"transposed"`` or ``"resize"`` (see :func:`upsample_block`).
        conditioning: how $D$ sees the label, ``"projection"`` or ``"concat"``.
        d_norm: ``"batch"`` (DCGAN) or ``"none"`` normalisation in $D$ (WGAN-GP's
            per-sample penalty needs ``"none"``; spectral norm usually goes without).
        spectral_norm: spectrally normalise $D$'s layers.
        minibatch_std: add a minibatch standard-deviation channel before $D$'s last layer.
        level_channels: $G$'s channels at $4\\times4$ and after each upsampling level
            (``levels + 1`` values, e.g. a channel-pruned generator's); ``None``: the
            DCGAN layout ``width * 2**(levels - k)`` at level ``k`` (see
            :attr:`generator_channels`). $D$ always follows ``width``.
    """

    image_size: int = 16
    channels: int = 1
    latent_dim: int = 32
    width: int = 32
    num_classes: int = 0
    upsample: Upsample = "transposed"
    conditioning: Conditioning = "projection"
    d_norm: DiscriminatorNorm = "batch"
    spectral_norm: bool = False
    minibatch_std: bool = False
    level_channels: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.level_channels is not None:                 # a JSON list becomes a tuple
            object.__setattr__(self, "level_channels", tuple(int(c) for c in self.level_channels))
        if self.image_size not in IMAGE_SIZES:
            raise ValueError(f"image_size must be one of {IMAGE_SIZES}, got {self.image_size}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        for name in ("latent_dim", "width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {self.num_classes}")
        for name, value, valid in (("upsample", self.upsample, UPSAMPLES),
                                   ("conditioning", self.conditioning, CONDITIONINGS),
                                   ("d_norm", self.d_norm, NORMS)):
            if value not in valid:
                raise ValueError(f"unknown {name} {value!r}; valid: {', '.join(valid)}")
        if self.level_channels is not None and (len(self.level_channels) != self.levels + 1
                                                or min(self.level_channels) < 1):
            raise ValueError(f"level_channels must be {self.levels + 1} channel counts >= 1 "
                             f"(4x4, then after each of the {self.levels} upsampling levels), "
                             f"got {self.level_channels}")

    @property
    def levels(self) -> int:
        """Number of doublings from $4\\times4$ to ``image_size``."""
        return int(math.log2(self.image_size // 4))

    @property
    def generator_channels(self) -> tuple[int, ...]:
        """$G$'s channels at $4\\times4$ and after each upsampling level (``levels + 1``)."""
        if self.level_channels is not None:
            return self.level_channels
        return tuple(self.width * 2 ** (self.levels - k) for k in range(self.levels + 1))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a checkpoint."""
        return dataclasses.asdict(self)


class DCGANGenerator(nn.Module):
    """$G(z[, y])$: ``(B, latent_dim)`` noise (and ``(B,)`` labels) -> ``(B, C, H, W)``.

    Outputs are in $[-1, 1]$ ($\\tanh$).
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = c = config
        widths = c.generator_channels                           # (top, ..., at full size)
        self.top = widths[0]                                    # channels at 4x4
        embed = c.latent_dim if c.num_classes else 0
        self.label_embedding = nn.Embedding(c.num_classes, embed) if c.num_classes else None
        self.project = nn.Sequential(nn.Linear(c.latent_dim + embed, self.top * 16),
                                     nn.BatchNorm1d(self.top * 16), nn.ReLU())
        blocks: list[nn.Module] = []
        for channels_in, channels_out in zip(widths[:-1], widths[1:], strict=True):
            blocks += [upsample_block(channels_in, channels_out, c.upsample),
                       nn.BatchNorm2d(channels_out), nn.ReLU()]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Sequential(nn.Conv2d(widths[-1], c.channels, 3, padding=1), nn.Tanh())
        self.apply(dcgan_init)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.label_embedding is not None:
            if y is None:
                raise ValueError("a conditional generator needs labels y")
            z = torch.cat([z, self.label_embedding(y)], dim=1)         # (B, 2 latent_dim)
        h = self.project(z).view(-1, self.top, 4, 4)                  # (B, top, 4, 4)
        return self.to_image(self.blocks(h))                          # (B, C, H, W)


class DCGANDiscriminator(nn.Module):
    """$D(x[, y])$: ``(B, C, H, W)`` images (and ``(B,)`` labels) -> ``(B,)`` logits.

    Stride-2 $4\\times4$ convolutions halve the side down to $4\\times4$; the first has no
    normalisation (DCGAN). $\\phi(x)$ is the sum over the $4\\times4$ positions of the
    last features, $\\psi$ a linear layer; the projection variant adds $e_y^\\top\\phi(x)$.
    """

    def __init__(self, config: GANConfig) -> None:
        super().__init__()
        self.config = c = config
        concat = c.num_classes if (c.num_classes and c.conditioning == "concat") else 0
        layers: list[nn.Module] = [nn.Conv2d(c.channels + concat, c.width, 4, 2, 1),
                                   nn.LeakyReLU(0.2)]
        channels = c.width
        for _ in range(c.levels - 1):
            layers.append(nn.Conv2d(channels, channels * 2, 4, 2, 1))
            if c.d_norm == "batch":
                layers.append(nn.BatchNorm2d(channels * 2))
            layers.append(nn.LeakyReLU(0.2))
            channels *= 2
        if c.minibatch_std:
            layers.append(MinibatchStd())
        layers += [nn.Conv2d(channels + int(c.minibatch_std), channels, 3, padding=1),
                   nn.LeakyReLU(0.2)]
        self.features = nn.Sequential(*layers)
        self.psi = nn.Linear(channels, 1)
        self.label_embedding = (nn.Embedding(c.num_classes, channels)
                                if c.num_classes and c.conditioning == "projection" else None)
        self.apply(dcgan_init)
        if self.label_embedding is not None:
            nn.init.normal_(self.label_embedding.weight, 0.0, 0.02)
        if c.spectral_norm:
            add_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        c = self.config
        if c.num_classes and y is None:
            raise ValueError("a conditional discriminator needs labels y")
        if c.num_classes and c.conditioning == "concat":
            assert y is not None                                       # checked above
            planes = F.one_hot(y, c.num_classes).to(x.dtype)            # (B, K)
            planes = planes[:, :, None, None].expand(-1, -1, *x.shape[2:])  # (B, K, H, W)
            x = torch.cat([x, planes], dim=1)                          # (B, C + K, H, W)
        phi = self.features(x).sum(dim=(2, 3))                         # (B, F)
        out = self.psi(phi).squeeze(1)                                 # (B,)
        if self.label_embedding is not None:
            out = out + (self.label_embedding(y) * phi).sum(dim=1)     # + e_y^T phi(x)
        return out


class DCGAN(ClassConditional, nn.Module):
    """A DCGAN's generator and discriminator, kept together; :meth:`sample` draws $G(z[, y])$."""

    def __init__(self, config: GANConfig | None = None) -> None:
        super().__init__()
        self.config = config or GANConfig()
        self.generator = DCGANGenerator(self.config)
        self.discriminator = DCGANDiscriminator(self.config)



    @property
    def noise_shape(self) -> tuple[int, ...]:
        """The shape of one sample's starting noise $z$: ``(latent_dim,)``."""
        return (self.config.latent_dim,)

    def latent(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """$z \\sim \\mathcal N(0, I)$, ``(n, latent_dim)``, on the model's device."""
        device = next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, n: int, *, y: Tensor | None = None,
               generator: torch.Generator | None = None, noise: Tensor | None = None
               ) -> Tensor:
        """``n`` images $G(z[, y])$ ``(n, C, H, W)`` in $[-1, 1]$ (generator in eval mode).

        Args:
            n: number of samples.
            y: ``(n,)`` classes for a conditional model (``None``: cycle through them).
            generator: random generator for $z$.
            noise: the latents $z$ ``(n, latent_dim)`` (``None``: drawn with ``generator``).
        """
        if self.conditional and y is None:
            y = torch.arange(n) % self.config.num_classes
        if y is not None:
            y = y.to(next(self.parameters()).device)
        was_training = self.generator.training
        self.generator.eval()
        z = self.latent(n, generator) if noise is None else noise.to(self.latent(0).device)
        images = self.generator(z, y if self.conditional else None)
        self.generator.train(was_training)
        return images


@dataclass(frozen=True)
class MLPGANConfig:
    """Chapter 02's MLP GAN for 2-D points, with the fixes this chapter adds.

    Attributes:
        mlp: the sizes of :class:`~aigc_course.models.mlp.MLPGAN`'s networks.
        spectral_norm: spectrally normalise the discriminator's linear layers.
    """

    mlp: MLPConfig = dataclasses.field(default_factory=MLPConfig)
    spectral_norm: bool = False

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for a checkpoint."""
        return {"mlp": dataclasses.asdict(self.mlp), "spectral_norm": self.spectral_norm}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> MLPGANConfig:
        return cls(MLPConfig(**values["mlp"]), bool(values["spectral_norm"]))


def build_gan(config: GANConfig | MLPGANConfig) -> DCGAN | MLPGAN:
    """Build the GAN a config describes.

    Returns:
        A :class:`DCGAN` for a :class:`GANConfig`, an :class:`MLPGAN` for an
        :class:`MLPGANConfig`.
    """
    if isinstance(config, GANConfig):
        return DCGAN(config)
    if isinstance(config, MLPGANConfig):
        gan = MLPGAN(config.mlp)
        if config.spectral_norm:
            add_spectral_norm(gan.discriminator)
        return gan
    raise ValueError(f"config must be a GANConfig or an MLPGANConfig, got {type(config).__name__}")
