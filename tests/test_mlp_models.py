"""The tiny 2-D networks: shapes, the time embedding's values, and bad options."""

from __future__ import annotations

import math

import pytest
import torch

from aigc_course.divergences import kl_gaussian_diag
from aigc_course.models.mlp import (
    MLPGAN,
    MLPVAE,
    MLPConfig,
    MLPDiscriminator,
    MLPGenerator,
    MLPNoisePredictor,
    mlp,
    sinusoidal_embedding,
)
from aigc_course.train.toy2d import negative_elbo
from aigc_course.utils import count_params


def test_shapes() -> None:
    c = MLPConfig(data_dim=2, latent_dim=3, hidden=16, depth=2)
    z, x, t = torch.randn(5, 3), torch.randn(5, 2), torch.randint(0, 100, (5,))
    assert MLPGenerator(c)(z).shape == (5, 2)
    assert MLPDiscriminator(c)(x).shape == (5,)
    gan = MLPGAN(c)
    assert gan.sample(7).shape == (7, 2) and gan.latent(4).shape == (4, 3)
    vae = MLPVAE(c)
    x_hat, mu, logvar = vae(x)
    assert x_hat.shape == (5, 2) and mu.shape == logvar.shape == (5, 3)
    assert vae.sample(6).shape == vae.sample(6, noise=False).shape == (6, 2)
    assert MLPNoisePredictor(c)(x, t).shape == (5, 2)
    # depth 2, width 16: (2*16 + 16) + (16*16 + 16) + (16*1 + 1) parameters
    assert count_params(MLPDiscriminator(c)) == 48 + 272 + 17


def test_sinusoidal_embedding_values() -> None:
    emb = sinusoidal_embedding(torch.tensor([0, 1, 10]), 8)
    assert emb.shape == (3, 8)
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))         # sin 0, cos 0
    freqs = torch.tensor([10_000 ** (-i / 4) for i in range(4)])
    assert torch.allclose(emb[2, :4], torch.sin(10 * freqs), atol=1e-6)
    assert torch.allclose(emb[2, 4:], torch.cos(10 * freqs), atol=1e-6)
    # different steps get different embeddings
    all_steps = sinusoidal_embedding(torch.arange(1000), 32)
    assert torch.cdist(all_steps, all_steps).add(torch.eye(1000)).min() > 1e-3
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(torch.tensor([1]), 7)


def test_negative_elbo_is_reconstruction_plus_kl() -> None:
    torch.manual_seed(0)
    vae = MLPVAE(MLPConfig(hidden=8, depth=1), decoder_std=0.5)
    x = torch.randn(64, 2)
    g = torch.Generator().manual_seed(3)
    loss = negative_elbo(vae, x, g)
    x_hat, mu, logvar = vae(x, torch.Generator().manual_seed(3))            # same z
    gauss = torch.distributions.Normal(x_hat, 0.5)
    expected = (-gauss.log_prob(x).sum(1) + kl_gaussian_diag(mu, logvar)).mean()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert all(p.grad is not None for p in vae.parameters())


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="valid: relu, leaky_relu, silu, tanh"):
        mlp(2, 2, activation="gelu")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth"):
        mlp(2, 2, depth=0)
    with pytest.raises(ValueError, match="decoder_std"):
        MLPVAE(decoder_std=0.0)
    assert math.isfinite(MLPVAE().decoder_std)
