"""The diffusion training loop, EMA, checkpoints and the ``train ddpm`` / ``sample`` CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aigc_course.checkpoint import read_checkpoint
from aigc_course.cli import MODEL_KINDS, main
from aigc_course.models.unet import DenoiserConfig
from aigc_course.profiles import DiffusionProfile, resolve
from aigc_course.train.diffusion import (
    SHIPPED,
    DiffusionTrainConfig,
    load_diffusion,
    save_diffusion,
    train_diffusion,
)
from aigc_course.train.ema import EMA


def test_ema_averages_and_warms_up() -> None:
    net = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.zeros_(net.weight)
    ema = EMA(net, decay=0.9)
    with torch.no_grad():
        net.weight.fill_(1.0)
    ema.update(net)                          # warm-up decay min(0.9, 1/10) = 0.1
    assert ema.model.weight.item() == pytest.approx(0.9)
    ema.update(net)                          # min(0.9, 2/11)
    assert ema.model.weight.item() == pytest.approx(0.9 + 0.1 * 9 / 11)
    with pytest.raises(ValueError, match="decay"):
        EMA(net, 1.0)


def test_profile_presets() -> None:
    assert resolve("smoke", cls=DiffusionProfile).use_shipped is False
    cpu = resolve("cpu", cls=DiffusionProfile)
    assert cpu.image_size == 16 and cpu.use_shipped and cpu.width == 16


def test_short_training_lowers_the_loss_and_round_trips(tmp_path: Path) -> None:
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    y = torch.arange(64) % 10
    model, history = train_diffusion(
        x, y, DenoiserConfig(arch="unet", image_size=8, width=8, num_classes=10),
        DiffusionTrainConfig(steps=30, batch_size=16, warmup=5, progress=False))
    assert len(history["loss"]) == 30 and history["loss"][-1] < history["loss"][0]
    path = save_diffusion(model, tmp_path / "m.pt")
    loaded = load_diffusion(path)
    a = model.sample(4, steps=5, guidance=1.0, y=torch.arange(4),
                     generator=torch.Generator().manual_seed(3))
    b = loaded.sample(4, steps=5, guidance=1.0, y=torch.arange(4),
                      generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (4, 1, 8, 8) and a.abs().max() <= 1 + 1e-5
    with pytest.raises(ValueError, match="needs labels"):
        train_diffusion(x, None, DenoiserConfig(arch="mlp", image_size=8, num_classes=10))


def test_shipped_checkpoint() -> None:
    checkpoint = read_checkpoint(SHIPPED, "ddpm")
    assert checkpoint["config"]["model"]["image_size"] == 16
    assert SHIPPED.stat().st_size < 1_000_000
    model = load_diffusion()
    assert model.conditional


def test_cli_train_and_sample_ddpm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert MODEL_KINDS["ddpm"] == "aigc_course.train.diffusion"
    ckpt, out = tmp_path / "d.pt", tmp_path / "s.npz"
    unconditional = tmp_path / "u.pt"
    assert main(["train", "ddpm", "--profile", "smoke", "--steps", "2",
                 "--out", str(unconditional)]) == 0
    capsys.readouterr()
    assert main(["sample", str(unconditional), "--n", "2", "--steps", "3", "--guidance", "2",
                 "--out", str(out)]) == 2
    assert "--guidance needs a class-conditional model" in capsys.readouterr().err
    assert main(["train", "ddpm", "--profile", "smoke", "--conditional", "--steps", "3",
                 "--out", str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["sample", str(ckpt), "--n", "6", "--steps", "4", "--guidance", "2",
                 "--label", "7", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "ddpm"
    data = np.load(out)
    assert data["images"].shape == (6, 1, 8, 8) and (data["labels"] == 7).all()
    assert main(["sample", str(ckpt), "--n", "2", "--steps", "0", "--out", str(out)]) == 2
    assert "--steps must be in" in capsys.readouterr().err


def test_steps_option_is_refused_for_a_vae(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    vae = tmp_path / "v.pt"
    assert main(["train", "vae", "--profile", "smoke", "--steps", "2", "--out", str(vae)]) == 0
    capsys.readouterr()
    assert main(["sample", str(vae), "--n", "2", "--steps", "5",
                 "--out", str(tmp_path / "v.npz")]) == 2
    assert "do not apply" in capsys.readouterr().err
