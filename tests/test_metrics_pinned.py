"""Closed forms, pinned values and error messages of KID, IS, precision/recall and FID.

Pinned values are computed with the shipped digits judge (deterministic on CPU: no
sampling, fixed seeds), so they move only if the judge or the data change; re-derive
them then. Each is pinned to 1e-3 relative (float32 features; BLAS summation order).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from aigc_course.data.registry import load_images
from aigc_course.metrics import (
    evaluate,
    fid,
    inception_score,
    inception_score_from_logits,
    judge_fid,
    kernel_inception_distance,
    kid_from_features,
    precision_recall,
    precision_recall_from_features,
)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    torch.set_num_threads(1)
    test, labels = load_images("digits", "test")                           # (269, 1, 8, 8)
    noise = torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    return {"test": test, "labels": labels, "noise": noise}


# ----- closed forms -------------------------------------------------------------------

def test_kid_equals_a_brute_force_u_statistic() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(1.0, 1.0, size=(5, 3))
    k = lambda a, b: (a @ b / 3 + 1) ** 3                                 # noqa: E731
    xx = np.mean([k(x[i], x[j]) for i, j in itertools.permutations(range(7), 2)])
    yy = np.mean([k(y[i], y[j]) for i, j in itertools.permutations(range(5), 2)])
    xy = np.mean([k(a, b) for a in x for b in y])
    # subset_size = 5 = min(7, 5): one subset of 5 of x's 7 points, so compare at 5 and 5
    mean, std = kid_from_features(x[:5], y, subsets=1, subset_size=None)
    xx5 = np.mean([k(x[i], x[j]) for i, j in itertools.permutations(range(5), 2)])
    xy5 = np.mean([k(a, b) for a in x[:5] for b in y])
    assert mean == pytest.approx(xx5 + yy - 2 * xy5, rel=1e-12)
    assert std == 0.0
    assert xx + yy - 2 * xy > 0                                            # different means


def test_kid_is_unbiased_for_one_distribution() -> None:
    rng = np.random.default_rng(1)
    values = [kid_from_features(rng.normal(size=(50, 4)), rng.normal(size=(50, 4)),
                                subsets=1, subset_size=50)[0] for _ in range(200)]
    # mean over 200 draws ~ 0 within 3 standard errors (measured: -0.001, s.e. 0.009)
    assert abs(np.mean(values)) < 3 * np.std(values) / np.sqrt(200)


def test_inception_score_extremes() -> None:
    sharp = torch.full((100, 10), -50.0)
    sharp[torch.arange(100), torch.arange(100) % 10] = 50.0               # one-hot, all classes
    assert inception_score_from_logits(sharp, splits=1)[0] == pytest.approx(10.0, rel=1e-9)
    one_class = torch.zeros(100, 10)
    one_class[:, 3] = 50.0
    assert inception_score_from_logits(one_class, splits=1)[0] == pytest.approx(1.0, abs=1e-9)
    assert inception_score_from_logits(torch.zeros(100, 10), splits=5)[0] == pytest.approx(1.0)


def test_precision_recall_extremes() -> None:
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    assert precision_recall_from_features(x, x) == {"precision": 1.0, "recall": 1.0,
                                                    "f_score": 1.0}
    far = precision_recall_from_features(x, x + 100.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0
    # a collapsed model: all samples are copies of 3 real points -> precision 1, recall low
    collapsed = precision_recall_from_features(x, x[:3].repeat(34, 1))
    assert collapsed["precision"] == 1.0 and collapsed["recall"] < 0.2



def test_precision_recall_in_row_blocks_is_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """Distances are computed a block of rows at a time (MNIST's 54,000 training features
    against themselves would need 23 GB at once): blocks of 7 rows give the same radii and
    the same answers as one block."""
    from aigc_course.metrics import _precision_recall as pr

    g = torch.Generator().manual_seed(1)
    real = torch.randn(300, 8, generator=g).double()
    fake = torch.randn(200, 8, generator=g).double()
    whole = pr.precision_recall_from_features(real, fake), pr.knn_radii(real)
    monkeypatch.setattr(pr, "BLOCK_ELEMENTS", 7 * 300)             # 7 rows of 300 distances
    blocked = pr.precision_recall_from_features(real, fake), pr.knn_radii(real)
    assert blocked[0] == whole[0] and torch.equal(blocked[1], whole[1])
    assert 0 < whole[0]["precision"] < 1 and 0 < whole[0]["recall"] < 1


# ----- pinned values with the judge ---------------------------------------------------

def test_fid_floor_and_ceiling(digits) -> None:
    # held-out real digits (269 test) vs train: the floor at this n (measured 1.6530);
    # uniform noise (1,000): near the ceiling (measured 941.81)
    assert fid(digits["test"]) == pytest.approx(1.6530, rel=1e-3)
    assert fid(digits["test"]) == pytest.approx(judge_fid(digits["test"]), rel=1e-12)
    assert fid(digits["noise"]) == pytest.approx(941.81, rel=1e-3)


def test_kid_inception_score_precision_recall_of_real_digits(digits) -> None:
    mean, std = kernel_inception_distance(digits["test"])      # 100 subsets of the 269 test
    assert (mean, std) == pytest.approx((-20.90, 14.52), rel=1e-3)
    assert abs(mean) < 2 * std                      # real vs real: consistent with 0
    assert kernel_inception_distance(digits["noise"])[0] == pytest.approx(869.43, rel=1e-3)
    assert inception_score(digits["test"]) == pytest.approx((8.426, 0.634), rel=1e-3)
    assert inception_score(digits["test"], splits=1)[0] == pytest.approx(9.835, rel=1e-3)
    pr = precision_recall(digits["test"])
    assert (pr["precision"], pr["recall"]) == pytest.approx((0.8513, 0.9332), abs=1e-3)
    noise = precision_recall(digits["noise"])
    # the judge maps all noise to one spot that real outliers' huge k-NN balls cover:
    # precision 1.0 for noise (recall 0 tells); see the chapter on outlier sensitivity
    assert (noise["precision"], noise["recall"]) == (1.0, 0.0)


def test_evaluate_reports_everything(digits) -> None:
    report = evaluate(digits["test"], digits["labels"], kid_subsets=10)
    assert set(report) == {"n", "fid", "kid", "kid_std", "inception_score", "precision",
                           "recall", "recognisability", "coverage", "label_accuracy",
                           "label_accuracy_per_class", "reference"}
    assert report["reference"]["text"] == "digits train split at 8x8, judge (digits) features"
    assert report["fid"] == pytest.approx(1.6530, rel=1e-3)
    assert report["label_accuracy"] > 0.95 and report["recognisability"] > 0.95


# ----- bad input ----------------------------------------------------------------------

def test_errors() -> None:
    x = torch.randn(10, 4)
    with pytest.raises(ValueError, match="must be \\(M, d\\) and \\(N, d\\)"):
        kid_from_features(x, torch.randn(10, 5))
    with pytest.raises(ValueError, match="subsets must be at least 1"):
        kid_from_features(x, x, subsets=0)
    with pytest.raises(ValueError, match="splits must be in 1..10"):
        inception_score_from_logits(x, splits=11)
    with pytest.raises(ValueError, match="k must be in 1..9"):
        precision_recall_from_features(x, x, k=10)
    with pytest.raises(ValueError, match="unknown reference 'tests'; valid: train, val, test"):
        fid(torch.zeros(4, 1, 8, 8), reference="tests")
