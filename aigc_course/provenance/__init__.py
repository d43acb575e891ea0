"""Provenance of generated content (chapter 11): invisible watermarks for images and text,
marking in metadata, and detecting generated images.

* :mod:`~aigc_course.provenance.attacks` -- the perturbations a mark must survive (JPEG,
  noise, resizing, cropping), conformal thresholds at a false-positive rate, ROC AUC.
* :mod:`~aigc_course.provenance.keys` -- watermark key files, refused when foreign.
* :mod:`~aigc_course.provenance.spread_spectrum` -- a keyed DCT mark in the pixels with a
  correlation detector (Cox et al. 1997); ``aigc-course watermark``.
* :mod:`~aigc_course.provenance.tree_ring` -- a key in a diffusion model's starting noise,
  found by DDIM inversion (Wen et al. 2023).
* :mod:`~aigc_course.provenance.green_list` -- the green-list text watermark of
  Kirchenbauer et al. 2023 for the course's GPT.
* :mod:`~aigc_course.provenance.manifest` -- an "AI-generated" record in PNG text chunks
  and a C2PA-style manifest signed with a local Ed25519 key (EU AI Act Art. 50(2)).
* :mod:`~aigc_course.provenance.detector` -- a real-vs-generated classifier, tested on a
  generator family it never saw.

No public name shadows a submodule: import the functions from their modules
(``from aigc_course.provenance import tree_ring; tree_ring.score(...)``); the keys and
results are re-exported here.
"""

from aigc_course.provenance.attacks import (
    Operating,
    detection_rate,
    operating_point,
    roc_auc,
    standard_attacks,
    threshold_at_fpr,
)
from aigc_course.provenance.detector import DetectorConfig, DetectorStudy
from aigc_course.provenance.green_list import GreenListKey
from aigc_course.provenance.manifest import Verification
from aigc_course.provenance.spread_spectrum import SpreadSpectrumKey
from aigc_course.provenance.tree_ring import TreeRingKey

__all__ = ["DetectorConfig", "DetectorStudy", "GreenListKey", "Operating", "SpreadSpectrumKey",
           "TreeRingKey", "Verification", "detection_rate", "operating_point", "roc_auc",
           "standard_attacks", "threshold_at_fpr"]
