"""Latent widgets: the static views, and the slider widget run headless."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from aigc_course.models.vae import ConvVAE, VAEConfig
from aigc_course.widgets import (
    LatentSliders,
    interpolate_latents,
    interpolation_figure,
    show_latent_sliders,
    traversal_figure,
    traversal_latents,
)

MODEL = ConvVAE(VAEConfig(image_size=8, latent_dim=4, width=4)).eval()


def test_traversal_latents_sweep_one_dimension_per_row() -> None:
    z = torch.zeros(4)
    out = traversal_latents(z, [1, 3], span=2.0, steps=5)
    assert out.shape == (10, 4)
    assert torch.equal(out[:5, 1], torch.linspace(-2, 2, 5)) and (out[:5, [0, 2, 3]] == 0).all()
    with pytest.raises(ValueError, match="out of range"):
        traversal_latents(z, [4])


def test_interpolation_endpoints_and_slerp_norm() -> None:
    g = torch.Generator().manual_seed(0)
    z0, z1 = torch.randn(64, generator=g), torch.randn(64, generator=g)
    for mode in ("linear", "slerp"):
        path = interpolate_latents(z0, z1, 9, mode)  # type: ignore[arg-type]
        assert torch.allclose(path[0], z0, atol=1e-5) and torch.allclose(path[-1], z1, atol=1e-5)
    mid_linear = interpolate_latents(z0, z1, 9, "linear")[4].norm()
    mid_slerp = interpolate_latents(z0, z1, 9, "slerp")[4].norm()
    assert mid_slerp > mid_linear                       # linear cuts through the middle
    with pytest.raises(ValueError, match="linear, slerp"):
        interpolate_latents(z0, z1, 3, "cubic")  # type: ignore[arg-type]


def test_static_figures() -> None:
    assert isinstance(traversal_figure(MODEL.decode_mean, torch.zeros(4), [0, 1], steps=5), Figure)
    assert isinstance(interpolation_figure(MODEL.decode_mean, torch.zeros(4), torch.ones(4)),
                      Figure)


def test_sliders_render_default_state_and_follow_changes_headless() -> None:
    z = torch.tensor([0.5, -0.5, 0.0, 1.0])
    sliders = LatentSliders(MODEL.decode_mean, z, dims=(0, 2))
    assert isinstance(sliders.figure, Figure) and len(sliders.sliders) == 2
    assert torch.equal(sliders.latent(), z)
    first = sliders.figure
    sliders.sliders[1].value = 2.5                          # moving a slider redraws
    assert sliders.latent()[2].item() == pytest.approx(2.5) and sliders.figure is not first
    with pytest.raises(ValueError, match="out of range"):
        LatentSliders(MODEL.decode_mean, z, dims=(7,))


def test_show_latent_sliders_displays_widget_and_static_figure(
        capsys: pytest.CaptureFixture[str]) -> None:
    sliders = show_latent_sliders(MODEL.decode_mean, torch.zeros(4), dims=(0, 1))
    out = capsys.readouterr().out
    assert "VBox" in out and "Figure" in out                # both displayed (text repr headless)
    assert isinstance(sliders.figure, Figure)


def _conditional_generate(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """A stand-in conditional generator: brightness from z[0], one lit row per class."""
    images = torch.tanh(z[:, :1, None, None]).expand(-1, 1, 10, 10).clone()  # (B, 1, 10, 10)
    images[torch.arange(len(y)), 0, y] = 1.0
    return images


def test_class_switch_figure_and_widget_headless(capsys: pytest.CaptureFixture[str]) -> None:
    from aigc_course.widgets import ClassSwitch, class_switch_figure, show_class_switch

    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    assert isinstance(class_switch_figure(_conditional_generate, z, 10), Figure)
    explorer = show_class_switch(_conditional_generate, z[0], z[1], num_classes=10, label=3)
    out = capsys.readouterr().out
    assert "VBox" in out and "Figure" in out
    first = explorer.figure
    explorer.label.value = 7                                # switching class redraws
    assert explorer.figure is not first
    explorer.t.value = 5
    assert explorer.path.shape == (8, 4)
    with pytest.raises(ValueError, match="0..9"):
        ClassSwitch(_conditional_generate, z[0], z[1], num_classes=10, label=10)
    with pytest.raises(ValueError, match="latents"):
        class_switch_figure(_conditional_generate, z[0], 10)
