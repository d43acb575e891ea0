import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from aigc_course import viz


def test_make_grid_tiles_and_maps_range() -> None:
    images = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)])
    grid = viz.make_grid(images, nrow=2, padding=1)
    assert grid.shape == (6, 11, 3)
    assert np.allclose(grid[1:5, 1:5], 0.0) and np.allclose(grid[1:5, 6:10], 1.0)
    assert np.allclose(grid[0], 1.0)                       # white padding


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_are_made(channels: int) -> None:
    images = torch.rand(10, channels, 8, 8) * 2 - 1
    assert isinstance(viz.image_grid(images, labels=list(range(10))), Figure)
    assert isinstance(viz.real_vs_generated(images, images.flip(0)), Figure)
    assert isinstance(viz.plot_curves({"loss": [3, 2, 1]}, logy=True), Figure)
    assert isinstance(viz.scatter2d(torch.randn(50, 2), torch.arange(50) % 3), Figure)
    assert isinstance(viz.class_counts(torch.arange(10) % 4, ["a", "b", "c", "d"]), Figure)


def test_bad_inputs_are_clear() -> None:
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        viz.image_grid(torch.zeros(8, 8))
    with pytest.raises(ValueError, match="labels"):
        viz.image_grid(torch.zeros(2, 1, 8, 8), labels=[1])
    with pytest.raises(ValueError, match="empty"):
        viz.plot_curves({})
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        viz.scatter2d(torch.zeros(5, 3))


def test_plot_study_draws_mean_and_range() -> None:
    results = {"naive": {"steps": [0, 10, 20], "coverage": [[1, 2, 3], [1, 1, 1]]},
               "fixed": {"steps": [0, 10, 20], "coverage": [[1, 5, 8]]}}
    fig = viz.plot_study(results, ylabel="modes covered")
    assert isinstance(fig, Figure)
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2 and list(lines[0].get_ydata()) == [1.0, 1.5, 2.0]
    with pytest.raises(ValueError, match="empty"):
        viz.plot_study({})
