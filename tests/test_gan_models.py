"""DCGAN networks: shapes, upsampling, conditioning, DCGAN initialisation, bad configs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from aigc_course.models.gan import (
    DCGAN,
    GANConfig,
    MinibatchStd,
    MLPGANConfig,
    add_spectral_norm,
    build_gan,
    upsample_block,
)
from aigc_course.models.mlp import MLPGAN


@pytest.mark.parametrize("size", [8, 16, 32])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("upsample", ["transposed", "resize"])
def test_shapes(size: int, channels: int, upsample: str) -> None:
    torch.manual_seed(0)
    gan = DCGAN(GANConfig(image_size=size, channels=channels, upsample=upsample, width=8))
    z = gan.latent(5)
    x = gan.generator(z)
    assert z.shape == (5, 32) and x.shape == (5, channels, size, size)
    assert x.abs().max() <= 1                                   # tanh output
    assert gan.discriminator(x).shape == (5,)
    assert gan.sample(3).shape == (3, channels, size, size)


@pytest.mark.parametrize("mode", ["transposed", "resize"])
def test_upsample_block_doubles_the_side(mode: str) -> None:
    block = upsample_block(6, 4, mode)
    assert block(torch.randn(2, 6, 5, 7)).shape == (2, 4, 10, 14)


def test_upsample_block_bad_mode() -> None:
    with pytest.raises(ValueError, match="transposed, resize"):
        upsample_block(2, 2, "bilinear")  # type: ignore[arg-type]


@pytest.mark.parametrize("conditioning", ["projection", "concat"])
@pytest.mark.parametrize("spectral", [False, True])
def test_conditional(conditioning: str, spectral: bool) -> None:
    torch.manual_seed(0)
    config = GANConfig(image_size=16, num_classes=10, conditioning=conditioning, width=8,
                       spectral_norm=spectral, d_norm="none" if spectral else "batch",
                       minibatch_std=spectral)
    gan = DCGAN(config)
    y = torch.tensor([0, 3, 9, 3])
    x = gan.generator(gan.latent(4), y)
    assert x.shape == (4, 1, 16, 16)
    assert gan.discriminator(x, y).shape == (4,)
    assert gan.conditional and gan.sample(10).shape == (10, 1, 16, 16)
    # the label changes the image for the same z, and D's score for the same image
    gan.eval()
    z = gan.latent(1).repeat(2, 1)
    pair = gan.generator(z, torch.tensor([1, 7]))
    assert not torch.allclose(pair[0], pair[1])
    scores = gan.discriminator(pair[:1].repeat(2, 1, 1, 1), torch.tensor([1, 7]))
    assert not torch.allclose(scores[0], scores[1])
    with pytest.raises(ValueError, match="needs labels"):
        gan.generator(z)
    with pytest.raises(ValueError, match="needs labels"):
        gan.discriminator(pair)


def test_projection_is_psi_plus_inner_product() -> None:
    """Miyato & Koyama (2018), eq. 3: D(x, y) = psi(phi(x)) + e_y^T phi(x)."""
    torch.manual_seed(0)
    d = DCGAN(GANConfig(image_size=8, num_classes=3, width=4, d_norm="none")).discriminator
    x, y = torch.randn(2, 1, 8, 8), torch.tensor([0, 2])
    phi = d.features(x).sum(dim=(2, 3))                          # (B, F)
    expected = d.psi(phi).squeeze(1) + (d.label_embedding.weight[y] * phi).sum(1)
    assert torch.allclose(d(x, y), expected, atol=1e-6)


def test_dcgan_init_statistics() -> None:
    torch.manual_seed(0)
    gan = DCGAN(GANConfig(image_size=32, width=32))
    convs = [m.weight for m in gan.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d,
                                                                 nn.Linear))]
    weights = torch.cat([w.flatten() for w in convs])            # 500 K+ draws of N(0, 0.02)
    assert abs(weights.mean().item()) < 1e-3
    assert weights.std().item() == pytest.approx(0.02, rel=0.02)
    scales = torch.cat([m.weight for m in gan.modules()
                        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d))])
    assert scales.mean().item() == pytest.approx(1.0, abs=0.005)
    assert scales.std().item() == pytest.approx(0.02, rel=0.1)
    biases = [m.bias for m in gan.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all((b == 0).all() for b in biases)


def test_spectral_norm_bounds_the_largest_singular_value() -> None:
    torch.manual_seed(0)
    layer = add_spectral_norm(nn.Sequential(nn.Linear(5, 7)))[0]
    for _ in range(30):                                          # power iterations
        layer(torch.randn(1, 5))
    layer.eval()
    assert torch.linalg.matrix_norm(layer.weight, ord=2).item() == pytest.approx(1.0, rel=1e-3)


def test_minibatch_std_channel() -> None:
    x = torch.randn(6, 3, 4, 4)
    out = MinibatchStd()(x)
    assert out.shape == (6, 4, 4, 4)
    expected = torch.sqrt(x.var(0, unbiased=False) + 1e-8).mean()
    assert torch.allclose(out[:, 3], expected.expand(6, 4, 4))
    assert MinibatchStd()(x[:1].repeat(6, 1, 1, 1))[:, 3].max() < 1e-3   # collapsed batch


def test_mlp_variant_reuses_chapter_02() -> None:
    gan = build_gan(MLPGANConfig(spectral_norm=True))
    assert isinstance(gan, MLPGAN)
    assert gan.sample(7).shape == (7, 2) and gan.discriminator(torch.randn(4, 2)).shape == (4,)


@pytest.mark.parametrize(("changes", "match"), [
    ({"image_size": 12}, "image_size must be one of"),
    ({"channels": 2}, "channels must be 1 or 3"),
    ({"width": 0}, "width must be >= 1"),
    ({"num_classes": -1}, "num_classes must be >= 0"),
    ({"upsample": "pixelshuffle"}, "valid: transposed, resize"),
    ({"conditioning": "film"}, "valid: projection, concat"),
    ({"d_norm": "layer"}, "valid: batch, none"),
])
def test_bad_config(changes: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GANConfig(**changes)  # type: ignore[arg-type]


def test_build_gan_bad_config() -> None:
    with pytest.raises(ValueError, match="GANConfig or an MLPGANConfig"):
        build_gan({"image_size": 8})  # type: ignore[arg-type]


def test_level_channels_describe_a_smaller_generator() -> None:
    """``level_channels=None`` is the DCGAN layout; a tuple (or a JSON list) sets G's
    channels per level and leaves D alone; the field survives ``to_dict`` and JSON."""
    import json

    default = GANConfig(image_size=16, width=8)
    assert default.level_channels is None and default.generator_channels == (32, 16, 8)
    torch.manual_seed(0)
    a = DCGAN(default)
    torch.manual_seed(0)
    b = DCGAN(GANConfig(image_size=16, width=8, level_channels=(32, 16, 8)))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    small = GANConfig(image_size=16, width=8, num_classes=10, level_channels=[5, 3, 2])
    assert small.level_channels == (5, 3, 2) and hash(small)        # a list becomes a tuple
    gan = DCGAN(small)
    assert gan.generator.top == 5 and gan.generator.project[0].out_features == 5 * 16
    assert [m.out_channels for m in gan.generator.modules()
            if isinstance(m, nn.ConvTranspose2d)] == [3, 2]
    assert gan.generator.to_image[0].in_channels == 2
    assert gan.sample(4).shape == (4, 1, 16, 16)
    assert sum(p.numel() for p in gan.discriminator.parameters()) == sum(
        p.numel() for p in DCGAN(GANConfig(image_size=16, width=8, num_classes=10))
        .discriminator.parameters())
    assert GANConfig(**json.loads(json.dumps(small.to_dict()))) == small
    assert GANConfig(**default.to_dict()) == default
    for bad in ((5, 3), (5, 3, 0)):
        with pytest.raises(ValueError, match="level_channels must be 3 channel counts"):
            GANConfig(image_size=16, level_channels=bad)
