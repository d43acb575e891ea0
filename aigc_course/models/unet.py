"""Noise-prediction networks for small images: a U-Net and a flat MLP, optionally class-conditional.

$\\epsilon_\\theta(x_t, t, y)$ for DDPM (Ho et al. 2020, appendix B: a U-Net with the
sinusoidal time embedding of the Transformer added inside each residual block).
Classifier-free guidance (Ho & Salimans 2022) needs the *same* network to be conditional
and unconditional: the label embedding has one extra row, index ``num_classes``, the
"null" label $\\varnothing$, used when ``y`` is ``None`` or a label was dropped in training.

* :class:`UNet` -- two resolutions below the input (16 -> 8 -> 4 for 16x16 digits), one
  residual block per level, skip connections by concatenation; for 8--32 px images.
* :class:`FlatDenoiser` -- a residual MLP on the flattened image; on 8x8 digits it
  trains fastest on a CPU (GUIDE section 5).

Simplified with respect to Ho et al.: no self-attention, one residual block per level,
GroupNorm with up to 8 groups, no dropout. The 2-D toy denoiser is
:class:`aigc_course.models.mlp.MLPNoisePredictor`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, get_args

import torch
from torch import nn

from aigc_course.models.mlp import sinusoidal_embedding

Tensor = torch.Tensor
Arch = Literal["unet", "mlp"]
ARCHS: tuple[Arch, ...] = get_args(Arch)


@dataclass(frozen=True)
class DenoiserConfig:
    """Sizes of a noise-prediction network.

    Attributes:
        arch: ``"unet"`` or ``"mlp"`` (flat).
        image_size: side of the square images (U-Net: divisible by 4).
        channels: image channels.
        width: U-Net base channels (levels use ``width``, ``2 width``, ``2 width``).
        hidden: width of the flat MLP.
        depth: residual blocks of the flat MLP.
        time_dim: size of the sinusoidal time embedding.
        num_classes: classes of a conditional network (0: unconditional).
    """

    arch: Arch = "unet"
    image_size: int = 16
    channels: int = 1
    width: int = 16
    hidden: int = 512
    depth: int = 3
    time_dim: int = 64
    num_classes: int = 0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown arch {self.arch!r}; valid: {', '.join(ARCHS)}")
        if self.arch == "unet" and self.image_size % 4:
            raise ValueError(f"a U-Net needs image_size divisible by 4, got {self.image_size}")
        if self.time_dim % 2:
            raise ValueError(f"time_dim must be even, got {self.time_dim}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class _Embedding(nn.Module):
    """Time (sinusoidal, then an MLP) plus optional label embedding, ``(B, dim)``."""

    def __init__(self, time_dim: int, dim: int, num_classes: int) -> None:
        super().__init__()
        self.time_dim, self.num_classes = time_dim, num_classes
        self.time = nn.Sequential(nn.Linear(time_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        # one extra row: the null label of classifier-free guidance
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: Tensor, y: Tensor | None) -> Tensor:
        emb = self.time(sinusoidal_embedding(t, self.time_dim))           # (B, dim)
        if self.label is not None:
            if y is None:
                y = torch.full_like(t, self.num_classes, dtype=torch.long)
            emb = emb + self.label(y.long())
        return emb


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, embedding added, GroupNorm -> SiLU -> conv, plus a skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.block1 = nn.Sequential(_norm(c_in), nn.SiLU(), nn.Conv2d(c_in, c_out, 3, padding=1))
        self.emb = nn.Linear(emb_dim, c_out)
        self.block2 = nn.Sequential(_norm(c_out), nn.SiLU(), nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.block1(x) + self.emb(emb)[:, :, None, None]              # (B, C, H, W)
        return self.block2(h) + self.skip(x)


class UNet(nn.Module):
    """$\\epsilon_\\theta(x_t, t, y)$: images ``(B, C, H, W)``, steps and labels ``(B,)``."""

    def __init__(self, config: DenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = config or DenoiserConfig()
        c = self.config
        w, emb_dim = c.width, 4 * c.width
        self.embed = _Embedding(c.time_dim, emb_dim, c.num_classes)
        self.inp = nn.Conv2d(c.channels, w, 3, padding=1)
        self.down1 = ResBlock(w, w, emb_dim)                              # H
        self.down2 = ResBlock(w, 2 * w, emb_dim)                          # H/2
        self.mid = ResBlock(2 * w, 2 * w, emb_dim)                        # H/4
        self.up2 = ResBlock(4 * w, 2 * w, emb_dim)                        # H/2
        self.up1 = ResBlock(3 * w, w, emb_dim)                            # H
        self.pool = nn.AvgPool2d(2)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        head = nn.Conv2d(w, c.channels, 3, padding=1)
        assert head.bias is not None                                      # Conv2d's default bias
        nn.init.zeros_(head.weight)
        nn.init.zeros_(head.bias)
        self.out = nn.Sequential(_norm(w), nn.SiLU(), head)

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.embed(t, y)                                            # (B, 4w)
        h1 = self.down1(self.inp(xt), emb)                                # (B, w, H, W)
        h2 = self.down2(self.pool(h1), emb)                               # (B, 2w, H/2, W/2)
        h = self.mid(self.pool(h2), emb)                                  # (B, 2w, H/4, W/4)
        h = self.up2(torch.cat([self.upsample(h), h2], dim=1), emb)       # (B, 2w, H/2, W/2)
        h = self.up1(torch.cat([self.upsample(h), h1], dim=1), emb)       # (B, w, H, W)
        return self.out(h)


class FlatDenoiser(nn.Module):
    """$\\epsilon_\\theta$ as a residual MLP on the flattened image (fast on tiny images)."""

    def __init__(self, config: DenoiserConfig | None = None) -> None:
        super().__init__()
        self.config = config or DenoiserConfig(arch="mlp", image_size=8)
        c = self.config
        d = c.channels * c.image_size**2
        self.embed = _Embedding(c.time_dim, c.hidden, c.num_classes)
        self.inp = nn.Linear(d, c.hidden)
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.LayerNorm(c.hidden), nn.SiLU(), nn.Linear(c.hidden, c.hidden),
                          nn.SiLU(), nn.Linear(c.hidden, c.hidden)) for _ in range(c.depth))
        self.out = nn.Sequential(nn.LayerNorm(c.hidden), nn.SiLU(), nn.Linear(c.hidden, d))

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        emb = self.embed(t, y)                                            # (B, hidden)
        h = self.inp(xt.flatten(1))                                       # (B, hidden)
        for block in self.blocks:
            h = h + block(h + emb)
        return self.out(h).reshape(xt.shape)                              # (B, C, H, W)


def build_denoiser(config: DenoiserConfig) -> UNet | FlatDenoiser:
    """The network a :class:`DenoiserConfig` describes."""
    return UNet(config) if config.arch == "unet" else FlatDenoiser(config)
