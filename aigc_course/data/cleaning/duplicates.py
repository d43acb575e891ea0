"""Exact and near duplicates: 8-bit identity, and a perceptual hash confirmed in pixels.

* exact duplicates: images identical after quantising to 8 bits;
* near duplicates: a DCT perceptual hash (pHash, Zauner 2010, "Implementation and
  Benchmarking of Perceptual Image Hash Functions"; the ``imagehash`` variant)
  proposes pairs by Hamming distance, and a pixel-space distance confirms them.

Simplified: duplicate search compares all pairs (0.06 s for digits, 0.6 s for
mnist5k; large sets need an index such as a BK-tree or LSH).

The defaults below were measured on real digits (``load_images("digits", "all")``,
1,797 8x8 images) with copies planted by
:func:`~aigc_course.data.cleaning.planting.plant_duplicates`, seeds 0-2; the numbers
are in the comments beside them.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from aigc_course.data.cleaning._common import Tensor, _check_batch, quantise

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
