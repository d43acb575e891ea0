import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from aigc_course import viz


def test_make_grid_tiles_and_maps_range() -> None:
    images = torch.stack([torch.full((1, 4, 4), -1.0), torch.full((1, 4, 4), 1.0)])
    grid = viz.make_grid(images, nrow=2, padding=1)
    assert grid.shape == (6, 11, 3)
    assert np.allclose(grid[1:5, 1:5], 0.0) and np.allclose(grid[1:5, 6:10], 1.0)
    assert np.allclose(grid[0], 1.0)                       # white padding


def _constant_images(n: int, channels: int, h: int, w: int) -> tuple[torch.Tensor, np.ndarray]:
    """``n`` constant images in ``[-1, 1]`` and what each shows, ``(n, 3)`` RGB in ``[0, 1]``.

    Image ``i``, channel ``k`` maps (``(x + 1) / 2``) to ``(i + k / 3) / n``: every tile and
    channel has its own value, none is the padding's white, so a tile drawn in the wrong
    slot, a channel swap or a wrong value mapping all change the pixels.
    """
    shown = (np.arange(n)[:, None] + np.arange(channels)[None] / 3) / n    # (n, C)
    images = torch.tensor(2 * shown - 1, dtype=torch.float32)[:, :, None, None]
    shown = np.repeat(shown, 3, axis=1) if channels == 1 else shown        # grey -> RGB
    return images.expand(-1, -1, h, w).contiguous(), shown


def _image_array(ax: plt.Axes) -> np.ndarray:
    """The pixels of the one image an axes shows, ``(H, W, 3)``."""
    (image,) = ax.get_images()
    assert image.get_interpolation() == "nearest"          # pixels stay crisp
    return np.asarray(image.get_array())


def _assert_grid(grid: np.ndarray, shown: np.ndarray, nrow: int, h: int, w: int) -> None:
    """``grid`` tiles ``shown`` row-major, ``nrow`` a row, 1 white pixel between and around."""
    rows = math.ceil(len(shown) / nrow)
    assert grid.shape == (rows * (h + 1) + 1, nrow * (w + 1) + 1, 3)
    tiles = np.zeros(grid.shape[:2], dtype=bool)
    for i, rgb in enumerate(shown):
        r, c = divmod(i, nrow)
        top, left = 1 + r * (h + 1), 1 + c * (w + 1)
        np.testing.assert_allclose(grid[top:top + h, left:left + w],
                                   np.broadcast_to(rgb, (h, w, 3)), atol=1e-6)
        tiles[top:top + h, left:left + w] = True
    assert np.all(grid[~tiles] == 1.0)                     # padding and empty slots are white


@pytest.mark.parametrize("channels", [1, 3])
def test_figures_are_made(channels: int) -> None:
    """Each figure draws its input: pixels, line data, offsets, bar heights and text.

    - ``image_grid``: the grid of 10 non-square (3 x 4) constant tiles has the size
      ``nrow`` and padding 1 give (4 a row by default, 5 when asked), each tile's pixels
      equal its input mapped to ``[0, 1]`` (grey repeated to RGB), padding and the empty
      slots are white, each label sits at its tile's top-left corner, the title is shown.
    - ``real_vs_generated``: two panels titled as given, each the grid of its own first
      ``n`` images (so the flipped second set starts with the last image).
    - ``plot_curves``: one line per key, labelled by it, ``ydata`` the values against
      ``0..len - 1``; the log scale only when asked; axis label and title as given.
    - ``scatter2d``: the offsets are the points; one colour per label, distinct across
      labels (one colour without labels); equal aspect; drawn into a given axes.
    - ``class_counts``: one bar per class name, height its count (zero for a class
      absent from the labels), ticks named by the class names (``0..K-1`` without them).
    """
    h, w = 3, 4
    images, shown = _constant_images(10, channels, h, w)
    labels = [f"y{i}" for i in range(10)]
    fig = viz.image_grid(images, title="samples", labels=labels)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    _assert_grid(_image_array(ax), shown, nrow=4, h=h, w=w)
    assert ax.get_title() == "samples"
    assert [(t.get_text(), t.get_position()) for t in ax.texts] == [
        (f"y{i}", (1 + i % 4 * (w + 1), 1 + i // 4 * (h + 1))) for i in range(10)]
    _assert_grid(_image_array(viz.image_grid(images, nrow=5).axes[0]), shown, nrow=5, h=h, w=w)

    fig = viz.real_vs_generated(images, images.flip(0), n=6, titles=("data", "model"))
    assert [a.get_title() for a in fig.axes] == ["data", "model"]
    _assert_grid(_image_array(fig.axes[0]), shown[:6], nrow=3, h=h, w=w)
    _assert_grid(_image_array(fig.axes[1]), shown[::-1][:6], nrow=3, h=h, w=w)

    history = {"loss": [3.0, 2.0, 1.0], "lr": [0.1, 0.01]}
    ax = viz.plot_curves(history, xlabel="epoch", title="training", logy=True).axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["loss", "lr"]
    for line, values in zip(lines, history.values(), strict=True):
        assert list(line.get_xdata()) == list(range(len(values)))
        assert list(line.get_ydata()) == values
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["loss", "lr"]
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    assert ax.get_title() == "training"
    ax = viz.plot_curves({"loss": [3.0, 2.0]}).axes[0]
    assert ax.get_yscale() == "linear" and ax.get_xlabel() == "step"

    points = torch.randn(30, 2, generator=torch.Generator().manual_seed(0))
    classes = torch.arange(30) % 3
    fig = viz.scatter2d(points, classes, title="latents")
    ax = fig.axes[0]
    (dots,) = ax.collections
    np.testing.assert_allclose(dots.get_offsets(), points.numpy())
    fig.draw_without_rendering()                          # maps the labels to colours
    colours = dots.get_facecolors()
    assert len(colours) == 30
    per_class = [np.unique(colours[classes.numpy() == k], axis=0) for k in range(3)]
    assert all(len(c) == 1 for c in per_class)              # one colour per label ...
    assert len(np.unique(np.concatenate(per_class), axis=0)) == 3  # ... distinct across labels
    assert ax.get_title() == "latents" and ax.get_aspect() == 1.0
    fig = viz.scatter2d(points)
    fig.draw_without_rendering()
    assert len(np.unique(fig.axes[0].collections[0].get_facecolors(), axis=0)) == 1
    own_fig, (left, right) = plt.subplots(1, 2)
    assert viz.scatter2d(points, ax=right) is own_fig
    assert not left.collections
    np.testing.assert_allclose(right.collections[0].get_offsets(), points.numpy())

    fig = viz.class_counts(torch.tensor([0, 0, 1, 3, 3, 3]), list("abcde"), title="counts")
    ax = fig.axes[0]
    fig.draw_without_rendering()                          # names the category ticks
    assert [bar.get_height() for bar in ax.patches] == [2, 1, 0, 3, 0]
    assert [t.get_text() for t in ax.get_xticklabels()] == list("abcde")
    assert ax.get_ylabel() == "count" and ax.get_title() == "counts"
    fig = viz.class_counts(torch.tensor([2, 0, 2]))
    fig.draw_without_rendering()
    assert [bar.get_height() for bar in fig.axes[0].patches] == [1, 0, 2]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0", "1", "2"]


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
    """One line per set-up at the mean over seeds, and a band of its colour from min to max.

    The seeds are chosen so the per-step min and max come from different seeds (a band
    from the first to the last seed, or around one seed, would differ); the legend gives
    the seed count; the axis labels are ``training step`` and ``ylabel`` (else ``metric``).
    """
    results = {"naive": {"steps": [0, 10, 20], "coverage": [[2, 2, 5], [1, 4, 3], [3, 1, 4]]},
               "fixed": {"steps": [0, 10, 20], "coverage": [[1, 5, 8]]}}
    fig = viz.plot_study(results, ylabel="modes covered", title="study")
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["naive (3 seeds)", "fixed (1 seed)"]
    assert len(ax.collections) == 2                          # one band per set-up
    for line, band, result in zip(lines, ax.collections, results.values(), strict=True):
        curves = np.asarray(result["coverage"], dtype=float)
        assert list(line.get_xdata()) == result["steps"]
        np.testing.assert_allclose(line.get_ydata(), curves.mean(axis=0))
        vertices = band.get_paths()[0].vertices
        for step, low, high in zip(result["steps"], curves.min(0), curves.max(0), strict=True):
            ys = vertices[vertices[:, 0] == step, 1]
            assert (ys.min(), ys.max()) == (low, high)       # the band spans min..max
        np.testing.assert_allclose(band.get_facecolor()[0][:3], to_rgb(line.get_color()))
    np.testing.assert_allclose(lines[0].get_ydata(), [2.0, 7 / 3, 4.0])
    assert ax.get_xlabel() == "training step" and ax.get_ylabel() == "modes covered"
    assert ax.get_title() == "study"
    assert viz.plot_study(results).axes[0].get_ylabel() == "coverage"
    with pytest.raises(ValueError, match="empty"):
        viz.plot_study({})
