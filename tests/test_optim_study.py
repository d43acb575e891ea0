"""Chapter 07's optimiser / schedule / clipping / EMA study on chapter 06's GPT.

The equations against torch's own implementations: the warm-up + cosine schedule against
``LinearLR`` + ``CosineAnnealingLR`` through ``SequentialLR``, the EMA against
``AveragedModel`` with ``get_ema_multi_avg_fn``, one Adam / AdamW / SGD step against its
closed form. Then the study's behaviour: one change per variant, the EMA run returns the
EMA's weights, the same seed gives the same rows, the summary is numpy's statistics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from aigc_course.profiles import TextProfile, resolve
from aigc_course.train.ema import EMA
from aigc_course.train.engine import RunOptions, build_optimiser
from aigc_course.train.gpt import (
    GPTTrainConfig,
    TextData,
    bits_per_char,
    learning_rate,
    prepare_text,
    token_chars,
)
from aigc_course.train.optim_study import (
    VARIANTS,
    optim_study,
    plot_optim_study,
    study_configs,
    summarise,
    train_variant,
    variant_config,
)

Tensor = torch.Tensor
#: the smallest GPT that still trains: the behaviour tests need seconds, not quality
TINY: dict[str, int] = {"n_layer": 1, "n_embd": 16, "window": 16, "evals": 2}


# --- the schedule -----------------------------------------------------------------------

def torch_schedule(config: GPTTrainConfig) -> list[float]:
    """The learning rate of each step from torch's built-in schedulers.

    Conventions: our warm-up is $\\eta (s+1)/W$, so it starts at $\\eta/W$ (not 0) and
    reaches $\\eta$ at step $W-1$: ``LinearLR(start_factor=1/W, total_iters=W-1)``. The
    cosine starts at $\\eta$ on step $W$ and lands on $\\eta_{min}$ on the *last* step
    $S-1$: ``CosineAnnealingLR(T_max=S-1-W)`` after the milestone $W$. The constant
    schedule is the warm-up alone (``LinearLR`` holds ``end_factor`` after
    ``total_iters``).
    """
    W = min(config.warmup, config.steps - 1)
    optimiser = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=config.lr)
    parts: list[Any] = []
    if W:
        parts.append(LinearLR(optimiser, start_factor=1 / W, end_factor=1.0,
                              total_iters=W - 1))
    if config.schedule == "cosine":
        parts.append(CosineAnnealingLR(optimiser, T_max=config.steps - 1 - W,
                                       eta_min=config.lr * config.min_lr_ratio))
    schedule = SequentialLR(optimiser, parts, milestones=[W]) if len(parts) == 2 else parts[0]
    lrs = []
    for _ in range(config.steps):
        lrs.append(optimiser.param_groups[0]["lr"])
        optimiser.step()
        schedule.step()
    return lrs


@pytest.mark.parametrize(("steps", "warmup", "schedule"), [
    (60, 10, "cosine"), (25, 1, "cosine"), (40, 0, "cosine"), (30, 7, "constant"),
    (12, 3, "constant")])
def test_learning_rate_matches_torch_schedulers(steps: int, warmup: int, schedule: str) -> None:
    config = GPTTrainConfig(steps=steps, warmup=warmup, lr=3e-3, min_lr_ratio=0.1,
                            schedule=schedule)  # type: ignore[arg-type]
    ours = [learning_rate(s, config) for s in range(steps)]
    # 1e-10 relative: torch's cosine is recursive (each lr from the previous one), ours the
    # closed form; they agree to float64 rounding over these few steps (an off-by-one in
    # the warm-up or in T_max moves some step's lr by more than 1%)
    np.testing.assert_allclose(ours, torch_schedule(config), rtol=1e-10, atol=0)
    if schedule == "cosine":
        assert ours[-1] == pytest.approx(config.lr * config.min_lr_ratio, rel=1e-12)


# --- the EMA ----------------------------------------------------------------------------

def jiggle(model: nn.Module, generator: torch.Generator) -> None:
    """Stand-in for an optimiser step: move every parameter a random bit."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.1)


def test_ema_matches_torch_averaged_model_after_its_warm_up() -> None:
    """Our EMA uses $d_k = \\min(d, (1+k)/(10+k))$ on update $k$; torch's a fixed $d$.

    For $d = 0.9$ the warm-up ends at $k = 80$ ($81/90 = d$). Torch's ``AveragedModel``
    is handed our average there (its first ``update_parameters`` copies the model it is
    given) and from then on both must compute $d\\,\\theta_{EMA} + (1-d)\\,\\theta$.
    """
    generator = torch.Generator().manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 3))
    theta0 = [p.detach().clone() for p in model.parameters()]
    d = 0.9
    ours = EMA(model, d)
    jiggle(model, generator)
    ours.update(model)                      # k = 0: d_0 = 1/10, mostly the new weights
    for p_ema, p0, p in zip(ours.model.parameters(), theta0, model.parameters(), strict=True):
        torch.testing.assert_close(p_ema, 0.1 * p0 + 0.9 * p.detach())
    while ours.steps < 80:
        assert min(d, (1 + ours.steps) / (10 + ours.steps)) < d      # still warming up
        jiggle(model, generator)
        ours.update(model)
    averaged = AveragedModel(ours.model, multi_avg_fn=get_ema_multi_avg_fn(d))
    averaged.update_parameters(ours.model)                            # hand over
    for _ in range(50):
        jiggle(model, generator)
        ours.update(model)
        averaged.update_parameters(model)
    for p_ema, p_torch in zip(ours.model.parameters(), averaged.module.parameters(),
                              strict=True):
        # float32 rounding of 50 lerps computed in two code paths (foreach vs per tensor)
        torch.testing.assert_close(p_ema, p_torch, rtol=1e-6, atol=1e-6)
    raw = torch.cat([p.detach().flatten() for p in model.parameters()])
    smooth = torch.cat([p.flatten() for p in ours.model.parameters()])
    assert (raw - smooth).abs().max() > 0.05       # an average, not a copy of the last step


# --- one optimiser step -------------------------------------------------------------------

THETA = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
GRAD = torch.tensor([0.3, 0.1, -0.2, -1e-3], dtype=torch.float64)
BIAS, BIAS_GRAD = torch.tensor([0.7], dtype=torch.float64), torch.tensor([-0.4],
                                                                           dtype=torch.float64)


def one_step(name: str, lr: float, decay: float, steps: int = 1) -> tuple[Tensor, Tensor]:
    """``steps`` steps of ``build_optimiser(name)`` with constant gradients; groups as
    :func:`~aigc_course.train.gpt.fit`'s (decay on the matrix, none on the bias)."""
    w, b = nn.Parameter(THETA.clone()), nn.Parameter(BIAS.clone())
    optimiser = build_optimiser(name, [{"params": [w], "weight_decay": decay},  # type: ignore[arg-type]
                                       {"params": [b], "weight_decay": 0.0}],
                                lr, betas=(0.9, 0.99), momentum=0.9)
    for _ in range(steps):
        w.grad, b.grad = GRAD.clone(), BIAS_GRAD.clone()
        optimiser.step()
    return w.detach(), b.detach()



def test_adamw_and_adam_differ_exactly_by_the_decoupled_decay() -> None:
    """Step 1 of Adam has $\\hat m = g$, $\\sqrt{\\hat v} = |g|$ (bias-corrected), so
    Adam: $\\theta - \\eta\\,g'/(|g'| + \\epsilon)$ with $g' = g + \\lambda\\theta$ (coupled);
    AdamW: $\\theta(1 - \\eta\\lambda) - \\eta\\,g/(|g| + \\epsilon)$ (decoupled)."""
    lr, decay, eps = 0.01, 0.1, 1e-8
    adam_w, adam_b = one_step("adam", lr, decay)
    adamw_w, adamw_b = one_step("adamw", lr, decay)
    coupled = GRAD + decay * THETA
    # float64: the closed forms agree to rounding (a missing bias correction is off by 10x)
    torch.testing.assert_close(adam_w, THETA - lr * coupled / (coupled.abs() + eps),
                               rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(adamw_w, THETA * (1 - lr * decay) - lr * GRAD / (GRAD.abs() + eps),
                               rtol=1e-12, atol=1e-12)
    # the decoupled decay is the whole difference to undecayed AdamW: -eta lambda theta
    undecayed, _ = one_step("adamw", lr, 0.0)
    torch.testing.assert_close(adamw_w - undecayed, -lr * decay * THETA, rtol=1e-10, atol=1e-14)
    # without decay, and in the group without it, the two are the same optimiser
    torch.testing.assert_close(one_step("adam", lr, 0.0)[0], undecayed, rtol=0, atol=0)
    torch.testing.assert_close(adam_b, adamw_b, rtol=0, atol=0)
    # coupled, the decay term flips the 4th coordinate's step (its own gradient is tiny)
    assert adam_w[3] < THETA[3] < adamw_w[3]


def test_sgd_momentum_matches_the_heavy_ball_recursion() -> None:
    """$v_1 = g + \\lambda\\theta_0$, $\\theta_1 = \\theta_0 - \\eta v_1$;
    $v_2 = \\mu v_1 + g + \\lambda\\theta_1$, $\\theta_2 = \\theta_1 - \\eta v_2$."""
    lr, decay, mu = 0.1, 0.1, 0.9
    v1 = GRAD + decay * THETA
    theta1 = THETA - lr * v1
    v2 = mu * v1 + GRAD + decay * theta1
    w, _ = one_step("sgd", lr, decay, steps=2)
    torch.testing.assert_close(w, theta1 - lr * v2, rtol=1e-12, atol=1e-12)  # float64 rounding


# --- the study --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def text() -> tuple[TextProfile, TextData]:
    p = resolve("smoke", cls=TextProfile)
    return p, prepare_text(p.dataset, p.tokenizer, p.bpe_vocab)


def test_each_variant_changes_only_its_own_knobs() -> None:
    base = GPTTrainConfig(steps=100, warmup=10)
    expected = {"recipe": {}, "adam": {"optimizer": "adam"},
                "sgd": {"optimizer": "sgd", "lr": 0.5},
                "constant": {"schedule": "constant", "warmup": 0},
                "no_clip": {"grad_clip": 0.0}, "ema": {"ema_decay": 0.9},
                "constant_ema": {"schedule": "constant", "warmup": 0, "ema_decay": 0.9}}
    assert set(expected) == set(VARIANTS)
    for name, changes in expected.items():
        config = variant_config(name, base, sgd_lr=0.5, ema_decay=0.9)
        diff = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
                if getattr(config, f.name) != getattr(base, f.name)}
        assert diff == changes, name


def test_unknown_variants_are_refused_with_the_valid_names(
        text: tuple[TextProfile, TextData]) -> None:
    p, data = text
    with pytest.raises(ValueError, match="'lion'.*valid: recipe, adam, sgd, constant"):
        variant_config("lion", GPTTrainConfig())
    with pytest.raises(ValueError, match="'adamx'.*valid: recipe, adam"):
        optim_study(data, p, 5, variants=["recipe", "adamx"])


@pytest.mark.slow
def test_ema_variant_returns_the_ema_weights(text: tuple[TextProfile, TextData]) -> None:
    p, data = text
    model_config, base = study_configs(p, data.tokenizer.vocab_size, 15, **TINY)
    config = variant_config("ema", base, ema_decay=0.8)
    seen: dict[str, dict[str, Tensor]] = {}

    def watch(engine: Any) -> None:
        if engine.step == config.steps:
            seen["raw"] = {k: v.clone() for k, v in engine.parts["model"].state_dict().items()}
            seen["ema"] = {k: v.clone() for k, v in
                           engine.parts["ema"].model.state_dict().items()}

    lm, row = train_variant(data, model_config, config, "ema", run=RunOptions(on_step=watch))
    weights = lm.gpt.state_dict()
    for key, value in weights.items():
        torch.testing.assert_close(value, seen["ema"][key], rtol=0, atol=0)
    gap = max(float((seen["raw"][k] - v).abs().max()) for k, v in weights.items())
    # the raw weights were something else: Adam moves a weight by about lr = 3e-3 a step
    # and the average lags a few steps behind (a copy of the raw weights would give 0)
    assert gap > 2e-4
    scored = bits_per_char(lm.gpt, data.val, token_chars(data.tokenizer),
                           max_tokens=config.eval_tokens, window=config.window)
    assert row["val_bpc"] == pytest.approx(scored, abs=1e-9)   # the same sums, same order
    assert row["label"].endswith("(decay 0.8)")


@pytest.mark.slow
def test_study_is_deterministic_and_picks_sgd_lr_on_seed_0(
        text: tuple[TextProfile, TextData]) -> None:
    p, data = text

    def study() -> list[dict[str, Any]]:
        return optim_study(data, p, 8, seeds=(0, 1), variants=("recipe", "sgd"),
                           sgd_grid=(0.05, 0.5), **TINY)

    first, second = study(), study()
    drop = {"seconds"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in first] == \
           [{k: v for k, v in r.items() if k not in drop} for r in second]
    assert [(r["variant"], r["seed"]) for r in first] == [
        ("recipe", 0), ("recipe", 1), ("sgd", 0), ("sgd", 1)]
    assert first[0]["val_bpc"] != first[1]["val_bpc"]          # the seed matters
    sgd = [r for r in first if r["variant"] == "sgd"]
    grid = sgd[0]["sgd_grid"]
    assert set(grid) == {0.05, 0.5}
    assert sgd[0]["lr"] == sgd[1]["lr"] == min(grid, key=grid.__getitem__)
    assert sgd[0]["val_bpc"] == grid[sgd[0]["lr"]]            # the seed-0 grid run is reused
    assert len(first[0]["val_curve"]) == len(first[0]["val_step"]) == 2
    assert first[0]["val_step"][-1] == 8


def fake_rows() -> list[dict[str, Any]]:
    rng = np.random.default_rng(0)
    rows = []
    for name, seeds in (("recipe", (0, 1, 2)), ("adam", (0, 1, 2)), ("sgd", (0, 1, 2, 3)),
                        ("ema", (5,))):
        for seed in seeds:
            rows.append({"variant": name, "label": VARIANTS[name], "seed": seed,
                         "val_bpc": float(rng.normal(3, 0.2)), "train_loss": 1.0,
                         "seconds": 2.0, "val_step": [5, 10],
                         "val_curve": [float(rng.normal(4, 0.2)), 3.0]})
    return rows


def test_summarise_is_numpys_statistics() -> None:
    rows = fake_rows()
    table = {s["variant"]: s for s in summarise(rows)}
    assert list(table) == ["recipe", "adam", "sgd", "ema"]

    def bpc(name: str) -> np.ndarray:
        return np.array([r["val_bpc"] for r in rows if r["variant"] == name])

    for name in ("recipe", "adam", "sgd"):
        assert table[name]["mean"] == pytest.approx(np.mean(bpc(name)), rel=1e-12)
        assert table[name]["std"] == pytest.approx(np.std(bpc(name), ddof=1), rel=1e-12)
        assert table[name]["diff"] == pytest.approx(np.mean(bpc(name)) - np.mean(bpc("recipe")),
                                                    rel=1e-12, abs=1e-15)
    paired = bpc("adam") - bpc("recipe")          # same seeds: per-seed differences
    assert table["adam"]["paired"]
    assert table["adam"]["diff_se"] == pytest.approx(np.std(paired, ddof=1) / math.sqrt(3),
                                                     rel=1e-12)
    assert not table["sgd"]["paired"]             # seed 3 has no recipe run: unpaired
    assert table["sgd"]["diff_se"] == pytest.approx(
        math.sqrt(np.var(bpc("sgd"), ddof=1) / 4 + np.var(bpc("recipe"), ddof=1) / 3), rel=1e-12)
    assert table["recipe"]["diff"] == 0 and table["recipe"]["diff_se"] == 0
    assert math.isnan(table["ema"]["std"]) and math.isnan(table["ema"]["diff_se"])
    with pytest.raises(ValueError, match="no rows"):
        summarise([])


def test_plot_shows_every_variant() -> None:
    fig = plot_optim_study(fake_rows())
    assert isinstance(fig, Figure)
    curves, bars = fig.axes
    assert len(curves.get_legend().get_texts()) == 4
    assert [t.get_text() for t in bars.get_xticklabels()] == ["recipe", "adam", "sgd", "ema"]
