"""One table of every metric for the shipped generative models of chapters 03-05.

:func:`compare_models` samples each model through its command-line hook
(``cli_sample`` of the module registered in :data:`aigc_course.cli.MODEL_KINDS`, the
same code ``aigc-course sample`` runs), times the sampling, and scores the samples
with :func:`~aigc_course.metrics.evaluate.evaluate`: judge FID, KID, Inception Score,
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

import importlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from aigc_course.data.registry import load_images
from aigc_course.metrics.evaluate import evaluate
from aigc_course.metrics.features import FeatureExtractor
from aigc_course.profiles import Profile
from aigc_course.train.checkpoint import read_checkpoint
from aigc_course.utils import Timer

Tensor = torch.Tensor
CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
#: table name -> shipped file (chapters 03, 04, 05)
SHIPPED = {"GAN (03)": "gan_digits16.pt", "VAE (04)": "vae_digits16.pt",
           "diffusion (05)": "ddpm_digits16.pt"}


@dataclass(frozen=True)
class EvaluationProfile(Profile):
    """Chapter 08's knobs (``profiles.resolve(name, cls=EvaluationProfile)``).

    Attributes:
        compare_samples: samples per model in the comparison table.
        ddpm_steps: DDIM steps of the diffusion model's samples.
        guidance: its classifier-free guidance scale.
        kid_subsets: KID subsets in the table.
        size_sweep: sample sizes of the FID/KID bias plot.
        size_repeats: random subsets per size in that plot.
    """

    compare_samples: int = 1000
    ddpm_steps: int = 50
    guidance: float = 0.0
    kid_subsets: int = 100
    size_sweep: tuple[int, ...] = (25, 50, 100, 200, 400, 800)
    size_repeats: int = 5
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"compare_samples": 200, "ddpm_steps": 10, "kid_subsets": 20,
                  "size_sweep": (25, 50, 100, 200), "size_repeats": 3},
        "cpu": {},
        "gpu": {"compare_samples": 5000, "ddpm_steps": 100, "kid_subsets": 100},
    }


COLUMNS = ("model", "kind", "conditional", "n", "fid", "kid", "kid_std", "inception_score",
           "precision", "recall", "recognisability", "coverage", "label_accuracy",
           "seconds_per_1000")


def shipped_checkpoints() -> dict[str, Path]:
    """The shipped model checkpoints that exist: table name (e.g. ``"VAE (04)"``) -> path.

    A checkpoint still being trained (not yet written) is simply absent.
    """
    return {name: CHECKPOINTS / file for name, file in SHIPPED.items()
            if (CHECKPOINTS / file).is_file()}


def sample_model(checkpoint: dict[str, Any] | str | Path, n: int, seed: int = 0,
                 **sample_kwargs: Any) -> tuple[Tensor, Tensor, float]:
    """Draw ``n`` samples through the model kind's ``cli_sample`` hook, timed.

    Args:
        checkpoint: a checkpoint dict (:func:`~aigc_course.train.checkpoint.read_checkpoint`)
            or its path.
        n: samples to draw.
        seed: the sampling seed.
        **sample_kwargs: extra keyword arguments of the kind's ``cli_sample``
            (``steps=``, ``guidance=`` for ``ddpm``).

    Returns:
        ``images`` ``(n, C, H, W)`` in ``[-1, 1]``, ``labels`` ``(n,)`` (``-1`` for an
        unconditional model; conditional models cycle through the classes) and the
        sampling wall time in seconds.

    Raises:
        ValueError: a kind that is not in ``MODEL_KINDS``.
    """
    from aigc_course.cli import MODEL_KINDS

    if not isinstance(checkpoint, dict):
        checkpoint = read_checkpoint(checkpoint)
    kind = checkpoint.get("kind")
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; valid: {', '.join(sorted(MODEL_KINDS))}")
    module = importlib.import_module(MODEL_KINDS[kind])
    with Timer() as timer, torch.no_grad():
        images, labels = module.cli_sample(checkpoint, n, None, seed, **sample_kwargs)
    return images.detach().float().cpu(), torch.as_tensor(labels).cpu(), timer.seconds


def compare_models(models: Mapping[str, dict[str, Any] | str | Path] | None = None,
                   n: int = 1000, seed: int = 0,
                   sample_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                   extractor: FeatureExtractor | None = None, include_real: bool = True,
                   kid_subsets: int = 100) -> Any:
    """Sample each model and score it with every metric: one row per model.

    Args:
        models: name -> checkpoint dict or path; ``None``: :func:`shipped_checkpoints`
            (the GAN row appears once ``gan_digits16.pt`` exists).
        n: samples per model (smoke: 200; cpu: 1,000).
        seed: the sampling and metric seed.
        sample_kwargs: per *kind* extra ``cli_sample`` arguments, e.g.
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
        if not isinstance(checkpoint, dict):
            checkpoint = read_checkpoint(checkpoint)
        kind = str(checkpoint.get("kind"))
        images, labels, seconds = sample_model(checkpoint, n, seed, **sample_kwargs.get(kind, {}))
        image_size = image_size or int(images.shape[-1])
        conditional = bool((labels >= 0).all())
        scores = evaluate(images, labels if conditional else None, extractor=extractor,
                          kid_subsets=kid_subsets, seed=seed)
        rows.append({"model": name, "kind": kind, "conditional": conditional, **scores,
                     "seconds_per_1000": seconds / n * 1000})
    if include_real:
        real, real_labels = load_images("digits", "test", image_size=image_size, max_items=n)
        scores = evaluate(real, real_labels, extractor=extractor, kid_subsets=kid_subsets,
                          seed=seed)
        rows.append({"model": "real (test split)", "kind": "data", "conditional": False,
                     **scores, "seconds_per_1000": math.nan})
    return pd.DataFrame(rows, columns=list(COLUMNS))
