"""Profiles: one notebook, three scales.

Every chapter notebook has a ``parameters`` cell with ``PROFILE = "auto"``.
:func:`resolve` turns that name into a typed :class:`Profile`:

* ``smoke`` -- tiny slices of offline data; proves every code path runs in about a
  minute on 2 CPU cores (tests and CI).
* ``cpu`` -- offline datasets; about 5 minutes on 2 CPU cores with results worth
  looking at (``make book`` on a laptop).
* ``gpu`` -- the downloadable datasets (MNIST, Fashion-MNIST, CIFAR-10) on CUDA.
* ``auto`` -- ``gpu`` when CUDA is available, else ``cpu``; the environment variable
  ``AIGC_PROFILE`` overrides it (``AIGC_PROFILE=smoke make book``).

Chapters extend a profile with their own knobs by subclassing :class:`Profile`
(per-profile values of the new knobs go in the class's ``PRESETS``) and passing
``cls=`` to :func:`resolve`, or by ``profile.replace(...)``. Every chapter's class lives
here, in one place: :class:`DataProfile` (01), :class:`FoundationsProfile` (02),
:class:`GANProfile` (03), :class:`VAEProfile` (04), :class:`DiffusionProfile` (05) and
:class:`EvaluationProfile` (08); a model kind names its class
(:mod:`aigc_course.kinds`). The dataset
is a knob like any other, so the ``gpu`` profile runs on an offline GPU machine with
``resolve("gpu", dataset="mnist5k")``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args, overload

import torch

ProfileName = Literal["smoke", "cpu", "gpu"]
PROFILE_NAMES: tuple[ProfileName, ...] = get_args(ProfileName)
ENV_VAR = "AIGC_PROFILE"


@dataclass(frozen=True)
class Profile:
    """A typed preset of the knobs every chapter shares.

    Attributes:
        name: ``"smoke"``, ``"cpu"`` or ``"gpu"``.
        device: ``"cpu"`` or ``"cuda"``.
        dataset: the image dataset chapters train on (a name from
            :func:`aigc_course.data.available`).
        image_size: side length images are resized to; ``None`` keeps the native size.
        max_train: at most this many training images (``None``: all of them).
        train_steps: optimisation steps for a chapter's main training run.
        batch_size: minibatch size.
        eval_samples: how many samples a metric is computed on.
        num_threads: torch CPU threads (``None``: leave torch's default).
    """

    name: ProfileName
    device: str
    dataset: str
    image_size: int | None
    max_train: int | None
    train_steps: int
    batch_size: int
    eval_samples: int
    num_threads: int | None = None
    #: Per-profile values of a subclass's own knobs: ``{"smoke": {"knob": value}}``.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}

    def replace(self: P, **changes: Any) -> P:
        """Return a copy with some knobs changed (unknown knobs raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line per knob, for printing at the top of a notebook."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        return "\n".join(
            f"{f.name:<{width}} = {getattr(self, f.name)!r}" for f in dataclasses.fields(self)
        )


P = TypeVar("P", bound=Profile)

_PRESETS: dict[str, dict[str, Any]] = {
    "smoke": dict(
        device="cpu", dataset="digits", image_size=8, max_train=256,
        train_steps=30, batch_size=64, eval_samples=200,
    ),
    "cpu": dict(
        device="cpu", dataset="digits", image_size=16, max_train=None,
        train_steps=2000, batch_size=128, eval_samples=1000,
    ),
    "gpu": dict(
        device="cuda", dataset="mnist", image_size=32, max_train=None,
        train_steps=20000, batch_size=256, eval_samples=10000,
    ),
}


def auto_name() -> ProfileName:
    """The profile ``"auto"`` stands for: ``$AIGC_PROFILE`` if set, else gpu/cpu by CUDA."""
    env = os.environ.get(ENV_VAR, "").strip().lower()
    if env and env != "auto":
        if env not in PROFILE_NAMES:
            raise ValueError(
                f"{ENV_VAR}={env!r} is not a profile; valid: {', '.join(PROFILE_NAMES)} or auto"
            )
        return env
    return "gpu" if torch.cuda.is_available() else "cpu"


# Overloads, as a ``cls: type[P]`` parameter cannot default to Profile: returns a ``cls``.
@overload
def resolve(name: str, cls: type[P], **overrides: Any) -> P: ...
@overload
def resolve(name: str = ..., *, cls: type[P], **overrides: Any) -> P: ...
@overload
def resolve(name: str = ..., **overrides: Any) -> Profile: ...
def resolve(name: str = "auto", cls: type[Profile] = Profile, **overrides: Any) -> Profile:
    """Resolve a profile name into a typed preset.

    Args:
        name: ``"auto"``, ``"smoke"``, ``"cpu"`` or ``"gpu"`` (case-insensitive).
        cls: a subclass of :class:`Profile` holding a chapter's extra knobs; their
            defaults apply unless given in ``overrides``.
        **overrides: knobs to change, e.g. ``dataset="mnist5k"``.

    Returns:
        The preset, an instance of ``cls``.

    Raises:
        ValueError: for an unknown profile name or an unknown knob.
    """
    key = str(name).strip().lower()
    if key == "auto":
        key = auto_name()
    if key not in _PRESETS:
        raise ValueError(f"unknown profile {name!r}; valid: {', '.join(PROFILE_NAMES)}, auto")
    knobs = {"name": key, **_PRESETS[key], **cls.PRESETS.get(key, {})}
    field_names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - field_names)
    if unknown:
        raise ValueError(
            f"unknown profile knob(s) {unknown}; valid: {', '.join(sorted(field_names))}"
        )
    knobs.update(overrides)
    profile = cls(**knobs)
    if profile.device == "cuda" and not torch.cuda.is_available():
        profile = profile.replace(device="cpu")
    return profile


@dataclass(frozen=True)
class DataProfile(Profile):
    """Chapter 01's knobs.

    Attributes:
        check_items: at most this many images go through the cleaning checks.
        planted: how many duplicates, corrupt items (per kind) and flipped labels
            (per thousand) the chapter plants before looking for them.
    """

    check_items: int = 10_000
    planted: int = 40
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"smoke": {"check_items": 1000, "planted": 20}}


@dataclass(frozen=True)
class FoundationsProfile(Profile):
    """Chapter 02's knobs.

    Attributes:
        toy_dataset: the 2-D set the chapter models (a ``toy2d_*`` name).
        gan_steps, vae_steps, diffusion_steps: training steps of each tiny model.
        toy_batch_size: minibatch size of those trainings.
        eval_points: generated and real points each sample distance uses.
        mc_samples: samples of the Monte Carlo estimates.
        manifold_points: digits embedded by PCA and t-SNE.

    Every profile runs this chapter on one CPU thread (``num_threads=1``, and
    ``device="cpu"`` even on ``gpu``): 2-D models this small are fastest there.
    """

    toy_dataset: str = "toy2d_ring"
    gan_steps: int = 5000
    vae_steps: int = 5000
    diffusion_steps: int = 5000
    toy_batch_size: int = 256
    eval_points: int = 2000
    mc_samples: int = 100_000
    manifold_points: int = 1797
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"gan_steps": 1000, "vae_steps": 1000, "diffusion_steps": 1000,
                  "eval_points": 1000, "mc_samples": 20_000, "manifold_points": 500,
                  "num_threads": 1},
        "cpu": {"num_threads": 1},
        "gpu": {"num_threads": 1, "device": "cpu"},
    }


@dataclass(frozen=True)
class GANProfile(Profile):
    """Chapter 03's knobs (``profiles.resolve(name, cls=GANProfile)``).

    Attributes:
        latent_dim: dimension of $z$ of the main model.
        width: $D$'s first-layer channels (and $G$'s last) of the main model.
        gan_loss: the main model's loss (a name of :func:`aigc_course.losses.gan_losses`).
        use_shipped: load ``gan_digits16.pt`` instead of training the main model.
        toy_steps: training steps of each 2-D collapse-study run.
        study_steps: training steps of each digits collapse-study run.
        study_size: image size of the digits collapse study.
        study_seeds: seeds of each collapse-study set-up.
        study_every: measure coverage every this many steps.
        ring_setups: the set-ups of :func:`ring_variants` the notebook runs.
        digits_setups: the set-ups of :func:`digits_variants` the notebook runs.
    """

    latent_dim: int = 32
    width: int = 16
    gan_loss: str = "non_saturating"
    use_shipped: bool = True
    toy_steps: int = 2000
    study_steps: int = 1500
    study_size: int = 8
    study_seeds: tuple[int, ...] = (0, 1, 2)
    study_every: int = 250
    ring_setups: tuple[str, ...] = ("naive", "spectral norm + TTUR", "WGAN-GP")
    digits_setups: tuple[str, ...] = ("naive", "minibatch std", "spectral norm",
                                      "DCGAN optimiser", "TTUR", "conditional")
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"train_steps": 30, "use_shipped": False, "toy_steps": 40,
                  "study_steps": 20, "study_seeds": (0,), "study_every": 10},
        # about 5 minutes on 2 cores: WGAN-GP (5 critic steps) and the set-ups that did not
        # help at this budget run on the gpu profile only
        "cpu": {"train_steps": 2000, "batch_size": 64, "num_threads": 1, "toy_steps": 1500,
                "study_steps": 1000, "study_seeds": (0, 1), "study_every": 250,
                "ring_setups": ("naive", "spectral norm + TTUR"),
                "digits_setups": ("naive", "DCGAN optimiser", "spectral norm")},
        "gpu": {"train_steps": 20000, "use_shipped": False, "width": 32,
                "study_steps": 5000, "study_size": 16, "study_every": 500},
    }


@dataclass(frozen=True)
class VAEProfile(Profile):
    """Chapter 04's knobs (``profiles.resolve(name, cls=VAEProfile)``).

    Attributes:
        latent_dim: latent dimension of the main model.
        width: first-layer channels of the conv VAE.
        beta_values: the $\\beta$ of the rate--distortion sweep.
        sweep_steps: training steps of each sweep model and of the 2-D latent model.
        iwae_k: the largest number of importance samples.
        iwae_images: test images the IWAE bounds are averaged over.
        use_shipped: load ``vae_digits16.pt`` instead of training the main model
            (when the dataset is digits at 16x16).
        sweep_size: image size of the sweep models and the 2-D latent model (8: fast).
    """

    latent_dim: int = 16
    width: int = 16
    beta_values: tuple[float, ...] = (0.1, 0.3, 1.0, 2.0, 4.0)
    sweep_steps: int = 1500
    iwae_k: int = 256
    iwae_images: int = 200
    use_shipped: bool = True
    sweep_size: int = 8
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"sweep_steps": 30, "iwae_k": 32, "iwae_images": 50, "use_shipped": False,
                  "beta_values": (0.5, 4.0)},
        "cpu": {"train_steps": 4000, "sweep_steps": 1200},
        "gpu": {"sweep_steps": 5000, "use_shipped": False, "latent_dim": 32, "width": 32,
                "sweep_size": 16},
    }


@dataclass(frozen=True)
class DiffusionProfile(Profile):
    """Chapter 05's knobs (``profiles.resolve(name, cls=DiffusionProfile)``).

    Attributes:
        arch: the main model's network, ``"unet"`` or ``"mlp"``.
        width: U-Net base channels.
        hidden: flat-MLP width.
        fast_steps: training steps of the fast 8x8 conditional MLP model.
        toy_steps: training steps of the 2-D ring model.
        sample_steps: DDIM steps for the main samples.
        guidance: guidance scale $w$ of the main samples.
        step_values: the $S$ of the quality-vs-steps sweep.
        guidance_values: the $w$ of the guidance sweep.
        use_shipped: load ``ddpm_digits16.pt`` (digits 16x16) instead of training.
    """

    arch: str = "unet"
    width: int = 32
    hidden: int = 512
    fast_steps: int = 1500
    toy_steps: int = 2000
    sample_steps: int = 50
    guidance: float = 2.0
    step_values: tuple[int, ...] = (10, 25, 50, 100, 1000)
    guidance_values: tuple[float, ...] = (0.0, 1.0, 2.0, 4.0, 8.0)
    use_shipped: bool = True
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"train_steps": 20, "fast_steps": 300, "toy_steps": 300, "width": 8,
                  "hidden": 128, "use_shipped": False, "step_values": (5, 10),
                  "guidance_values": (0.0, 2.0), "sample_steps": 10},
        "cpu": {"train_steps": 2000, "batch_size": 64, "width": 16},
        "gpu": {"train_steps": 20000, "width": 64, "use_shipped": False},
    }


@dataclass(frozen=True)
class EvaluationProfile(Profile):
    """Chapter 08's knobs (``profiles.resolve(name, cls=EvaluationProfile)``).

    Attributes:
        compare_samples: samples per model in the comparison table.
        ddpm_steps: DDIM steps of the diffusion model's samples.
        guidance: its classifier-free guidance scale.
        kid_subsets: KID subsets in the table.
        size_sweep: sample sizes of the FID/KID bias plot.
        size_repeats: random subsets per size in that plot.
    """

    compare_samples: int = 1000
    ddpm_steps: int = 50
    guidance: float = 0.0
    kid_subsets: int = 100
    size_sweep: tuple[int, ...] = (25, 50, 100, 200, 400, 800)
    size_repeats: int = 5
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"compare_samples": 200, "ddpm_steps": 10, "kid_subsets": 20,
                  "size_sweep": (25, 50, 100, 200), "size_repeats": 3},
        "cpu": {},
        "gpu": {"compare_samples": 5000, "ddpm_steps": 100, "kid_subsets": 100},
    }
