"""Evaluation metrics of the course.

* :mod:`~aigc_course.metrics.frechet` -- the Fréchet distance between Gaussians
  (the formula behind FID), computed stably from scratch.
* :mod:`~aigc_course.metrics.distances` -- energy distance, MMD² and mode coverage of
  point samples (chapter 02; the mode count chapter 03 needs).
* :mod:`~aigc_course.metrics.image` -- PSNR and SSIM of reconstructions, from scratch.
* :mod:`~aigc_course.metrics.judge` -- judge FID, recognisability, class coverage and
  label accuracy of generated digits, scored by the shipped digits judge.
"""

from aigc_course.metrics.distances import energy_distance, mmd2, mode_coverage
from aigc_course.metrics.frechet import (
    frechet_distance,
    frechet_distance_from_features,
    gaussian_stats,
)
from aigc_course.metrics.image import psnr, ssim
from aigc_course.metrics.judge import (
    class_coverage,
    judge_features,
    judge_fid,
    judge_report,
    label_accuracy,
    recognisability,
)

__all__ = [
    "class_coverage",
    "energy_distance",
    "frechet_distance",
    "frechet_distance_from_features",
    "gaussian_stats",
    "judge_features",
    "judge_fid",
    "judge_report",
    "label_accuracy",
    "mmd2",
    "mode_coverage",
    "psnr",
    "recognisability",
    "ssim",
]
