"""Chapter 07's throughput table: its arithmetic, its rows and the loops it times."""

from __future__ import annotations

import math
import statistics
from typing import Any

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from aigc_course import profiles
from aigc_course.data.registry import load_images
from aigc_course.models.unet import DenoiserConfig
from aigc_course.train import throughput
from aigc_course.train.diffusion import DiffusionTrainConfig, train_diffusion
from aigc_course.train.engine import Engine


@pytest.fixture(scope="module")
def data() -> tuple[torch.Tensor, torch.Tensor, DenoiserConfig]:
    x, y = load_images("digits", "train", image_size=8, max_items=256)
    return x, y, DenoiserConfig(arch="unet", image_size=8, channels=1, width=8,
                                num_classes=10)


def test_unknown_row_lists_the_valid_ones(data: Any) -> None:
    x, y, config = data
    with pytest.raises(ValueError, match=r"'fp8'.*valid: fp32, bf16, fp16, compile"):
        throughput.throughput_table(x, y, config, batch_size=8, steps=1, warmup=1, rounds=1,
                                    rows=["fp32", "fp8"])
    with pytest.raises(ValueError, match="valid: fp32"):
        throughput.run_options("nope")
    with pytest.raises(ValueError, match="warmup"):
        throughput.throughput_table(x, y, config, batch_size=8, steps=1, warmup=0, rounds=1)


def test_rows_rotate_across_rounds() -> None:
    order = throughput.row_order(["a", "b", "c"], 4)
    assert order == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    for k in range(3):                        # every row takes every position once
        assert sorted(o[k] for o in order[:3]) == ["a", "b", "c"]


def test_table_runs_in_rotated_order_and_computes_ratios(data: Any,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """With stand-in step times the arithmetic is exact: a round's median ignores its one
    slow step, so fp32 is 20 ms and bf16 10 ms in both rounds."""
    x, y, config = data
    calls: list[str] = []
    fake = {"fp32": [[0.02, 0.03, 0.02], [0.02, 0.02, 0.04]],
            "bf16": [[0.01, 0.01, 0.01], [0.03, 0.01, 0.01]]}

    def time_row(name: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(name)
        step_s = fake[name][calls.count(name) - 1]
        return {"step_s": step_s, "first_s": 1.0, "loss": [1.0] * 4}

    monkeypatch.setattr(throughput, "time_row", time_row)
    table = throughput.throughput_table(x, y, config, batch_size=8, steps=3, warmup=1,
                                        rounds=2, rows=["bf16"])     # fp32 is added first
    assert calls == ["fp32", "bf16", "bf16", "fp32"]
    assert [r["row"] for r in table] == ["fp32", "bf16"]
    fp32, bf16 = table
    assert fp32["rounds_ms"] == pytest.approx([20.0, 20.0]) and fp32["ratio"] == 1.0
    assert bf16["rounds_ms"] == pytest.approx([10.0, 10.0])
    assert bf16["samples_per_s"] == pytest.approx(800.0)            # 8 images / 10 ms
    assert bf16["ratio"] == pytest.approx(2.0)
    assert bf16["overhead_s"] == pytest.approx(1.0 - 0.01)          # first_s - 1 warm-up step


def conv_dtypes(name: str, data: Any) -> list[torch.dtype]:
    """The first conv's output dtype in steps 2 and 3 of row ``name``'s real loop."""
    x, y, config = data
    seen: list[torch.dtype] = []

    def on_step(engine: Engine) -> None:
        if engine.step == 1:                     # hook the first conv for the next steps
            network: torch.nn.Module = engine.parts["network"]  # type: ignore[assignment]
            conv = next(m for m in network.modules() if isinstance(m, torch.nn.Conv2d))
            conv.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))

    train_diffusion(x, y, config, DiffusionTrainConfig(steps=3, batch_size=8, progress=False),
                    throughput.run_options(name, on_step))
    return seen


@pytest.mark.slow
def test_bf16_row_runs_the_network_in_bf16(data: Any) -> None:
    assert conv_dtypes("bf16", data) == [torch.bfloat16] * 2
    assert conv_dtypes("fp32", data) == [torch.float32] * 2


@pytest.mark.slow
def test_real_table_is_consistent(data: Any) -> None:
    x, y, config = data
    rows = ["fp32", "bf16", "fp16", "channels_last", "loader-1"]
    table = throughput.throughput_table(x, y, config, batch_size=16, steps=2, warmup=1,
                                        rounds=2, rows=rows, threads=1)
    assert [r["row"] for r in table] == rows
    base = table[0]
    assert base["ratio"] == 1.0                                     # exactly: x / x
    for r in table:
        assert len(r["rounds_ms"]) == 2
        assert r["step_ms"] == pytest.approx(statistics.median(r["rounds_ms"]), rel=1e-12)
        assert r["samples_per_s"] == pytest.approx(16 / (r["step_ms"] / 1000), rel=1e-12)
        assert r["ratio"] == pytest.approx(r["samples_per_s"] / base["samples_per_s"],
                                           rel=1e-12)
        assert r["steps"] == 3 and r["finite"] and math.isfinite(r["loss"])
        assert r["first_s"] > 0 and r["note"]
        # the same seed trains the same computation: reduced precision moves the loss
        # (about 1.0 here) by ~1e-3, so 0.05 separates "same run" from "another run"
        assert abs(r["loss"] - base["loss"]) < 0.05, r["row"]
    assert "EMULATED" in table[2]["note"]                           # fp16 on the CPU


@pytest.mark.slow
def test_loader_table_augments_and_times(data: Any) -> None:
    x, y, _ = data
    images = throughput.AugmentedImages(x[:8], y[:8])
    out = torch.stack([images[i][0] for i in range(8)])
    assert out.shape == x[:8].shape and out.min() >= -1 and out.max() <= 1
    assert not torch.equal(out, x[:8])                              # really augmented
    table = throughput.loader_table(x, y, batch_size=16, batches=2, workers=(0, 1),
                                    step_ms=10.0)
    assert [r["row"] for r in table] == ["DataLoader, 0 workers", "DataLoader, 1 workers"]
    for r in table:
        assert r["images_per_s"] == pytest.approx(16 / (r["batch_ms"] / 1000), rel=1e-12)
        assert r["vs_step"] == pytest.approx(10.0 / r["batch_ms"], rel=1e-12)


@pytest.mark.slow
def test_from_profile_uses_the_ddpm_profile() -> None:
    p = profiles.resolve("smoke", cls=profiles.ScaleProfile, throughput_steps=1,
                         throughput_warmup=1, throughput_rounds=1)
    out = throughput.throughput_from_profile(p, rows=["fp32"], loader=False)
    (row,) = out["table"]
    assert out["loader"] == [] and row["steps"] == 2
    # the DDPM smoke profile's batch of 64, not the base profile's or a default
    assert row["samples_per_s"] * row["step_ms"] / 1000 == pytest.approx(64)


def test_plot_has_a_bar_per_row_and_a_line_at_one() -> None:
    rows = [{"label": "fp32 (baseline)", "ratio": 1.0, "samples_per_s": 100.0},
            {"label": "bf16 autocast", "ratio": 1.5, "samples_per_s": 150.0}]
    fig = throughput.plot_throughput(rows)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = [p.get_width() for p in ax.patches if isinstance(p, Rectangle)]
    assert bars == [1.5, 1.0]                                       # top row drawn last
    assert any(np.asarray(line.get_xdata()).tolist() == [1.0, 1.0] for line in ax.lines)
