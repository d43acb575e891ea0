"""The exercise solutions are package code: tested like the rest."""

import torch

from aigc_course.data import load_images, split_indices
from aigc_course.exercises.ch01 import average_hash, cross_split_duplicates, split_report


def test_average_hash_bits() -> None:
    images = torch.full((2, 1, 8, 8), -1.0)
    images[0, :, :4] = 1.0                                # top half bright
    images[1, :, :, :4] = 1.0                             # left half bright
    hashes = average_hash(images)
    assert hashes.shape == (2, 64) and hashes.dtype == torch.bool
    assert hashes[0].view(8, 8)[:4].all() and not hashes[0].view(8, 8)[4:].any()
    assert hashes[1].view(8, 8)[:, :4].all()
    # Brightness and contrast changes keep every bit.
    assert torch.equal(average_hash(images * 0.5 + 0.1), hashes)


def test_split_report_catches_overlap_missing_and_imbalance() -> None:
    _, labels = load_images("digits", "all")
    good = {s: split_indices(labels, s) for s in ("train", "val", "test")}
    report = split_report(labels, good)
    assert report["overlap"] == 0 and report["missing"] == 0 and report["max_share_gap"] < 0.01
    bad = {"train": torch.arange(0, 1000), "test": torch.arange(900, 1700)}
    report = split_report(labels, bad)
    assert report["overlap"] == 100 and report["missing"] == 97
    ordered = labels.argsort()
    report = split_report(labels, {"a": ordered[:900], "b": ordered[900:]})
    assert report["max_share_gap"] > 0.05


def test_cross_split_duplicates_finds_planted_copies() -> None:
    train, _ = load_images("digits", "train")
    test, _ = load_images("digits", "test")
    leaked = torch.cat([test, train[:5] * 0.9])           # dimmed copies keep their hash
    found = set(cross_split_duplicates(train, leaked).tolist())
    assert set(range(len(test), len(test) + 5)) <= found
