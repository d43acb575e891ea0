"""Detecting generated images after the fact: a real-vs-generated classifier, and how it
fails on a generator family it never saw.

Wang et al. 2020 ("CNN-generated images are surprisingly easy to spot... for now", CVPR)
trained a ResNet-50 on real photos vs ProGAN images and found it generalised to other GANs
of the time; Ojha et al. 2023 ("Towards universal fake image detectors that generalize
across generative models", CVPR) showed such classifiers latch onto the artefacts of the
family they were trained on and drop towards chance on unseen ones (diffusion models
among them), and proposed nearest-neighbour or linear probing on frozen CLIP features.

Here the detector is the course's small CNN
(:class:`~aigc_course.models.classifier.ImageClassifier`, two classes, at the size of the
images it is given, so nothing is resampled inside it) trained with a plain loop on real
digits (train split) against samples of the shipped GAN and VAE (the *seen* families),
balanced: each minibatch is half real, half generated, the generated half split evenly
between families. It is evaluated on held-out real digits (test split) against fresh
GAN+VAE samples (seen) and against DDIM samples of the shipped DDPM (*unseen*). The score
of an image is the logit of "generated",
$s(x) = z_1(x) - z_0(x) = \\log p(\\text{generated}\\mid x) - \\log p(\\text{real}\\mid x)$;
reported are the ROC AUC (:func:`~aigc_course.provenance.attacks.roc_auc`) and the
detection rate at a threshold set for a false-positive rate on the real test images
(:func:`~aigc_course.provenance.attacks.threshold_at_fpr`).

Measured (2 shared CPU cores, one thread; :func:`detector_study`, seeds 0-2, 300 steps of
64, 1,258 real training digits vs as many GAN+VAE samples, 269 test digits vs 269 samples
per family, DDPM with 10 DDIM steps; 7-12 s of training per seed at 8x8, 13-17 s at 16x16):

* seen at 8x8 (content only): AUC 0.980-0.994 on GAN+VAE, 0.805-0.849 on the unseen DDPM;
  at 1% false positives it catches 67-91% of GAN+VAE samples and 26-45% of DDPM ones;
* seen at 16x16 (the models' output): AUC 0.999-1.000 and 0.926-0.974; 58-78% of DDPM
  samples caught at 1% false positives.

The 16x16 numbers are a shortcut, not generalisation: every real digit at 16x16 is an exact
bilinear upsample of an 8x8 one (:func:`upsampling_residual` ~1e-7) and no generator's
sample is (medians 0.011-0.046), so a detector that learns "not an upsample" also catches
the DDPM. Seen only at 8x8, where real and generated differ in content alone, the unseen
family is caught far less often: the detector learned the GAN's and VAE's artefacts, as
Ojha et al. found at scale. Real-world detectors meet the same two traps -- a trace of the
real data's processing (JPEG, resizing) instead of the generator's, and families released
after training.

Simplified, and why: grey digits, a 52 K-parameter CNN trained for seconds, and no
blur/JPEG augmentation (Wang et al.'s robustness recipe), so that the study runs on a CPU
over several seeds.

Why deployed detectors were withdrawn (:data:`DEPLOYED_DETECTOR_NOTE`): a detector's
error rates decide its use, and a false positive accuses a person. OpenAI's AI text
classifier (January 2023) correctly labelled 26% of AI-written text as "likely
AI-written" while labelling 9% of human-written text as AI-written; OpenAI withdrew it in
July 2023 for its low rate of accuracy. Detection of one generator family is not
detection of generated content, which is why the chapter pairs it with marking at
generation time (watermarks, signed metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from aigc_course import kinds
from aigc_course.data import load_images, registry
from aigc_course.models.classifier import ClassifierConfig, ImageClassifier
from aigc_course.provenance.attacks import detection_rate, roc_auc, threshold_at_fpr
from aigc_course.utils import Timer, seeded

Tensor = torch.Tensor

DEPLOYED_DETECTOR_NOTE = (
    "OpenAI's AI text classifier (released January 2023) correctly identified 26% of "
    "AI-written text as 'likely AI-written' and wrongly labelled 9% of human-written text "
    "as AI-written; OpenAI withdrew it in July 2023 for its low rate of accuracy. A "
    "detector's false-positive rate on real content, and its recall on generators it was "
    "not trained on, decide whether it can be deployed.")


@dataclass
class DetectorConfig:
    """Hyper-parameters of :func:`train_detector`.

    Attributes:
        steps: optimiser steps (fixed, so results do not depend on machine load).
        batch_size: images per step, half real and half generated (even, >= 2 per family).
        lr: Adam learning rate.
        seed: seeds the weights, the minibatches and dropout.
        channels: output channels of the CNN's stages (each halves the image side).
        dropout: dropout before the fully connected layers.
    """

    steps: int = 300
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    channels: tuple[int, ...] = (16, 32)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.batch_size < 2 or self.batch_size % 2:
            raise ValueError(f"batch_size must be an even number >= 2, got {self.batch_size}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


def _check_images(images: Tensor, what: str, like: Tensor | None = None) -> None:
    if not isinstance(images, Tensor) or not images.is_floating_point() or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise ValueError(f"{what} must be a float tensor (N, C, H, W) in [-1, 1], got {shape}")
    if images.shape[0] < 1:
        raise ValueError(f"{what} is empty")
    if like is not None and images.shape[1:] != like.shape[1:]:
        raise ValueError(f"{what} has images of shape {tuple(images.shape[1:])}, expected "
                         f"{tuple(like.shape[1:])} (the real images' shape)")


def make_detector(image_shape: tuple[int, int, int], config: DetectorConfig) -> ImageClassifier:
    """The two-class CNN for images of ``image_shape`` ``(C, H, W)`` (square, native size)."""
    c, h, w = image_shape
    if h != w:
        raise ValueError(f"the detector takes square images, got {h}x{w}")
    return ImageClassifier(ClassifierConfig(channels=config.channels, hidden=64, feature_dim=32,
                                            num_classes=2, image_size=h, dropout=config.dropout,
                                            in_channels=c))


def train_detector(real: Tensor, fakes: dict[str, Tensor],
                   config: DetectorConfig | None = None
                   ) -> tuple[ImageClassifier, dict[str, list[float]]]:
    """Train a real (class 0) vs generated (class 1) classifier.

    Args:
        real: real images ``(N_r, C, H, W)`` in ``[-1, 1]``.
        fakes: family name -> generated images ``(N_f, C, H, W)``; each minibatch holds
            ``batch_size / 2`` real images and the same number of generated ones, split
            evenly between the families (so a family with fewer samples is not under-weighted).
        config: the hyper-parameters (``None``: :class:`DetectorConfig` defaults).

    Returns:
        The model (eval mode) and ``history`` with per-step ``loss`` and ``accuracy``.

    Raises:
        ValueError: no families, shapes that differ from ``real``'s, or more families
            than generated slots in a minibatch.
    """
    config = config or DetectorConfig()
    _check_images(real, "real")
    if not fakes:
        raise ValueError("fakes needs at least one family of generated images")
    for name, images in fakes.items():
        _check_images(images, f"fakes[{name!r}]", like=real)
    half = config.batch_size // 2
    per_family = half // len(fakes)
    if per_family < 1:
        raise ValueError(f"batch_size {config.batch_size} is too small for {len(fakes)} families")
    families = list(fakes.values())
    labels = torch.cat([torch.zeros(half), torch.ones(per_family * len(fakes))]).long()
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    with seeded(config.seed) as generator:
        model = make_detector((real.shape[1], real.shape[2], real.shape[3]), config)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.train()
        for _ in range(config.steps):
            batch = [real[torch.randint(len(real), (half,), generator=generator)]]
            batch += [f[torch.randint(len(f), (per_family,), generator=generator)]
                      for f in families]
            x = torch.cat(batch)                                   # (half + F*per_family, C, H, W)
            optimiser.zero_grad()
            logits = model(x)                                      # (B, 2)
            loss = F.cross_entropy(logits, labels)                 # -log p(label | x), mean
            loss.backward()
            optimiser.step()
            history["loss"].append(loss.item())
            history["accuracy"].append(float((logits.argmax(1) == labels).float().mean()))
    model.eval()
    return model, history


@torch.no_grad()
def detector_scores(model: ImageClassifier, images: Tensor, batch_size: int = 512) -> Tensor:
    """The logit of "generated", $z_1(x) - z_0(x)$, of each image, ``(N,)`` (eval mode).

    Raises:
        ValueError: not ``(N, C, H, W)`` floats, or another size than the model's.
    """
    _check_images(images, "images")
    size, channels = model.config.image_size, model.config.in_channels
    if tuple(images.shape[1:]) != (channels, size, size):
        raise ValueError(f"the detector expects images of shape (N, {channels}, {size}, {size}), "
                         f"got {tuple(images.shape)}")
    model.eval()
    out = [model(chunk) for chunk in images.split(batch_size)]
    logits = torch.cat(out)                                        # (N, 2)
    return logits[:, 1] - logits[:, 0]                             # log-odds of "generated"


def evaluate_detector(model: ImageClassifier, real_test: Tensor,
                      fakes_by_family: dict[str, Tensor],
                      fprs: tuple[float, ...] = (0.05, 0.01)) -> dict[str, dict[str, float]]:
    """ROC AUC and detection rates of each family against the same real images.

    Args:
        real_test: held-out real images ``(N_r, C, H, W)``; thresholds need
            ``N_r >= 1/fpr`` (100 for 1%).
        fakes_by_family: family -> held-out generated images ``(N_f, C, H, W)``.
        fprs: false-positive rates on ``real_test`` at which thresholds are set.

    Returns:
        family -> ``{"auc", "tpr_at_fpr0.05", "tpr_at_fpr0.01", ..., "n"}``.
    """
    real_scores = detector_scores(model, real_test)
    thresholds = {fpr: threshold_at_fpr(real_scores, fpr) for fpr in fprs}
    table: dict[str, dict[str, float]] = {}
    for name, images in fakes_by_family.items():
        _check_images(images, f"fakes_by_family[{name!r}]", like=real_test)
        scores = detector_scores(model, images)
        row = {"auc": roc_auc(real_scores, scores)}                # P(s_fake > s_real)
        row |= {f"tpr_at_fpr{fpr:g}": detection_rate(scores, t) for fpr, t in thresholds.items()}
        table[name] = row | {"n": float(len(images))}
    return table


def draw_family(kind: str, n: int, seed: int, ddpm_steps: int = 10,
                model: Any = None) -> Tensor:
    """``n`` samples ``(n, C, H, W)`` of ``model`` (``None``: the shipped model of ``kind``,
    ``"gan"``, ``"vae"`` or ``"ddpm"``)."""
    options: dict[str, Any] = {"steps": ddpm_steps} if kind == "ddpm" else {}
    model = kinds.get(kind).load() if model is None else model
    return kinds.draw(model, n, seed=seed, **options)[0]


@dataclass
class DetectorStudy:
    """What :func:`detector_study` measured.

    Attributes:
        table: one row per (seed, family): ``seed``, ``family``, ``seen``, ``auc``,
            ``tpr_at_fpr0.05``, ``tpr_at_fpr0.01``, ``train_seconds``, ``final_loss``.
        summary: per family (index), ``auc_mean``, ``auc_std``, ``tpr_at_fpr0.05_mean``, ...
            over seeds (the standard deviation is NaN for one seed).
        settings: the knobs used (plain values).
        note: :data:`DEPLOYED_DETECTOR_NOTE`.
    """

    table: pd.DataFrame
    summary: pd.DataFrame
    settings: dict[str, Any]
    note: str = DEPLOYED_DETECTOR_NOTE


def upsampling_residual(images: Tensor) -> Tensor:
    """RMS distance of each image to the nearest bilinear 2x upsample of any image.

    The bilinear upsampler from ``H/2`` to ``H`` is linear, $x = U z$ with $U$ of shape
    ``(H*W, H*W/4)``; the nearest upsample is the least-squares projection
    $P x = U U^{+} x$, and the residual is $\\lVert x - P x\\rVert / \\sqrt{HW}$. Real
    digits at 16x16 are exact upsamples of 8x8 ones (residual ~1e-7, float rounding).

    Args:
        images: ``(N, C, H, W)`` with even ``H`` and ``W``.

    Returns:
        ``(N,)`` residuals (channels pooled).
    """
    _check_images(images, "images")
    n, c, h, w = images.shape
    if h % 2 or w % 2:
        raise ValueError(f"upsampling_residual needs an even height and width, got {h}x{w}")
    basis = torch.eye(h * w // 4, dtype=torch.float64).reshape(-1, 1, h // 2, w // 2)
    up = F.interpolate(basis, size=(h, w), mode="bilinear", align_corners=False)
    u = up.reshape(h * w // 4, h * w).T                            # (HW, HW/4): columns U e_k
    projection = u @ torch.linalg.pinv(u)                          # P = U U^+, (HW, HW)
    flat = images.double().reshape(n * c, h * w)                   # (N*C, HW)
    residual = flat - flat @ projection.T                          # x - P x
    return residual.pow(2).reshape(n, c * h * w).mean(1).sqrt().float()


def detector_study(seeds: tuple[int, ...] = (0, 1, 2), *, steps: int = 300,
                   batch_size: int = 64, n_test: int | None = None, ddpm_steps: int = 10,
                   image_size: int | None = None, models: Mapping[str, Any] | None = None,
                   dataset: str = "digits", n_train: int | None = None,
                   drawn: dict[tuple[str, int, int], Tensor] | None = None) -> DetectorStudy:
    """Train on real vs GAN+VAE digits and test on seen (GAN+VAE) and unseen (DDPM) families.

    Per seed: the detector's weights and minibatches, and fresh samples (the training
    fakes, as many as the real training digits, half GAN and half VAE, and held-out fakes
    drawn with other seeds).

    Args:
        seeds: one training run per seed (>= 3 for a spread).
        steps, batch_size: :class:`DetectorConfig` knobs.
        n_test: held-out images per group (real test digits, GAN+VAE, DDPM); ``None``:
            all 270 test digits and as many fakes.
        ddpm_steps: DDIM steps of the unseen DDPM's samples.
        image_size: the detector's view (``None``: the dataset's native size, 8 for
            ``digits``). At the native size every image, real or generated, is resampled
            (area, or antialiased bilinear) from the models' size, so only content differs;
            at the models' own size (16 for the shipped ones) every real digit is an exact
            bilinear upsample of an 8x8 one (:func:`upsampling_residual`) and no
            generator's sample is, a shortcut the detector takes (it then flags the unseen
            family too, for the wrong reason).
        models: ``{"gan", "vae", "ddpm"}`` -> a model of that kind (``None``: the shipped
            16x16 digits models), all of one image size.
        dataset: the real images' dataset (the models' own).
        n_train: real training images (as many generated; ``None``: the train split).
        drawn: a dict that keeps the samples drawn, by ``(kind, n, seed)``: pass the same
            one to studies of the same models that differ only in ``image_size`` and each
            sample is drawn once.
    """
    models = {kind: kinds.get(kind).load() for kind in ("gan", "vae", "ddpm")} \
        if models is None else dict(models)
    if set(models) != {"gan", "vae", "ddpm"}:
        raise ValueError(f"models must be gan, vae and ddpm, got {', '.join(sorted(models))}")
    size = int(models["ddpm"].noise_shape[-1])
    native = registry.info(dataset).native_size
    view_size: int = image_size if image_size is not None else native or size
    if not 4 <= view_size <= size:
        raise ValueError(f"image_size must be in [4, {size}] (the models' size), got "
                         f"{view_size}")

    def view(images: Tensor) -> Tensor:                            # (N, C, s, s)
        if view_size == images.shape[-1]:
            return images
        if images.shape[-1] % view_size == 0:
            return F.interpolate(images, size=view_size, mode="area")
        return F.interpolate(images, size=view_size, mode="bilinear", antialias=True,
                             align_corners=False)

    cache = {} if drawn is None else drawn

    def draw(kind: str, count: int, seed: int) -> Tensor:
        if (kind, count, seed) not in cache:
            cache[kind, count, seed] = draw_family(kind, count, seed, ddpm_steps, models[kind])
        return cache[kind, count, seed]

    real = view(load_images(dataset, "train", image_size=size, max_items=n_train)[0])
    real_test = view(load_images(dataset, "test", image_size=size, max_items=n_test)[0])
    n, m = len(real), len(real_test)
    rows = []
    for seed in seeds:
        base = 10 * seed
        fakes = {"gan": view(draw("gan", n // 2, base + 1)),
                 "vae": view(draw("vae", n - n // 2, base + 2))}
        seen = view(torch.cat([draw("gan", m // 2, base + 3),
                               draw("vae", m - m // 2, base + 4)]))     # (m, C, s, s)
        unseen = view(draw("ddpm", m, base + 5))
        config = DetectorConfig(steps=steps, batch_size=batch_size, seed=seed)
        with Timer() as timer:
            model, history = train_detector(real, fakes, config)
        results = evaluate_detector(model, real_test, {"gan+vae": seen, "ddpm": unseen})
        for family, row in results.items():
            rows.append({"seed": seed, "family": family, "seen": family == "gan+vae", **row,
                         "train_seconds": timer.seconds, "final_loss": history["loss"][-1]})
    table = pd.DataFrame(rows)
    metrics = ["auc", "tpr_at_fpr0.05", "tpr_at_fpr0.01"]
    summary = table.groupby("family", sort=False)[metrics].agg(["mean", "std"])
    summary.columns = [f"{metric}_{stat}" for metric, stat in summary.columns]  # flat names
    settings = {"seeds": list(seeds), "steps": steps, "batch_size": batch_size,
                "n_train_real": n, "n_test": m, "ddpm_steps": ddpm_steps,
                "image_size": view_size, "dataset": dataset}
    return DetectorStudy(table, summary, settings)


def plot_detector_studies(studies: Mapping[str, DetectorStudy]) -> Figure:
    """AUC and detection rate at 1% false positives, per family, for each study.

    Args:
        studies: a label (``"8x8"``, ``"16x16"``) -> a :func:`detector_study` result; bars
            are the means over seeds, dots the seeds.
    """
    if not studies:
        raise ValueError("plot_detector_studies needs at least one study")
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, metric, label in zip(axes, ("auc", "tpr_at_fpr0.01"),
                                 ("ROC AUC (0.5 = chance)", "detected at 1% false positives"),
                                 strict=True):
        ticks, names = [], []
        for i, (name, study) in enumerate(studies.items()):
            for j, (family, rows) in enumerate(study.table.groupby("family", sort=False)):
                x = i * 3 + j
                values = rows[metric].to_numpy()
                ax.bar(x, values.mean(), color="C0" if bool(rows["seen"].iloc[0]) else "C3",
                       alpha=0.6)
                ax.plot(np.full(len(values), x), values, "k.", ms=4)
                ticks.append(x)
                names.append(f"{name}\n{family}\n({'seen' if rows['seen'].iloc[0] else 'unseen'})")
        ax.set_xticks(ticks, names, fontsize=8)
        ax.set_ylim(0, 1.02)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[0].axhline(0.5, color="grey", lw=0.8, ls="--")
    fig.tight_layout()
    plt.close(fig)                                     # drawable; shown only when displayed
    return fig
