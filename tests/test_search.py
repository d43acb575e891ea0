"""Chapter 07's hyper-parameter search (aigc_course.train.search) on tiny 8x8 digits."""

from __future__ import annotations

import dataclasses
import math
import warnings

import optuna
import pandas as pd
import pytest
import torch

from aigc_course.data.registry import load_images
from aigc_course.diffusion import NoiseSchedule
from aigc_course.models.unet import DenoiserConfig
from aigc_course.train.diffusion import DiffusionTrainConfig, train_diffusion, validation_loss
from aigc_course.train.search import (
    Choice,
    Range,
    SearchResult,
    check_space,
    plot_search,
    search,
)

MODEL = DenoiserConfig(arch="unet", image_size=8, channels=1, width=8, num_classes=10)
SPACE = {"lr": Range(1e-3, 1e-2, log=True), "ema_decay": Choice((0.9, 0.99)),
         "batch_size": Choice((8, 16))}
KW = {"trials": 3, "max_steps": 12, "report_every": 4, "seed": 0, "space": SPACE}


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    x, y = load_images("digits", "train", image_size=8, max_items=256)
    vx, vy = load_images("digits", "val", image_size=8, max_items=64)
    return x, y, vx, vy


@pytest.fixture(scope="module")
def study(data: tuple[torch.Tensor, ...]) -> SearchResult:
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # the notebook fails on any warning
        return search(*data, MODEL, **KW)


def _sampled(result: SearchResult) -> pd.DataFrame:
    return result.trials.drop(columns="seconds")


@pytest.mark.slow
def test_same_seed_same_study_and_no_warnings(data: tuple[torch.Tensor, ...],
                                              study: SearchResult) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = search(*data, MODEL, **KW)
        fig = plot_search(again)
    # CPU training with a seeded sampler is deterministic: equal to the last bit
    pd.testing.assert_frame_equal(_sampled(study), _sampled(again), check_exact=True)
    assert study.curves == again.curves and study.best == again.best
    assert len(fig.axes) >= 2
    other = search(*data, MODEL, **{**KW, "seed": 1})
    assert not _sampled(other)[["lr", "ema_decay"]].equals(_sampled(study)[["lr", "ema_decay"]])


@pytest.mark.slow
def test_equal_samples_budget(study: SearchResult) -> None:
    table = study.trials
    assert list(table.columns[:4]) == ["number", "lr", "ema_decay", "batch_size"]
    assert study.reference_batch == 8
    done = table[table.state == "COMPLETE"]
    assert len(done) >= 1
    # every complete trial sees max_steps * B_ref examples, whatever its batch
    assert (done.examples == 12 * 8).all()
    assert (done.steps == 12 * 8 // done.batch_size).all()
    for number in done.number:
        assert [k for k, _ in study.curves[number]] == [4, 8, 12]


@pytest.mark.slow
def test_values_are_validation_losses(data: tuple[torch.Tensor, ...],
                                      study: SearchResult) -> None:
    x, y, vx, vy = data
    schedule = NoiseSchedule.from_name(study.base.schedule, study.base.T)
    assert study.best_model is not None
    # the same network on the same fixed draws: the same arithmetic, so equal up to float
    # rounding of the sum (none expected; 1e-6 relative leaves room for it)
    direct = validation_loss(study.best_model.network, schedule, vx, vy, seed=0)
    assert direct == pytest.approx(study.best_value, rel=1e-6)
    assert study.curves[study.best_number][-1] == (12, study.best_value)
    row = study.trials.set_index("number").loc[study.best_number]
    assert row.value == study.best_value
    # re-derived: training with the winner's values outside the study gives that loss
    batch = int(row.batch_size)
    config = DiffusionTrainConfig(steps=12 * 8 // batch, batch_size=batch, lr=float(row.lr),
                                  ema_decay=float(row.ema_decay),
                                  warmup=math.ceil(study.base.warmup * 8 / batch), seed=0,
                                  progress=False)
    model, _ = train_diffusion(x, y, MODEL, config)
    # deterministic CPU training: same weights, so the same 1e-6 margin as above
    assert validation_loss(model.network, schedule, vx, vy, seed=0) == pytest.approx(
        study.best_value, rel=1e-6)


@pytest.mark.slow
def test_median_pruner_stops_a_bad_trial_early(data: tuple[torch.Tensor, ...]) -> None:
    # two good trials set the median; the third (lr 1e-6 barely moves) is worse than it
    # at the first report after the pruner's warm-up (max_steps // 4 = 4)
    result = search(*data, MODEL, trials=3, max_steps=16, report_every=4,
                    space={"lr": Range(1e-6, 1e-2, log=True)},
                    base=DiffusionTrainConfig(batch_size=16, warmup=1),
                    enqueue=[{"lr": 3e-3}, {"lr": 5e-3}, {"lr": 1e-6}])
    table = result.trials.set_index("number")
    assert list(table.state) == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert table.loc[2, "steps"] < 16 and table.loc[0, "steps"] == 16
    assert len(result.curves[2]) < len(result.curves[0])
    assert result.best_number in (0, 1)
    assert table.loc[2, "value"] > max(v for _, v in result.curves[0][:len(result.curves[2])])


@pytest.mark.slow
def test_pruning_everything_is_a_clear_error(data: tuple[torch.Tensor, ...]) -> None:
    with pytest.raises(ValueError, match="no trial of 2 completed"):
        search(*data, MODEL, trials=2, max_steps=8, report_every=4, space=SPACE,
               pruner=optuna.pruners.ThresholdPruner(upper=0.0))   # prunes any loss > 0


def test_best_config_keeps_the_examples() -> None:
    result = SearchResult(trials=pd.DataFrame(), curves={}, best={"lr": 4e-3, "ema_decay": 0.99,
                                                                   "batch_size": 32},
                          best_value=0.5, best_number=0, best_model=None,
                          base=DiffusionTrainConfig(), space=SPACE, budget="samples",
                          max_steps=12, reference_batch=8, report_every=4, pruner="",
                          seconds=0.0)
    config = result.best_config(DiffusionTrainConfig(steps=1000, batch_size=128, warmup=100))
    assert (config.lr, config.ema_decay, config.batch_size) == (4e-3, 0.99, 32)
    assert (config.steps, config.warmup) == (4000, 400)   # 1000 * 128 examples, as searched
    steps = dataclasses.replace(result, budget="steps").best_config(
        DiffusionTrainConfig(steps=1000, batch_size=128))
    assert steps.steps == 1000 and steps.batch_size == 32


def test_unknown_or_bad_parameters_are_clear_errors(data: tuple[torch.Tensor, ...]) -> None:
    with pytest.raises(ValueError, match=r"\['learning_rate'\].*valid: lr, ema_decay, "
                                         r"batch_size"):
        search(*data, MODEL, trials=1, max_steps=4, report_every=2,
               space={"learning_rate": Range(1e-4, 1e-2)})
    with pytest.raises(ValueError, match="batch_size takes positive integers"):
        check_space({"batch_size": Choice((8, 12.5))})
    with pytest.raises(ValueError, match="low < high"):
        Range(1e-2, 1e-3)
    with pytest.raises(ValueError, match="must set exactly"):
        search(*data, MODEL, trials=1, max_steps=4, report_every=2, space=SPACE,
               enqueue=[{"lr": 1e-3}])
