"""Procedural coloured shapes with known attributes: a small conditional image set.

Every image holds one shape on a dark background. Its attributes are known exactly,
so a generator's conditioning can be checked without a human:

* ``shape``: 0 circle, 1 square, 2 triangle (the class label),
* ``colour``: 0 red, 1 green, 2 blue, 3 yellow,
* ``size``: 0 small, 1 large,
* ``x``, ``y``: the centre, in pixels of the native 32x32 canvas (quarter pixels).

Shapes are drawn at 4x resolution and averaged down, so edges are anti-aliased. Centres
lie on a quarter-pixel grid and no two images share all attributes, so the set holds no
duplicates: with whole-pixel centres drawn independently, two images in five were exact
copies of another (measured), which leaks test images into training. The set is a pure
function of ``(n, seed)``.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

SHAPE_NAMES = ("circle", "square", "triangle")
COLOUR_NAMES = ("red", "green", "blue", "yellow")
SIZE_NAMES = ("small", "large")
NATIVE_SIZE = 32
_RGB = torch.tensor([[0.9, 0.15, 0.1], [0.15, 0.8, 0.2], [0.2, 0.35, 0.95], [0.95, 0.85, 0.1]])
_SUPERSAMPLE = 4


def make_shapes(n: int, seed: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
    """Draw ``n`` shape images.

    Args:
        n: number of images.
        seed: the set is a pure function of ``(n, seed)``.

    Returns:
        ``images`` of shape ``(n, 3, 32, 32)`` in ``[-1, 1]`` and a dict of attribute
        tensors of shape ``(n,)``: int64 ``shape``, ``colour``, ``size`` and float32
        ``x``, ``y``.
    """
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(0, len(SHAPE_NAMES), (n,), generator=g)
    colour = torch.randint(0, len(COLOUR_NAMES), (n,), generator=g)
    size = torch.randint(0, len(SIZE_NAMES), (n,), generator=g)
    half = torch.where(size == 0, 5.0, 9.0)                            # half-width in pixels
    margin = half.ceil() + 1
    x, y = torch.zeros(n), torch.zeros(n)
    redraw = torch.ones(n, dtype=torch.bool)
    while redraw.any():  # redraw the centres of items that repeat another's attributes
        k = int(redraw.sum())
        span = NATIVE_SIZE - 2 * margin[redraw]
        x[redraw] = ((margin[redraw] + torch.rand(k, generator=g) * span) * 4).round() / 4
        y[redraw] = ((margin[redraw] + torch.rand(k, generator=g) * span) * 4).round() / 4
        keys = torch.stack([shape, colour, size, (x * 4).long(), (y * 4).long()], dim=1)
        _, inverse = torch.unique(keys, dim=0, return_inverse=True)
        first = torch.full((n,), n).scatter_reduce(0, inverse, torch.arange(n), "amin")
        redraw = first[inverse] != torch.arange(n)                      # later copies of a key

    side = NATIVE_SIZE * _SUPERSAMPLE
    grid = (torch.arange(side).float() + 0.5) / _SUPERSAMPLE            # pixel coordinates
    gy, gx = torch.meshgrid(grid, grid, indexing="ij")                  # (side, side)
    mask = torch.empty(n, side, side)
    for k, draw in enumerate((_circle, _square, _triangle)):
        idx = torch.nonzero(shape == k).flatten()
        dx = gx[None] - x[idx, None, None]                              # (n_k, side, side)
        dy = gy[None] - y[idx, None, None]
        mask[idx] = draw(dx, dy, half[idx, None, None]).float()
    mask = torch.nn.functional.avg_pool2d(mask[:, None], _SUPERSAMPLE)  # (n, 1, 32, 32)
    background = 0.08
    rgb = _RGB[colour][:, :, None, None]                                # (n, 3, 1, 1)
    images = background + mask * (rgb - background)                     # (n, 3, 32, 32) in [0, 1]
    attributes = {"shape": shape, "colour": colour, "size": size,
                  "x": x, "y": y}
    return images * 2 - 1, attributes


def _circle(dx: Tensor, dy: Tensor, h: Tensor) -> Tensor:
    return dx**2 + dy**2 <= h**2


def _square(dx: Tensor, dy: Tensor, h: Tensor) -> Tensor:
    return (dx.abs() <= h * 0.85) & (dy.abs() <= h * 0.85)


def _triangle(dx: Tensor, dy: Tensor, h: Tensor) -> Tensor:
    # Upward triangle: above the base and below the two slanted edges.
    return (dy <= h * 0.8) & (dy >= -h + 2 * dx.abs())
