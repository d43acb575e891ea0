"""Cleaning: planted duplicates, corruption and flipped labels are found on real digits."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.fft
import torch

from aigc_course.data import cleaning
from aigc_course.data.cleaning import (
    CORRUPT_KINDS,
    dct_matrix,
    find_corrupt,
    find_exact_duplicates,
    find_near_duplicates,
    find_suspicious_labels,
    flip_labels,
    hamming_pairs,
    perceptual_hash,
    pixel_distance,
    plant_corruption,
    plant_duplicates,
)
from aigc_course.data.registry import load_images


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    return load_images("digits", "all")


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- exact duplicates -------------------------------------------------------------------

def test_exact_duplicates_found_after_a_float_round_trip(digits) -> None:
    x, y = digits
    assert find_exact_duplicates(x) == []                               # the genuine set has none
    xs, _, pairs = plant_duplicates(x, y, 50, _gen(), kind="exact")
    xs[-1] = (xs[-1] * 0.5 + 0.5).double().float() * 2 - 1             # a float round trip
    groups = find_exact_duplicates(xs)
    assert sorted(groups) == sorted([list(p) for p in pairs.tolist()])


def test_one_grey_level_is_not_an_exact_duplicate() -> None:
    x = torch.full((2, 1, 4, 4), -1.0)                                  # level 0 of 0..255
    x[1, 0, 0, 0] += 2 / 255                                            # level 1
    assert find_exact_duplicates(x) == []
    assert find_exact_duplicates(torch.cat([x, x[:1]])) == [[0, 2]]


# --- near duplicates --------------------------------------------------------------------

def test_dct_matrix_matches_scipy() -> None:
    x = torch.randn(3, 12, 12, generator=_gen())
    d = dct_matrix(12)
    ours = d @ x @ d.T                                                  # (3, 12, 12)
    ref = scipy.fft.dctn(x.numpy(), type=2, norm="ortho", axes=(1, 2))
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-5)


def test_perceptual_hash_shape_and_median_split(digits) -> None:
    h = perceptual_hash(digits[0][:20], hash_size=8)
    assert h.shape == (20, 64) and h.dtype == torch.bool
    assert (h.sum(1) <= 32).all() and (h.sum(1) >= 28).all()            # bits above the median


def test_hamming_pairs_match_brute_force() -> None:
    h = torch.rand(300, 16, generator=_gen()) < 0.5
    pairs = hamming_pairs(h, 4, chunk=64)
    dist = (h[:, None] != h[None]).sum(-1)                              # (300, 300)
    i, j = torch.nonzero(torch.triu(dist <= 4, diagonal=1), as_tuple=True)
    assert torch.equal(pairs, torch.stack([i, j, dist[i, j]], dim=1))


def test_pixel_distance_ignores_brightness_and_contrast(digits) -> None:
    x = digits[0][:10]
    assert pixel_distance(x, 0.6 * x + 0.2).max() < 1e-5
    assert pixel_distance(x, x.roll(1, dims=0)).min() > 0.3             # different digits


@pytest.mark.parametrize("kind,noise_std", [("exact", 0.05), ("noise", 0.05), ("noise", 0.1),
                                            ("brightness", 0.05), ("mixed", 0.05)])
def test_planted_near_duplicates_are_found(digits, kind: str, noise_std: float) -> None:
    # Measured, seeds 0-2: recall 1.00 for each kind, 2-3 other pairs (the two genuine
    # near-identical 1s, and a copy of one of them). Bars: recall >= 0.9, <= 6 others.
    x, y = digits
    xs, _, pairs = plant_duplicates(x, y, 50, _gen(), kind=kind, noise_std=noise_std)
    found = {(i, j) for i, j, _ in find_near_duplicates(xs)}
    planted = {(i, j) for i, j in pairs.tolist()}
    assert len(found & planted) / len(planted) >= 0.9
    assert len(found - planted) <= 6


def test_the_pixel_stage_removes_hash_false_positives(digits) -> None:
    # Measured: 7,953 genuine pairs within 12 bits by pHash alone, 2 after confirmation.
    x = digits[0]
    assert len(find_near_duplicates(x, max_pixel_distance=None)) > 3000
    assert len(find_near_duplicates(x)) <= 4


def test_plant_duplicates_appends_copies(digits) -> None:
    x, y = digits
    xs, ys, pairs = plant_duplicates(x, y, 5, _gen(), kind="shift")
    assert xs.shape == (len(x) + 5, 1, 8, 8) and len(ys) == len(x) + 5
    assert torch.equal(pairs[:, 1], torch.arange(len(x), len(x) + 5))
    assert torch.equal(ys[pairs[:, 1]], y[pairs[:, 0]])
    assert xs.min() >= -1 and xs.max() <= 1


# --- corrupt items ----------------------------------------------------------------------

def test_planted_corruption_of_each_kind_is_found(digits) -> None:
    items, planted = plant_corruption(digits[0], 5, _gen())
    report = find_corrupt(items)
    assert report.to_dict() == planted
    assert set(planted) == set(CORRUPT_KINDS)
    assert len(report) == 20


def test_clean_digits_have_no_corrupt_items(digits) -> None:
    assert len(find_corrupt(digits[0])) == 0


def test_find_corrupt_on_a_batch() -> None:
    x = torch.rand(6, 1, 4, 4) * 2 - 1
    x[1, 0, 0, 0] = float("nan")
    x[2, 0, 1, 1] = float("inf")
    x[3, 0, 2, 2] = 1.5
    x[4] = 0.3
    x[5] = float("nan")
    report = find_corrupt(x)
    assert report.non_finite == [1, 2, 5]
    assert report.out_of_range == [3]
    assert report.constant == [4]
    assert report.wrong_shape == []


def test_find_corrupt_wrong_shapes_in_a_list() -> None:
    items = [np.zeros((1, 8, 8)) + 0.1 * k for k in range(4)]
    items[2] = np.zeros((8, 8, 1))
    items[3] = torch.zeros(1, 8, 7)
    assert find_corrupt(items).wrong_shape == [2, 3]
    assert find_corrupt(items, expected_shape=(8, 8, 1)).wrong_shape == [0, 1, 3]
    assert find_corrupt([]).indices() == []


@pytest.mark.parametrize("bad,match", [
    (5, "4-D .* or a list"), (torch.zeros(3, 8, 8), r"4-D \(N, C, H, W\)"),
    (["not an array"], r"images\[0\] must be a tensor or an array")])
def test_find_corrupt_rejects_bad_input(bad, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        find_corrupt(bad)


def test_find_corrupt_rejects_bad_options() -> None:
    x = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="low < high"):
        find_corrupt(x, value_range=(1.0, -1.0))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        find_corrupt(x, expected_shape=(4, 4))


# --- suspicious labels ------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1, 2])
def test_flipped_labels_are_found(digits, seed: int) -> None:
    # Measured with 3-5% flipped, seeds 0-2: precision 0.86-0.93, recall 0.94-0.98.
    # Bars keep ~2x margin on the error: precision >= 0.72, recall >= 0.88.
    x, y = digits
    noisy, flipped = flip_labels(y, 0.04, 10, _gen(seed))
    flagged, p_given = find_suspicious_labels(x, noisy, seed=seed)
    hits = len(set(flagged.tolist()) & set(flipped.tolist()))
    assert hits / len(flagged) >= 0.72
    assert hits / len(flipped) >= 0.88
    assert p_given.shape == y.shape and p_given.min() >= 0 and p_given.max() <= 1
    assert torch.equal(flagged, torch.nonzero(p_given < cleaning.LABEL_THRESHOLD).flatten())


def test_flip_labels_changes_exactly_the_reported_items() -> None:
    y = torch.arange(100) % 10
    noisy, flipped = flip_labels(y, 0.05, 10, _gen())
    assert len(flipped) == 5
    changed = torch.nonzero(noisy != y).flatten()
    assert torch.equal(changed, flipped)
    assert noisy.min() >= 0 and noisy.max() < 10
    again, _ = flip_labels(y, 0.05, 10, _gen())
    assert torch.equal(noisy, again)


def test_suspicious_labels_reject_bad_input(digits) -> None:
    x, y = digits
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\)"):
        find_suspicious_labels(x, y, threshold=1.5)
    with pytest.raises(ValueError, match=r"labels must have shape \(1797,\)"):
        find_suspicious_labels(x, y[:10])
    with pytest.raises(ValueError, match="at least n_folds=5 items"):
        find_suspicious_labels(x[:12], y[:12])
    with pytest.raises(ValueError, match="n_folds must be >= 2"):
        find_suspicious_labels(x, y, n_folds=1)


# --- the other bad-input paths ----------------------------------------------------------

def test_bad_options_raise_with_the_valid_values(digits) -> None:
    x, y = digits
    with pytest.raises(ValueError, match="valid: exact, noise, brightness, shift, mixed"):
        plant_duplicates(x, y, 5, _gen(), kind="blur")
    with pytest.raises(ValueError, match=r"n must be in \[0, 1797\]"):
        plant_duplicates(x, y, 5000, _gen())
    with pytest.raises(ValueError, match="valid: non_finite, out_of_range, constant, wrong"):
        plant_corruption(x, 5, _gen(), kinds=["torn"])
    with pytest.raises(ValueError, match=r"fraction must be in \[0, 1\]"):
        flip_labels(y, 2.0, 10, _gen())
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        flip_labels(y, 0.1, 1, _gen())
    with pytest.raises(ValueError, match="hash_size must be an integer >= 2"):
        perceptual_hash(x, hash_size=1)
    with pytest.raises(ValueError, match="4-D"):
        find_near_duplicates(x[0])
    with pytest.raises(ValueError, match="max_distance must be >= 0"):
        find_near_duplicates(x, max_distance=-1)


def test_detection_scores() -> None:
    from aigc_course.data.cleaning import detection_scores

    scores = detection_scores([(1, 2), (3, 4), (5, 6)], [(1, 2), (7, 8)])
    assert scores["precision"] == pytest.approx(1 / 3) and scores["recall"] == 0.5
    assert detection_scores([], [1])["precision"] == 1.0
    assert detection_scores([1], [])["recall"] == 1.0


# --- the package's layout ---------------------------------------------------------------

def test_public_names_importable() -> None:
    import importlib
    import pkgutil

    from aigc_course.data.cleaning import (  # noqa: F401  (the API of the former module)
        COPY_KINDS,
        CORRUPT_KINDS,
        HASH_SIZE,
        LABEL_THRESHOLD,
        LOGISTIC_C,
        MAX_HASH_DISTANCE,
        MAX_PIXEL_DISTANCE,
        CopyKind,
        CorruptKind,
        CorruptReport,
        Tensor,
        dct_matrix,
        detection_scores,
        find_corrupt,
        find_exact_duplicates,
        find_near_duplicates,
        find_suspicious_labels,
        flip_labels,
        hamming_pairs,
        label_features,
        out_of_fold_probabilities,
        perceptual_hash,
        pixel_distance,
        plant_corruption,
        plant_duplicates,
        quantise,
    )

    assert len(cleaning.__all__) == 26 and all(hasattr(cleaning, n) for n in cleaning.__all__)
    submodules = [m.name for m in pkgutil.iter_modules(cleaning.__path__)]
    assert {"duplicates", "corrupt", "labels", "planting"} <= set(submodules)
    assert not set(submodules) & set(cleaning.__all__)   # no name hides a submodule
    for name in submodules:
        module = importlib.import_module(f"{cleaning.__name__}.{name}")
        assert module.__doc__ and module.__doc__.strip(), name
