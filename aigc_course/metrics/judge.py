"""Sample-quality metrics computed with the digits judge.

The judge (:mod:`aigc_course.judge`) is a small CNN trained on 8x8 digits. On a
batch of generated digits ``images`` ``(N, 1, H, W)`` in ``[-1, 1]`` it gives:

* **judge FID** -- the Fréchet distance (:mod:`aigc_course.metrics.frechet`) between
  Gaussians fitted to its 64-d penultimate features of the samples and of the real
  ``digits`` train split (loaded at the samples' size): FID (Heusel et al. 2017) with
  the judge in place of Inception-v3. Lower is better; it sees quality and diversity.
* **recognisability** -- the share of samples the judge classifies with confidence
  $\\max_k p(k \\mid x) \\ge 0.9$, a per-sample quality score in the spirit of the
  Inception Score's sharp-prediction term (Salimans et al. 2016).
* **class coverage** -- the normalised entropy $H(\\hat p) / \\log 10$ of the histogram
  $\\hat p$ of predicted classes: 1 when all ten digits are equally frequent, 0 when
  every sample is the same digit (mode collapse). The Inception Score's other term.
* **label accuracy** -- for class-conditional samples, how often the judge agrees
  with the requested label.

Never read one alone: a collapsed generator that draws one perfect digit is 100%
recognisable (coverage tells), and an average of two digits is "recognisable" 58% of
the time (FID tells). The judge was trained to be unsure on noise and blank images
(outlier exposure), so it calls 0% of them recognisable; other failure modes may still
fool it. Simplified with respect to the originals: the feature extractor is a
107 K-parameter CNN trained on the same data, so numbers are comparable only between
runs scored by the same judge, and FID is biased upwards on few samples (use 1,000;
held-out real digits score 1.7 with 269 samples, 1.3 with 539).
"""

from __future__ import annotations

import math
import weakref
from typing import Any, Literal

import torch

from aigc_course.data.registry import load_images
from aigc_course.metrics.frechet import frechet_distance, gaussian_stats
from aigc_course.models.classifier import DigitClassifier

Tensor = torch.Tensor
Reference = Literal["train", "val", "test"]
REFERENCES: tuple[str, ...] = ("train", "val", "test")
BATCH_SIZE = 500

# reference statistics per judge instance: the default judge is computed once; a
# retrained default judge is a new object and gets fresh statistics
_REFERENCE_CACHE: weakref.WeakKeyDictionary[DigitClassifier, dict[tuple[str, int], Any]] = (
    weakref.WeakKeyDictionary())


def _resolve(judge: DigitClassifier | None) -> DigitClassifier:
    if judge is not None:
        return judge
    from aigc_course.judge import default_judge

    return default_judge()


@torch.no_grad()
def judge_outputs(images: Tensor, judge: DigitClassifier | None = None,
                  batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """Class probabilities and features of ``images``, in batches, without gradients.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``, ``H, W >= 8`` (resized to 8x8 inside).
        judge: the classifier; ``None`` is the shipped judge.
        batch_size: images per forward pass.

    Returns:
        ``probs`` ``(N, 10)`` (softmax) and ``features`` ``(N, 64)``, float32 on CPU.

    Raises:
        ValueError: wrong shape or dtype (see ``DigitClassifier.prepare``), or no images.
    """
    judge = _resolve(judge)
    if not isinstance(images, Tensor) or images.ndim != 4:
        judge.prepare(images)                          # raises a ValueError that explains
    if len(images) == 0:
        raise ValueError("no images to judge (N = 0)")
    judge.prepare(images[:1])                          # fail fast on channels, size, dtype
    was_training = judge.training
    judge.eval()
    probs, features = [], []
    for start in range(0, len(images), batch_size):
        logits, feats = judge.logits_and_features(images[start:start + batch_size])
        probs.append(torch.softmax(logits.float(), dim=1).cpu())    # p(k | x)
        features.append(feats.float().cpu())
    judge.train(was_training)
    return torch.cat(probs), torch.cat(features)


def judge_features(images: Tensor, judge: DigitClassifier | None = None) -> Tensor:
    """The judge's 64-d penultimate features ``(N, 64)`` of ``images`` ``(N, 1, H, W)``."""
    return judge_outputs(images, judge)[1]


def reference_stats(reference: Reference = "train", judge: DigitClassifier | None = None,
                    image_size: int = 8) -> tuple[Any, Any]:
    """Gaussian statistics of the judge's features on a real ``digits`` split (cached).

    Args:
        reference: ``"train"``, ``"val"`` or ``"test"``.
        judge: the classifier; ``None`` is the shipped judge.
        image_size: load the split at this size (the registry's bilinear resize), so
            the reference passes through the same resizes as samples of a model
            trained at that size.

    Returns:
        ``mu`` ``(64,)`` and ``sigma`` ``(64, 64)``, float64 NumPy arrays.
    """
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)} "
                         "or a tensor of real images")
    judge = _resolve(judge)
    cache = _REFERENCE_CACHE.setdefault(judge, {})
    key = (reference, image_size)
    if key not in cache:
        images, _ = load_images("digits", reference, image_size=image_size)  # (N, 1, s, s)
        cache[key] = gaussian_stats(judge_features(images, judge))
    return cache[key]


def _sample_size(images: Tensor) -> int:
    """The reference size for samples: their side if square, else the native 8."""
    h, w = images.shape[-2:]
    return int(h) if h == w else 8


def judge_fid(images: Tensor, reference: Reference | Tensor = "train",
              judge: DigitClassifier | None = None) -> float:
    """Judge FID of ``images`` against real digits (lower is better).

    $\\mathrm{FID} = \\lVert\\mu_r-\\mu_g\\rVert^2 + \\operatorname{tr}(\\Sigma_r+\\Sigma_g
    -2(\\Sigma_r\\Sigma_g)^{1/2})$ on the judge's features (Heusel et al. 2017, eq. 6).

    Args:
        images: samples ``(N, 1, H, W)`` in ``[-1, 1]``, ``N >= 2`` (use about 1,000).
        reference: a ``digits`` split name, or a tensor of real images
            ``(M, 1, H', W')``. A split is loaded at the samples' size ``H`` (when
            square), so real and generated images go through the same resizes: real
            test digits at 16x16 score as well as at 8x8. Its statistics are computed
            once per judge and size, and cached.
        judge: the classifier; ``None`` is the shipped judge. Statistics of a split are
            cached per judge object, so do not keep training a judge you pass here.

    Returns:
        The judge FID, a float.
    """
    judge = _resolve(judge)
    features = judge_features(images, judge)                           # (N, 64), checks input
    if isinstance(reference, Tensor):
        mu_r, sigma_r = gaussian_stats(judge_features(reference, judge))
    else:
        mu_r, sigma_r = reference_stats(reference, judge, _sample_size(images))
    mu_g, sigma_g = gaussian_stats(features)
    return frechet_distance(mu_r, sigma_r, mu_g, sigma_g)


def _recognisability(probs: Tensor, threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return float((probs.max(dim=1).values >= threshold).float().mean())  # P(max_k p >= t)


def _class_coverage(probs: Tensor) -> float:
    num_classes = probs.shape[1]
    counts = torch.bincount(probs.argmax(dim=1), minlength=num_classes).double()
    p_hat = counts / counts.sum()                                      # (10,) histogram
    entropy = -(p_hat[p_hat > 0] * p_hat[p_hat > 0].log()).sum()       # H(p_hat)
    return max(0.0, float(entropy / math.log(num_classes)))            # H / log 10, not -0.0


def _label_accuracy(probs: Tensor, labels: Tensor) -> float:
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels for {len(probs)} images")
    return float((probs.argmax(dim=1) == labels).float().mean())


def recognisability(images: Tensor, threshold: float = 0.9,
                    judge: DigitClassifier | None = None) -> float:
    """Share of samples classified with confidence $\\max_k p(k\\mid x) \\ge$ ``threshold``.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        threshold: the confidence bar, in ``(0, 1]``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _recognisability(judge_outputs(images, judge)[0], threshold)


def class_coverage(images: Tensor, judge: DigitClassifier | None = None) -> float:
    """Normalised entropy $H(\\hat p)/\\log 10$ of the predicted-class histogram.

    1 means the ten digits are predicted equally often, 0 that all samples get one class.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _class_coverage(judge_outputs(images, judge)[0])


def label_accuracy(images: Tensor, labels: Tensor, judge: DigitClassifier | None = None
                   ) -> float:
    """Share of conditional samples the judge assigns to their requested label.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        labels: the requested classes ``(N,)``, integers in ``0..9``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _label_accuracy(judge_outputs(images, judge)[0], labels)


def judge_report(images: Tensor, labels: Tensor | None = None,
                 judge: DigitClassifier | None = None, threshold: float = 0.9
                 ) -> dict[str, float | int]:
    """All judge metrics of a batch of samples from one pass of the judge.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``, ``N >= 2``.
        labels: requested classes ``(N,)`` of conditional samples, or ``None``.
        judge: the classifier; ``None`` is the shipped judge.
        threshold: the confidence bar of recognisability.

    Returns:
        ``{"n", "fid", "recognisability", "coverage"}`` and ``"label_accuracy"`` when
        ``labels`` are given.
    """
    judge = _resolve(judge)
    probs, features = judge_outputs(images, judge)
    mu_r, sigma_r = reference_stats("train", judge, _sample_size(images))
    report: dict[str, float | int] = {
        "n": len(probs),
        "fid": frechet_distance(mu_r, sigma_r, *gaussian_stats(features)),
        "recognisability": _recognisability(probs, threshold),
        "coverage": _class_coverage(probs),
    }
    if labels is not None:
        report["label_accuracy"] = _label_accuracy(probs, labels)
    return report
