"""Data cleaning: exact and near duplicates, corrupt items, suspicious labels.

Four checks a data chapter runs before training, and the helpers that plant each
problem so the notebook can show "plant, then find" with measured precision/recall.
One module per kind of check, the fixtures apart:

* :mod:`~aigc_course.data.cleaning.duplicates`: exact duplicates (identical after
  quantising to 8 bits) and near duplicates (a DCT perceptual hash, pHash, proposes
  pairs, a pixel-space distance confirms them);
* :mod:`~aigc_course.data.cleaning.corrupt`: NaN/Inf, values out of range, blank
  images, wrong shapes;
* :mod:`~aigc_course.data.cleaning.labels`: items whose out-of-fold predicted
  probability of their own label is low (the self-confidence of confident learning);
* :mod:`~aigc_course.data.cleaning.planting`: plant duplicates, flipped labels and
  corruption at known positions, and score a check against them.

Every public name is importable from this package, as
``from aigc_course.data.cleaning import find_near_duplicates``.
"""

from aigc_course.data.cleaning._common import Tensor, quantise
from aigc_course.data.cleaning.corrupt import (
    CORRUPT_KINDS,
    CorruptKind,
    CorruptReport,
    find_corrupt,
)
from aigc_course.data.cleaning.duplicates import (
    HASH_SIZE,
    MAX_HASH_DISTANCE,
    MAX_PIXEL_DISTANCE,
    dct_matrix,
    find_exact_duplicates,
    find_near_duplicates,
    hamming_pairs,
    perceptual_hash,
    pixel_distance,
)
from aigc_course.data.cleaning.labels import (
    LABEL_THRESHOLD,
    LOGISTIC_C,
    find_suspicious_labels,
    label_features,
    out_of_fold_probabilities,
)
from aigc_course.data.cleaning.planting import (
    COPY_KINDS,
    CopyKind,
    detection_scores,
    flip_labels,
    plant_corruption,
    plant_duplicates,
)

__all__ = [
    "COPY_KINDS",
    "CORRUPT_KINDS",
    "HASH_SIZE",
    "LABEL_THRESHOLD",
    "LOGISTIC_C",
    "MAX_HASH_DISTANCE",
    "MAX_PIXEL_DISTANCE",
    "CopyKind",
    "CorruptKind",
    "CorruptReport",
    "Tensor",
    "dct_matrix",
    "detection_scores",
    "find_corrupt",
    "find_exact_duplicates",
    "find_near_duplicates",
    "find_suspicious_labels",
    "flip_labels",
    "hamming_pairs",
    "label_features",
    "out_of_fold_probabilities",
    "perceptual_hash",
    "pixel_distance",
    "plant_corruption",
    "plant_duplicates",
    "quantise",
]
