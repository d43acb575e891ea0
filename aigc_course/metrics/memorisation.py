"""Memorisation: a model that copies its training set scores a great FID.

FID, KID and precision/recall compare generated samples with the *training* data, so
a "model" that returns training images is rated as good as real data, or better. The
check that catches it looks at each sample's nearest training image (as Carlini et
al. 2023, "Extracting training data from diffusion models", do in pixel space; Meehan,
Chaudhuri & Dasgupta 2020 test the same idea, "A non-parametric test to detect
data-copying in generative models"):

$$d_i = \\min_j \\lVert x_i - x^{\\text{train}}_j \\rVert_2 .$$

The baseline is the same distance for held-out real images (the ``test`` split), which
a model that generalises should match: it produces *new* digits, as close to the
training set as unseen real ones are. A sample counts as a copy when $d_i$ is below
the ``quantile`` (1%) of the test-to-train distances, so about 1% of real held-out
images are flagged too (the false-positive rate, by construction).

Simplified: Euclidean distance in pixel space (or in a feature space you pass), no
augmentation-invariant matching, so a copied digit shifted by one pixel is not caught;
the threshold is a quantile, not a statistical test.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np
import torch

from aigc_course.metrics.features import FeatureExtractor, extract

Tensor = torch.Tensor


class MemorisationReport(TypedDict):
    """What :func:`memorisation_report` returns (a plain ``dict``)."""

    sample_distances: np.ndarray
    test_distances: np.ndarray
    threshold: float
    copy_fraction: float
    test_copy_fraction: float
    median_ratio: float


def memorising_model(train: Tensor, n: int, jitter: float = 0.0, seed: int = 0) -> Tensor:
    """A "generative model" that returns training images, optionally with pixel noise.

    Args:
        train: training images ``(M, C, H, W)`` in ``[-1, 1]``.
        n: samples (without replacement while ``n <= M``, then with).
        jitter: standard deviation of Gaussian noise added to each pixel.
        seed: the random seed.

    Returns:
        ``(n, C, H, W)`` in ``[-1, 1]``.
    """
    generator = torch.Generator().manual_seed(seed)
    if n <= len(train):
        index = torch.randperm(len(train), generator=generator)[:n]
    else:
        index = torch.randint(len(train), (n,), generator=generator)
    noise = jitter * torch.randn((n, *train.shape[1:]), generator=generator)
    return (train[index] + noise).clamp(-1, 1)                         # (n, C, H, W)


def nearest_neighbour_distances(queries: Tensor, reference: Tensor,
                                extractor: FeatureExtractor | None = None,
                                batch_size: int = 1000) -> Tensor:
    """$d_i = \\min_j \\lVert q_i - r_j \\rVert_2$ for each query, ``(Q,)``.

    Args:
        queries: ``(Q, C, H, W)`` images.
        reference: ``(R, C, H, W)`` images of the same shape.
        extractor: measure in this feature space; ``None``: flattened pixels.
        batch_size: queries per distance block.

    Raises:
        ValueError: queries and reference of different image shapes (pixel space).
    """
    if extractor is None:
        if queries.shape[1:] != reference.shape[1:]:
            raise ValueError(f"queries {tuple(queries.shape[1:])} and reference "
                             f"{tuple(reference.shape[1:])} images differ in shape")
        q, r = queries.flatten(1).double(), reference.flatten(1).double()   # (Q, D), (R, D)
    else:
        q, r = extract(queries, extractor).double(), extract(reference, extractor).double()
    return torch.cat([torch.cdist(q[i:i + batch_size], r).min(dim=1).values
                      for i in range(0, len(q), batch_size)])


def memorisation_report(samples: Tensor, train: Tensor, test: Tensor, quantile: float = 0.01,
                        extractor: FeatureExtractor | None = None) -> MemorisationReport:
    """Nearest-training-image distances of samples against the held-out baseline.

    Args:
        samples: generated images ``(N, C, H, W)``.
        train: the training images ``(M, C, H, W)``.
        test: held-out real images ``(K, C, H, W)`` (the baseline).
        quantile: a sample is a copy below this quantile of the test distances.
        extractor: measure in a feature space; ``None``: pixels.

    Returns:
        ``sample_distances`` ``(N,)`` and ``test_distances`` ``(K,)`` (NumPy arrays, for
        histograms), ``threshold``, ``copy_fraction`` (share of samples below it),
        ``test_copy_fraction`` (the same for test images, about ``quantile``) and
        ``median_ratio`` (median sample distance / median test distance: about 1 for a
        model that generalises, near 0 for a copier).

    Raises:
        ValueError: ``quantile`` not in ``(0, 1)``.
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    d_samples = nearest_neighbour_distances(samples, train, extractor).numpy()
    d_test = nearest_neighbour_distances(test, train, extractor).numpy()
    threshold = float(np.quantile(d_test, quantile))
    return {
        "sample_distances": d_samples,
        "test_distances": d_test,
        "threshold": threshold,
        "copy_fraction": float((d_samples < threshold).mean()),
        "test_copy_fraction": float((d_test < threshold).mean()),
        "median_ratio": float(np.median(d_samples) / np.median(d_test)),
    }
