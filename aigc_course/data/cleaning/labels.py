"""Suspicious labels: items whose out-of-fold probability of their own label is low.

The score is the "self-confidence" of Northcutt et al. 2021, "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 70: each item's predicted
probability of its given label, from a classifier fitted without it.

Simplified: the label check uses one global threshold on self-confidence and a
linear classifier, not confident learning's per-class thresholds and a strong model.

The defaults below were measured on real digits (``load_images("digits", "all")``,
1,797 8x8 images) with labels flipped by
:func:`~aigc_course.data.cleaning.planting.flip_labels`, seeds 0-2; the numbers are
in the comments beside them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aigc_course.data.cleaning._common import Tensor, _check_batch

# Flipped labels on digits (3%, 4% and 5% flipped, seeds 0-2, 5 folds, LOGISTIC_C 0.1),
# precision / recall of the flagged set by threshold on p(given label):
#   0.02: 0.98-1.00 / 0.73-0.81    0.05: 0.94-0.99 / 0.85-0.96
#   0.10: 0.86-0.93 / 0.94-0.98 (default: review is cheap, a missed flip is not)
#   0.20: 0.70-0.86 / 0.97-1.00    0.30: 0.59-0.73 / 1.00
# With 4% flipped: mnist5k 0.62 / 0.95, shapes 1.00 / 0.97. Unflipped, the check flags
# 6 digits, 104 mnist5k images and 0 shapes. At 0.1: C = 1.0 gives 0.75-0.87 / 0.93-1.00,
# C = 0.01 gives 0.84-0.93 / 0.89-0.96.
LABEL_THRESHOLD = 0.1
LOGISTIC_C = 0.1


# --- suspicious labels ------------------------------------------------------------------

def label_features(images: Tensor, max_side: int = 16) -> Tensor:
    """Features for the label check: pixels and the log Fourier magnitude of the grey image.

    The magnitude $|\\mathcal{F}(x)|$ is unchanged by (circular) translation (the
    shift theorem), so a linear model on it recognises a shape wherever it sits;
    the pixels keep what the magnitude loses. Images larger than ``max_side`` are
    average-pooled down first (speed).

    Args:
        images: ``(N, C, H, W)``.
        max_side: largest side kept.

    Returns:
        ``(N, C*h*w + h*(w//2 + 1))`` float32, ``h, w`` the pooled sides.
    """
    x = _check_batch(images)
    if max(x.shape[-2:]) > max_side:
        x = F.adaptive_avg_pool2d(x, max_side)                          # (N, C, h, w)
    magnitude = torch.fft.rfft2(x.mean(dim=1)).abs()                    # (N, h, w//2 + 1)
    return torch.cat([x.flatten(1), torch.log1p(magnitude).flatten(1)], dim=1)


def out_of_fold_probabilities(images: Tensor, labels: Tensor, n_folds: int = 5,
                              seed: int = 0) -> Tensor:
    """Each item's class probabilities from a classifier that never saw it.

    A multinomial logistic regression (scikit-learn, ``C`` = :data:`LOGISTIC_C`) on
    :func:`label_features`, ``n_folds``-fold stratified cross-validation: each item
    is predicted by the model fitted on the other folds.

    Args:
        images: ``(N, C, H, W)``.
        labels: ``(N,)`` int, every class with at least ``n_folds`` items.
        n_folds: number of folds (at least 2).
        seed: shuffles the folds.

    Returns:
        ``(N, K)`` float32 probabilities, ``K`` the number of distinct labels
        (columns in sorted label order).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    x = _check_batch(images)
    labels = _check_labels(labels, len(x), n_folds)
    features = label_features(x).numpy()                                # (N, D)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    model = LogisticRegression(C=LOGISTIC_C, max_iter=1000)
    # One BLAS thread: the problem is small, and BLAS threads spinning against torch's
    # OpenMP threads made the fit 7x slower on 2 cores.
    with threadpool_limits(limits=1):
        proba = cross_val_predict(model, features, labels.numpy(), cv=folds,
                                  method="predict_proba")              # (N, K)
    return torch.from_numpy(proba).float()


def _check_labels(labels: Tensor, n: int, n_folds: int) -> Tensor:
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
    if n_folds < 2:
        raise ValueError(f"n_folds must be >= 2, got {n_folds}")
    counts = torch.unique(labels, return_counts=True)[1]
    if len(counts) < 2 or counts.min() < n_folds:
        raise ValueError(f"need at least 2 classes with at least n_folds={n_folds} items "
                         f"each; got class counts {counts.tolist()}")
    return labels.long()


def find_suspicious_labels(images: Tensor, labels: Tensor, n_folds: int = 5,
                           threshold: float = LABEL_THRESHOLD, seed: int = 0,
                           ) -> tuple[Tensor, Tensor]:
    """Items whose given label an out-of-fold classifier finds unlikely.

    The rule: flag item $i$ when $\\hat p_i(y_i) <$ ``threshold``, with $\\hat p_i$ the
    out-of-fold probabilities of :func:`out_of_fold_probabilities` (the
    self-confidence of Northcutt et al. 2021, with one global threshold).

    Args:
        images: ``(N, C, H, W)``.
        labels: ``(N,)`` int, every class with at least ``n_folds`` items.
        n_folds: cross-validation folds.
        threshold: flag below this probability of the given label.
        seed: shuffles the folds.

    Returns:
        ``flagged`` ``(M,)`` int64 indices, sorted, and ``p_given`` ``(N,)``: each
        item's out-of-fold probability of its given label.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    proba = out_of_fold_probabilities(images, labels, n_folds, seed)   # (N, K)
    classes = torch.unique(torch.as_tensor(labels))                     # sorted, (K,)
    column = torch.searchsorted(classes, torch.as_tensor(labels))       # (N,)
    p_given = proba.gather(1, column[:, None]).squeeze(1)               # (N,)
    return torch.nonzero(p_given < threshold).flatten(), p_given
