from dataclasses import dataclass

import pytest
import torch

from aigc_course import profiles
from aigc_course.profiles import Profile, resolve


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu"])
def test_named_profiles_resolve(name: str) -> None:
    p = resolve(name)
    assert p.name == name
    assert isinstance(p, Profile)
    assert p.train_steps > 0 and p.batch_size > 0 and p.eval_samples > 0


def test_profiles_scale_up() -> None:
    smoke, cpu, gpu = resolve("smoke"), resolve("cpu"), resolve("gpu")
    assert smoke.train_steps < cpu.train_steps < gpu.train_steps
    assert smoke.eval_samples < cpu.eval_samples <= gpu.eval_samples
    assert smoke.dataset == "digits" and cpu.dataset == "digits"


def test_auto_follows_cuda_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIGC_PROFILE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("auto").name == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve("auto").name == "gpu"
    assert resolve("AUTO").device == "cuda"
    monkeypatch.setenv("AIGC_PROFILE", "smoke")
    assert resolve("auto").name == "smoke"
    # An explicit name wins over the environment.
    assert resolve("cpu").name == "cpu"


def test_gpu_profile_without_cuda_falls_back_to_cpu_device(monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("gpu").device == "cpu"


def test_dataset_is_a_knob() -> None:
    p = resolve("gpu", dataset="mnist5k", image_size=28)
    assert p.dataset == "mnist5k" and p.image_size == 28 and p.name == "gpu"


def test_unknown_profile_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="smoke, cpu, gpu"):
        resolve("laptop")


def test_bad_env_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_PROFILE", "fast")
    with pytest.raises(ValueError, match="AIGC_PROFILE"):
        resolve("auto")


def test_unknown_knob_lists_valid_knobs() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        resolve("cpu", epochs=3)


def test_chapters_extend_profiles() -> None:
    @dataclass(frozen=True)
    class GanProfile(Profile):
        latent_dim: int = 32

    p = resolve("smoke", cls=GanProfile, latent_dim=8)
    assert isinstance(p, GanProfile) and p.latent_dim == 8 and p.name == "smoke"
    assert p.replace(latent_dim=4).latent_dim == 4
    assert "latent_dim" in p.describe()


def test_profile_names_constant() -> None:
    assert profiles.PROFILE_NAMES == ("smoke", "cpu", "gpu")


def test_chapter_presets_vary_by_profile() -> None:
    from aigc_course.profiles import DataProfile

    assert resolve("smoke", cls=DataProfile).check_items < resolve("cpu", cls=DataProfile
                                                                   ).check_items
    assert resolve("smoke", cls=DataProfile, check_items=5).check_items == 5
