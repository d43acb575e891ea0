"""The shared training engine: exact resume for every kind, atomic states, precision, clipping,
sharding and the refusals (in process; the killed and data-parallel runs are in
``test_training_processes.py``)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from aigc_course.data import load_images
from aigc_course.models.gan import GANConfig
from aigc_course.models.gpt import GPTConfig
from aigc_course.models.unet import DenoiserConfig
from aigc_course.models.vae import VAEConfig
from aigc_course.train.diffusion import DiffusionTrainConfig, train_diffusion
from aigc_course.train.engine import (
    Engine,
    RunOptions,
    build_optimiser,
    fingerprint,
    latest_state,
    state_files,
)
from aigc_course.train.gan import GANTrainConfig, train_gan
from aigc_course.train.gpt import GPTTrainConfig, prepare_text, train_gpt
from aigc_course.train.vae import VAETrainConfig, train_vae
from aigc_course.utils import num_threads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def digits8() -> tuple[torch.Tensor, torch.Tensor]:
    return load_images("digits", "train", image_size=8, max_items=128)


def _ddpm(x: torch.Tensor, y: torch.Tensor, run: RunOptions | None, steps: int = 12) -> Any:
    config = DiffusionTrainConfig(steps=steps, batch_size=8, warmup=4, progress=False)
    model_config = DenoiserConfig(arch="unet", image_size=8, channels=1, width=8,
                                  num_classes=10)
    return train_diffusion(x, y, model_config, config, run)


def _gan(x: torch.Tensor, y: torch.Tensor, run: RunOptions | None) -> Any:
    return train_gan(x, y, GANConfig(image_size=8, width=4, latent_dim=4, num_classes=10),
                     GANTrainConfig(steps=12, batch_size=8, progress=False), run=run)


def _vae(x: torch.Tensor, y: torch.Tensor, run: RunOptions | None) -> Any:
    return train_vae(x, None, VAEConfig(image_size=8, latent_dim=3, width=4),
                     VAETrainConfig(steps=12, batch_size=8, progress=False), run)


_TEXT: dict[str, Any] = {}


def _gpt(x: torch.Tensor, y: torch.Tensor, run: RunOptions | None) -> Any:
    data = _TEXT.setdefault("data", prepare_text("pydoc"))
    config = GPTTrainConfig(steps=12, batch_size=4, warmup=3, eval_every=6, eval_tokens=256,
                            ema_decay=0.9, progress=False)
    model_config = GPTConfig(vocab_size=data.tokenizer.vocab_size, block_size=16, n_layer=1,
                             n_head=2, n_embd=16)
    lm, history = train_gpt(data, model_config, config, run)
    return lm.gpt, history


def _weights(model: Any) -> dict[str, torch.Tensor]:
    network = getattr(model, "network", model)
    return {k: v.clone() for k, v in network.state_dict().items()}


@pytest.mark.parametrize("train", [_ddpm, _gan, _vae, _gpt], ids=["ddpm", "gan", "vae", "gpt"])
def test_every_kind_resumes_bit_identically(train: Any, tmp_path: Path,
                                            digits8: tuple[torch.Tensor, torch.Tensor]
                                            ) -> None:
    """Interrupted after step 8 (the newer states lost), resumed, it ends where an
    uninterrupted run ends: every weight, and every history value, equal to the bit."""
    x, y = digits8
    with num_threads(1):
        reference, ref_history = train(x, y, None)
        folder = tmp_path / "states"
        train(x, y, RunOptions(checkpoint_dir=str(folder), checkpoint_every=4, keep=3))
        assert [p.name for p in state_files(folder)] == [
            "step-00000012.pt", "step-00000008.pt", "step-00000004.pt"]
        (folder / "step-00000012.pt").unlink()                   # killed after step 8
        resumed, history = train(x, y, RunOptions(checkpoint_dir=str(folder),
                                                  checkpoint_every=4, resume=True))
    a, b = _weights(reference), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a), "resumed weights differ"
    numeric = {k: v for k, v in ref_history.items() if k not in ("seconds", "val_seconds")}
    assert {k: history[k] for k in numeric} == numeric


def test_a_truncated_state_is_skipped_for_the_previous_good_one(
        tmp_path: Path, digits8: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits8
    folder = tmp_path / "states"
    with num_threads(1):
        reference, _ = _ddpm(x, y, None)
        _ddpm(x, y, RunOptions(checkpoint_dir=str(folder), checkpoint_every=4, keep=3))
        newest = folder / "step-00000012.pt"
        newest.write_bytes(newest.read_bytes()[:2000])            # a copy cut short
        (folder / ".step-00000012.abc123.pt").write_bytes(b"half")  # a killed save's scratch
        with pytest.warns(RuntimeWarning, match="skipping step-00000012.pt.*truncated"):
            resumed, _ = _ddpm(x, y, RunOptions(checkpoint_dir=str(folder), resume=True))
    assert not (folder / ".step-00000012.abc123.pt").exists()
    a, b = _weights(reference), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_another_runs_state_and_a_foreign_file(
        tmp_path: Path, digits8: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = digits8
    folder = tmp_path / "states"
    _ddpm(x, y, RunOptions(checkpoint_dir=str(folder)), steps=4)
    with pytest.raises(ValueError, match=r"another run .*config\.steps"):
        _ddpm(x, y, RunOptions(checkpoint_dir=str(folder), resume=True), steps=6)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    torch.save({"weights": torch.zeros(2)}, foreign / "step-00000004.pt")
    with pytest.warns(RuntimeWarning, match="not a training state"):
        assert latest_state(foreign) == (None, None)
    with pytest.raises(ValueError, match="resume needs a checkpoint_dir"):
        RunOptions(resume=True)
    with pytest.raises(ValueError, match="unknown precision 'fp8'; valid: fp32, bf16, fp16"):
        RunOptions(precision="fp8")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown optimiser 'lion'; valid: sgd, adam, adamw"):
        build_optimiser("lion", [{"params": [nn.Parameter(torch.zeros(1))]}], 0.1)  # type: ignore[arg-type]


def test_the_state_holds_every_generator(tmp_path: Path) -> None:
    """Python's, NumPy's, torch's and the loop's generator come back as they were saved."""
    generator = torch.Generator().manual_seed(3)
    net = nn.Linear(2, 2)
    engine = Engine(RunOptions(checkpoint_dir=str(tmp_path)), device="cpu",
                    generator=generator, fingerprint={"run": 1})
    engine.track({"loss": [1.0]}, net=net)
    engine.save()
    expected = (random.random(), np.random.rand(), torch.rand(1).item(),  # noqa: NPY002
                torch.rand(1, generator=generator).item())
    random.random(), np.random.rand(), torch.rand(3)                       # noqa: NPY002
    engine.resume()
    got = (random.random(), np.random.rand(), torch.rand(1).item(),       # noqa: NPY002
           torch.rand(1, generator=generator).item())
    assert got == expected


def test_bf16_autocast_runs_the_network_in_bf16_and_keeps_fp32_weights() -> None:
    net = nn.Conv2d(1, 4, 3)
    engine = Engine(RunOptions(precision="bf16"), device="cpu",
                    generator=torch.Generator(), fingerprint={})
    with engine.autocast():
        out = net(torch.randn(2, 1, 8, 8))
    assert out.dtype == torch.bfloat16 and net.weight.dtype == torch.float32


def test_fp16_scaler_unscales_before_clipping() -> None:
    """With the scaler on, the clipped norm is the true gradient's (not the scaled one's)
    and the step is the same as an unscaled fp32 step of the same gradient."""
    torch.manual_seed(0)
    a, b = nn.Linear(4, 1), nn.Linear(4, 1)
    b.load_state_dict(a.state_dict())
    x = torch.randn(8, 4)
    norms = []
    for net, precision in ((a, "fp32"), (b, "fp16")):
        opt = torch.optim.SGD(net.parameters(), lr=0.1)
        engine = Engine(RunOptions(precision=precision), device="cpu",  # type: ignore[arg-type]
                        generator=torch.Generator(), fingerprint={})
        loss = net(x).pow(2).mean() * 100                  # a large gradient, clipped to 1
        norms.append(engine.backward(loss, opt, clip=1.0))
    assert engine.scaler.get_scale() > 1                  # fp16: the loss was scaled
    assert norms[0] == pytest.approx(norms[1], rel=1e-5) and norms[0] > 1
    # rel 1e-5: the same float32 gradient, divided and multiplied by a power of two
    assert torch.allclose(a.weight, b.weight, rtol=1e-5, atol=1e-7)


def test_shard_splits_the_global_batch_and_refuses_a_remainder(monkeypatch: Any) -> None:
    monkeypatch.setenv("WORLD_SIZE", "1")
    engine = Engine(None, device="cpu", generator=torch.Generator(), fingerprint={})
    x = torch.arange(8)
    assert engine.shard(x) is x
    # a pretend rank 1 of 2 (no process group is needed to slice)
    object.__setattr__(engine, "ranks", type(engine.ranks)(rank=1, world_size=2))
    a, none = engine.shard(x, None)
    assert a.tolist() == [4, 5, 6, 7] and none is None
    with pytest.raises(ValueError, match="global batch 7 does not divide by 2 ranks"):
        engine.shard(torch.arange(7))


def test_fingerprint_ignores_how_a_run_executes() -> None:
    a = fingerprint(DiffusionTrainConfig(progress=True, device="cpu"), DenoiserConfig(),
                    torch.zeros(5, 1, 8, 8))
    b = fingerprint(DiffusionTrainConfig(progress=False, device="cuda"), DenoiserConfig(),
                    torch.zeros(5, 1, 8, 8))
    assert a == b and a["config.lr"] == 2e-3 and a["data.shape"] == [5, 1, 8, 8]
    assert a != fingerprint(DiffusionTrainConfig(lr=1e-3), DenoiserConfig(),
                            torch.zeros(5, 1, 8, 8))


def test_compile_and_channels_last_wrap_the_forward_but_save_the_original(
        monkeypatch: Any, tmp_path: Path) -> None:
    """``compile`` hands the network to ``torch.compile`` (stubbed here: compiling takes
    minutes on 2 cores) and the loop calls the wrapper; the state holds the original's keys
    (no ``_orig_mod.`` prefix), and ``channels_last`` converts weights and inputs."""
    calls = []

    def fake_compile(module: nn.Module) -> nn.Module:
        calls.append(module)
        wrapper = nn.Module()
        wrapper._orig_mod = module  # what torch.compile's OptimizedModule holds
        wrapper.forward = module.forward  # type: ignore[method-assign]
        return wrapper

    monkeypatch.setattr(torch, "compile", fake_compile)
    net = nn.Conv2d(2, 4, 3)
    engine = Engine(RunOptions(compile=True, channels_last=True,
                               checkpoint_dir=str(tmp_path)), device="cpu",
                    generator=torch.Generator(), fingerprint={})
    forward = engine.prepare(net)
    assert calls == [net] and forward is not net
    assert net.weight.is_contiguous(memory_format=torch.channels_last)
    x = engine.inputs(torch.randn(1, 2, 5, 5))
    assert x.is_contiguous(memory_format=torch.channels_last)
    engine.track(net=net)
    engine.save()
    _, state = latest_state(tmp_path)
    assert state is not None and set(state["parts"]["net"]) == {"weight", "bias"}
