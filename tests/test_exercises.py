"""The exercise solutions are package code: tested like the rest."""

import math
from pathlib import Path

import numpy as np
import pytest
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


def test_ch03_non_saturating_loss_matches_the_package_and_stays_finite() -> None:
    from aigc_course.exercises.ch03 import non_saturating_generator_loss
    from aigc_course.losses import g_loss_non_saturating

    logits = torch.tensor([-200.0, -3.0, 0.0, 4.0])
    assert torch.isclose(non_saturating_generator_loss(logits), g_loss_non_saturating(logits))
    assert non_saturating_generator_loss(torch.tensor([-200.0])).item() == 200.0
    assert abs(non_saturating_generator_loss(torch.zeros(3)).item() - math.log(2)) < 1e-6


def test_ch03_discriminator_step_leaves_the_generator_alone() -> None:
    from aigc_course.exercises.ch03 import discriminator_step
    from aigc_course.models.gan import DCGAN, GANConfig

    torch.manual_seed(0)
    gan = DCGAN(GANConfig(image_size=8, latent_dim=8, width=8))
    before = [p.detach().clone() for p in gan.discriminator.parameters()]
    optimiser = torch.optim.Adam(gan.discriminator.parameters(), lr=1e-3)
    real, _ = load_images("digits", "train", image_size=8, max_items=16)
    loss = discriminator_step(gan.generator, gan.discriminator, optimiser, real,
                              gan.latent(16))
    assert math.isfinite(loss) and loss > 0
    assert all(p.grad is None for p in gan.generator.parameters())
    after = list(gan.discriminator.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(after, before, strict=True))


def test_ch03_minibatch_stddev_matches_the_layer() -> None:
    from aigc_course.exercises.ch03 import minibatch_stddev
    from aigc_course.models.gan import MinibatchStd

    x = torch.randn(6, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    out = minibatch_stddev(x)
    assert out.shape == (6, 4, 4, 4) and torch.equal(out[:, :3], x)
    assert torch.allclose(out, MinibatchStd()(x), atol=1e-6)
    assert (minibatch_stddev(x[:1].expand(6, -1, -1, -1))[:, -1] == 0).all()


def _judge_features() -> tuple[np.ndarray, np.ndarray]:
    from aigc_course.metrics import extract, get_extractor

    judge = get_extractor("judge")
    train, _ = load_images("digits", "train")
    test, _ = load_images("digits", "test")
    return (extract(train, judge).double().numpy(), extract(test, judge).double().numpy())


def test_ch08_solutions_match_the_package() -> None:
    from aigc_course.exercises.ch08 import fid_from_features, kid_single, knn_precision
    from aigc_course.metrics import frechet_distance_from_features, precision_recall_from_features
    from aigc_course.metrics.kid import mmd2_unbiased, polynomial_kernel

    real, fake = _judge_features()
    fake_blur = fake * 0.7 + 0.3 * fake.mean(axis=0)      # a shrunk, less varied set
    assert abs(fid_from_features(real, fake) - frechet_distance_from_features(real, fake)) < 1e-3
    assert fid_from_features(real, fake_blur) > fid_from_features(real, fake)
    expected = mmd2_unbiased(polynomial_kernel(real, real), polynomial_kernel(fake, fake),
                             polynomial_kernel(real, fake))
    assert np.isclose(kid_single(real, fake), expected, rtol=1e-9)
    pr = precision_recall_from_features(real, fake_blur, k=3)
    assert abs(knn_precision(real, fake_blur) - pr["precision"]) < 1e-9
    assert abs(knn_precision(fake_blur, real) - pr["recall"]) < 1e-9


def test_ch06_causal_attention_matches_sdpa() -> None:
    from aigc_course.exercises.ch06 import causal_attention

    q, k, v = torch.randn(3, 2, 4, 9, 8).unbind(0)
    reference = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(causal_attention(q, k, v), reference, atol=1e-6, rtol=1e-5)


def test_ch06_top_p_filter_agrees_with_the_sampler() -> None:
    from aigc_course.exercises.ch06 import top_p_filter
    from aigc_course.models.gpt import filter_logits

    logits = torch.randn(50)
    for p in (0.1, 0.5, 0.9):
        ours = top_p_filter(logits.softmax(0), p)
        reference = filter_logits(logits, top_p=p).softmax(0)
        torch.testing.assert_close(ours, reference)


def test_ch06_one_bpe_merge_is_the_tokenizer_first_merge() -> None:
    from aigc_course.exercises.ch06 import one_bpe_merge
    from aigc_course.text.tokenizers import ByteBPE

    ids = list(b"aaabdaaabac")
    pair, merged = one_bpe_merge(ids, 256)
    assert pair == (97, 97) and merged == [256, 97, 98, 100, 256, 97, 98, 97, 99]
    assert ByteBPE.train("aaabdaaabac", 257).merges[0] == pair


def test_ch09_fake_quantize_rows_matches_the_package() -> None:
    import torch

    from aigc_course.compress.quantize import fake_quantize
    from aigc_course.exercises.ch09 import fake_quantize_rows

    w = torch.randn(6, 3, 3, 3, generator=torch.Generator().manual_seed(0))
    for bits in (2, 4, 8):
        assert torch.allclose(fake_quantize_rows(w, bits), fake_quantize(w, bits, "per_channel"),
                              atol=1e-6)


def test_ch09_global_magnitude_masks_match_torch_prune() -> None:
    import torch
    from torch import nn
    from torch.nn.utils import prune

    from aigc_course.exercises.ch09 import global_magnitude_masks

    torch.manual_seed(0)
    layers = [nn.Linear(20, 30), nn.Conv2d(3, 8, 3)]
    masks = global_magnitude_masks([m.weight for m in layers], 0.6)
    prune.global_unstructured([(m, "weight") for m in layers], prune.L1Unstructured, amount=0.6)
    for m, mask in zip(layers, masks, strict=True):
        assert torch.equal(m.weight_mask.bool(), mask)


def test_ch10_psi_by_hand_matches_the_monitor() -> None:
    import torch

    from aigc_course.deploy.drift import psi
    from aigc_course.exercises.ch10 import psi_by_hand

    observed, expected = [30, 0, 5, 65], [25.0, 10.0, 10.0, 55.0]
    assert psi_by_hand(observed, expected) == pytest.approx(
        psi(torch.tensor(observed), torch.tensor(expected)), rel=1e-12)
    assert psi_by_hand(expected, expected) == 0.0
    with pytest.raises(ValueError):
        psi_by_hand([1], [1])


def test_ch10_littles_law() -> None:
    from aigc_course.exercises.ch10 import littles_law_concurrency

    assert littles_law_concurrency(400.0, 40.0) == pytest.approx(16.0)


def test_ch07_warmup_cosine_matches_the_gpt_schedule() -> None:
    from aigc_course.exercises.ch07 import warmup_cosine
    from aigc_course.train.gpt import GPTTrainConfig, learning_rate

    config = GPTTrainConfig(steps=50, warmup=7, lr=3e-3, min_lr_ratio=0.1)
    for step in range(50):
        assert warmup_cosine(step, 50, 7, 3e-3, 3e-4) == pytest.approx(
            learning_rate(step, config), rel=1e-12)
    assert warmup_cosine(49, 50, 7, 3e-3, 3e-4) == pytest.approx(3e-4)


def test_ch07_mean_of_shard_means_is_the_global_mean_only_for_equal_shards() -> None:
    from aigc_course.exercises.ch07 import mean_of_shard_means

    losses = [0.5, 1.0, 2.0, 4.0, 3.0, 1.5]
    assert mean_of_shard_means(losses, 2) == pytest.approx(sum(losses) / 6, rel=1e-12)
    assert mean_of_shard_means(losses, 3) == pytest.approx(sum(losses) / 6, rel=1e-12)
    uneven = losses[:5]                                     # shards of 3 and 2 examples
    assert mean_of_shard_means(uneven, 2) != pytest.approx(sum(uneven) / 5)


def test_ch07_save_atomically_keeps_the_old_file_on_a_failure(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    import os

    from aigc_course.exercises.ch07 import save_atomically

    path = save_atomically(b"old", tmp_path / "state.bin")

    def fail(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_atomically(b"new", path)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["state.bin"]


def test_ch11_green_list_z_is_the_binomial_z_score() -> None:
    from scipy import stats

    from aigc_course.exercises.ch11 import green_list_z

    assert green_list_z(50, 200, 0.25) == pytest.approx(0.0)
    assert green_list_z(80, 200, 0.25) == pytest.approx((80 - 50) / (200 * 0.25 * 0.75) ** 0.5)
    # the normal tail of z against the exact binomial tail at T = 200: 1.3x optimistic at
    # z = 1.96 (0.0250 vs 0.0323), 4.6x at z = 4.9 (4.8e-7 vs 2.2e-6): the binomial's right
    # tail is heavier for gamma < 1/2, so a z threshold's real false-positive rate is larger
    # than the normal's and is measured on clean text
    near = stats.binom.sf(61, 200, 0.25) / stats.norm.sf(green_list_z(62, 200))
    far = stats.binom.sf(79, 200, 0.25) / stats.norm.sf(green_list_z(80, 200))
    assert 1.2 < near < 1.4 and 4 < far < 5
    with pytest.raises(ValueError):
        green_list_z(1, 0)


def test_ch11_clean_images_needed_matches_a_simulation() -> None:
    from aigc_course.exercises.ch11 import clean_images_needed

    n = clean_images_needed(1e-3, 0.3)
    assert n == 11_100                                  # (1 - 1e-3) / (1e-3 * 0.09), rounded up
    rng = np.random.default_rng(0)
    estimates = rng.binomial(n, 1e-3, size=20_000) / n
    assert estimates.std() / 1e-3 == pytest.approx(0.3, rel=0.03)


def test_ch11_break_even_volume() -> None:
    from aigc_course.exercises.ch11 import break_even_volume

    assert break_even_volume(1000.0, 3.0, 1.0) == 500.0
    assert break_even_volume(1000.0, 1.0, 1.0) == float("inf")
