"""Evaluation metrics of the course.

* :mod:`~aigc_course.metrics.frechet` -- the Fréchet distance between Gaussians
  (the formula behind FID), computed stably from scratch.
* :mod:`~aigc_course.metrics.distances` -- energy distance, MMD² and mode coverage of
  point samples (chapter 02; the mode count chapter 03 needs).
* :mod:`~aigc_course.metrics.image` -- PSNR and SSIM of reconstructions, from scratch.
* :mod:`~aigc_course.metrics.judge` -- judge FID, recognisability, class coverage and
  label accuracy of generated digits, scored by the shipped digits judge.
* :mod:`~aigc_course.metrics.features` -- pluggable feature extractors (the judge, fixed
  random conv features, raw pixels, Inception-v3 on the ``gpu`` profile).
* :mod:`~aigc_course.metrics.kid`, :mod:`~aigc_course.metrics.inception_score`,
  :mod:`~aigc_course.metrics.precision_recall` -- KID, IS and improved precision and
  recall on features; :mod:`~aigc_course.metrics.evaluate` -- all of them on images.
* :mod:`~aigc_course.metrics.compare` -- one table of every metric for the shipped models.
* :mod:`~aigc_course.metrics.memorisation` and :mod:`~aigc_course.metrics.pitfalls` --
  when the numbers lie: sample size, feature space, copying, collapse vs blur.
"""

from aigc_course.metrics.compare import compare_models, sample_model, shipped_checkpoints
from aigc_course.metrics.distances import energy_distance, mmd2, mode_coverage
from aigc_course.metrics.evaluate import (
    evaluate,
    fid,
    inception_score,
    kid,
    precision_recall,
    reference_features,
)
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
from aigc_course.metrics.inception_score import inception_score_from_logits
from aigc_course.metrics.judge import (
    class_coverage,
    judge_features,
    judge_fid,
    judge_report,
    label_accuracy,
    recognisability,
)
from aigc_course.metrics.kid import kid_from_features
from aigc_course.metrics.memorisation import (
    memorisation_report,
    memorising_model,
    nearest_neighbour_distances,
)
from aigc_course.metrics.precision_recall import precision_recall_from_features

__all__ = [
    "FeatureExtractor",
    "FeatureExtractorUnavailable",
    "JudgeExtractor",
    "PixelExtractor",
    "RandomConvExtractor",
    "class_coverage",
    "compare_models",
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
    "judge_report",
    "kid",
    "kid_from_features",
    "label_accuracy",
    "memorisation_report",
    "memorising_model",
    "mmd2",
    "mode_coverage",
    "nearest_neighbour_distances",
    "precision_recall",
    "precision_recall_from_features",
    "psnr",
    "recognisability",
    "reference_features",
    "sample_model",
    "shipped_checkpoints",
    "ssim",
]
