"""Latent widgets: the static views, and the slider widget run headless."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from aigc_course.models.vae import ConvVAE, VAEConfig
from aigc_course.widgets import (
    LatentSliders,
    class_switch_figure,
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


def _show_latent(z: torch.Tensor) -> torch.Tensor:
    """A see-through decoder: latents ``(B, D)`` -> ``(B, 1, 2, D)``, column ``j`` = ``z_j / 3``."""
    return (z / 3)[:, None, None, :].expand(-1, 1, 2, -1)


def _tiles(fig: Figure, n: int, nrow: int, h: int, w: int) -> np.ndarray:
    """The ``n`` tiles of a figure's one image grid, row-major: ``(n, h, w, 3)`` in ``[0, 1]``.

    Also pins the grid's size: ``nrow`` tiles a row, 1 pixel of padding (as ``image_grid``).
    """
    (image,) = fig.axes[0].get_images()
    grid = np.asarray(image.get_array())
    assert grid.shape == (math.ceil(n / nrow) * (h + 1) + 1, nrow * (w + 1) + 1, 3)
    return np.stack([grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w]
                     for r, c in (divmod(i, nrow) for i in range(n))])


def _shown(images: torch.Tensor) -> np.ndarray:
    """What a grid shows of images in ``[-1, 1]``: ``(N, H, W, 3)`` in ``[0, 1]``, grey as RGB."""
    return ((images.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1).permute(0, 2, 3, 1).numpy()


def _latents_shown(fig: Figure, n: int, nrow: int) -> torch.Tensor:
    """The latents ``(n, 4)`` whose :func:`_show_latent` images a figure's grid shows."""
    tiles = _tiles(fig, n, nrow, h=2, w=4)
    assert np.array_equal(tiles, np.broadcast_to(tiles[:, :1, :, :1], tiles.shape))  # grey
    return torch.from_numpy((tiles[:, 0, :, 0] * 2 - 1) * 3)


def test_static_figures() -> None:
    """The static views show the decoded images of the latents they are documented to.

    The latents are built here by hand (not with the module's helpers) and read back off
    the figure's pixels through the see-through decoder ``_show_latent``:

    - ``traversal_figure``: row ``r`` is ``z`` with ``dims[r]`` (in the order given)
      swept over ``linspace(-span, span, steps)``, the other coordinates kept; one row per
      dim, ``steps`` a row; the default title names the dims.
    - ``interpolation_figure``: one row of ``steps`` images from ``z0`` to ``z1``; between
      two orthogonal latents of norm 2, ``linear`` passes through ``(1 - t) z0 + t z1`` and
      ``slerp`` through ``2 (cos(pi t / 2), sin(pi t / 2))`` (the norm kept); the title
      names the mode, or is the one given.
    - ``LatentSliders(...).figure`` (the static figure of the default state): the pixels of
      the model's own decoding of ``z`` (``MODEL.decode_mean``, run here), and the title
      reads the sliders' default values.
    - ``class_switch_figure``: tile ``(r, k)`` is ``generate(z[r], k)``, ``K`` a row.
    """
    z = torch.tensor([0.3, -0.6, 0.9, 1.5])
    fig = traversal_figure(_show_latent, z, [2, 0], span=2.4, steps=5)
    sweep = torch.tensor([-2.4, -1.2, 0.0, 1.2, 2.4])
    expected = z.repeat(10, 1)
    expected[:5, 2], expected[5:, 0] = sweep, sweep
    torch.testing.assert_close(_latents_shown(fig, 10, nrow=5), expected, atol=1e-5, rtol=0)
    assert fig.axes[0].get_title() == "latent traversal, dims [2, 0]"

    z0, z1 = torch.tensor([2.0, 0.0, 0.0, 0.0]), torch.tensor([0.0, 2.0, 0.0, 0.0])
    t = torch.linspace(0, 1, 5)
    zeros = torch.zeros(5)
    paths = {"linear": torch.stack([2 * (1 - t), 2 * t, zeros, zeros], dim=1),
             "slerp": torch.stack([2 * torch.cos(t * math.pi / 2),
                                   2 * torch.sin(t * math.pi / 2), zeros, zeros], dim=1)}
    for mode, path in paths.items():
        fig = interpolation_figure(_show_latent, z0, z1, steps=5, mode=mode)  # type: ignore[arg-type]
        torch.testing.assert_close(_latents_shown(fig, 5, nrow=5), path, atol=1e-5, rtol=0)
        assert fig.axes[0].get_title() == f"{mode} interpolation"
    fig = interpolation_figure(_show_latent, z0, z1, steps=5, title="a path")
    assert fig.axes[0].get_title() == "a path"

    z = torch.tensor([0.5, -0.5, 0.0, 1.0])
    sliders = LatentSliders(MODEL.decode_mean, z, dims=(0, 2))
    with torch.no_grad():
        decoded = MODEL.decode_mean(z[None])                                # (1, 1, 8, 8)
    np.testing.assert_allclose(_tiles(sliders.figure, 1, nrow=1, h=8, w=8), _shown(decoded),
                               atol=1e-6, rtol=0)
    assert sliders.figure.axes[0].get_title() == "z[0]=+0.5, z[2]=+0.0"

    z = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    fig = class_switch_figure(_conditional_generate, z, 10)
    expected = torch.cat([_conditional_generate(z[r:r + 1], torch.tensor([k]))
                          for r in range(3) for k in range(10)])
    np.testing.assert_allclose(_tiles(fig, 30, nrow=10, h=10, w=10), _shown(expected),
                               atol=1e-6, rtol=0)
    assert fig.axes[0].get_title() == "one latent per row, classes 0..K-1 along it"


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


def test_text_slider_renders_its_default_and_follows_the_slider() -> None:
    from aigc_course.widgets import TextSlider

    calls: list[float] = []
    slider = TextSlider(lambda t: calls.append(t) or f"text at {t:.1f}", temperature=0.8)
    assert slider.text == "temperature 0.8:\ntext at 0.8" and calls == [0.8]
    slider.slider.value = 1.5
    assert slider.text.endswith("text at 1.5") and calls[-1] == 1.5
    with pytest.raises(ValueError, match="0 <= low <= temperature <= high"):
        TextSlider(lambda t: "", temperature=3.0)
