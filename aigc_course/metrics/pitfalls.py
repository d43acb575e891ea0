"""When the numbers lie: experiments behind chapter 08's warnings, as arrays for plots.

* :func:`fid_kid_vs_sample_size` -- FID is biased: the same model scores worse on
  fewer samples (Bińkowski et al. 2018, section 3; Chong & Forsyth 2020, "Effectively
  unbiased FID and Inception Score and where to find them"). KID's estimator is
  unbiased, so its mean does not move with ``n``, only its spread.
* :func:`scores_by_extractor` -- the same sample sets under different feature spaces
  (judge, random conv features, raw pixels): the scales differ completely and the
  ranking can change (Kynkäänniemi et al. 2023, "The role of ImageNet classes in
  Fréchet Inception Distance"; Naeem et al. 2020 on random embeddings).
* :func:`memorisation_vs_real` -- a model that returns (jittered) training images
  scores a FID as good as real held-out data (judge FID 2-5 against 1.7 for the test
  split, at the same 269 samples: within FID's own sampling noise); the
  nearest-neighbour check of :mod:`~aigc_course.metrics.memorisation` calls 100% of
  its samples copies and 1% of the test split.
* :func:`collapse_vs_blur` -- improved precision and recall (Kynkäänniemi et al. 2019)
  separate two failures one FID mixes up: a mode-collapsed model (a few classes of
  real digits: high precision, low recall) and a blurry one (blurred real digits: low
  precision).

Simplified: the "models" are transformations of real data, so each failure is pure
and known; real models mix them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from aigc_course.metrics._precision_recall import precision_recall_from_features
from aigc_course.metrics.features import (
    FeatureExtractor,
    PixelExtractor,
    RandomConvExtractor,
    extract,
)
from aigc_course.metrics.frechet import frechet_distance_from_features
from aigc_course.metrics.kid import kid_from_features
from aigc_course.metrics.memorisation import memorisation_report, memorising_model
from aigc_course.metrics.scores import default_extractor, reference_features

Tensor = torch.Tensor
Reference = str | Tensor


def _real_features(reference: Reference, extractor: FeatureExtractor, images: Tensor,
                   dataset: str = "digits") -> Tensor:
    side = int(images.shape[-1])
    return reference_features(reference, extractor, dataset, side)


def fid_kid_vs_sample_size(samples: Tensor, reference: Reference = "train",
                           sizes: Sequence[int] = (25, 50, 100, 200, 400),
                           repeats: int = 5, extractor: FeatureExtractor | None = None,
                           seed: int = 0) -> dict[str, np.ndarray]:
    """FID and KID of random subsets of ``samples`` of growing size, against a fixed reference.

    Args:
        samples: images ``(N, C, H, W)``, ``N >= max(sizes)``.
        reference: a ``digits`` split name or real images (all of it is used each time).
        sizes: subset sizes $n$.
        repeats: random subsets per size.
        extractor: the feature space; ``None`` is the judge.
        seed: seeds the subsets and KID.

    Returns:
        ``sizes`` ``(S,)``; ``fid_mean``, ``fid_std``, ``kid_mean``, ``kid_std`` ``(S,)`` over
        the repeats (KID of each subset: one MMD² of the whole subset against ``n``
        random reference points).

    Raises:
        ValueError: a size larger than ``N`` or smaller than 2.
    """
    if max(sizes) > len(samples) or min(sizes) < 2:
        raise ValueError(f"sizes must be in 2..{len(samples)} (the samples), got {tuple(sizes)}")
    extractor = extractor if extractor is not None else default_extractor()
    real = _real_features(reference, extractor, samples)
    fake = extract(samples, extractor)                                  # (N, d)
    generator = torch.Generator().manual_seed(seed)
    fid = np.zeros((len(sizes), repeats))
    kid = np.zeros((len(sizes), repeats))
    for a, n in enumerate(sizes):
        for r in range(repeats):
            subset = fake[torch.randperm(len(fake), generator=generator)[:n]]   # (n, d)
            fid[a, r] = frechet_distance_from_features(real, subset)
            kid[a, r] = kid_from_features(real, subset, subsets=1, subset_size=n,
                                          seed=seed + r)[0]
    return {"sizes": np.asarray(sizes), "fid_mean": fid.mean(1), "fid_std": fid.std(1),
            "kid_mean": kid.mean(1), "kid_std": kid.std(1)}


def default_extractors(channels: int = 1) -> dict[str, FeatureExtractor]:
    """``{"judge", "random", "pixels"}`` for grey digits; ``random`` and ``pixels`` for RGB."""
    extractors: dict[str, FeatureExtractor] = {}
    if channels == 1:
        extractors["judge"] = default_extractor()
    extractors["random"] = RandomConvExtractor()
    extractors["pixels"] = PixelExtractor(channels=channels)
    return extractors


def scores_by_extractor(samples: Mapping[str, Tensor], reference: Reference = "train",
                        extractors: Mapping[str, FeatureExtractor] | None = None
                        ) -> dict[str, object]:
    """FID, KID and precision/recall of several sample sets under several feature spaces.

    Args:
        samples: name -> images ``(N, C, H, W)`` (all of one shape).
        reference: a ``digits`` split name or real images.
        extractors: name -> extractor; ``None``: :func:`default_extractors`.

    Returns:
        ``extractors`` and ``models`` (the names, lists), and ``fid``, ``kid``,
        ``precision``, ``recall`` as ``(E, S)`` arrays (extractor x sample set), plus
        ``fid_rank`` ``(E, S)``: each model's rank (0 = best FID) per extractor.
    """
    first = next(iter(samples.values()))
    extractors = dict(extractors) if extractors is not None else default_extractors(
        int(first.shape[1]))
    shape = (len(extractors), len(samples))
    out = {key: np.zeros(shape) for key in ("fid", "kid", "precision", "recall")}
    for e, extractor in enumerate(extractors.values()):
        real = _real_features(reference, extractor, first)
        for s, images in enumerate(samples.values()):
            fake = extract(images, extractor)
            out["fid"][e, s] = frechet_distance_from_features(real, fake)
            out["kid"][e, s] = kid_from_features(real, fake, subsets=20)[0]
            pr = precision_recall_from_features(real, fake)
            out["precision"][e, s], out["recall"][e, s] = pr["precision"], pr["recall"]
    ranks = np.argsort(np.argsort(out["fid"], axis=1), axis=1)         # (E, S), 0 = best
    return {"extractors": list(extractors), "models": list(samples), **out, "fid_rank": ranks}


def memorisation_vs_real(train: Tensor, test: Tensor, n: int | None = None, jitter: float = 0.02,
                         quantile: float = 0.01, extractor: FeatureExtractor | None = None,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Real held-out images vs a memorising "model": FID says copy, neighbours say copy.

    Args:
        train: training images ``(M, C, H, W)`` (the FID reference and the copy source).
        test: held-out real images ``(K, C, H, W)``.
        n: samples of the memoriser (default ``K``, so both FIDs share a sample size).
        jitter: pixel noise of the memoriser.
        quantile: the copy threshold (see :func:`memorisation_report`).
        extractor: FID's feature space; ``None`` is the judge (copies are found in pixels).
        seed: the memoriser's seed.

    Returns:
        ``models`` ``["real test", "memoriser"]``; ``fid``, ``copy_fraction``,
        ``median_ratio`` ``(2,)``; ``test_distances`` and ``memoriser_distances`` for
        histograms.
    """
    extractor = extractor if extractor is not None else default_extractor()
    copier = memorising_model(train, n or len(test), jitter, seed)
    real = extract(train, extractor)
    rows = {"real test": test, "memoriser": copier}
    reports = {name: memorisation_report(images, train, test, quantile)
               for name, images in rows.items()}
    return {
        "models": np.array(list(rows)),
        "fid": np.array([frechet_distance_from_features(real, extract(x, extractor))
                         for x in rows.values()]),
        "copy_fraction": np.array([r["copy_fraction"] for r in reports.values()]),
        "median_ratio": np.array([r["median_ratio"] for r in reports.values()]),
        "test_distances": reports["real test"]["test_distances"],
        "memoriser_distances": reports["memoriser"]["sample_distances"],
    }


def blurred(images: Tensor, sigma: float = 1.0) -> Tensor:
    """Gaussian blur with standard deviation ``sigma`` pixels (reflect padding), same shape."""
    if sigma <= 0:
        raise ValueError(f"sigma must be positive, got {sigma}")
    radius = max(1, math.ceil(2 * sigma))
    r = torch.arange(-radius, radius + 1, dtype=images.dtype)
    g = torch.exp(-r.pow(2) / (2 * sigma**2))
    g = g / g.sum()                                                     # (2r+1,) normalised
    c = images.shape[1]
    x = F.pad(images, (radius,) * 4, mode="reflect")                   # (N, C, H+2r, W+2r)
    x = F.conv2d(x, g.view(1, 1, 1, -1).expand(c, 1, 1, -1), groups=c)  # along W
    return F.conv2d(x, g.view(1, 1, -1, 1).expand(c, 1, -1, 1), groups=c)  # along H


def mode_collapsed(images: Tensor, labels: Tensor, classes: Sequence[int] = (0, 1),
                   n: int | None = None, seed: int = 0) -> Tensor:
    """A mode-collapsed "model": ``n`` real images drawn only from ``classes``.

    Args:
        images: real images ``(N, C, H, W)``; labels: their classes ``(N,)``.
        classes: the modes the model kept.
        n: samples (default ``N``), drawn with replacement from the kept images.
        seed: the random seed.

    Raises:
        ValueError: no image of the kept classes.
    """
    keep = torch.isin(labels, torch.as_tensor(list(classes)))
    if not keep.any():
        raise ValueError(f"no images of classes {tuple(classes)}")
    pool = images[keep]
    generator = torch.Generator().manual_seed(seed)
    return pool[torch.randint(len(pool), (n or len(images),), generator=generator)]


def collapse_vs_blur(real: Tensor, labels: Tensor, reference: Reference = "train",
                     classes: Sequence[int] = (0, 1), sigma: float = 1.0,
                     extractor: FeatureExtractor | None = None, k: int = 3
                     ) -> dict[str, np.ndarray]:
    """Precision and recall (and FID) of real, mode-collapsed and blurry "models".

    Args:
        real: real held-out images ``(N, C, H, W)``; labels: their classes ``(N,)``.
        reference: a ``digits`` split name or real images.
        classes: the collapsed model's classes.
        sigma: the blur (pixels, at the images' size).
        extractor: the feature space; ``None`` is the judge.
        k: the precision/recall neighbourhood.

    Returns:
        ``models`` ``["real", "mode-collapsed", "blurry"]``; ``precision``, ``recall``,
        ``fid`` ``(3,)``.
    """
    extractor = extractor if extractor is not None else default_extractor()
    reference_f = _real_features(reference, extractor, real)
    rows = {"real": real, "mode-collapsed": mode_collapsed(real, labels, classes),
            "blurry": blurred(real, sigma)}
    out: dict[str, list[float]] = {"precision": [], "recall": [], "fid": []}
    for images in rows.values():
        fake = extract(images, extractor)
        pr = precision_recall_from_features(reference_f, fake, k)
        out["precision"].append(pr["precision"])
        out["recall"].append(pr["recall"])
        out["fid"].append(frechet_distance_from_features(reference_f, fake))
    return {"models": np.array(list(rows)), **{key: np.array(v) for key, v in out.items()}}
