"""Chapter 07's overfitting and memorisation study (aigc_course.train.memorisation)."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from aigc_course.data.registry import load_images
from aigc_course.diffusion import NoiseSchedule
from aigc_course.metrics.memorisation import memorising_model
from aigc_course.models.unet import DenoiserConfig
from aigc_course.profiles import ScaleProfile, resolve
from aigc_course.train.diffusion import validation_loss
from aigc_course.train.memorisation import (
    SizeStudy,
    balanced_index,
    copy_check,
    cycled,
    memorisation_study,
    nearest_pairs,
    plot_size_study,
    size_study,
)

CONFIG = DenoiserConfig(arch="unet", image_size=8, channels=1, width=8, num_classes=10)


@pytest.fixture(scope="module")
def digits() -> dict[str, torch.Tensor]:
    x, y = load_images("digits", "train")
    val, val_y = load_images("digits", "val")
    test, _ = load_images("digits", "test")
    return {"x": x, "y": y, "val": val, "val_y": val_y, "test": test}


def tiny_study(d: dict[str, torch.Tensor], sizes: tuple[int, ...] = (20, 60),
               seed: int = 0) -> SizeStudy:
    return memorisation_study(d["x"], d["y"], CONFIG, sizes, val=d["val"],
                              val_labels=d["val_y"], test=d["test"], steps=12, batch_size=16,
                              every=5, eval_images=48, samples=24, sample_steps=3, seed=seed)


@pytest.fixture(scope="module")
def study(digits: dict[str, torch.Tensor]) -> SizeStudy:
    return tiny_study(digits)


def test_balanced_index_is_balanced_nested_and_checked() -> None:
    labels = torch.tensor([0] * 10 + [1] * 3 + [2] * 7)[torch.randperm(20)]
    index = balanced_index(labels, 9)
    assert torch.bincount(labels[index], minlength=3).tolist() == [3, 3, 3]
    assert torch.equal(balanced_index(labels, 15)[:9], index)            # nested
    # class 1 runs out after 3 each: the rest is shared by 0 and 2, all indices distinct
    full = balanced_index(labels, 20)
    assert sorted(full.tolist()) == list(range(20))
    for c in range(3):                                  # each class keeps its own order
        mine = full[labels[full] == c]
        assert torch.equal(mine, mine.sort().values)
    with pytest.raises(ValueError, match="1..20"):
        balanced_index(labels, 21)


def test_sizes_beyond_the_data_raise_before_training(digits: dict[str, torch.Tensor]) -> None:
    with pytest.raises(ValueError, match="larger than the 1258 training images"):
        tiny_study(digits, sizes=(20, 5000))
    with pytest.raises(ValueError, match="repeat"):
        tiny_study(digits, sizes=(20, 20))


def test_copy_check_flags_a_memoriser_not_held_out_images(
        digits: dict[str, torch.Tensor]) -> None:
    train, test = digits["x"][:300], digits["test"]
    copies = memorising_model(train, 200, seed=1)
    report = copy_check(copies, train, test)
    # exact training images sit at distance 0, below any positive threshold
    assert report["copy_fraction"] == 1.0
    assert torch.equal(train[report["nearest"]], copies)
    # unseen real digits: the threshold is the test split's 1% quantile, so about 1% of
    # another held-out split falls below it (0.05 allows binomial noise on 270 images)
    held_out = copy_check(digits["val"], train, test)
    assert held_out["copy_fraction"] < 0.05
    assert 0.7 < held_out["median_ratio"] < 1.4      # as far from train as test images are


@pytest.mark.slow
def test_curves_are_recorded_on_the_first_n_images(digits: dict[str, torch.Tensor],
                                                   study: SizeStudy) -> None:
    assert study.sizes == [20, 60]
    schedule = NoiseSchedule.from_name("cosine", 1000)
    for run in study.runs:
        assert run.steps == [5, 10, 12]                  # every 5 steps and the last
        assert len(run.train_loss) == len(run.val_loss) == 3
        assert torch.equal(run.index, balanced_index(digits["y"], run.size))
        x, y = digits["x"][run.index], digits["y"][run.index]
        net = run.model.network
        # the final EMA network is the returned one: the same computation gives the same
        # number (no tolerance beyond float rounding of a reordered sum)
        again = validation_loss(net, schedule, cycled(x, 48), cycled(y, 48), seed=1)
        assert again == pytest.approx(run.train_loss[-1], rel=1e-6)
        other = validation_loss(net, schedule, cycled(digits["x"][-run.size:], 48),
                                cycled(digits["y"][-run.size:], 48), seed=1)
        # another subset (the last N images) under the same draws: even a barely trained
        # network scores it ~2e-4 (relative) apart, 20x the tolerance of the match above
        assert other != pytest.approx(run.train_loss[-1], rel=1e-5)
        val = validation_loss(net, schedule, cycled(digits["val"], 48),
                              cycled(digits["val_y"], 48), seed=1)
        assert val == pytest.approx(run.val_loss[-1], rel=1e-6)
        assert run.gap[-1] == pytest.approx(run.val_loss[-1] - run.train_loss[-1])
        assert run.train_loss[-1] < run.train_loss[0]                   # it trained
        assert run.samples.shape == run.nearest.shape == (24, 1, 8, 8)
    table = study.table
    assert table["N"].tolist() == [20, 60]
    assert table["epochs"].tolist() == pytest.approx([12 * 16 / 20, 12 * 16 / 60])
    assert {"gap", "copy_fraction", "median_nn_ratio"} <= set(table.columns)
    curves = study.curves
    assert len(curves) == 6 and curves["gap"].iloc[-1] == pytest.approx(study.runs[-1].gap[-1])


@pytest.mark.slow
def test_pairs_and_plot(study: SizeStudy) -> None:
    samples, nearest = nearest_pairs(study, n=5)
    run = study.run(20)
    d = torch.linalg.vector_norm((samples - nearest).flatten(1), dim=1).double()
    assert torch.allclose(d, torch.from_numpy(run.report["sample_distances"]).sort().values[:5])
    fig = plot_size_study(study)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    with pytest.raises(KeyError):
        study.run(7)


@pytest.mark.slow
def test_same_seed_same_study(digits: dict[str, torch.Tensor], study: SizeStudy) -> None:
    again = tiny_study(digits, sizes=(20,))
    first = study.run(20)
    assert again.runs[0].train_loss == first.train_loss
    assert again.runs[0].val_loss == first.val_loss
    assert torch.equal(again.runs[0].samples, first.samples)
    other = tiny_study(digits, sizes=(20,), seed=1)
    assert other.runs[0].train_loss != first.train_loss


@pytest.mark.slow
def test_size_study_on_a_dry_run_profile() -> None:
    p = resolve("smoke", cls=ScaleProfile, dry_run=True)
    study = size_study(p)
    assert study.sizes == list(p.memo_sizes)
    assert all(run.steps[-1] == p.memo_steps for run in study.runs)
    assert study.table["copy_fraction"].between(0, 1).all()
