"""Figures the chapters show: image grids, training curves, real vs generated.

Every function returns a matplotlib ``Figure`` (and draws nothing else), so notebooks
display it and tests can check it was made. New figures are closed before they are
returned: a notebook shows each once, where it displays it, rather than again at the end
of the cell (the inline backend shows every figure still open). Images are
``(N, C, H, W)`` tensors in ``[-1, 1]``, as everywhere in the course.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure, SubFigure

Tensor = torch.Tensor


def _check_images(images: Tensor) -> Tensor:
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] not in (1, 3):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a (N, C, H, W) tensor with C in (1, 3), got {shape}")
    return images.detach().float().cpu()


def _detached(fig: Figure) -> Figure:
    """Close ``fig`` in pyplot (it stays drawable) so only an explicit display shows it."""
    plt.close(fig)
    return fig


def make_grid(images: Tensor, nrow: int | None = None, padding: int = 1) -> np.ndarray:
    """Tile images into one ``(H', W', C)`` array in ``[0, 1]`` (grey images repeat to RGB).

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        nrow: images per row (default: about a square).
        padding: pixels between tiles (drawn white).
    """
    x = _check_images(images)
    n, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / nrow)
    x = ((x.clamp(-1, 1) + 1) / 2).expand(-1, 3, -1, -1)                # (N, 3, H, W) in [0, 1]
    grid = torch.ones(3, rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top:top + h, left:left + w] = x[i]
    return grid.permute(1, 2, 0).numpy()                                # (H', W', 3)


def image_grid(images: Tensor, nrow: int | None = None, title: str | None = None,
               scale: float = 0.35, labels: Sequence[object] | None = None) -> Figure:
    """A grid of images as a figure.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        nrow: images per row.
        title: figure title.
        scale: inches per image.
        labels: one caption per image (small images get one line each under the grid).
    """
    x = _check_images(images)
    nrow = nrow or max(1, math.ceil(math.sqrt(len(x))))
    rows = math.ceil(len(x) / nrow)
    if labels is not None and len(labels) != len(x):
        raise ValueError(f"got {len(labels)} labels for {len(x)} images")
    fig, ax = plt.subplots(figsize=(max(2.0, nrow * scale * 2), max(2.0, rows * scale * 2)))
    ax.imshow(make_grid(x, nrow), interpolation="nearest")
    ax.set_axis_off()
    if labels is not None:
        h = x.shape[-2] + 1
        w = x.shape[-1] + 1
        for i, label in enumerate(labels):
            r, c = divmod(i, nrow)
            ax.text(c * w + 1, r * h + 1, str(label), color="red", fontsize=7, va="top")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _detached(fig)


def plot_curves(history: Mapping[str, Sequence[float]], xlabel: str = "step",
                title: str | None = None, logy: bool = False) -> Figure:
    """Training curves, one line per key of ``history`` (e.g. ``{"loss": [...]}``)."""
    if not history:
        raise ValueError("history is empty: nothing to plot")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for name, values in history.items():
        ax.plot(np.arange(len(values)), np.asarray(values, dtype=float), label=name)
    ax.set_xlabel(xlabel)
    if logy:
        ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _detached(fig)


def plot_study(results: Mapping[str, Mapping[str, Sequence]], metric: str = "coverage",
               ylabel: str | None = None, title: str | None = None) -> Figure:
    """A metric over training for several set-ups: the mean over seeds, and their range.

    Args:
        results: set-up name -> ``{"steps": [S], metric: [[S values] per seed]}`` (the
            output of :func:`aigc_course.train.gan.coverage_study`).
        metric: the key of the per-seed curves.
        ylabel, title: axis label (default ``metric``) and title.
    """
    if not results:
        raise ValueError("results is empty: nothing to plot")
    fig, ax = plt.subplots(figsize=(6.5, 3.5))
    for name, result in results.items():
        steps = np.asarray(result["steps"], dtype=float)                 # (S,)
        curves = np.asarray(result[metric], dtype=float)                 # (seeds, S)
        line, = ax.plot(steps, curves.mean(axis=0), marker="o", ms=3,
                        label=f"{name} ({len(curves)} seed{'s' if len(curves) > 1 else ''})")
        ax.fill_between(steps, curves.min(axis=0), curves.max(axis=0), alpha=0.15,
                        color=line.get_color())
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel or metric)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _detached(fig)


def real_vs_generated(real: Tensor, generated: Tensor, n: int = 32,
                      titles: tuple[str, str] = ("real", "generated")) -> Figure:
    """Two grids side by side: ``n`` real images and ``n`` generated ones."""
    real, generated = _check_images(real)[:n], _check_images(generated)[:n]
    nrow = max(1, math.ceil(math.sqrt(max(len(real), len(generated)))))
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax, images, title in zip(axes, (real, generated), titles, strict=True):
        ax.imshow(make_grid(images, nrow), interpolation="nearest")
        ax.set_title(title)
        ax.set_axis_off()
    fig.tight_layout()
    return _detached(fig)


def scatter2d(points: Tensor, labels: Tensor | None = None, title: str | None = None,
              ax: plt.Axes | None = None) -> Figure | SubFigure:
    """A 2-D point cloud ``(N, 2)``, coloured by ``labels`` when given.

    Returns the new figure, or ``ax``'s figure (a subfigure if ``ax`` lies in one).
    """
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {tuple(points.shape)}")
    fig: Figure | None = None                                           # a new figure
    if ax is None:
        fig, ax = plt.subplots(figsize=(4, 4))
    p = points.detach().cpu().numpy()
    if labels is None:
        ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.6)
    else:
        ax.scatter(p[:, 0], p[:, 1], s=3, c=labels.detach().cpu().numpy(), cmap="tab10",
                   alpha=0.6)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return _detached(fig) if fig is not None else ax.figure


def class_counts(labels: Tensor, class_names: Sequence[str] | None = None,
                 title: str | None = None) -> Figure:
    """A bar chart of how many items each class has."""
    counts = torch.bincount(labels.flatten().long(),
                            minlength=len(class_names) if class_names else 0).tolist()
    names = list(class_names) if class_names else [str(i) for i in range(len(counts))]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.45 * len(counts)), 2.8))
    ax.bar(names, counts, color="tab:blue")
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return _detached(fig)
