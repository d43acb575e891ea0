"""One table of every metric for the shipped generative models of chapters 03-05.

:func:`compare_models` loads each checkpoint through the model-kind registry
(:func:`aigc_course.kinds.load_model`: the kind is read from the file, never guessed
from its name), samples it with :func:`aigc_course.kinds.draw` (the code ``aigc-course
sample`` runs), times the sampling, and scores the samples with
:func:`aigc_course.metrics.evaluate`: judge FID, KID, Inception Score,
improved precision and recall, recognisability, class coverage and, for conditional
models, label accuracy. A row of real held-out digits (the ``test`` split, at the
models' size) gives the values a perfect model would approach.

Measured (2 shared CPU cores, n = 1,000, seed 0, judge features): VAE FID 21.9,
precision/recall 0.62/0.85, 0.4 s per 1,000 samples; DDPM (50 DDIM steps, no guidance)
FID 17.4, 0.69/0.91, label accuracy 0.88, 36 s per 1,000; real test digits (269) 1.2.

Read the table with chapter 08's caveats: all numbers are in the digits judge's
feature space, FID depends on ``n`` (compare rows of one ``n``), the real row has only
269 images, and wall time depends on the machine and its load (quote ratios).
Simplified: models are sampled on CPU, one seed each; no confidence intervals beyond
KID's subset standard deviation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from aigc_course import kinds
from aigc_course.data.registry import load_images
from aigc_course.metrics import FeatureExtractor, evaluate

Tensor = torch.Tensor
#: table name -> the kind whose shipped checkpoint is that row (chapters 03, 04, 05)
SHIPPED = {"GAN (03)": "gan", "VAE (04)": "vae", "diffusion (05)": "ddpm"}


COLUMNS = ("model", "kind", "conditional", "n", "fid", "kid", "kid_std", "inception_score",
           "precision", "recall", "recognisability", "coverage", "label_accuracy",
           "seconds_per_1000")


def shipped_checkpoints() -> dict[str, Path]:
    """The shipped model checkpoints that exist: table name (e.g. ``"VAE (04)"``) -> path.

    A checkpoint still being trained (not yet written) is simply absent.
    """
    paths = {name: kinds.get(kind).shipped for name, kind in SHIPPED.items()}
    return {name: path for name, path in paths.items() if path is not None and path.is_file()}


def sample_model(checkpoint: str | Path, n: int, seed: int = 0,
                 **sample_options: Any) -> tuple[Tensor, Tensor, float]:
    """Draw ``n`` samples of any model checkpoint, timed (conditional: classes in turn).

    Args:
        checkpoint: the checkpoint's path; its kind is read from the file.
        n: samples to draw.
        seed: the sampling seed.
        **sample_options: the kind's sampling options (``steps=``, ``guidance=`` for
            ``ddpm``); others raise.

    Returns:
        :func:`aigc_course.kinds.draw`'s ``images``, ``labels`` and seconds.

    Raises:
        ValueError: a checkpoint that is not a registered model kind, or an option the
            kind does not take.
    """
    kind, model = kinds.load_model(checkpoint)
    kinds.check_options(kind, sample_options)
    return kinds.draw(model, n, seed=seed, **sample_options)


def compare_models(models: Mapping[str, str | Path] | None = None,
                   n: int = 1000, seed: int = 0,
                   sample_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                   extractor: FeatureExtractor | None = None, include_real: bool = True,
                   kid_subsets: int = 100) -> Any:
    """Sample each model and score it with every metric: one row per model.

    Args:
        models: name -> checkpoint path; ``None``: :func:`shipped_checkpoints`
            (the GAN row appears once ``gan_digits16.pt`` exists).
        n: samples per model (smoke: 200; cpu: 1,000).
        seed: the sampling and metric seed.
        sample_kwargs: per *kind* sampling options, e.g.
            ``{"ddpm": {"steps": 50, "guidance": 2.0}}``.
        extractor: the feature space of FID/KID/IS/precision/recall; ``None`` is the
            digits judge.
        include_real: add a ``"real (test split)"`` row: held-out digits at the first
            model's image size (at most 269 of them).
        kid_subsets: KID subsets (subset size ``min(1000, n)``).

    Returns:
        A ``pandas.DataFrame`` with columns :data:`COLUMNS` (``label_accuracy`` is NaN
        for unconditional models; ``seconds_per_1000`` is the sampling wall time
        scaled to 1,000 samples, NaN for the real row). The real row's
        ``label_accuracy`` is the judge's accuracy on the true labels.

    Raises:
        ValueError: ``n < 10`` or no models.
    """
    import pandas as pd

    if n < 10:
        raise ValueError(f"n must be at least 10 (the Inception Score's splits), got {n}")
    models = dict(models) if models is not None else shipped_checkpoints()
    if not models:
        raise ValueError("no models to compare: pass name -> checkpoint, or ship checkpoints")
    sample_kwargs = sample_kwargs or {}
    rows: list[dict[str, Any]] = []
    image_size = None
    for name, checkpoint in models.items():
        kind, model = kinds.load_model(checkpoint)
        options = dict(sample_kwargs.get(kind.name, {}))
        kinds.check_options(kind, options)
        images, labels, seconds = kinds.draw(model, n, seed=seed, **options)
        image_size = image_size or int(images.shape[-1])
        conditional = bool(model.conditional)
        scores = evaluate(images, labels if conditional else None, extractor=extractor,
                          kid_subsets=kid_subsets, seed=seed)
        rows.append({"model": name, "kind": kind.name, "conditional": conditional, **scores,
                     "seconds_per_1000": seconds / n * 1000})
    if include_real:
        real, real_labels = load_images("digits", "test", image_size=image_size, max_items=n)
        scores = evaluate(real, real_labels, extractor=extractor, kid_subsets=kid_subsets,
                          seed=seed)
        rows.append({"model": "real (test split)", "kind": "data", "conditional": False,
                     **scores, "seconds_per_1000": math.nan})
    return pd.DataFrame(rows, columns=list(COLUMNS))
