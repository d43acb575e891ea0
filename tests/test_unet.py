"""The denoisers of chapter 05: shapes, conditioning, the null label, bad configs."""

from __future__ import annotations

import pytest
import torch

from aigc_course.models.unet import DenoiserConfig, FlatDenoiser, UNet, build_denoiser
from aigc_course.utils import count_params


@pytest.mark.parametrize("size", [8, 16, 32])
def test_unet_shapes(size: int) -> None:
    net = UNet(DenoiserConfig(image_size=size, width=8, num_classes=10))
    x, t = torch.randn(3, 1, size, size), torch.tensor([0, 500, 999])
    assert net(x, t, torch.tensor([1, 2, 3])).shape == x.shape
    assert net(x, t).shape == x.shape                                   # null label


def test_unet_output_starts_at_zero_and_depends_on_label_after_a_step() -> None:
    torch.manual_seed(0)
    net = UNet(DenoiserConfig(image_size=8, width=8, num_classes=10))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([10, 10])
    assert net(x, t).abs().max() == 0                                   # zero-initialised out
    torch.nn.init.normal_(net.out[-1].weight)
    a, b = net(x, t, torch.tensor([0, 0])), net(x, t, torch.tensor([1, 1]))
    assert not torch.allclose(a, b)
    assert torch.allclose(net(x, t), net(x, t, torch.tensor([10, 10])))  # None == null


def test_sizes_of_the_shipped_configurations() -> None:
    assert 80_000 < count_params(UNet(DenoiserConfig(image_size=16, width=16,
                                                     num_classes=10))) < 150_000
    flat = FlatDenoiser(DenoiserConfig(arch="mlp", image_size=8, hidden=256, num_classes=10))
    assert 140_000 < count_params(flat) < 700_000
    x = torch.randn(5, 1, 8, 8)
    assert flat(x, torch.arange(5), torch.arange(5)).shape == x.shape


def test_bad_configs() -> None:
    with pytest.raises(ValueError, match="valid: unet, mlp"):
        DenoiserConfig(arch="transformer")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible by 4"):
        DenoiserConfig(image_size=10)
    with pytest.raises(ValueError, match="even"):
        DenoiserConfig(time_dim=7)
    assert isinstance(build_denoiser(DenoiserConfig(arch="mlp", image_size=8)), FlatDenoiser)
