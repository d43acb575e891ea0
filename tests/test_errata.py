"""The errata demonstrations: each wrong version misbehaves in the way book/errata.md says,
and each fix works. Numbers in comments were measured with seeds 0, 1, 2."""

from __future__ import annotations

import math

import pytest

from aigc_course import errata


def test_conv2d_generator_collapses_and_upsampling_reaches_16() -> None:
    trace = errata.conv2d_generator(batch_size=2)
    assert "Kernel size can't be greater than actual input size" in trace.wrong_error
    assert trace.same_padding_shapes[-1][1] == (2, 1, 1, 1)
    assert all(shape[-2:] == (1, 1) for _, shape in trace.same_padding_shapes)
    assert trace.fixed_output_shape == (2, 1, 16, 16)


def test_generator_fed_real_images_copies() -> None:
    result = errata.generator_fed_real_images()
    assert result.nn_distance_copy == 0.0                      # every "sample" is a training image
    assert result.d_accuracy_copy == 0.5                       # measured 0.5, 0.5, 0.5
    assert result.d_loss_copy == pytest.approx(math.log(4), abs=1e-3)   # 1.38630 (seeds 0-2)
    assert result.d_accuracy_noise > 0.95                      # measured 1.0, 1.0, 1.0
    assert "cannot be multiplied" in result.latent_input_error
    assert result.fixed_samples_drawn > result.n_training_images
    assert result.nn_distance_fixed > result.typical_nn_distance   # 7.4 vs 0.52 (seed 0)


def test_fakes_not_detached_leak_into_generator() -> None:
    result = errata.fakes_not_detached()
    assert result.leaked_grad_norm > 1e-3                      # measured 0.165, 0.047, 0.081
    assert result.fixed_grad_is_none
    assert "backward through the graph a second time" in result.second_backward_error
    assert result.accumulated_relative_error > 0.3             # measured 1.29, 0.90, 0.91


def test_summed_losses() -> None:
    result = errata.summed_losses()
    assert result.minimax_generator_grad_norm == 0.0           # the log(1 - D(G(z))) terms cancel
    assert result.d_grad_share_from_generator_term > 0.25      # measured 0.56, 0.67, 0.95
    assert result.summed_d_fake == pytest.approx(0.5, abs=0.02)   # 0.4987, 0.5001, 0.4998
    assert result.summed_d_real > 0.95                         # measured 0.999, 0.999, 0.999
    assert result.summed_generator_mean < 1.0                  # measured -0.81, -0.72, -0.49
    assert abs(result.alternating_generator_mean - result.data_mean) < 0.75   # 3.24, 3.38, 3.25


def test_affine_discriminator() -> None:
    result = errata.affine_discriminator()
    low, high = result.output_range
    assert low < 0 and high > 1
    assert "between 0 and 1" in result.bce_error
    assert result.nan_fraction > 0.4                           # measured 0.85, 0.89, 0.89
    assert result.loss_linear == pytest.approx(math.log(2), abs=1e-3)   # 0.69315 (seeds 0-2)
    assert result.linear_max_deviation < 0.01                  # measured 3e-5, 9e-6, 5e-6
    assert result.loss_mlp < 0.5                               # measured 0.33, 0.34, 0.32
    assert result.accuracy_mlp > 0.75                          # measured 0.87, 0.85, 0.88


def test_checkerboard() -> None:
    result = errata.checkerboard(draws=16)
    assert result.score_resize < 1e-5                          # exactly 0 away from the borders
    assert result.score_transposed > 0.3               # measured 1.01, 0.99, 1.02 (64 draws)
    assert result.map_transposed.shape == result.map_resize.shape == (16, 16)


def test_full_padding_convolution_is_a_flipped_transposed_convolution() -> None:
    """book/errata.md (a): the side shrinks or stays only while 2p <= k - 1; at p = k - 1
    a stride-1 convolution grows it by k - 1, as a transposed convolution does."""
    import torch
    from torch import nn

    torch.manual_seed(0)
    x = torch.randn(2, 3, 1, 1)
    for k, p in ((3, 1), (4, 1), (5, 2)):                        # 2p <= k - 1: no growth
        assert nn.Conv2d(3, 4, k, padding=p)(torch.randn(1, 3, 5, 5)).shape[-1] <= 5
    conv = nn.Conv2d(3, 4, 3, padding=2)                        # 2p = 4 > k - 1 = 2
    transposed = nn.ConvTranspose2d(3, 4, 3)
    with torch.no_grad():
        transposed.weight.copy_(conv.weight.flip(-1, -2).transpose(0, 1))
        transposed.bias.copy_(conv.bias)
    assert conv(x).shape == (2, 4, 3, 3)                        # 1x1 -> 3x3
    assert torch.allclose(conv(x), transposed(x), atol=1e-6)
