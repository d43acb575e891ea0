"""Data cleaning: exact and near duplicates, corrupt items, suspicious labels.

Four checks a data chapter runs before training, and the helpers that plant each
problem so the notebook can show "plant, then find" with measured precision/recall:

* exact duplicates: images identical after quantising to 8 bits;
* near duplicates: a DCT perceptual hash (pHash, Zauner 2010, "Implementation and
  Benchmarking of Perceptual Image Hash Functions"; the ``imagehash`` variant)
  proposes pairs by Hamming distance, and a pixel-space distance confirms them;
* corrupt items: NaN/Inf, values out of range, blank images, wrong shapes;
* suspicious labels: items whose out-of-fold predicted probability of their own
  label is low (the "self-confidence" of Northcutt et al. 2021, "Confident
  Learning: Estimating Uncertainty in Dataset Labels", JAIR 70).

Simplified: duplicate search compares all pairs (0.06 s for digits, 0.6 s for
mnist5k; large sets need an index such as a BK-tree or LSH); the label check uses
one global threshold on self-confidence and a linear classifier, not confident
learning's per-class thresholds and a strong model.

The defaults below were measured on real digits (``load_images("digits", "all")``,
1,797 8x8 images) with problems planted by :func:`plant_duplicates` and
:func:`flip_labels`, seeds 0-2; the numbers are in the comments beside them.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F

Tensor = torch.Tensor
CopyKind = Literal["exact", "noise", "brightness", "shift", "mixed"]
COPY_KINDS: tuple[str, ...] = get_args(CopyKind)
CorruptKind = Literal["non_finite", "out_of_range", "constant", "wrong_shape"]
CORRUPT_KINDS: tuple[str, ...] = get_args(CorruptKind)

# Near duplicates on digits, 50 planted copies x 3 seeds. Recall of the planted pairs,
# and false-positive pairs among the 1,797 genuine images (max_distance of 64 bits /
# max_pixel_distance):
#   pHash alone, 12 bits:  recall 1.00 (exact, noise std <= 0.1, brightness/contrast);
#                          7,953 genuine pairs (1,370 at 8 bits, 73 at 4): useless alone
#   12 / 0.10:             noise std 0.1 recall 0.28-0.44; 0 genuine pairs
#   12 / 0.15 (default):   exact, brightness/contrast, noise std 0.05 and 0.1: 1.00;
#                          noise std 0.15: 0.26-0.46; 2 genuine pairs (two near-identical 1s)
#   12 / 0.20:             noise std 0.15: 0.90-1.00; 16 genuine pairs
#   8 / 0.15:              noise std 0.1: 0.92-1.00; 0 genuine pairs
#   16 / 0.15:             as 12 / 0.15
# A 1-pixel shift of an 8x8 digit (1/8 of its width) is found at no setting: it moves
# the hash by 22-38 bits and the pixel distance to 0.65-1.2, more than many pairs of
# different digits. Hash sizes 4 and 6 pair too many genuine images at the hash stage
# (11,061 pairs at 0 bits for size 4). On mnist5k the defaults find 0 genuine pairs,
# and (seed 0) planted noise std 0.05 / 0.1 at recall 1.00 / 0.92; on shapes (mostly
# flat background) noise moves hash and standardised distance much more: std 0.05
# recall 0.36 (seed 0), brightness 0.94.
HASH_SIZE = 8
MAX_HASH_DISTANCE = 12
MAX_PIXEL_DISTANCE = 0.15
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


# --- input checks -----------------------------------------------------------------------

def _check_batch(images: Any, name: str = "images") -> Tensor:
    """``images`` as a float ``(N, C, H, W)`` tensor, or a ``ValueError``."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, Tensor) or images.ndim != 4:
        got = tuple(images.shape) if hasattr(images, "shape") else type(images).__name__
        raise ValueError(f"{name} must be a 4-D (N, C, H, W) tensor, got {got}")
    return images.float()


def quantise(images: Tensor, value_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Map images in ``value_range`` to ``uint8`` levels ``0..255`` (clamped, rounded).

    Args:
        images: ``(N, C, H, W)`` floats.
        value_range: the values that map to 0 and 255.

    Returns:
        ``(N, C, H, W)`` ``uint8``.
    """
    lo, hi = value_range
    x = (_check_batch(images) - lo) / (hi - lo) * 255.0
    return x.nan_to_num(0.0).round().clamp(0, 255).to(torch.uint8)


# --- exact duplicates -------------------------------------------------------------------

def find_exact_duplicates(images: Tensor) -> list[list[int]]:
    """Groups of indices whose images are byte-identical after 8-bit quantisation.

    Quantising first (to 256 levels over ``[-1, 1]``) means a copy that went through a
    float round trip (``x * 0.5 + 0.5`` and back, a dtype change) is still found,
    while any visible edit (one grey level, 1/255) is not.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.

    Returns:
        Groups of two or more indices, each sorted, ordered by their first index.
    """
    q = quantise(images).flatten(1)                                     # (N, C*H*W)
    if len(q) == 0:
        return []
    _, inverse, counts = torch.unique(q, dim=0, return_inverse=True, return_counts=True)
    groups: dict[int, list[int]] = {}
    for i, g in enumerate(inverse.tolist()):
        if counts[g] > 1:
            groups.setdefault(g, []).append(i)
    return sorted(groups.values())


# --- near duplicates --------------------------------------------------------------------

def dct_matrix(m: int) -> Tensor:
    """The orthonormal DCT-II matrix ``D`` ``(m, m)``: ``X = D x`` (scipy's ``norm="ortho"``).

    $D_{kn} = \\sqrt{2/m}\\, c_k \\cos\\big(\\pi (2n + 1) k / 2m\\big)$, $c_0 = 1/\\sqrt2$, else 1.
    """
    n = torch.arange(m, dtype=torch.float64)
    d = torch.cos(math.pi * (2 * n[None] + 1) * n[:, None] / (2 * m)) * math.sqrt(2 / m)
    d[0] /= math.sqrt(2)
    return d.float()


def perceptual_hash(images: Tensor, hash_size: int = HASH_SIZE) -> Tensor:
    """The DCT perceptual hash (pHash) of each image.

    Steps (as the ``imagehash`` library): average the channels to grey, resize to
    ``4 * hash_size`` square (bilinear), take the 2-D DCT-II, keep the top-left
    ``hash_size x hash_size`` low frequencies, and set a bit where a coefficient is
    above their median. Brightness and contrast changes move the DC term only, so
    they barely change the hash.

    Args:
        images: ``(N, C, H, W)``.
        hash_size: side of the kept low-frequency block (``hash_size**2`` bits).

    Returns:
        ``(N, hash_size * hash_size)`` bool.
    """
    x = _check_batch(images)
    if hash_size < 2:
        raise ValueError(f"hash_size must be an integer >= 2, got {hash_size}")
    side = 4 * hash_size
    grey = x.mean(dim=1, keepdim=True)                                  # (N, 1, H, W)
    grey = F.interpolate(grey, size=(side, side), mode="bilinear", align_corners=False,
                         antialias=side < min(x.shape[-2:]))            # (N, 1, side, side)
    d = dct_matrix(side)
    coeffs = d @ grey[:, 0] @ d.T                                       # (N, side, side)
    low = coeffs[:, :hash_size, :hash_size].reshape(len(x), -1)         # (N, hash_size**2)
    return low > low.median(dim=1, keepdim=True).values


def hamming_pairs(hashes: Tensor, max_distance: int, chunk: int = 1024) -> Tensor:
    """All pairs ``i < j`` of hashes within ``max_distance`` bits.

    With bits as signs $s = 2h - 1 \\in \\{-1, 1\\}^B$, the Hamming distance is
    $(B - s_i \\cdot s_j) / 2$: one matrix product per chunk of rows.

    Args:
        hashes: ``(N, B)`` bool.
        max_distance: the largest Hamming distance kept.
        chunk: rows compared at a time (bounds memory at ``chunk * N`` floats).

    Returns:
        ``(P, 3)`` int64 rows ``(i, j, distance)``, sorted by ``i`` then ``j``.
    """
    signs = hashes.float() * 2 - 1                                      # (N, B)
    n_bits = hashes.shape[1]
    found = [torch.zeros(0, 3, dtype=torch.long)]
    for start in range(0, len(signs), chunk):
        dist = (n_bits - signs[start:start + chunk] @ signs.T) / 2      # (chunk, N)
        upper = torch.ones_like(dist, dtype=torch.bool).triu_(start + 1)  # j > i only
        i, j = torch.nonzero((dist <= max_distance) & upper, as_tuple=True)
        found.append(torch.stack([i + start, j, dist[i, j].round().long()], dim=1))
    return torch.cat(found)


def _standardise(images: Tensor) -> Tensor:
    """Each image flattened, at zero mean and unit mean square: ``(N, C*H*W)``."""
    x = images.flatten(1)                                               # (N, C*H*W)
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-8)


def pixel_distance(a: Tensor, b: Tensor) -> Tensor:
    """RMS difference of standardised images: a contrast- and brightness-free distance.

    Each image is shifted to zero mean and scaled to unit standard deviation, so
    $d(a, b) = \\sqrt{2 (1 - \\rho)}$ with $\\rho$ the Pearson correlation of the pixels.

    Args:
        a, b: ``(P, C, H, W)``.

    Returns:
        ``(P,)`` distances in ``[0, 2]``.
    """
    return (_standardise(a) - _standardise(b)).pow(2).mean(dim=1).sqrt()


def _confirm(images: Tensor, pairs: Tensor, max_pixel_distance: float,
             chunk: int = 4096) -> Tensor:
    """The rows of ``pairs`` ``(P, 3)`` whose :func:`pixel_distance` is small enough."""
    z = _standardise(images)                                            # (N, C*H*W)
    keep = torch.zeros(len(pairs), dtype=torch.bool)
    for start in range(0, len(pairs), chunk):
        i, j = pairs[start:start + chunk, 0], pairs[start:start + chunk, 1]
        dist = (z[i] - z[j]).pow(2).mean(dim=1).sqrt()                  # (chunk,)
        keep[start:start + chunk] = dist <= max_pixel_distance
    return pairs[keep]


def find_near_duplicates(images: Tensor, max_distance: int = MAX_HASH_DISTANCE,
                         hash_size: int = HASH_SIZE,
                         max_pixel_distance: float | None = MAX_PIXEL_DISTANCE,
                         ) -> list[tuple[int, int, int]]:
    """Pairs of near-identical images: pHash proposes, a pixel distance confirms.

    Two-stage rule: a pair is reported when (1) the Hamming distance of the pHashes
    is at most ``max_distance`` and (2) :func:`pixel_distance` (RMS of the
    standardised images) is at most ``max_pixel_distance``. Stage 1 is cheap and
    recalls well; on tiny 8x8 digits it also pairs many different images of the
    same digit, which stage 2 removes. Exact duplicates are reported too (distance 0).

    Args:
        images: ``(N, C, H, W)``.
        max_distance: largest Hamming distance (of ``hash_size**2`` bits) kept.
        hash_size: pHash side, see :func:`perceptual_hash`.
        max_pixel_distance: confirmation threshold; ``None`` skips stage 2.

    Returns:
        ``(i, j, hamming_distance)`` with ``i < j``, sorted.
    """
    x = _check_batch(images)
    if max_distance < 0:
        raise ValueError(f"max_distance must be >= 0, got {max_distance}")
    pairs = hamming_pairs(perceptual_hash(x, hash_size), max_distance)  # (P, 3)
    if max_pixel_distance is not None:
        pairs = _confirm(x, pairs, max_pixel_distance)
    return [tuple(p) for p in pairs.tolist()]


# --- corrupt items ----------------------------------------------------------------------

@dataclass
class CorruptReport:
    """Indices of corrupt items, by kind (an item can appear under several kinds).

    Attributes:
        non_finite: items holding a NaN or an infinity.
        out_of_range: items with a finite value outside ``value_range``.
        constant: blank items (all finite values equal).
        wrong_shape: items whose shape differs from the expected one (lists only).
    """

    non_finite: list[int] = field(default_factory=list)
    out_of_range: list[int] = field(default_factory=list)
    constant: list[int] = field(default_factory=list)
    wrong_shape: list[int] = field(default_factory=list)

    def indices(self) -> list[int]:
        """Every corrupt item once, sorted."""
        return sorted(set().union(*(getattr(self, f.name) for f in fields(self))))

    def to_dict(self) -> dict[str, list[int]]:
        """``{kind: indices}`` for each kind in :data:`CORRUPT_KINDS`."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    def __len__(self) -> int:
        return len(self.indices())


def _flags(x: Tensor, value_range: tuple[float, float], tol: float) -> Tensor:
    """``(N, 3)`` bool: non-finite, out of range, constant, for ``x`` ``(N, D)``."""
    finite = torch.isfinite(x)
    high = torch.where(finite, x, -torch.inf).amax(dim=1)               # (N,) -inf: none finite
    low = torch.where(finite, x, torch.inf).amin(dim=1)
    lo, hi = value_range
    out_of_range = (low < lo - tol) | (high > hi + tol)
    constant = finite.any(dim=1) & (high - low <= tol)
    return torch.stack([~finite.all(dim=1), out_of_range, constant], dim=1)


def _as_items(images: Any) -> tuple[list[Tensor], bool]:
    """``images`` as a list of float tensors, and whether it was one 4-D batch."""
    if isinstance(images, (Tensor, np.ndarray)):
        return list(_check_batch(images)), True
    if not isinstance(images, (list, tuple)):
        raise ValueError("images must be a 4-D (N, C, H, W) tensor or a list of (C, H, W) "
                         f"arrays, got {type(images).__name__}")
    items = []
    for k, item in enumerate(images):
        if not isinstance(item, (Tensor, np.ndarray)):
            raise ValueError(f"images[{k}] must be a tensor or an array, got "
                             f"{type(item).__name__}")
        items.append(torch.as_tensor(item).float())
    return items, False


def find_corrupt(images: Tensor | Sequence[Tensor | np.ndarray],
                 expected_shape: tuple[int, int, int] | None = None,
                 value_range: tuple[float, float] = (-1.0, 1.0),
                 tol: float = 1e-6) -> CorruptReport:
    """Find NaN/Inf, out-of-range, blank and wrongly shaped items.

    Args:
        images: a ``(N, C, H, W)`` tensor or array, or a list of ``N`` arrays that may
            differ in shape (as read from files).
        expected_shape: the ``(C, H, W)`` every item should have; ``None``: the most
            common shape in the list (a 4-D batch always has one shape).
        value_range: the valid ``(low, high)`` pixel values.
        tol: slack for the range test and for calling an item constant.

    Returns:
        A :class:`CorruptReport`.

    Raises:
        ValueError: ``images`` is neither a 4-D tensor nor a list of arrays, or
            ``value_range``/``expected_shape`` is malformed.
    """
    lo, hi = value_range
    if not lo < hi:
        raise ValueError(f"value_range must be (low, high) with low < high, got {value_range}")
    if expected_shape is not None and len(expected_shape) != 3:
        raise ValueError(f"expected_shape must be (C, H, W), got {expected_shape}")
    items, is_batch = _as_items(images)
    report = CorruptReport()
    if not items:
        return report
    shapes = [tuple(item.shape) for item in items]
    if expected_shape is None:
        expected_shape = max(set(shapes), key=shapes.count)
    report.wrong_shape = [k for k, s in enumerate(shapes) if s != tuple(expected_shape)]
    if is_batch:
        flags = _flags(torch.stack(items).flatten(1), value_range, tol)  # (N, 3)
    else:
        flags = torch.cat([_flags(item.reshape(1, -1), value_range, tol) for item in items])
    report.non_finite, report.out_of_range, report.constant = (
        torch.nonzero(flags[:, k]).flatten().tolist() for k in range(3))
    return report


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


# --- planting problems (for the notebook and the tests) ---------------------------------

def _copy(x: Tensor, kind: str, generator: torch.Generator, noise_std: float) -> Tensor:
    """One near-copy of ``x`` ``(C, H, W)`` in ``[-1, 1]``."""
    if kind == "noise":
        return (x + noise_std * torch.randn(x.shape, generator=generator)).clamp(-1, 1)
    if kind == "brightness":
        contrast = 0.8 + 0.2 * torch.rand((), generator=generator)      # in [0.8, 1.0]
        shift = 0.2 * torch.rand((), generator=generator) - 0.1         # in [-0.1, 0.1]
        return (contrast * x + shift).clamp(-1, 1)
    if kind == "shift":
        dim = int(torch.randint(1, 3, (), generator=generator))         # 1: rows, 2: columns
        step = 1 if torch.rand((), generator=generator) < 0.5 else -1
        out = torch.roll(x, step, dims=dim)
        edge = 0 if step == 1 else -1
        out.select(dim, edge).fill_(float(x.min()))                     # background, no wrap
        return out
    return x.clone()


def plant_duplicates(images: Tensor, labels: Tensor, n: int, generator: torch.Generator,
                     kind: CopyKind = "mixed", noise_std: float = 0.05,
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Append ``n`` (near-)copies of ``n`` distinct random images.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: ``(N,)``.
        n: number of copies, at most ``N``.
        generator: the source of randomness.
        kind: ``"exact"``; ``"noise"`` (Gaussian, std ``noise_std``); ``"brightness"``
            (contrast in [0.8, 1], shift in [-0.1, 0.1]); ``"shift"`` (one pixel up,
            down, left or right); ``"mixed"`` cycles through exact, noise and
            brightness (the copies :func:`find_near_duplicates` is built to find).
        noise_std: standard deviation of the ``"noise"`` copies.

    Returns:
        ``images`` ``(N + n, C, H, W)``, ``labels`` ``(N + n,)`` (the copies at the end)
        and ``pairs`` ``(n, 2)``: ``(source index, copy index)``.
    """
    x = _check_batch(images)
    if kind not in COPY_KINDS:
        raise ValueError(f"unknown kind {kind!r}; valid: {', '.join(COPY_KINDS)}")
    if not 0 <= n <= len(x):
        raise ValueError(f"n must be in [0, {len(x)}], got {n}")
    sources = torch.randperm(len(x), generator=generator)[:n]
    kinds = ("exact", "noise", "brightness") if kind == "mixed" else (kind,)
    copies = [_copy(x[s], kinds[k % len(kinds)], generator, noise_std)
              for k, s in enumerate(sources.tolist())]
    copies_t = torch.stack(copies) if copies else x[:0]
    pairs = torch.stack([sources, len(x) + torch.arange(n)], dim=1)     # (n, 2)
    return torch.cat([x, copies_t]), torch.cat([labels, labels[sources]]), pairs


def flip_labels(labels: Tensor, fraction: float, num_classes: int,
                generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Give a random ``fraction`` of items a wrong label, uniform over the other classes.

    Args:
        labels: ``(N,)`` int in ``[0, num_classes)``.
        fraction: share of items to flip, in ``[0, 1]`` (rounded to whole items).
        num_classes: number of classes (at least 2).
        generator: the source of randomness.

    Returns:
        ``new_labels`` ``(N,)`` and ``flipped`` ``(M,)`` the sorted flipped indices.
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    labels = torch.as_tensor(labels).long()
    flipped = torch.randperm(len(labels), generator=generator)[:round(fraction * len(labels))]
    offset = torch.randint(1, num_classes, (len(flipped),), generator=generator)
    new_labels = labels.clone()
    new_labels[flipped] = (labels[flipped] + offset) % num_classes      # never the old label
    return new_labels, flipped.sort().values


def _corrupt(x: Tensor, kind: str, generator: torch.Generator) -> Tensor:
    """A corrupt version of ``x`` ``(C, H, W)`` in ``[-1, 1]``: a common real bug per kind."""
    if kind == "non_finite":                                            # a failed decode
        out = x.clone()
        pixel = int(torch.randint(0, x.numel(), (), generator=generator))
        out.view(-1)[pixel] = float("nan")
        return out
    if kind == "out_of_range":                                          # left in 0..255
        return (x + 1) * 127.5
    if kind == "constant":                                              # a blank frame
        return torch.full_like(x, -1.0)
    return x.permute(1, 2, 0)                                           # (H, W, C): channels last


def plant_corruption(images: Tensor, n_per_kind: int, generator: torch.Generator,
                     kinds: Sequence[CorruptKind] = CORRUPT_KINDS,
                     ) -> tuple[list[Tensor], dict[str, list[int]]]:
    """Corrupt ``n_per_kind`` distinct random items per kind, as real pipelines do.

    Kinds: ``"non_finite"`` (one pixel NaN), ``"out_of_range"`` (left in
    ``0..255``), ``"constant"`` (a blank image), ``"wrong_shape"`` (channels last,
    ``(H, W, C)``).

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        n_per_kind: items per kind; ``len(kinds) * n_per_kind`` must not exceed ``N``.
        generator: the source of randomness.
        kinds: which kinds to plant.

    Returns:
        The ``N`` items as a list of tensors (shapes may now differ; ``torch.stack``
        them when no ``"wrong_shape"`` was planted) and ``{kind: sorted indices}``.
    """
    x = _check_batch(images)
    unknown = [k for k in kinds if k not in CORRUPT_KINDS]
    if unknown:
        raise ValueError(f"unknown kinds {unknown}; valid: {', '.join(CORRUPT_KINDS)}")
    if n_per_kind < 0 or n_per_kind * len(kinds) > len(x):
        raise ValueError(f"n_per_kind must be in [0, {len(x) // max(len(kinds), 1)}], "
                         f"got {n_per_kind}")
    chosen = torch.randperm(len(x), generator=generator)[:n_per_kind * len(kinds)]
    items, planted = list(x), {}
    for k, kind in enumerate(kinds):
        idx = chosen[k * n_per_kind:(k + 1) * n_per_kind].sort().values.tolist()
        for i in idx:
            items[i] = _corrupt(x[i], kind, generator)
        planted[kind] = idx
    return items, planted


def detection_scores(found: Iterable[Hashable], planted: Iterable[Hashable]) -> dict[str, float]:
    """Precision and recall of what a check ``found`` against the ``planted`` truth.

    Items are anything hashable: indices, or ``(i, j)`` pairs with ``i < j``.
    Precision is $|F \\cap P| / |F|$ (1 when nothing was found), recall
    $|F \\cap P| / |P|$ (1 when nothing was planted).
    """
    found_set, planted_set = set(found), set(planted)
    hits = len(found_set & planted_set)
    return {"precision": hits / len(found_set) if found_set else 1.0,
            "recall": hits / len(planted_set) if planted_set else 1.0,
            "found": float(len(found_set)), "planted": float(len(planted_set))}
