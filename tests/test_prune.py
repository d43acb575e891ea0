"""Pruning chapter 03's generator: zeros that change nothing, channels that really go."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from aigc_course import kinds
from aigc_course.compress.distill import distill_generator, pixel_loss
from aigc_course.compress.measure import compare_latency, fixed_latents, generator_quality
from aigc_course.compress.prune import (
    channel_scores,
    checkpoint_bytes,
    count_nonzero,
    kept_channels,
    magnitude_prune,
    prunable_weights,
    prune_channels,
    recalibrate_batch_norm,
    sparsity,
    with_generator,
)
from aigc_course.models.gan import DCGAN, DCGANGenerator, GANConfig
from aigc_course.train.gan import save_gan
from aigc_course.utils import count_params


@pytest.fixture(scope="module")
def shipped() -> DCGAN:
    model = kinds.get("gan").load()
    assert isinstance(model, DCGAN)
    return model


def expected_params(c0: int, c1: int, c2: int) -> int:
    """The shipped generator's parameters (latent 32, 10 classes, 16x16 grey) with
    ``(c0, c1, c2)`` channels at 4x4, 8x8 and 16x16, counted layer by layer."""
    embedding = 10 * 32
    project = (32 + 32) * 16 * c0 + 16 * c0 + 2 * 16 * c0          # Linear + BatchNorm1d
    level1 = c0 * c1 * 4 * 4 + c1 + 2 * c1                        # ConvTranspose2d + BN
    level2 = c1 * c2 * 4 * 4 + c2 + 2 * c2
    to_image = c2 * 1 * 3 * 3 + 1
    return embedding + project + level1 + level2 + to_image


def test_channel_pruning_removes_channels(shipped: DCGAN) -> None:
    assert count_params(shipped.generator) == expected_params(64, 32, 16) == 110_177
    small = prune_channels(shipped.generator, 0.5)
    assert small.config.level_channels == (32, 16, 8)
    assert count_params(small) == expected_params(32, 16, 8) == 45_009
    assert [tuple(k.shape) for k in kept_channels(shipped.generator, 0.25)] == [(16,), (8,), (4,)]
    assert count_params(prune_channels(shipped.generator, 0.25)) == expected_params(16, 8, 4)
    full_bytes, _ = checkpoint_bytes(shipped)
    small_bytes, _ = checkpoint_bytes(with_generator(shipped, small))
    # four bytes per float32 removed (the discriminator, unchanged, stays in both files)
    assert full_bytes - small_bytes == pytest.approx(4 * (110_177 - 45_009), rel=0.03)
    assert count_params(shipped.generator) == 110_177                # the original is intact


def test_keep_one_is_the_same_generator(shipped: DCGAN) -> None:
    same = prune_channels(shipped.generator, 1.0)
    z, y = torch.randn(8, 32), torch.arange(8)
    with torch.no_grad():
        assert torch.equal(same(z, y), shipped.generator(z, y))


@pytest.mark.parametrize("upsample", ["transposed", "resize"])
def test_dropping_silent_channels_changes_no_output(upsample: str) -> None:
    """A channel whose batch norm has gamma = beta = 0 outputs ReLU(0) = 0: removing it
    (and its input slice in the next layer) must leave every image as it was."""
    torch.manual_seed(0)
    generator = DCGANGenerator(GANConfig(image_size=16, width=4, num_classes=10,
                                         upsample=upsample))      # channels (16, 8, 4)
    generator.train()
    with torch.no_grad():
        for _ in range(3):                                        # non-trivial running stats
            generator(torch.randn(16, 32), torch.randint(10, (16,)))
        norms = [generator.project[1], generator.blocks[1], generator.blocks[4]]
        top = generator.top
        generator.project[1].weight.copy_(torch.rand(top).repeat_interleave(16) + 0.5)
        for norm in norms[1:]:
            norm.weight.uniform_(0.5, 1.5)
        kept = kept_channels(generator, 0.5, "bn_scale")
        for level, (norm, keep) in enumerate(zip(norms, kept, strict=True)):
            dropped = torch.ones(len(norm.weight) // (16 if level == 0 else 1), dtype=torch.bool)
            dropped[keep] = False
            if level == 0:
                dropped = dropped.repeat_interleave(16)           # 16 positions per channel
            norm.weight[dropped] = 0.0
            norm.bias[dropped] = 0.0
    small = prune_channels(generator, 0.5, "bn_scale")
    assert small.config.level_channels == (8, 4, 2)
    generator.eval()
    z, y = torch.randn(6, 32), torch.arange(6)
    with torch.no_grad():
        assert torch.allclose(small(z, y), generator(z, y), atol=1e-6)


def test_criteria_rank_every_level(shipped: DCGAN) -> None:
    for criterion in ("bn_scale", "l1"):
        scores = channel_scores(shipped.generator, criterion)  # type: ignore[arg-type]
        assert [len(s) for s in scores] == [64, 32, 16]
        assert all((s > 0).all() for s in scores)
    gamma = shipped.generator.blocks[1].weight.abs()
    assert torch.equal(channel_scores(shipped.generator, "bn_scale")[1], gamma)


def test_pruned_checkpoint_round_trips(shipped: DCGAN, tmp_path: Path) -> None:
    pruned = with_generator(shipped, prune_channels(shipped.generator, 0.5))
    path = save_gan(pruned, tmp_path / "pruned.pt", {"keep": 0.5})
    by_kind = kinds.get("gan").load(path)
    kind, by_path = kinds.load_model(path)
    assert kind.name == "gan"
    for loaded in (by_kind, by_path):
        assert loaded.config == pruned.config and loaded.config.level_channels == (32, 16, 8)
        assert count_params(loaded.generator) == expected_params(32, 16, 8)
    images, labels, _ = kinds.draw(by_path, 20, seed=3, device="cpu")
    expected, _, _ = kinds.draw(pruned, 20, seed=3, device="cpu")
    assert images.shape == (20, 1, 16, 16) and torch.equal(images, expected)
    assert labels.tolist() == [i % 10 for i in range(20)]
    with pytest.raises(ValueError, match="only level_channels may differ"):
        with_generator(shipped, DCGANGenerator(GANConfig(level_channels=(8, 4, 2))))


def test_magnitude_pruning_zeroes_but_does_not_shrink(shipped: DCGAN) -> None:
    weights = [getattr(m, n) for m, n in prunable_weights(shipped.generator)]
    total = sum(w.numel() for w in weights)
    pruned = magnitude_prune(shipped.generator, 0.6)
    assert sparsity(pruned) == round(0.6 * total) / total              # exactly as asked
    assert count_nonzero(pruned) == count_nonzero(shipped.generator) - round(0.6 * total)
    assert sparsity(shipped.generator) == 0.0                          # the original is intact
    assert set(pruned.state_dict()) == set(shipped.generator.state_dict())  # masks removed
    assert count_params(pruned) == count_params(shipped.generator)
    dense_bytes, dense_gzip = checkpoint_bytes(shipped)
    sparse_bytes, sparse_gzip = checkpoint_bytes(with_generator(shipped, pruned))
    assert sparse_bytes == dense_bytes                  # zeros take four bytes like any float
    assert sparse_gzip < 0.75 * dense_gzip < dense_bytes  # measured: 0.63x; dense gzip 0.92x
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        magnitude_prune(shipped.generator, 1.0)


def test_channel_pruning_is_faster_magnitude_pruning_is_not(shipped: DCGAN) -> None:
    """Batch 256, one thread, reference and candidate alternated, medians of five rounds.
    Measured: keep 0.5 at 0.30x (0.27-0.40x under contention); 90 % zeros 0.9-1.0x."""
    small = prune_channels(shipped.generator, 0.5).eval()
    zeros = magnitude_prune(shipped.generator, 0.9).eval()
    z, y = fixed_latents(256, 32, 10)
    timed = compare_latency({"dense": lambda: shipped.generator(z, y),
                             "half": lambda: small(z, y), "zeros": lambda: zeros(z, y)},
                            rounds=5)
    assert timed["half"].seconds / timed["dense"].seconds < 0.8
    assert timed["zeros"].seconds / timed["dense"].seconds > 0.7


def test_recalibrating_batch_norm_brings_the_pruned_generator_back(shipped: DCGAN) -> None:
    small = prune_channels(shipped.generator, 0.5, "bn_scale")
    weights = {k: v.clone() for k, v in small.named_parameters()}
    z, y = torch.randn(256, 32, generator=torch.Generator().manual_seed(5)), torch.arange(256) % 10
    with torch.no_grad():
        target = shipped.generator(z, y)
        before = pixel_loss(small(z, y), target).item()
        recalibrate_batch_norm(small, batches=10)
        after = pixel_loss(small(z, y), target).item()
    assert after < 0.6 * before            # measured: 0.55 -> 0.22 (L1 ranking: 0.50 -> 0.44)
    assert all(torch.equal(v, weights[k]) for k, v in small.named_parameters())
    assert not small.training


def test_distillation_lowers_the_loss(shipped: DCGAN) -> None:
    teacher = shipped.generator
    state = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = recalibrate_batch_norm(prune_channels(teacher, 0.25), batches=5)
    losses = distill_generator(student, teacher, steps=40, batch=32, lr=1e-3, seed=0,
                               progress=False)
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    # measured ratio 0.70-0.72 over seeds 0-3 with the teacher shipped since December 2026
    # (0.48-0.49 with the earlier one); a loop that does not learn stays near 1
    assert sum(losses[-5:]) < 0.85 * sum(losses[:5])
    assert not student.training and not teacher.training
    assert all(torch.equal(v, state[k]) for k, v in teacher.state_dict().items())
    again = distill_generator(recalibrate_batch_norm(prune_channels(teacher, 0.25), batches=5),
                              teacher, steps=5, batch=32, lr=1e-3, seed=0, progress=False)
    assert again == losses[:5]                                       # seeded


def test_distillation_takes_any_student() -> None:
    """The student only needs the teacher's ``(z, y)`` signature; an unconditional pair
    is called with ``y=None``."""

    class Tiny(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Linear(4, 64)

        def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
            assert y is None
            return torch.tanh(self.net(z)).view(-1, 1, 8, 8)          # (B, 1, 8, 8)

    torch.manual_seed(0)
    teacher = DCGANGenerator(GANConfig(image_size=8, width=4, latent_dim=4)).eval()
    losses = distill_generator(Tiny(), teacher, steps=30, batch=16, lr=1e-2, seed=1,
                               progress=False, loss="l2")
    assert len(losses) == 30 and losses[-1] < losses[0]
    with pytest.raises(ValueError, match="valid: l1, l2"):
        distill_generator(Tiny(), teacher, steps=1, loss="huber")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latent_dim"):
        distill_generator(Tiny(), Tiny(), steps=1)


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.5])
def test_keep_outside_the_unit_interval_is_refused(shipped: DCGAN, keep: float) -> None:
    with pytest.raises(ValueError, match=r"keep must be a fraction in \(0, 1\]"):
        prune_channels(shipped.generator, keep)


def test_unknown_criterion_is_refused(shipped: DCGAN) -> None:
    with pytest.raises(ValueError, match="valid: l1, bn_scale"):
        prune_channels(shipped.generator, 0.5, "taylor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="valid: l1, bn_scale"):
        channel_scores(shipped.generator, "random")  # type: ignore[arg-type]


@pytest.mark.slow
def test_distilled_half_width_generator_keeps_its_quality(shipped: DCGAN) -> None:
    """keep 0.5 (L1 ranking), batch norm recalibrated, 100 steps of distillation.
    Measured (1,000 samples, seed 0): judge FID 6.5 after 100 steps, 7.6 after 300
    (unpruned 5.7; 747 recalibrated only, 772 as copied), label accuracy 0.985. Bars
    keep about 2x margin."""
    pruned = with_generator(shipped, recalibrate_batch_norm(
        prune_channels(shipped.generator, 0.5)))
    distill_generator(pruned.generator, shipped.generator, 100, 64, 1e-3, seed=0,
                      progress=False)
    quality = generator_quality(pruned.generator, *fixed_latents(1000, 32, 10), dataset="digits")
    assert quality["fid"] < 15 and quality["label_accuracy"] > 0.9
