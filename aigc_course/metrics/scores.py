"""FID, KID, IS and precision/recall of generated images, in one feature space.

The image-level entry points of chapter 08. Each takes generated images ``(N, C, H, W)``
in ``[-1, 1]``, a real reference (a split name of a dataset, loaded at the samples'
size so that real and generated images pass through the same resizes, or a tensor of
real images) and a :class:`~aigc_course.metrics.features.FeatureExtractor` (default:
the digits judge), extracts features once and calls the feature-level formulas:

* :func:`fid` -- Heusel et al. 2017 (:mod:`~aigc_course.metrics.frechet`); biased
  upwards on few samples, so compare FIDs only at one sample size.
* :func:`kernel_inception_distance` -- Bińkowski et al. 2018
  (:mod:`~aigc_course.metrics.kid`); unbiased.
* :func:`inception_score` -- Salimans et al. 2016
  (:func:`~aigc_course.metrics.inception_score_from_logits`); needs class logits,
  ignores real data.
* :func:`precision_recall` -- Kynkäänniemi et al. 2019
  (:func:`~aigc_course.metrics.precision_recall_from_features`); fidelity and diversity apart.
* :func:`evaluate` -- all of them, plus the judge's recognisability, class coverage and
  label accuracy (:mod:`~aigc_course.metrics.judge`) for grey digits: the one
  image-level evaluation of the package (:func:`aigc_course.train.report.model_report`
  samples a model and calls it);
* :func:`judge_fid` and :func:`judge_report` -- the judge's FID and its per-sample
  scores, through the same cached reference features as :func:`fid`.

A number is comparable only with numbers of the same extractor, reference and sample
size. Features of a reference split are cached per extractor object.

Measured with the judge (8x8 digits, reference: the train split): real test digits
(269) FID 1.65, KID -21 +- 15 (consistent with 0), IS 8.4 (10 splits; 9.8 in one),
precision 0.85, recall 0.93; uniform noise (1,000) FID 942, KID 869. Two ways these
numbers lie here: KID is in the judge's feature units (its ReLU features are large, so
values run to hundreds, not Inception's ~1e-3, and the cubic kernel makes it
heavy-tailed), and uniform noise gets precision 1.0 because the judge maps all noise to
one spot that the wide k-NN balls of outlying real digits cover (its recall, 0, tells).
"""

from __future__ import annotations

import math
import weakref
from typing import Any

import torch

from aigc_course.data.registry import info, load_images
from aigc_course.metrics._inception_score import inception_score_from_logits
from aigc_course.metrics._precision_recall import precision_recall_from_features
from aigc_course.metrics.features import (
    FeatureExtractor,
    FeatureExtractorUnavailable,
    JudgeExtractor,
    extract,
    inception_extractor,
)
from aigc_course.metrics.frechet import frechet_distance_from_features
from aigc_course.metrics.judge import (
    RECIPES,
    REFERENCES,
    Reference,
    _class_coverage,
    _label_accuracy,
    _per_class_accuracy,
    _recognisability,
    check_images,
    judge_for,
    judge_outputs,
)
from aigc_course.metrics.kid import kid_from_features
from aigc_course.models.classifier import ImageClassifier

Tensor = torch.Tensor
Source = str | Tensor

_CACHE: weakref.WeakKeyDictionary[FeatureExtractor, dict[tuple[str, str, int], Tensor]] = (
    weakref.WeakKeyDictionary())


def default_extractor(dataset: str = "digits") -> FeatureExtractor:
    """The features of ``dataset``'s judge, built once (the default of every function here).

    Raises:
        ValueError: ``dataset`` has no judge (the message lists those that do).
    """
    return _judge_extractor(judge_for(dataset))


def describe_reference(reference: Source, dataset: str, image_size: int | None,
                       extractor: FeatureExtractor) -> dict[str, Any]:
    """What a metric was measured against: dataset, split, size and feature space.

    Returns:
        ``{"dataset", "split", "image_size", "features", "text"}``; ``split`` is
        ``"tensor (M images)"`` for a tensor reference.
    """
    split = (reference if isinstance(reference, str)
             else f"tensor ({len(reference)} images)")
    features = extractor.name
    if isinstance(extractor, JudgeExtractor):
        features = f"judge ({extractor.dataset})"
    size = f"{image_size}x{image_size}" if image_size else "native size"
    return {"dataset": dataset if isinstance(reference, str) else "given",
            "split": split, "image_size": image_size, "features": features,
            "text": (f"{dataset} {split} split at {size}, {features} features"
                     if isinstance(reference, str) else f"{split} at {size}, "
                     f"{features} features")}


def _check_reference_channels(images: Tensor, reference: Source, dataset: str) -> None:
    if not isinstance(reference, str) or images.ndim != 4:
        return
    channels = info(dataset).channels
    if images.shape[1] != channels:
        raise ValueError(f"the samples have {images.shape[1]} channel(s) but dataset "
                         f"{dataset!r} has {channels}: a metric compares samples with "
                         "their own dataset; pass dataset=<the dataset the model trained on>")


def reference_features(reference: Source = "train", extractor: FeatureExtractor | None = None,
                       dataset: str = "digits", image_size: int | None = None) -> Tensor:
    """Features ``(M, d)`` of real images: a split (cached per extractor) or a tensor.

    Args:
        reference: ``"train"``, ``"val"``, ``"test"`` of ``dataset``, or real images
            ``(M, C, H, W)`` in ``[-1, 1]``.
        extractor: the feature extractor; ``None`` is the digits judge.
        dataset: the dataset a split name refers to.
        image_size: load the split at this size (``None``: native).

    Raises:
        ValueError: an unknown split name.
    """
    extractor = extractor if extractor is not None else default_extractor(dataset)
    if isinstance(reference, Tensor):
        return extract(reference, extractor)
    if reference not in REFERENCES:
        raise ValueError(f"unknown reference {reference!r}; valid: {', '.join(REFERENCES)} "
                         "or a tensor of real images")
    cache = _CACHE.setdefault(extractor, {})
    key = (dataset, reference, image_size or 0)
    if key not in cache:
        images, _ = load_images(dataset, reference, image_size=image_size)   # (M, C, s, s)
        cache[key] = extract(images, extractor)
    return cache[key]


def _size(images: Tensor) -> int | None:
    h, w = images.shape[-2:]
    return int(h) if h == w else None


def _features_pair(images: Tensor, reference: Source, extractor: FeatureExtractor | None,
                   dataset: str) -> tuple[Tensor, Tensor]:
    _check_reference_channels(images, reference, dataset)
    extractor = extractor if extractor is not None else default_extractor(dataset)
    fake = extract(images, extractor)                                  # (N, d), checks input
    real = reference_features(reference, extractor, dataset, _size(images))
    return real, fake


def fid(images: Tensor, reference: Source = "train", extractor: FeatureExtractor | None = None,
        dataset: str = "digits") -> float:
    """FID of generated ``images`` ``(N, C, H, W)`` against a real reference (lower is better).

    Args:
        images: generated images in ``[-1, 1]``, ``N >= 2`` (use 1,000).
        reference: a split name of ``dataset`` or real images ``(M, C, H', W')``.
        extractor: the feature space; ``None`` is ``dataset``'s judge.
        dataset: the samples' dataset: the one a split name refers to, and whose judge
            is the default feature space.

    Returns:
        $\\lVert\\mu_r-\\mu_g\\rVert^2 + \\operatorname{tr}(\\Sigma_r+\\Sigma_g
        -2(\\Sigma_r\\Sigma_g)^{1/2})$ on the extractor's features.
    """
    return frechet_distance_from_features(*_features_pair(images, reference, extractor, dataset))


def kernel_inception_distance(images: Tensor, reference: Source = "train",
                              extractor: FeatureExtractor | None = None,
                              dataset: str = "digits", subsets: int = 100,
                              subset_size: int | None = 1000,
                              seed: int = 0) -> tuple[float, float]:
    """KID (mean, std over subsets) of generated ``images`` against a real reference.

    Args:
        images: generated images ``(N, C, H, W)`` in ``[-1, 1]``.
        reference, extractor, dataset: as in :func:`fid`.
        subsets, subset_size, seed: see :func:`~aigc_course.metrics.kid.kid_from_features`.
    """
    real, fake = _features_pair(images, reference, extractor, dataset)
    return kid_from_features(real, fake, subsets, subset_size, seed=seed)


def inception_score(images: Tensor, extractor: FeatureExtractor | None = None, splits: int = 10,
                    seed: int = 0, dataset: str = "digits") -> tuple[float, float]:
    """Inception Score (mean, std over ``splits`` groups) with the extractor's classifier.

    Args:
        images: generated images ``(N, C, H, W)`` in ``[-1, 1]``, ``N >= splits``.
        extractor: needs class logits (``judge`` or ``inception``); ``None`` is the
            judge of ``dataset``.
        splits: groups; seed: the shuffle's seed.
        dataset: the samples' dataset (whose judge is the default).

    Raises:
        ValueError: the extractor has no class logits.
    """
    extractor = extractor if extractor is not None else default_extractor(dataset)
    return inception_score_from_logits(extract(images, extractor, logits=True), splits, seed=seed)


def precision_recall(images: Tensor, reference: Source = "train",
                     extractor: FeatureExtractor | None = None, dataset: str = "digits",
                     k: int = 3) -> dict[str, float]:
    """Improved precision and recall of generated ``images`` against a real reference.

    Use as many generated as real images: recall grows with the generated set's size.

    Args:
        images: generated images ``(N, C, H, W)`` in ``[-1, 1]``.
        reference, extractor, dataset: as in :func:`fid`.
        k: the neighbourhood size (3).

    Returns:
        ``{"precision", "recall", "f_score"}``.
    """
    real, fake = _features_pair(images, reference, extractor, dataset)
    return precision_recall_from_features(real, fake, k)


def evaluate(images: Tensor, labels: Tensor | None = None, reference: Source = "train",
             extractor: FeatureExtractor | None = None, dataset: str = "digits", k: int = 3,
             kid_subsets: int = 100, splits: int = 10, seed: int = 0,
             inception: bool = False) -> dict[str, Any]:
    """Every metric of generated ``images`` from one feature extraction.

    Args:
        images: generated images ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: requested classes ``(N,)`` of conditional samples (``-1`` or ``None``:
            unconditional; then ``label_accuracy`` is NaN).
        reference, extractor, dataset: as in :func:`fid`; ``dataset`` must be the
            samples' own dataset (its judge gives the per-sample scores).
        k: precision/recall neighbourhood. kid_subsets: KID subsets (subset size
            ``min(1000, N, M)``). splits: Inception Score groups (clipped to ``N``).
        seed: seeds KID's subsets and IS's shuffle.
        inception: also compute FID in Inception-v3 features (the ``gpu`` profile);
            where its weights cannot be loaded, ``inception_fid`` is NaN and
            ``inception_note`` says why.

    Returns:
        ``n``, ``fid``, ``kid``, ``kid_std``, ``inception_score`` (NaN without logits),
        ``precision``, ``recall``, ``reference`` (:func:`describe_reference`) and, when
        ``dataset`` has a judge that fits the images, the judge's ``recognisability``,
        ``coverage``, ``label_accuracy`` and ``label_accuracy_per_class``; with
        ``inception``, ``inception_fid`` and ``inception_note``.
    """
    extractor = extractor if extractor is not None else default_extractor(dataset)
    real, fake = _features_pair(images, reference, extractor, dataset)
    kid_mean, kid_std = kid_from_features(real, fake, kid_subsets, 1000, seed=seed)
    pr = precision_recall_from_features(real, fake, k)
    score = math.nan
    if extractor.num_classes:
        logits = extract(images, extractor, logits=True)
        score = inception_score_from_logits(logits, min(splits, len(images)), seed=seed)[0]
    report: dict[str, Any] = {
        "n": len(images), "fid": frechet_distance_from_features(real, fake),
        "kid": kid_mean, "kid_std": kid_std, "inception_score": score,
        "precision": pr["precision"], "recall": pr["recall"],
        "reference": describe_reference(reference, dataset, _size(images), extractor),
    }
    judge = judge_for(dataset) if dataset in RECIPES else None
    if judge is not None and images.shape[1] == judge.config.in_channels:
        conditional = labels is not None and bool((torch.as_tensor(labels) >= 0).all())
        judged = _judge_scores(images, labels if conditional else None, judge)
        report.update(recognisability=judged["recognisability"], coverage=judged["coverage"],
                      label_accuracy=judged.get("label_accuracy", math.nan),
                      label_accuracy_per_class=judged.get("label_accuracy_per_class", {}))
    if inception:
        report.update(_inception_fid(images, reference, dataset))
    return report


def _inception_fid(images: Tensor, reference: Source, dataset: str) -> dict[str, Any]:
    try:
        net = inception_extractor()
    except FeatureExtractorUnavailable as error:
        return {"inception_fid": math.nan, "inception_note": f"not computed: {error}"}
    real, fake = _features_pair(images, reference, net, dataset)
    return {"inception_fid": frechet_distance_from_features(real, fake),
            "inception_note": describe_reference(reference, dataset, _size(images),
                                                 net)["text"]}


def _judge_extractor(judge: ImageClassifier) -> FeatureExtractor:
    cached = _JUDGES.get(judge)
    if cached is None:
        cached = _JUDGES[judge] = JudgeExtractor(judge)
    return cached


_JUDGES: weakref.WeakKeyDictionary[ImageClassifier, FeatureExtractor] = (
    weakref.WeakKeyDictionary())


def _judge_scores(images: Tensor, labels: Tensor | None, judge: ImageClassifier,
                  threshold: float = 0.9) -> dict[str, Any]:
    probs, _ = judge_outputs(images, judge)
    scores: dict[str, Any] = {"recognisability": _recognisability(probs, threshold),
                              "coverage": _class_coverage(probs)}
    if labels is not None:
        scores["label_accuracy"] = _label_accuracy(probs, labels)
        scores["label_accuracy_per_class"] = _per_class_accuracy(probs, labels)
    return scores


def judge_fid(images: Tensor, reference: Reference | Tensor = "train",
              judge: ImageClassifier | None = None, *, dataset: str = "digits") -> float:
    """Judge FID of ``images`` against real images of their dataset (lower is better):
    :func:`fid` in the judge's feature space.

    $\\mathrm{FID} = \\lVert\\mu_r-\\mu_g\\rVert^2 + \\operatorname{tr}(\\Sigma_r+\\Sigma_g
    -2(\\Sigma_r\\Sigma_g)^{1/2})$ on the judge's features (Heusel et al. 2017, eq. 6).

    Args:
        images: samples ``(N, C, H, W)`` in ``[-1, 1]``, ``N >= 2`` (use about 1,000).
        reference: a split name of ``dataset``, loaded at the samples' size ``H`` (when
            square) so real and generated images go through the same resizes, or real
            images ``(M, C, H', W')``. A split's features are cached per judge.
        judge: the classifier; ``None`` is ``dataset``'s judge. Do not keep training a
            judge you pass here (its reference features are cached).
        dataset: the samples' dataset.
    """
    judge = judge if judge is not None else judge_for(dataset)
    check_images(images, judge)
    return fid(images, reference, _judge_extractor(judge), dataset=dataset)


def judge_report(images: Tensor, labels: Tensor | None = None,
                 judge: ImageClassifier | None = None, threshold: float = 0.9, *,
                 dataset: str = "digits") -> dict[str, Any]:
    """The judge's FID (against ``dataset``'s train split) and per-sample scores.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``, ``N >= 2``.
        labels: requested classes ``(N,)`` of conditional samples, or ``None``.
        judge: the classifier; ``None`` is ``dataset``'s judge.
        threshold: the confidence bar of recognisability.
        dataset: the samples' dataset.

    Returns:
        ``{"n", "fid", "recognisability", "coverage", "reference"}``, and
        ``"label_accuracy"`` and ``"label_accuracy_per_class"`` when ``labels`` are given.
    """
    judge = judge if judge is not None else judge_for(dataset)
    scores = _judge_scores(images, labels, judge, threshold)
    extractor = _judge_extractor(judge)
    return {"n": len(images), "fid": judge_fid(images, "train", judge, dataset=dataset),
            **scores, "reference": describe_reference("train", dataset, _size(images),
                                                      extractor)}
