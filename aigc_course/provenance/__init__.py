"""Provenance of generated content (chapter 11): invisible watermarks for images and text,
marking in metadata, and detecting generated images.

* :mod:`~aigc_course.provenance.attacks` -- the perturbations a mark must survive (JPEG,
  noise, resizing, cropping) and thresholds set from clean images at a false-positive rate.
"""

from aigc_course.provenance.attacks import (
    Operating,
    crop,
    detection_rate,
    gaussian_noise,
    jpeg,
    operating_point,
    resize,
    roc_auc,
    standard_attacks,
    threshold_at_fpr,
)

__all__ = ["Operating", "crop", "detection_rate", "gaussian_noise", "jpeg", "operating_point",
           "resize", "roc_auc", "standard_attacks", "threshold_at_fpr"]
