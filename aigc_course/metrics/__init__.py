"""Evaluation metrics of the course.

* :mod:`~aigc_course.metrics.frechet` -- the Fréchet distance between Gaussians
  (the formula behind FID), computed stably from scratch.
* :mod:`~aigc_course.metrics.distances` -- energy distance, MMD² and mode coverage of
  point samples (chapter 02; the mode count chapter 03 needs).
* :mod:`~aigc_course.metrics.image` -- PSNR and SSIM of reconstructions, from scratch.
* :mod:`~aigc_course.metrics.judge` -- one judge per dataset (:func:`judge_for`:
  shipped, cached or trained on first use) and its recognisability, class coverage
  and label accuracy of generated images.
* :mod:`~aigc_course.metrics.features` -- pluggable feature extractors (the judge, fixed
  random conv features, raw pixels, Inception-v3 on the ``gpu`` profile).
* :mod:`~aigc_course.metrics.kid`, :mod:`~aigc_course.metrics.precision_recall` and
  :func:`inception_score_from_logits` -- KID, improved precision and recall and IS on
  features or logits.
* :mod:`~aigc_course.metrics.scores` -- all of them on images: :func:`fid`,
  :func:`kernel_inception_distance`, :func:`inception_score`, :func:`precision_recall`,
  :func:`judge_fid`, :func:`judge_report` and :func:`evaluate`, the one image-level
  evaluation (every FID of the course goes through it).
* :mod:`~aigc_course.metrics.memorisation` and :mod:`~aigc_course.metrics.pitfalls` --
  when the numbers lie: sample size, feature space, copying, collapse vs blur.

Metrics are pure functions of tensors and features (like torchmetrics): nothing here
samples or trains a model (:func:`aigc_course.train.report.model_report` samples one,
:mod:`aigc_course.reports.compare` tabulates several). No public name shadows a
submodule: ``aigc_course.metrics.kid`` is the module, the image-level KID is
:func:`kernel_inception_distance`; private modules (``_inception_score``) are
re-exported here.
"""

from aigc_course.metrics._inception_score import inception_score_from_logits
from aigc_course.metrics._precision_recall import precision_recall_from_features
from aigc_course.metrics.distances import energy_distance, mmd2, mode_coverage
from aigc_course.metrics.features import (
    FeatureExtractor,
    FeatureExtractorUnavailable,
    JudgeExtractor,
    PixelExtractor,
    RandomConvExtractor,
    extract,
    get_extractor,
    inception_extractor,
)
from aigc_course.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    gaussian_stats,
)
from aigc_course.metrics.image import psnr, ssim
from aigc_course.metrics.judge import (
    class_coverage,
    default_judge,
    judge_features,
    judge_for,
    label_accuracy,
    load_judge,
    recognisability,
)
from aigc_course.metrics.kid import kid_from_features
from aigc_course.metrics.memorisation import (
    memorisation_report,
    memorising_model,
    nearest_neighbour_distances,
)
from aigc_course.metrics.scores import (
    describe_reference,
    evaluate,
    fid,
    inception_score,
    judge_fid,
    judge_report,
    kernel_inception_distance,
    precision_recall,
    reference_features,
)

__all__ = [
    "FeatureExtractor",
    "FeatureExtractorUnavailable",
    "JudgeExtractor",
    "PixelExtractor",
    "RandomConvExtractor",
    "class_coverage",
    "default_judge",
    "energy_distance",
    "evaluate",
    "extract",
    "fid",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_stats",
    "get_extractor",
    "inception_extractor",
    "inception_score",
    "inception_score_from_logits",
    "judge_features",
    "judge_fid",
    "judge_for",
    "judge_report",
    "kernel_inception_distance",
    "kid_from_features",
    "label_accuracy",
    "load_judge",
    "memorisation_report",
    "memorising_model",
    "mmd2",
    "mode_coverage",
    "nearest_neighbour_distances",
    "precision_recall",
    "precision_recall_from_features",
    "psnr",
    "recognisability",
    "describe_reference",
    "reference_features",
    "ssim",
]
