"""Chapter 03's section 10: the conditional DCGAN on CIFAR-10 (gpu profile only).

The notebook's gpu-shape run trains it on the offline stand-in; these tests pin the
profile that section runs on and that the model kind trains a 32x32 RGB model from it.
"""

from pathlib import Path

import pytest
import torch

from aigc_course import data, kinds
from aigc_course.profiles import DRY_RUN_DATASETS, GANProfile, resolve


@pytest.mark.parametrize("name", ["smoke", "cpu"])
def test_cifar_section_is_gpu_only(name: str) -> None:
    # 20,000 steps at 0.5-0.7 s each (batch 128, one CPU thread, measured) would take hours
    for dry_run in (False, True):
        assert resolve(name, cls=GANProfile, dry_run=dry_run).cifar_steps == 0


def test_cifar_profile_on_gpu() -> None:
    gpu = resolve("gpu", cls=GANProfile, dry_run=False)
    cifar = gpu.cifar_profile()
    assert (cifar.dataset, cifar.image_size, cifar.max_train) == ("cifar10", 32, None)
    assert (cifar.train_steps, cifar.batch_size) == (gpu.cifar_steps, gpu.cifar_batch_size)
    assert gpu.cifar_steps >= 10_000 and gpu.cifar_batch_size == 128
    assert (cifar.width, cifar.latent_dim) == (gpu.cifar_width, gpu.cifar_latent_dim)
    assert cifar.device == gpu.device and not cifar.use_shipped
    assert data.info("cifar10").class_names[gpu.cifar_label] == "cat"
    # the chapter's other knobs are the gpu profile's
    assert cifar.replace(**{k: getattr(gpu, k) for k in ("dataset", "image_size", "train_steps",
                                                           "batch_size", "width", "latent_dim",
                                                           "max_train", "use_shipped")}) == gpu


def test_cifar_profile_dry_run_keeps_the_shape() -> None:
    dry = resolve("gpu", cls=GANProfile, dry_run=True)
    cifar = dry.cifar_profile()
    assert cifar.dataset == DRY_RUN_DATASETS["cifar10"] == "shapes"       # never downloads
    assert cifar.image_size == 32 and data.info(cifar.dataset).channels == 3
    assert 0 < cifar.train_steps <= 10 and cifar.batch_size <= 32
    assert cifar.width == resolve("gpu", cls=GANProfile, dry_run=False).cifar_width
    assert dry.cifar_label < len(data.info(cifar.dataset).class_names)


def test_cifar_gan_trains_rgb_through_the_kind(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    # two steps of the gpu profile's architecture on the stand-in: measured 3 s, two thirds of
    # it generating the shapes set and the first step's set-up
    monkeypatch.setenv(kinds.MODEL_DIR_ENV, str(tmp_path))
    dry = resolve("gpu", cls=GANProfile, dry_run=True)
    cifar = dry.cifar_profile().replace(train_steps=2, batch_size=8)
    trained = kinds.load_or_train("gan", cifar, seed=0, progress=False)
    model = trained.model
    assert trained.source == "trained" and model.conditional
    assert (model.config.channels, model.config.image_size) == (3, 32)
    assert (model.config.width, model.config.latent_dim) == (cifar.width, cifar.latent_dim)
    assert len(trained.history["d_loss"]) == 2
    images = model.sample(4, y=torch.full((4,), dry.cifar_label),
                          generator=torch.Generator().manual_seed(0))
    assert images.shape == (4, 3, 32, 32) and images.abs().max() <= 1
    assert kinds.load_or_train("gan", cifar, seed=0, progress=False).source == "cached"
