"""Overfitting and memorisation against training-set size (chapter 07).

Chapter 05's DDPM is trained on the first $N$ images of a class-balanced ordering of the
training split, for several $N$ and the *same* number of steps, seed and network. Every
``every`` steps the simple loss (Algorithm 1 of Ho et al. 2020) of the EMA network is
measured on $K$ training images and $K$ validation images with the *same* fixed draws of
$t$ and $\\epsilon$ (:func:`aigc_course.train.diffusion.validation_loss`), so

$$\\text{gap}_N = L_\\text{val} - L_\\text{train}, \\qquad
  L_S = \\tfrac1K \\textstyle\\sum_{k=1}^K \\lVert \\epsilon_k -
  \\epsilon_\\theta(\\sqrt{\\bar\\alpha_{t_k}}\\, x^S_k + \\sqrt{1-\\bar\\alpha_{t_k}}\\,
  \\epsilon_k,\\ t_k) \\rVert^2$$

(averaged over pixels too, the training loss's scale) compares the two sets on identical
noise: what is left is the network's, not the draws'.
A small $N$ seen for many epochs is fitted better than unseen digits (a positive gap).

Then each model draws samples and chapter 08's copy check
(:func:`aigc_course.metrics.memorisation.memorisation_report`) looks at every sample's
nearest training image in pixel space: a sample is a *copy* when
$d_i = \\min_j \\lVert x_i - x^\\text{train}_j\\rVert_2$ is below the 1% quantile of the same
distance for held-out test images. The fraction of copies rises as $N$ falls (a model of
100 digits trained long returns its training digits; one of a thousand makes new ones),
as Somepalli et al. (2023) and Carlini et al. (2023) find for large diffusion models and
Kadkhodaie et al. (2024, "Generalization in diffusion models arises from
geometry-adaptive harmonic representations") show on faces as a function of $N$.

Simplified: one seed per size, pixel-space neighbours (a copy shifted by a pixel is not
caught), a fixed step budget for every $N$ (the small sets see more epochs, which is the
point), no early stopping.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from aigc_course.data.registry import load_images
from aigc_course.diffusion import NoiseSchedule
from aigc_course.metrics.memorisation import MemorisationReport, memorisation_report
from aigc_course.models.unet import DenoiserConfig
from aigc_course.profiles import DiffusionProfile, ScaleProfile, resolve
from aigc_course.train.diffusion import (
    DiffusionModel,
    DiffusionTrainConfig,
    train_diffusion,
    validation_loss,
)
from aigc_course.train.engine import Engine, RunOptions
from aigc_course.utils import num_threads

Tensor = torch.Tensor

#: images of each loss measurement (train and validation alike; a smaller set is cycled)
EVAL_IMAGES = 256
#: samples each model draws for the copy check
SAMPLES = 200
#: DDIM steps of those samples
SAMPLE_STEPS = 20


@dataclass
class SizeRun:
    """One training-set size of a :class:`SizeStudy`.

    Attributes:
        size: $N$, the training images.
        index: ``(N,)`` their indices in the training split.
        steps: the steps at which the losses were measured.
        train_loss: the EMA network's loss on the training subset at those steps.
        val_loss: the same on the validation subset (same $t$ and $\\epsilon$).
        report: chapter 08's copy check of the samples against the $N$ images, with
            ``nearest`` (each sample's nearest training image, an index into ``index``).
        samples: ``(M, C, H, W)`` the model's samples.
        nearest: ``(M, C, H, W)`` each sample's nearest training image.
        model: the trained model (EMA weights, CPU).
        seconds: training, measuring and sampling time.
    """

    size: int
    index: Tensor
    steps: list[int]
    train_loss: list[float]
    val_loss: list[float]
    report: dict[str, Any]
    samples: Tensor
    nearest: Tensor
    model: DiffusionModel
    seconds: float

    @property
    def gap(self) -> list[float]:
        """$L_\\text{val} - L_\\text{train}$ at every measured step."""
        return [v - t for t, v in zip(self.train_loss, self.val_loss, strict=True)]

    @property
    def copy_fraction(self) -> float:
        """The share of samples closer to a training image than 99% of test images are."""
        return float(self.report["copy_fraction"])


@dataclass
class SizeStudy:
    """Curves and copy checks for several training-set sizes (:func:`memorisation_study`).

    Attributes:
        runs: one :class:`SizeRun` per size, in the order asked for.
        settings: the study's steps, batch size, seed and measurement sizes.
    """

    runs: list[SizeRun]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def sizes(self) -> list[int]:
        return [run.size for run in self.runs]

    def run(self, size: int) -> SizeRun:
        """The run of training-set size ``size``."""
        for run in self.runs:
            if run.size == size:
                return run
        raise KeyError(f"no run of size {size}; sizes: {self.sizes}")

    @property
    def curves(self) -> pd.DataFrame:
        """The curves in long form: one row per size and measured step."""
        return pd.DataFrame([{"N": run.size, "step": step, "train_loss": t, "val_loss": v,
                              "gap": v - t}
                             for run in self.runs
                             for step, t, v in zip(run.steps, run.train_loss, run.val_loss,
                                                   strict=True)])

    @property
    def table(self) -> pd.DataFrame:
        """One row per size: final losses and gap, epochs, copy fraction, distance ratio."""
        steps, batch = self.settings.get("steps", 0), self.settings.get("batch_size", 0)
        rows = [{"N": run.size, "epochs": steps * batch / run.size,
                 "train_loss": run.train_loss[-1], "val_loss": run.val_loss[-1],
                 "gap": run.gap[-1], "copy_fraction": run.copy_fraction,
                 "test_copy_fraction": run.report["test_copy_fraction"],
                 "median_nn_ratio": run.report["median_ratio"],
                 "threshold": run.report["threshold"], "seconds": run.seconds}
                for run in self.runs]
        return pd.DataFrame(rows)


def balanced_index(labels: Tensor, n: int) -> Tensor:
    """The first ``n`` indices of a class-balanced ordering of ``labels``, ``(n,)``.

    Classes take turns (the first image of each class, then the second of each, ...),
    each class keeping its own order, so every class has $\\lfloor n/C \\rfloor$ or
    $\\lceil n/C \\rceil$ images while it lasts, and a smaller ``n`` is a prefix of a larger
    one (the sets are nested).

    Raises:
        ValueError: ``n`` not in ``1..len(labels)``.
    """
    if not 1 <= n <= len(labels):
        raise ValueError(f"a training-set size must be in 1..{len(labels)} (the training "
                         f"images there are), got {n}")
    rank = torch.empty(len(labels), dtype=torch.long)
    for c in labels.unique():
        members = torch.nonzero(labels == c).flatten()
        rank[members] = torch.arange(len(members))
    classes = torch.unique(labels, return_inverse=True)[1]             # 0..C-1 per image
    key = rank * (int(classes.max()) + 1) + classes                     # (turn, class)
    return torch.argsort(key, stable=True)[:n]


def cycled(x: Tensor, k: int) -> Tensor:
    """The first ``k`` items of ``x`` repeated end to end, ``(k, ...)``."""
    return x.repeat(math.ceil(k / len(x)), *([1] * (x.ndim - 1)))[:k]


def copy_check(samples: Tensor, train: Tensor, test: Tensor, quantile: float = 0.01
               ) -> dict[str, Any]:
    """Chapter 08's copy check, plus each sample's nearest training image.

    Args:
        samples: generated images ``(M, C, H, W)``.
        train: the images the model was trained on ``(N, C, H, W)``.
        test: held-out real images ``(K, C, H, W)``, the baseline.
        quantile: a sample is a copy below this quantile of the test distances.

    Returns:
        :func:`~aigc_course.metrics.memorisation.memorisation_report`'s keys
        (``copy_fraction``, ``median_ratio``, ...) and ``nearest`` ``(M,)``, the index in
        ``train`` of each sample's nearest image (pixel space).
    """
    report: MemorisationReport = memorisation_report(samples, train, test, quantile)
    d = torch.cdist(samples.flatten(1).double(), train.flatten(1).double())   # (M, N)
    return {**report, "nearest": d.argmin(dim=1)}


def memorisation_study(images: Tensor, labels: Tensor, model_config: DenoiserConfig,
                       sizes: Sequence[int], *, val: Tensor, val_labels: Tensor | None,
                       test: Tensor, steps: int, batch_size: int, every: int | None = None,
                       eval_images: int = EVAL_IMAGES, samples: int = SAMPLES,
                       sample_steps: int = SAMPLE_STEPS, quantile: float = 0.01,
                       seed: int = 0, device: str = "cpu") -> SizeStudy:
    """Train a DDPM on each of ``sizes`` training images; curves and copy checks.

    Args:
        images: the training split ``(N_max, C, H, W)`` in ``[-1, 1]``.
        labels: its classes ``(N_max,)`` (the subsets are class-balanced).
        model_config: the network (conditional when ``num_classes > 0``).
        sizes: training-set sizes $N$ (each a class-balanced prefix, nested).
        val: validation images for the validation loss; val_labels: their classes.
        test: held-out images, the copy check's baseline (keep them apart from ``val``).
        steps: training steps of every run (the same for every $N$).
        batch_size: minibatch size.
        every: measure the losses every this many steps (``None``: ten times a run) and
            after the last step.
        eval_images: $K$, images per loss measurement (train and validation subsets are
            cycled to $K$ and share one seed, so the draws of $t$ and $\\epsilon$ match).
        samples: $M$, samples for the copy check; sample_steps: their DDIM steps.
        quantile: the copy threshold's quantile of the test distances.
        seed: training seed (the same initialisation and data order for every $N$),
            the measurements' draws and the samples' noise.
        device: where training runs.

    Returns:
        The :class:`SizeStudy`.

    Raises:
        ValueError: a size outside ``1..len(images)``, repeated sizes, or no sizes.
    """
    if not sizes:
        raise ValueError("no training-set sizes given")
    if len(set(sizes)) != len(sizes):
        raise ValueError(f"training-set sizes repeat: {list(sizes)}")
    for n in sizes:
        if not 1 <= n <= len(images):
            raise ValueError(f"training-set size {n} is larger than the {len(images)} "
                             "training images (or below 1); choose sizes up to that")
    every = every or max(1, steps // 10)
    if every < 1 or eval_images < 1 or samples < 1:
        raise ValueError("every, eval_images and samples must be >= 1")
    conditional = model_config.num_classes > 0
    config = DiffusionTrainConfig(steps=steps, batch_size=batch_size, seed=seed,
                                  device=device, progress=False)
    schedule = NoiseSchedule.from_name(config.schedule, config.T)
    x_val = cycled(val, eval_images)
    y_val = cycled(val_labels, eval_images) if conditional and val_labels is not None else None
    runs = []
    for n in sizes:
        start = time.perf_counter()
        index = balanced_index(labels, n)
        x, y = images[index], labels[index]
        x_eval = cycled(x, eval_images)
        y_eval = cycled(y, eval_images) if conditional else None
        curve: dict[str, list[Any]] = {"steps": [], "train": [], "val": []}

        def measure(engine: Engine, x_eval: Tensor = x_eval, y_eval: Tensor | None = y_eval,
                    curve: dict[str, list[Any]] = curve) -> None:
            if engine.step % every and engine.step != steps:
                return
            network = engine.parts["ema"].model  # type: ignore[attr-defined]
            curve["steps"].append(engine.step)
            curve["train"].append(validation_loss(network, schedule, x_eval, y_eval,
                                                  seed=seed + 1))
            curve["val"].append(validation_loss(network, schedule, x_val, y_val,
                                                seed=seed + 1))

        model, _ = train_diffusion(x, y if conditional else None, model_config, config,
                                   RunOptions(on_step=measure))
        drawn = draw_samples(model, samples, sample_steps, seed, device)
        report = copy_check(drawn, x, test, quantile)
        runs.append(SizeRun(n, index, curve["steps"], curve["train"], curve["val"], report,
                            drawn, x[report["nearest"]], model, time.perf_counter() - start))
    settings = {"steps": steps, "batch_size": batch_size, "every": every,
                "eval_images": eval_images, "samples": samples, "sample_steps": sample_steps,
                "quantile": quantile, "seed": seed}
    return SizeStudy(runs, settings)


@torch.no_grad()
def draw_samples(model: DiffusionModel, n: int, steps: int, seed: int = 0,
                 device: str = "cpu") -> Tensor:
    """``n`` DDIM samples ``(n, C, H, W)`` from noise seeded with ``seed`` (drawn on the CPU,
    so a GPU gives the same starting points), computed on ``device``, returned on the CPU
    (the model too)."""
    noise = torch.randn((n, *model.noise_shape), generator=torch.Generator().manual_seed(seed))
    try:
        return model.to(device).sample(n, steps=steps, noise=noise).cpu()
    finally:
        model.to("cpu")


def size_study(p: ScaleProfile, *, seed: int = 0, every: int | None = None,
               **diffusion: Any) -> SizeStudy:
    """The study at a profile's scale: chapter 05's DDPM, ``p.memo_sizes`` and ``p.memo_steps``.

    The network, dataset, image size and batch size are the same profile's
    :class:`~aigc_course.profiles.DiffusionProfile` (class-conditional, as chapter 05's),
    changed by ``p.memo_image_size`` and ``p.memo_width`` when set, then by ``diffusion``
    (e.g. ``image_size=8, width=32``: digits at their native size memorise in fewer
    steps); the validation loss uses the ``val`` split and the copy check's baseline the
    ``test`` split. ``p.memo_evals`` measurements of
    ``p.memo_eval_images`` images per run; ``p.memo_samples`` samples (at most the DDPM
    profile's ``eval_samples``) with ``p.memo_sample_steps`` DDIM steps (at most its
    ``sample_steps``).

    Raises:
        ValueError: a size larger than the dataset's training split, an unknown knob.
    """
    sized = {"image_size": p.memo_image_size, "width": p.memo_width}
    d = resolve(p.name, cls=DiffusionProfile, dry_run=p.dry_run,
                **{**{k: v for k, v in sized.items() if v is not None}, **diffusion})
    images, labels = load_images(d.dataset, "train", image_size=d.image_size)
    val, val_labels = load_images(d.dataset, "val", image_size=d.image_size)
    test, _ = load_images(d.dataset, "test", image_size=d.image_size)
    model_config = DenoiserConfig(arch=d.arch, image_size=images.shape[-1],  # type: ignore[arg-type]
                                  channels=images.shape[1], width=d.width, hidden=d.hidden,
                                  num_classes=10)
    with num_threads(p.num_threads):
        return memorisation_study(
            images, labels, model_config, p.memo_sizes, val=val, val_labels=val_labels,
            test=test, steps=p.memo_steps, batch_size=d.batch_size,
            every=every or max(1, p.memo_steps // p.memo_evals),
            eval_images=p.memo_eval_images, samples=min(p.memo_samples, d.eval_samples),
            sample_steps=min(p.memo_sample_steps, d.sample_steps), seed=seed,
            device=d.device)


def nearest_pairs(study: SizeStudy, size: int | None = None, n: int = 16
                  ) -> tuple[Tensor, Tensor]:
    """``n`` samples of one size and their nearest training images, closest first.

    Args:
        study: a :class:`SizeStudy`.
        size: the training-set size (``None``: the smallest, where copies show).
        n: how many pairs.

    Returns:
        ``(samples, nearest)``, both ``(n, C, H, W)``: row ``i`` of one is the pair of row
        ``i`` of the other (e.g. for :func:`aigc_course.viz.real_vs_generated`).
    """
    run = study.run(min(study.sizes) if size is None else size)
    order = torch.from_numpy(np.argsort(run.report["sample_distances"], kind="stable")[:n])
    return run.samples[order], run.nearest[order]


def plot_size_study(study: SizeStudy) -> Figure:
    """Train (solid) and validation (dashed) loss per size; gap and copies against $N$."""
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(study.runs)))
    for run, colour in zip(study.runs, colours, strict=True):
        axes[0].plot(run.steps, run.train_loss, color=colour, label=f"N={run.size} train")
        axes[0].plot(run.steps, run.val_loss, color=colour, ls="--", label=f"N={run.size} val")
    axes[0].set_xlabel("training step")
    axes[0].set_ylabel("loss (fixed $t$, $\\epsilon$)")
    axes[0].legend(fontsize=7, ncol=2)
    table = study.table
    axes[1].plot(table["N"], table["gap"], marker="o")
    axes[1].axhline(0, color="grey", lw=0.8)
    axes[1].set_ylabel("val loss - train loss (final)")
    axes[2].plot(table["N"], table["copy_fraction"], marker="o", label="samples")
    axes[2].plot(table["N"], table["test_copy_fraction"], marker="s", ls=":",
                 label="held-out real images")
    axes[2].set_ylabel("fraction of near-copies")
    axes[2].set_ylim(-0.03, 1.03)
    axes[2].legend(fontsize=8)
    for ax in axes[1:]:
        ax.set_xscale("log")
        ax.set_xlabel("training images $N$")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig
