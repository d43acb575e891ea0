"""The model-kind contract (aigc_course.kinds): every registered kind obeys it, and a new
kind registered in one place is picked up by ``load_or_train`` and the command line."""

from __future__ import annotations

import dataclasses
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint, save_checkpoint
from aigc_course.cli import main
from aigc_course.data.registry import load_images
from aigc_course.profiles import Profile, resolve

#: the image kinds (the text kind ``gpt`` of chapter 06 has its own tests: test_gpt.py)
KIND_NAMES = ("ddpm", "gan", "vae")


def test_registry_lists_the_kinds_and_refuses_unknown_names() -> None:
    assert kinds.names() == ("ddpm", "gan", "gpt", "vae")
    with pytest.raises(ValueError, match="unknown model kind 'flow'; valid: ddpm, gan, gpt, vae"):
        kinds.get("flow")
    assert kinds.get("gpt").modality == "text" and kinds.get("gpt").shipped is None
    for name in KIND_NAMES:
        assert kinds.get(name).modality == "image"
        kind = kinds.get(name)
        assert kind.name == name and issubclass(kind.profile, Profile)
        assert kind.shipped is not None and kind.shipped.is_file()
        assert {"profile", "dataset", "image_size", "conditional"} <= set(kind.recipe)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_every_kind_fulfils_the_contract(name: str, tmp_path: Path) -> None:
    """Train from a profile, sample with keyword-only y/generator, save and load in the
    common format (weights_only), the same samples after the round trip."""
    kind = kinds.get(name)
    trained = kind.train(resolve("smoke", cls=kind.profile), conditional=True, steps=2,
                         progress=False)
    assert isinstance(trained, kinds.Trained) and trained.kind == name
    assert trained.source == "trained" and trained.metrics["steps"] == 2
    assert trained.metrics["dataset"] == "digits" and trained.metrics["image_size"] == 8
    model = trained.model
    assert isinstance(model, kinds.GenerativeModel) and model.conditional
    assert model.num_classes == 10
    parameters = inspect.signature(model.sample).parameters
    for keyword in ("y", "generator", *kind.sample_options):
        assert parameters[keyword].kind is inspect.Parameter.KEYWORD_ONLY, keyword
    path = kind.save(model, tmp_path / f"{name}.pt", trained.metrics)
    assert read_checkpoint(path, name)["kind"] == name
    loaded_kind, loaded = kinds.load_model(path)
    assert loaded_kind is kind
    y = torch.tensor([3, 1, 4])
    a = model.sample(3, y=y, generator=torch.Generator().manual_seed(5))
    b = loaded.sample(3, y=y, generator=torch.Generator().manual_seed(5))
    assert a.shape == (3, 1, 8, 8) and torch.equal(a, b)


@pytest.mark.parametrize("name", KIND_NAMES)
def test_load_or_train_uses_the_shipped_model_only_when_the_profile_allows(name: str) -> None:
    kind = kinds.get(name)
    shipped = kinds.load_or_train(name, "cpu", progress=False)
    assert shipped.source == "shipped"
    assert shipped.metrics["dataset"] == "digits" and shipped.metrics["image_size"] == 16
    # the shipped file carries the curves of the run that made it: one value per step of
    # every tracked quantity, finite, ending at the recorded final loss (the VAE records
    # its last step's, the DDPM the mean of its last 100)
    history, steps = shipped.history, shipped.metrics["steps"]
    assert history and all(len(v) == steps and np.isfinite(v).all() for v in history.values())
    if "final_loss" in shipped.metrics:
        loss = history["loss"]
        assert shipped.metrics["final_loss"] in (pytest.approx(loss[-1]),
                                                 pytest.approx(np.mean(loss[-100:])))
    assert "history" not in shipped.metrics
    reference = kind.load()
    assert all(torch.equal(p, q) for p, q in zip(
        _parameters(shipped.model), _parameters(reference), strict=True))
    quick = resolve("cpu", cls=kind.profile, train_steps=1, max_train=64)
    for trained in (kinds.load_or_train(name, quick, retrain=True, progress=False),
                    kinds.load_or_train(name, quick.replace(image_size=8), progress=False),
                    kinds.load_or_train(name, quick, progress=False,
                                        conditional=not kind.recipe["conditional"])):
        assert trained.source == "trained" and trained.metrics["steps"] == 1
    assert kinds.load_or_train(name, "smoke", progress=False).source == "trained"


def _parameters(model: Any) -> list[torch.Tensor]:
    network = model.network if hasattr(model, "network") else model
    return [p.detach() for p in network.state_dict().values()]


def test_load_or_train_follows_the_profile_knobs() -> None:
    """What the notebooks' hand-written blocks got wrong: the profile's threads and network
    (``arch``, ``hidden``) reach the training run."""
    p = resolve("smoke", cls=kinds.get("ddpm").profile, arch="mlp", hidden=48, train_steps=1)
    model = kinds.load_or_train("ddpm", p, progress=False).model
    assert model.config.arch == "mlp" and model.config.hidden == 48
    threads = torch.get_num_threads()
    gan = kinds.load_or_train("gan", resolve("smoke", cls=kinds.get("gan").profile,
                                             num_threads=1, train_steps=1), progress=False)
    assert gan.metrics["threads"] == 1 and torch.get_num_threads() == threads


def test_draw_cycles_classes_and_checks_labels() -> None:
    model = kinds.get("vae").load()                                # unconditional
    images, labels, seconds = kinds.draw(model, 7, seed=1)
    assert images.shape == (7, 1, 16, 16) and (labels == -1).all() and seconds >= 0
    again, _, _ = kinds.draw(model, 7, seed=1, batch_size=3)       # one generator, any batch
    torch.testing.assert_close(images, again)
    with pytest.raises(ValueError, match="needs a class-conditional model"):
        kinds.draw(model, 2, label=1)
    gan = kinds.get("gan").load()
    assert kinds.draw(gan, 12)[1].tolist() == [*range(10), 0, 1]
    assert (kinds.draw(gan, 3, label=7)[1] == 7).all()
    with pytest.raises(ValueError, match="--label must be in 0..9"):
        kinds.draw(gan, 3, label=10)
    with pytest.raises(ValueError, match=r"--steps do not apply to a 'gan' model \(its "
                                         r"sampling options: none\)"):
        kinds.check_options(kinds.get("gan"), {"steps": 5})


def test_retrain_shipped_follows_the_recipe(tmp_path: Path) -> None:
    out = tmp_path / "vae.pt"
    metrics = kinds.retrain_shipped("vae", out, steps=2)
    checkpoint = read_checkpoint(out, "vae")
    assert metrics["path"] == str(out) and checkpoint["metadata"]["profile"] == "cpu"
    assert checkpoint["metadata"]["image_size"] == 16 and checkpoint["metadata"]["steps"] == 2
    assert len(checkpoint["metadata"]["history"]["loss"]) == 2      # the curves travel along


# --- a new kind, registered in one place --------------------------------------------------

@dataclasses.dataclass(frozen=True)
class MeanConfig:
    image_size: int = 8
    channels: int = 1


class MeanImage(nn.Module):
    """The smallest generative model: the training mean plus Gaussian noise of its std."""

    def __init__(self, config: MeanConfig) -> None:
        super().__init__()
        self.config = config
        shape = (config.channels, config.image_size, config.image_size)
        self.mean = nn.Parameter(torch.zeros(shape))
        self.std = nn.Parameter(torch.ones(shape))

    conditional = False
    num_classes = 0

    @torch.no_grad()
    def sample(self, n: int, *, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None, scale: float = 1.0) -> torch.Tensor:
        noise = torch.randn((n, *self.mean.shape), generator=generator)
        return (self.mean + scale * self.std * noise).clamp(-1, 1)


def _train_mean(p: Profile, *, dataset: str | None = None, image_size: int | None = None,
                conditional: bool | None = None, steps: int | None = None, seed: int = 0,
                progress: bool = True, run: object = None) -> kinds.Trained:
    x, _ = load_images(dataset or p.dataset, "train", image_size=image_size or p.image_size)
    model = MeanImage(MeanConfig(x.shape[-1], x.shape[1]))
    with torch.no_grad():
        model.mean.copy_(x.mean(0))
        model.std.copy_(x.std(0))
    return kinds.Trained(model, "mean", {"dataset": dataset or p.dataset, "steps": 0})


def _save_mean(model: MeanImage, path: str | Path, metadata: dict[str, Any]) -> Path:
    return save_checkpoint(path, "mean", model, dataclasses.asdict(model.config), metadata)


def _load_mean(checkpoint: dict[str, Any], path: str | Path) -> MeanImage:
    model = MeanImage(MeanConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model


KIND = kinds.ModelKind(name="mean", description="test kind", profile=Profile,
                       train=_train_mean, save=_save_mean, from_checkpoint=_load_mean,
                       sample_options=("scale",))


def test_a_new_kind_registers_in_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    """One line in ``kinds.KINDS`` and ``load_or_train``, ``aigc-course train`` and
    ``sample`` (with the kind's own option) work unchanged."""
    monkeypatch.setitem(kinds.KINDS, "mean", __name__)
    assert sys.modules[__name__].KIND is KIND and "mean" in kinds.names()
    assert kinds.load_or_train("mean", "smoke").model.mean.shape == (1, 8, 8)
    ckpt, out = tmp_path / "m.pt", tmp_path / "m.npz"
    assert main(["train", "mean", "--profile", "smoke", "--out", str(ckpt)]) == 0
    capsys.readouterr()
    assert main(["sample", str(ckpt), "--n", "5", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "mean"
    assert np.load(out)["images"].shape == (5, 1, 8, 8)
    assert main(["sample", str(ckpt), "--steps", "3", "--out", str(out)]) == 2
    assert "its sampling options: --scale" in capsys.readouterr().err


def test_trained_models_are_cached_per_profile_seed_and_code(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("AIGC_MODEL_DIR", str(tmp_path))
    first = kinds.load_or_train("vae", "smoke", progress=False)
    assert first.source == "trained" and len(list(tmp_path.glob("vae_smoke_*.pt"))) == 1
    again = kinds.load_or_train("vae", "smoke", progress=False)
    assert again.source == "cached" and again.history == first.history
    assert again.metrics["steps"] == first.metrics["steps"]
    for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    other_seed = kinds.load_or_train("vae", "smoke", seed=1, progress=False)
    assert other_seed.source == "trained" and len(list(tmp_path.glob("*.pt"))) == 2
    assert kinds.load_or_train("vae", "smoke", retrain=True, progress=False).source == "trained"
    path = next(tmp_path.glob("vae_smoke_*.pt"))
    for file in tmp_path.glob("*.pt"):
        file.write_bytes(b"truncated")                          # a corrupt cache: train again
    assert kinds.load_or_train("vae", "smoke", progress=False).source == "trained"
    assert kinds.load_or_train("vae", "smoke", progress=False).source == "cached"
    assert path.exists()


def test_checkpoint_of_is_the_shipped_file_or_a_written_one(tmp_path: Path) -> None:
    shipped = kinds.load_or_train("gan", "cpu")
    assert shipped.source == "shipped"
    assert kinds.checkpoint_of("gan", shipped, tmp_path) == kinds.get("gan").shipped
    trained = kinds.Trained(shipped.model, "gan", {"dataset": "digits", "seconds": 1.5},
                            {"loss": [1.0, 0.5]}, source="trained")
    path = kinds.checkpoint_of("gan", trained, tmp_path)
    assert path == tmp_path / "gan.pt"
    metadata = read_checkpoint(path, "gan")["metadata"]
    assert metadata["seconds"] == 1.5 and metadata["history"] == {"loss": [1.0, 0.5]}
