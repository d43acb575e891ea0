"""Mode-collapse studies of chapter 03: coverage over training, several set-ups and seeds.

:func:`coverage_study` trains each set-up of a study with :func:`aigc_course.train.gan.train_gan`
over several seeds and measures mode coverage every few steps: the number of modes of the
ring of Gaussians a 2-D GAN covers (Metz et al. 2017, "Unrolled generative adversarial
networks", section 3.1, the ring of 8), or the judge's class coverage of generated digits.
:func:`ring_variants` and :func:`digits_variants` are the set-ups the chapter compares:
naive, then one change at a time.

Simplified: coverage is measured on a fixed number of samples from a fixed seed, so a
curve's wiggles are the model's, not the measurement's.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from aigc_course.data.toy2d import ring_centres
from aigc_course.metrics.distances import mode_coverage
from aigc_course.metrics.judge import class_coverage
from aigc_course.models.gan import GANConfig, MLPGANConfig
from aigc_course.train.gan import (
    GAN,
    GANTrainConfig,
    dcgan_config,
    naive_config,
    sample,
    train_gan,
)
from aigc_course.utils import Timer

Tensor = torch.Tensor


@torch.no_grad()
def ring_coverage(model: GAN, centres: Tensor | None = None, radius: float = 0.25,
                  n: int = 2000, seed: int = 0) -> dict[str, float]:
    """Modes covered by ``n`` points of a 2-D GAN, and the share on a mode.

    Args:
        centres: ``(K, 2)`` mode centres (``None``: :func:`~aigc_course.data.toy2d.ring_centres`).
        radius: distance that counts as on a mode.

    Returns:
        :func:`aigc_course.metrics.distances.mode_coverage`'s ``modes`` and ``on_mode``.
    """
    centres = ring_centres() if centres is None else centres
    points = sample(model, n, generator=torch.Generator().manual_seed(seed))   # (n, 2)
    return mode_coverage(points, centres, radius)


#: samples kept per set-up of :func:`coverage_study` (the first seed's, at the end)
GRID_SAMPLES = 32


def coverage_study(data: Tensor,
                   variants: dict[str, tuple[GANConfig | MLPGANConfig, GANTrainConfig]],
                   seeds: tuple[int, ...] = (0, 1, 2), every: int = 250,
                   labels: Tensor | None = None, centres: Tensor | None = None,
                   radius: float = 0.25, n_eval: int = 1000) -> dict[str, dict[str, Any]]:
    """Mode coverage over training for several GAN set-ups, each over several seeds.

    Points ``(N, 2)``: the number of ring modes covered (:func:`ring_coverage`); images:
    the judge's class coverage (1: the ten digits equally often, 0: one class). Each
    run's ``seed`` replaces its train config's.

    Args:
        data: points ``(N, 2)`` or images ``(N, 1, H, W)``.
        variants: name -> (model config, train config).
        seeds: the seeds of each variant.
        every: measure every this many steps.
        labels: ``(N,)`` classes, for conditional variants.
        centres, radius: the modes (points only; default the ring of 8).
        n_eval: samples per measurement.

    Returns:
        name -> ``{"steps": [...], "coverage": [[per step] per seed], "final": [per seed],
        "seconds": [per seed], "samples": ...}`` (a conditional model samples its classes
        in turn). ``samples`` is what the first seed's generator draws at the end, 32 of
        them from a fixed generator: images ``(32, C, H, W)`` (collapse *seen*: a grid of
        few digits) or points ``(32, 2)``.
    """
    points = data.ndim == 2

    def monitor(model: GAN) -> dict[str, float]:
        if points:
            return {"coverage": ring_coverage(model, centres, radius, n_eval)["modes"]}
        return {"coverage": class_coverage(sample(model, n_eval,
                                                  generator=torch.Generator().manual_seed(0)))}

    results: dict[str, dict[str, Any]] = {}
    for name, (model_config, train_config) in variants.items():
        curves, seconds = [], []
        steps: list[float] = []
        final_samples = torch.empty(0)
        for seed in seeds:
            run = dataclasses.replace(train_config, seed=seed, progress=False)
            with Timer() as timer:
                model, history = train_gan(data, labels, model_config, run, monitor, every)
            if seed == seeds[0]:
                final_samples = sample(model, GRID_SAMPLES, generator=torch.Generator()
                                       .manual_seed(0))
            curves.append(history["coverage"])
            steps = history["step"]
            seconds.append(timer.seconds)
        results[name] = {"steps": [int(s) for s in steps], "coverage": curves,
                         "final": [c[-1] for c in curves], "seconds": seconds,
                         "samples": final_samples}
    return results


Variants = dict[str, tuple[GANConfig | MLPGANConfig, GANTrainConfig]]


def ring_variants(steps: int, batch_size: int = 256) -> Variants:
    """The 2-D collapse study: chapter 02's MLP GAN on the ring of 8, naive and fixed.

    * ``naive``: the DCGAN recipe (:func:`dcgan_config`: non-saturating loss,
      Adam(2e-4, (0.5, 0.999)) for both players);
    * ``spectral norm + TTUR``: spectrally normalised $D$, hinge loss, $D$ learning 4x
      faster than $G$ (1e-4 / 4e-4, Heusel et al. 2017);
    * ``WGAN-GP``: critic loss with the gradient penalty, 5 critic steps per $G$ step,
      Adam(1e-4, (0.5, 0.9)) (Gulrajani et al. 2017, Algorithm 1 with their toy settings).

    Measured on ``toy2d_ring`` (2,000 steps, modes covered at steps 400 / 800 / ... /
    2,000, seeds 0 / 1 / 2): naive [3, 3, 1, 2, 2] / [0, 1, 0, 0, 0] / [3, 4, 8, 8, 8]
    (seed 1 ends as one blob on an arc between two modes); spectral norm + TTUR
    [7, 8, 8, 8, 8] / [7, 8, 8, 8, 8] / [8, 8, 8, 8, 8]; WGAN-GP [3, 8, 8, 8, 8] /
    [2, 6, 8, 8, 8] / [3, 7, 8, 4, 8]. About 25, 30 and 110 s per run on one core.
    """
    return {
        "naive": (MLPGANConfig(), dcgan_config(steps=steps, batch_size=batch_size)),
        "spectral norm + TTUR": (MLPGANConfig(spectral_norm=True), GANTrainConfig(
            steps=steps, batch_size=batch_size, loss="hinge", lr_g=1e-4, lr_d=4e-4,
            betas=(0.5, 0.999), ema_decay=0.0)),
        "WGAN-GP": (MLPGANConfig(), GANTrainConfig(
            steps=steps, batch_size=batch_size, loss="wgan_gp", n_critic=5, lr_g=1e-4,
            lr_d=1e-4, betas=(0.5, 0.9), ema_decay=0.0)),
    }


def digits_variants(steps: int, image_size: int = 8, width: int = 32) -> Variants:
    """The digits collapse study: a DCGAN, naive, then one change at a time.

    * ``naive``: an unconditional DCGAN with :func:`naive_config` (Adam's defaults);
    * ``minibatch std``: a minibatch standard-deviation channel in $D$ (Karras et al. 2018);
    * ``spectral norm``: $D$ spectrally normalised, without batch norm (Miyato et al. 2018);
    * ``DCGAN optimiser``: :func:`dcgan_config`, Adam(2e-4, (0.5, 0.999));
    * ``TTUR``: two time scales, $G$ at 1e-4 and $D$ at 4e-4 (Heusel et al. 2017);
    * ``conditional``: $G$ and $D$ see the class (projection discriminator).

    Each variant keeps everything else of ``naive``. Measured at 8x8, width 32, 1,500
    steps, seeds 0 / 1 / 2, judge class coverage at the last step (and averaged over steps
    1,000-1,500): naive 0.66 / 0.86 / 0.80 (0.57 averaged; it hops between a few
    classes); minibatch std 0.51 / 0.80 / 0.51 (0.54: no help at this learning rate);
    spectral norm 0.90 / 0.91 / 0.76 (0.80); DCGAN optimiser 0.94 / 0.94 / 0.97 (0.94);
    TTUR 0.99 / 0.95 / 0.87 (0.80); conditional 0.74 / 0.68 / 0.74 (0.56: labels alone
    do not stabilise it). About 45 s per run on one shared core (80 s with minibatch std).
    """
    base = GANConfig(image_size=image_size, width=width)
    naive = naive_config(steps=steps)
    return {
        "naive": (base, naive),
        "minibatch std": (dataclasses.replace(base, minibatch_std=True), naive),
        "spectral norm": (dataclasses.replace(base, spectral_norm=True, d_norm="none"), naive),
        "DCGAN optimiser": (base, dcgan_config(steps=steps)),
        "TTUR": (base, naive_config(steps=steps, lr_g=1e-4, lr_d=4e-4)),
        "conditional": (dataclasses.replace(base, num_classes=10), naive),
    }
