"""The package's shape: no public name shadows a module, training leaves global state
alone, checkpoint writes are atomic. (The import direction is checked by ``lint-imports``
in ``make test``; its contracts are in pyproject.toml.)"""

from __future__ import annotations

import importlib
import pkgutil
import types
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

import aigc_course
from aigc_course.checkpoint import read_checkpoint, save_checkpoint


def _packages() -> list[types.ModuleType]:
    found = [aigc_course]
    for info in pkgutil.walk_packages(aigc_course.__path__, "aigc_course."):
        if info.ispkg:
            found.append(importlib.import_module(info.name))
    return found


@pytest.mark.parametrize("package", _packages(), ids=lambda p: p.__name__)
def test_no_public_name_shadows_a_submodule(package: types.ModuleType) -> None:
    """``aigc_course.metrics.kid`` is the module ``kid``, never a function of that name."""
    for info in pkgutil.iter_modules(package.__path__):
        if info.name == "__main__":                 # runs the command line when imported
            continue
        importlib.import_module(f"{package.__name__}.{info.name}")
        value = getattr(package, info.name)
        assert isinstance(value, types.ModuleType), (
            f"{package.__name__}.{info.name} is a {type(value).__name__}, not the submodule")


def test_metrics_names_are_the_modules_and_the_functions() -> None:
    from aigc_course import metrics

    assert callable(metrics.kid.polynomial_kernel) and callable(metrics.kid.mmd2_unbiased)
    assert callable(metrics.kernel_inception_distance) and callable(metrics.evaluate)
    assert metrics.evaluate.__module__ == "aigc_course.metrics.scores"


# --- training functions leave global state alone -------------------------------------------

def _tiny_runs() -> dict[str, Callable[[], object]]:
    from aigc_course.metrics import judge
    from aigc_course.models.gan import GANConfig
    from aigc_course.models.unet import DenoiserConfig
    from aigc_course.models.vae import VAEConfig
    from aigc_course.train import diffusion, gan, toy2d, vae

    x = torch.rand(32, 1, 8, 8) * 2 - 1
    y = torch.arange(32) % 10
    points = torch.randn(64, 2)
    toy = toy2d.ToyTrainConfig(steps=2, batch_size=16, progress=False)
    return {
        "train_gan": lambda: gan.train_gan(x, y, GANConfig(image_size=8, width=4, latent_dim=4,
                                                           num_classes=10),
                                           gan.GANTrainConfig(steps=2, batch_size=8,
                                                              progress=False)),
        "train_vae": lambda: vae.train_vae(x, None, VAEConfig(image_size=8, width=4,
                                                              latent_dim=2),
                                           vae.VAETrainConfig(steps=2, batch_size=8,
                                                              progress=False)),
        "train_diffusion": lambda: diffusion.train_diffusion(
            x, y, DenoiserConfig(arch="mlp", image_size=8, hidden=16, num_classes=10),
            diffusion.DiffusionTrainConfig(steps=2, batch_size=8, progress=False)),
        "train_judge": lambda: judge.train_judge(epochs=1, max_train=64, progress=False),
        "toy2d.train_gan": lambda: toy2d.train_gan(points, toy),
        "toy2d.train_vae": lambda: toy2d.train_vae(points, toy),
        "toy2d.train_diffusion": lambda: toy2d.train_diffusion(points, toy),
    }


@pytest.mark.parametrize("name", list(_tiny_runs()))
def test_training_leaves_global_state_alone(name: str) -> None:
    run = _tiny_runs()[name]
    before_flag = torch.are_deterministic_algorithms_enabled()
    try:
        for flag in (False, True):
            torch.use_deterministic_algorithms(flag, warn_only=True)
            torch.manual_seed(1234)
            state = torch.random.get_rng_state()
            first = run()
            assert torch.are_deterministic_algorithms_enabled() is flag, name
            assert torch.equal(torch.random.get_rng_state(), state), name
        torch.manual_seed(99)                      # another global state: the same model
        second = run()
    finally:
        torch.use_deterministic_algorithms(before_flag, warn_only=True)
    assert _weights(first) and all(torch.equal(a, b) for a, b in zip(
        _weights(first), _weights(second), strict=True)), "seeded by its own seed only"


def _weights(result: object) -> list[torch.Tensor]:
    model = result[0] if isinstance(result, tuple) else result
    module = getattr(model, "network", None) or getattr(model, "eps_model", None) or model
    assert isinstance(module, torch.nn.Module), type(model)
    return [v.detach().clone() for v in module.state_dict().values()]


# --- checkpoint writes are atomic ----------------------------------------------------------

class _NotPlain:
    """A value ``weights_only`` loading refuses."""


def test_a_failed_save_keeps_the_previous_checkpoint(tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "m.pt", "vae", torch.nn.Linear(2, 2), {"a": 1})
    good = path.read_bytes()
    with pytest.raises(Exception):             # noqa: B017 (torch's own unpickling error type)
        save_checkpoint(path, "vae", torch.nn.Linear(3, 3), {}, {"bad": _NotPlain()})
    assert path.read_bytes() == good and read_checkpoint(path, "vae")["config"] == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]      # no scratch file left
