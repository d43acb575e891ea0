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
:class:`GANProfile` (03), :class:`VAEProfile` (04), :class:`DiffusionProfile` (05),
:class:`TextProfile` (06), :class:`EvaluationProfile` (08),
:class:`ScaleProfile` (07), :class:`CompressionProfile` (09) and :class:`DeployProfile` (10);
a model kind names its class
(:mod:`aigc_course.kinds`). The dataset
is a knob like any other, so the ``gpu`` profile runs on an offline GPU machine with
``resolve("gpu", dataset="mnist5k")``.

A *dry run* (``resolve(name, dry_run=True)``, or ``$AIGC_DRY_RUN=1``) keeps everything
that defines a profile's shape and code paths -- image size, channels, widths,
architectures, ``use_shipped``, the set-ups a chapter runs -- and makes it cheap: online
datasets become offline stand-ins of the same shape (:data:`DRY_RUN_DATASETS`) and the
step and sample counts are capped (:attr:`Profile.DRY_RUN`, and each chapter class's own
``DRY_RUN``). ``AIGC_DRY_RUN=1 AIGC_PROFILE=gpu`` runs every notebook on a CPU in the
``gpu`` profile's shape in a few minutes, so a shape, dtype or device bug that would
break Colab breaks in CI first; its numbers say nothing about quality.
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
DRY_RUN_ENV = "AIGC_DRY_RUN"
#: A dry run's offline stand-in for each online dataset: the same channels, resized to
#: the profile's image size (mnist5k is 28x28 grey, shapes 32x32 RGB).
DRY_RUN_DATASETS: dict[str, str] = {"mnist": "mnist5k", "fashion_mnist": "mnist5k",
                                    "cifar10": "shapes"}


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
        dry_run: the profile's shape with offline stand-in data and capped step and
            sample counts (see :func:`resolve`); checks that code runs, not quality.
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
    dry_run: bool = False
    #: Per-profile values of a subclass's own knobs: ``{"smoke": {"knob": value}}``.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: A dry run's caps, ``{"knob": cap}``; a subclass adds caps for its own knobs and may
    #: tighten its bases' (merged along the class hierarchy, the subclass winning). A
    #: number caps a number (``None``, "all", becomes the cap); an int caps a tuple's
    #: length (its first items: sweeps are listed cheapest first); a tuple replaces a
    #: longer tuple (a short sweep that keeps both ends, where the notebook compares them).
    DRY_RUN: ClassVar[dict[str, Any]] = {"train_steps": 20, "batch_size": 32,
                                         "eval_samples": 200, "max_train": 512}

    def replace(self: P, **changes: Any) -> P:
        """Return a copy with some knobs changed (unknown knobs raise ``TypeError``)."""
        return dataclasses.replace(self, **changes)

    def describe(self) -> str:
        """One line per knob, for printing at the top of a notebook."""
        width = max(len(f.name) for f in dataclasses.fields(self))
        lines = [f"{f.name:<{width}} = {getattr(self, f.name)!r}"
                 for f in dataclasses.fields(self)]
        if self.dry_run:
            lines.append(f"dry run: the {self.name!r} profile's shape on offline data, steps "
                         f"and samples capped ({', '.join(sorted(dry_run_caps(type(self))))})"
                         " -- it checks that the code runs, not the quality")
        return "\n".join(lines)


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


def dry_run_requested() -> bool:
    """Whether ``$AIGC_DRY_RUN`` asks for a dry run (``1``, ``true`` or ``yes``)."""
    return os.environ.get(DRY_RUN_ENV, "").strip().lower() in ("1", "true", "yes")


def dry_run_caps(cls: type[Profile] = Profile) -> dict[str, Any]:
    """The dry-run caps of ``cls``: every ``DRY_RUN`` along its class hierarchy, merged."""
    caps: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        caps.update(vars(klass).get("DRY_RUN", {}))
    return caps


def _cap(knob: str, value: Any, cap: Any) -> Any:
    """``value`` of ``knob`` limited by a dry-run ``cap`` (see :attr:`Profile.DRY_RUN`)."""
    if isinstance(value, bool) or isinstance(cap, bool):
        raise TypeError(f"dry-run cap of {knob!r}: booleans choose code paths, never cap them")
    if isinstance(value, tuple):
        if isinstance(cap, tuple):
            return cap if len(cap) < len(value) else value
        return value[:cap]
    return cap if value is None else min(value, cap)


def _dry_run(knobs: dict[str, Any], cls: type[Profile]) -> dict[str, Any]:
    """``knobs`` of a dry run: offline stand-in data and capped steps and samples."""
    knobs = {**knobs, "dry_run": True}
    knobs["dataset"] = DRY_RUN_DATASETS.get(knobs["dataset"], knobs["dataset"])
    for knob, cap in dry_run_caps(cls).items():
        if knob in knobs:
            knobs[knob] = _cap(knob, knobs[knob], cap)
        else:  # a knob the presets leave at its default
            knobs[knob] = _cap(knob, cls.__dataclass_fields__[knob].default, cap)
    return knobs


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
def resolve(name: str, cls: type[P], dry_run: bool | None = ..., **overrides: Any) -> P: ...
@overload
def resolve(name: str = ..., *, cls: type[P], dry_run: bool | None = ...,
            **overrides: Any) -> P: ...
@overload
def resolve(name: str = ..., *, dry_run: bool | None = ..., **overrides: Any) -> Profile: ...
def resolve(name: str = "auto", cls: type[Profile] = Profile, dry_run: bool | None = None,
            **overrides: Any) -> Profile:
    """Resolve a profile name into a typed preset.

    Args:
        name: ``"auto"``, ``"smoke"``, ``"cpu"`` or ``"gpu"`` (case-insensitive).
        cls: a subclass of :class:`Profile` holding a chapter's extra knobs; their
            defaults apply unless given in ``overrides``.
        dry_run: keep the profile's shape (image size, channels, widths, code paths) but
            replace online datasets by offline stand-ins of the same shape
            (:data:`DRY_RUN_DATASETS`) and cap step and sample counts (the ``DRY_RUN``
            caps of ``cls`` and its bases); ``None`` reads ``$AIGC_DRY_RUN``.
        **overrides: knobs to change, e.g. ``dataset="mnist5k"``; they win over the
            dry-run caps (an online ``dataset`` still gets its offline stand-in).

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
    if dry_run is None:
        dry_run = dry_run_requested()
    if dry_run:
        knobs = _dry_run(knobs, cls)
    knobs.update(overrides)
    if dry_run:  # a dry run never downloads: an online dataset asked for by name too
        knobs["dataset"] = DRY_RUN_DATASETS.get(knobs["dataset"], knobs["dataset"])
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
    DRY_RUN: ClassVar[dict[str, Any]] = {"check_items": 1000, "planted": 20}


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
    DRY_RUN: ClassVar[dict[str, Any]] = {"gan_steps": 200, "vae_steps": 200,
                                         "diffusion_steps": 200, "eval_points": 1000,
                                         "mc_samples": 20_000, "manifold_points": 500}


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
        cifar_steps: training steps of the conditional DCGAN on CIFAR-10 (section 10;
            0 skips it: the ``gpu`` profile only, see :meth:`cifar_profile`).
        cifar_batch_size, cifar_width, cifar_latent_dim: its minibatch size, width and
            dimension of $z$.
        cifar_label: the class its sample grid and class FID show (3: CIFAR-10's cat).
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
    cifar_steps: int = 0
    cifar_batch_size: int = 128
    cifar_width: int = 32
    cifar_latent_dim: int = 100
    cifar_label: int = 3
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"train_steps": 30, "use_shipped": False, "toy_steps": 40,
                  "study_steps": 20, "study_seeds": (0,), "study_every": 10},
        # about 5 minutes on 2 cores: WGAN-GP (5 critic steps) and the set-ups that did not
        # help at this budget run on the gpu profile only
        "cpu": {"train_steps": 2000, "batch_size": 64, "num_threads": 1, "toy_steps": 1500,
                "study_steps": 1000, "study_seeds": (0, 1), "study_every": 250,
                "ring_setups": ("naive", "spectral norm + TTUR"),
                "digits_setups": ("naive", "DCGAN optimiser", "spectral norm")},
        # CIFAR-10 at width 32: 45 GFLOP per step of batch 128 (torch's FlopCounterMode),
        # so 20,000 steps are about 1 PFLOP, minutes on a T4-class GPU
        "gpu": {"train_steps": 20000, "use_shipped": False, "width": 32,
                "study_steps": 5000, "study_size": 16, "study_every": 500,
                "cifar_steps": 20000},
    }
    # every set-up still runs (each is a code path), a few steps on one seed; CIFAR-10's
    # stand-in (shapes) has 3 classes, so its class shown is 2 at most
    DRY_RUN: ClassVar[dict[str, Any]] = {"toy_steps": 40, "study_steps": 5, "study_seeds": 1,
                                         "study_every": 5, "cifar_steps": 10,
                                         "cifar_batch_size": 32, "cifar_label": 2}

    def cifar_profile(self) -> GANProfile:
        """The profile of section 10's model: the shipped recipe's conditional DCGAN on
        CIFAR-10 at 32x32 RGB with the ``cifar_*`` knobs (a dry run: its offline stand-in,
        :data:`DRY_RUN_DATASETS`), on this profile's device; what
        ``kinds.load_or_train("gan", ...)`` trains (and caches)."""
        dataset = DRY_RUN_DATASETS["cifar10"] if self.dry_run else "cifar10"
        return self.replace(dataset=dataset, image_size=32, max_train=None,
                            train_steps=self.cifar_steps, batch_size=self.cifar_batch_size,
                            width=self.cifar_width, latent_dim=self.cifar_latent_dim,
                            use_shipped=False)


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
    # both ends of the beta sweep: the notebook checks that the largest beta has the lower rate
    DRY_RUN: ClassVar[dict[str, Any]] = {"sweep_steps": 10, "iwae_k": 32, "iwae_images": 50,
                                         "beta_values": (0.1, 4.0)}


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
        vlb_images: test digits (8x8) the variational bound of the fast model is computed
            on (``None``: all 269; each costs $T$ network calls).
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
    vlb_images: int | None = None
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"train_steps": 20, "fast_steps": 300, "toy_steps": 300, "width": 8,
                  "hidden": 128, "use_shipped": False, "step_values": (5, 10),
                  "guidance_values": (0.0, 2.0), "sample_steps": 10, "vlb_images": 32},
        "cpu": {"train_steps": 2000, "batch_size": 64, "width": 16},
        "gpu": {"train_steps": 20000, "width": 64, "use_shipped": False},
    }
    # the 64-channel U-Net at 32x32 costs about 15 ms per image and step on a CPU core
    DRY_RUN: ClassVar[dict[str, Any]] = {"train_steps": 5, "batch_size": 16, "eval_samples": 50,
                                         "fast_steps": 100, "toy_steps": 100,
                                         "sample_steps": 3, "step_values": 2,
                                         "guidance_values": 2, "vlb_images": 32}


@dataclass(frozen=True)
class EvaluationProfile(Profile):
    """Chapter 08's knobs (``profiles.resolve(name, cls=EvaluationProfile)``).

    Attributes:
        compare_samples: samples per model and seed in the comparison table.
        compare_seeds: sampling seeds of the comparison table (each metric their mean,
            with their standard deviation).
        ddpm_steps: DDIM steps of the diffusion model's samples (``None``: chapter
            05's ``sample_steps`` on the same profile, so both report the same sampler).
        guidance: its classifier-free guidance scale (``None``: chapter 05's).
        kid_subsets: KID subsets in the table.
        size_sweep: sample sizes of the FID/KID bias plot.
        size_repeats: random subsets per size in that plot.
    """

    compare_samples: int = 500
    compare_seeds: tuple[int, ...] = (0, 1, 2)
    ddpm_steps: int | None = None
    guidance: float | None = None
    kid_subsets: int = 100
    size_sweep: tuple[int, ...] = (25, 50, 100, 200, 400, 800)
    size_repeats: int = 5
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"compare_samples": 100, "compare_seeds": (0, 1), "kid_subsets": 20,
                  "size_sweep": (25, 50, 100, 200), "size_repeats": 3},
        # 3 seeds x 500 samples: the diffusion rows (50 DDIM steps, guided and not) take
        # most of the notebook's time on 2 cores
        "cpu": {},
        "gpu": {"compare_samples": 2000, "kid_subsets": 100},
    }
    # the table samples the gpu profile's 64-channel U-Net twice (guided and not)
    DRY_RUN: ClassVar[dict[str, Any]] = {"compare_samples": 50, "compare_seeds": 1,
                                         "ddpm_steps": 2, "kid_subsets": 20, "size_sweep": 4,
                                         "size_repeats": 3}


@dataclass(frozen=True)
class TextProfile(Profile):
    """Chapter 06's knobs (``profiles.resolve(name, cls=TextProfile)``).

    The shared ``dataset`` knob names the text corpus (``"pydoc"``, ``"stdlib"`` of
    :mod:`aigc_course.text.corpus`, or a path to a UTF-8 file); ``image_size`` is unused.

    Attributes:
        tokenizer: ``"char"`` or ``"bpe"``.
        bpe_vocab: vocabulary size of the byte-level BPE.
        n_layer, n_head, n_embd, block_size: the GPT's architecture (:class:`GPTConfig`).
        train_window: pretrain on windows this long (``None``: ``block_size``); the
            customer-service fine-tuning then uses the whole block.
        lr: AdamW's peak learning rate; ``warmup_steps`` of linear warm-up, then a cosine
            decay to ``lr / 10`` at ``train_steps``.
        eval_every: validation bits per character every this many steps (on
            ``eval_tokens`` tokens; the final score uses the whole split).
        scaling_widths: the ``n_embd`` of the scaling-law sweep's models.
        scaling_steps: training steps of each sweep model.
        tradeoff_vocabs: BPE vocabulary sizes of the vocabulary / sequence-length table.
        finetune_steps: fine-tuning steps of the customer-service answerer.
        finetune_lr: its peak learning rate.
        support_questions: at most this many questions of each customer-service question
            set are answered (``None``: all).
        score_tokens: the final bits per character of the validation and test splits on
            about this many tokens (``None``: the whole splits).
        sample_chars: characters of the sample texts the notebook prints.
    """

    tokenizer: str = "char"
    bpe_vocab: int = 512
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    block_size: int = 256
    train_window: int | None = None
    lr: float = 3e-3
    warmup_steps: int = 100
    eval_every: int = 100
    eval_tokens: int = 8192
    scaling_widths: tuple[int, ...] = (32, 64, 128)
    scaling_steps: int = 600
    tradeoff_vocabs: tuple[int, ...] = (256, 512, 1024, 2048)
    finetune_steps: int = 600
    finetune_lr: float = 2e-3
    support_questions: int | None = None
    score_tokens: int | None = None
    sample_chars: int = 300
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"dataset": "pydoc", "image_size": None, "train_steps": 40, "batch_size": 8,
                  "n_layer": 2, "n_embd": 32, "n_head": 2, "warmup_steps": 5,
                  "eval_every": 10, "eval_tokens": 2048, "scaling_widths": (16, 32),
                  "scaling_steps": 30, "tradeoff_vocabs": (256, 320),
                  "finetune_steps": 20, "support_questions": 20, "sample_chars": 200,
                  "num_threads": 1},
        # about 5 minutes on 2 cores: 1 min of pretraining on 64-character windows (they
        # learn faster per token than 256: measured 2.1 against 2.7 bits per character
        # after 1.0 and 2.0 M tokens), 1 of the sweep, 1 of fine-tuning and answering
        "cpu": {"dataset": "pydoc", "image_size": None, "train_steps": 1000, "batch_size": 16,
                "train_window": 64, "warmup_steps": 50, "scaling_steps": 1000,
                "scaling_widths": (32, 64, 128), "finetune_steps": 300, "num_threads": 2},
        "gpu": {"dataset": "stdlib", "image_size": None, "train_steps": 5000, "batch_size": 64,
                "n_layer": 6, "n_head": 6, "n_embd": 384, "lr": 1e-3,
                "scaling_widths": (64, 128, 256, 384), "scaling_steps": 2000,
                "eval_tokens": 65536, "finetune_steps": 1500},
    }
    # the scaling fit needs 5 points: the evaluations after the first of 3 runs (2 of the
    # main run, 3 of each sweep run); the 10.7 M-parameter main model dominates the cost
    DRY_RUN: ClassVar[dict[str, Any]] = {"train_steps": 7, "batch_size": 2, "eval_every": 3,
                                         "eval_tokens": 512, "scaling_steps": 12,
                                         "scaling_widths": 2, "tradeoff_vocabs": 2,
                                         "finetune_steps": 1, "warmup_steps": 2,
                                         "support_questions": 2, "score_tokens": 1024,
                                         "sample_chars": 20}


@dataclass(frozen=True)
class CompressionProfile(Profile):
    """Chapter 09's knobs (``profiles.resolve(name, cls=CompressionProfile)``).

    The models compressed are chapters 03 and 05's on ``teacher_profile`` (the shipped
    16x16 digits models on ``smoke`` and ``cpu``; on ``gpu`` the ones chapters 03 and 05
    trained, or train, on the gpu profile). The shared ``eval_samples`` is the number of
    samples every row's judge FID is computed on.

    Attributes:
        teacher_profile: the profile whose chapter 03 / 05 models are the teachers.
        latency_batches: latents per timed generator call: a large batch (throughput,
            the table's main column) and one request (``1``, overhead-bound).
        latency_rounds: alternated timing rounds
            (:func:`~aigc_course.compress.measure.compare_latency`).
        sparsities: unstructured magnitude-pruning sparsities.
        keep_fractions: channel-pruning keep fractions (quality against size).
        finetune_steps: distillation steps after channel pruning.
        student_width: the student generator's channels relative to the teacher's.
        student_steps: its distillation steps (``0``: load ``gan_student_digits16.pt``,
            the shipped student of the shipped teacher, when the teacher is shipped).
        quant_bits: bit widths of the fake-quantisation sweep.
        calibration_batches: latent batches static int8 observes.
        diffusion_samples: samples of every diffusion row's judge FID (all rows one ``n``).
        diffusion_batch: samples per timed diffusion call.
        ddim_steps: DDIM step counts of the few-steps table (the first is the baseline).
        solver_steps: DPM-Solver++(2M) step counts.
        distill_start, distill_end: progressive distillation from this many DDIM steps
            down to this many, halving each round.
        distill_round_steps: training steps of each round.
        distill_batch: its minibatch size.
    """

    teacher_profile: str = "cpu"
    latency_batches: tuple[int, ...] = (256, 1)
    latency_rounds: int = 7
    sparsities: tuple[float, ...] = (0.5, 0.9)
    keep_fractions: tuple[float, ...] = (0.75, 0.5, 0.25)
    finetune_steps: int = 500
    student_width: float = 0.75
    student_steps: int = 0
    quant_bits: tuple[int, ...] = (2, 3, 4, 5, 6, 8)
    calibration_batches: int = 8
    diffusion_samples: int = 500
    diffusion_batch: int = 16
    ddim_steps: tuple[int, ...] = (50, 10, 5)
    solver_steps: tuple[int, ...] = (10, 5)
    distill_start: int = 16
    distill_end: int = 4
    distill_round_steps: int = 100
    distill_batch: int = 64
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"teacher_profile": "cpu", "latency_batches": (64, 1), "latency_rounds": 3,
                  "sparsities": (0.9,),
                  "keep_fractions": (0.5,), "finetune_steps": 20, "student_steps": 20,
                  "quant_bits": (4, 8), "calibration_batches": 2, "diffusion_samples": 100,
                  "diffusion_batch": 8, "ddim_steps": (10, 5), "solver_steps": (5,),
                  "distill_start": 4, "distill_end": 2, "distill_round_steps": 5,
                  "distill_batch": 16,
                  "num_threads": 1},
        "cpu": {"num_threads": 1},
        "gpu": {"teacher_profile": "gpu", "eval_samples": 2000, "finetune_steps": 2000,
                "student_steps": 6000, "diffusion_samples": 2000, "diffusion_batch": 64,
                "ddim_steps": (50, 20, 10, 5), "solver_steps": (20, 10, 5),
                "distill_end": 2, "distill_round_steps": 2000},
    }
    # every method still runs; the gpu shape's 64-channel U-Net at 32x32 is the cost (one
    # DDIM and one solver row on 16 samples); most of the notebook's ~70 s in CI is
    # compiling (torch.compile, PT2E, ONNX), which no knob caps
    DRY_RUN: ClassVar[dict[str, Any]] = {"latency_batches": (1,), "latency_rounds": 3,
                                         "sparsities": 1,
                                         "keep_fractions": 1, "finetune_steps": 5,
                                         "student_steps": 5, "quant_bits": 2,
                                         "calibration_batches": 1, "ddim_steps": (2,),
                                         "diffusion_samples": 16, "diffusion_batch": 4,
                                         "eval_samples": 100,
                                         "solver_steps": (2,), "distill_round_steps": 3,
                                         "distill_start": 4, "distill_end": 2,
                                         "distill_batch": 8}


@dataclass(frozen=True)
class DeployProfile(Profile):
    """Chapter 10's knobs (``profiles.resolve(name, cls=DeployProfile)``).

    The model served is chapter 03's GAN on ``model_profile`` (the shipped 16x16 digits
    model on ``smoke`` and ``cpu``; on ``gpu`` the one chapter 03 trains), and for the
    batching comparison also chapter 05's DDPM. Every load test is bounded: a fixed
    number of requests and a time cap, against 127.0.0.1 only.

    Attributes:
        model_profile: the profile whose chapter 03 / 05 models are served.
        serve_device: where the server runs the network (``"auto"``: CUDA when available).
        export_rounds: alternated timing rounds of eager against the exported files.
        load_requests: requests per load test (GAN, one sample each).
        load_rounds: rounds of (batching off, on) in alternated order.
        concurrencies: closed-loop clients of the load tests.
        time_cap_s: the time cap of each load test.
        ddpm_requests: requests per load test of the DDPM (0: skip it).
        ddpm_steps: DDIM steps of each DDPM request.
        memory_requests: requests between the two resident-memory readings.
        drift_window: samples per drift-monitor window.
        drift_windows: healthy windows the thresholds are calibrated on.
        drift_rate: the false-alarm rate per healthy window.
        drift_reference: healthy samples drawn at calibration for the confusion matrix
            (the first 1,000, or all if fewer, are the feature reference).
        healthy_windows: fresh healthy windows shown (and counted) after calibration.
        degraded_sparsity: magnitude-pruning sparsity of the degraded checkpoint.
        worker_requests: requests of the two-worker demonstration (0: skip it; the dry
            run does, since it serves the same code as smoke's and takes about 12 s).
    """

    model_profile: str = "cpu"
    serve_device: str = "cpu"
    export_rounds: int = 7
    load_requests: int = 400
    load_rounds: int = 2
    concurrencies: tuple[int, ...] = (1, 4, 16)
    time_cap_s: float = 30.0
    ddpm_requests: int = 160
    ddpm_steps: int = 10
    memory_requests: int = 1000
    drift_window: int = 256
    drift_windows: int = 200
    drift_rate: float = 0.01
    drift_reference: int = 10_000
    healthy_windows: int = 20
    degraded_sparsity: float = 0.8
    worker_requests: int = 40
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"export_rounds": 3, "load_requests": 100, "load_rounds": 1,
                  "time_cap_s": 10.0, "ddpm_requests": 0, "memory_requests": 200,
                  "drift_window": 128, "drift_windows": 40, "drift_reference": 4000,
                  "healthy_windows": 4,
                  "num_threads": 1},
        "cpu": {"num_threads": 1},
        "gpu": {"model_profile": "gpu", "serve_device": "auto", "load_requests": 1000,
                "load_rounds": 3, "ddpm_requests": 400, "healthy_windows": 50},
    }
    # the gpu shape: the 32x32 GAN chapter 03 trains in its dry run, a few requests each
    DRY_RUN: ClassVar[dict[str, Any]] = {"export_rounds": 3, "load_requests": 20,
                                         "load_rounds": 1, "time_cap_s": 10.0,
                                         "ddpm_requests": 0, "memory_requests": 20,
                                         "drift_window": 64, "drift_windows": 10,
                                         "drift_reference": 256, "healthy_windows": 1,
                                         "worker_requests": 0}


@dataclass(frozen=True)
class ScaleProfile(Profile):
    """Chapter 07's knobs (``profiles.resolve(name, cls=ScaleProfile)``).

    The runs themselves are the kinds' own: chapter 05's DDPM on this profile's dataset
    and size (:class:`DiffusionProfile` of the same name) and chapter 06's GPT
    (:class:`TextProfile`); these knobs size the chapter's studies.

    Attributes:
        throughput_steps: timed training steps of each throughput-table row per round.
        throughput_warmup: untimed steps before them (``torch.compile`` compiles here).
        throughput_rounds: alternated rounds over the rows (the table reports the median).
        throughput_compile: add the ``torch.compile`` row (compiling the cpu profile's
            U-Net took 49 s with a cold cache on one core of this 2-core machine; smoke
            leaves it out and a dry run never compiles).
        throughput_batch: the batch of the throughput rows (``None``: the DDPM's).
        optim_steps: steps of each run of the optimiser / schedule / EMA study (a GPT).
        optim_seeds: seeds per variant (quality claims need at least 3).
        optim_n_layer, optim_n_embd, optim_window: the study GPT's layers, width and
            training window (smaller than chapter 06's: the study trains 21 runs).
        search_trials: Optuna trials of the hyper-parameter search.
        search_steps: the most steps of one trial (pruned trials stop earlier).
        memo_sizes: training-set sizes of the overfitting and memorisation study.
        memo_steps: steps of each run of that study.
        memo_image_size, memo_width: its DDPM's image size and U-Net width (``None``: the
            :class:`DiffusionProfile`'s; on ``cpu`` digits at their native 8x8 with width
            32, which memorise 100 digits within the budget, where 16x16 at width 16 does
            not).
        memo_evals: loss measurements per run of that study (the curves' points).
        memo_eval_images: images per measurement (training and validation alike).
        memo_samples: samples each of its models draws for the copy check.
        memo_sample_steps: their DDIM steps.
        search_reports: validation reports per trial of the search (the pruner's points).
        resume_steps: steps of the resume demonstration (killed half-way).
        ddp_steps: steps of the data-parallel comparison (1 and 2 processes).
    """

    throughput_steps: int = 20
    throughput_warmup: int = 3
    throughput_rounds: int = 3
    throughput_compile: bool = False
    throughput_batch: int | None = None
    optim_steps: int = 250
    optim_seeds: int = 3
    optim_n_layer: int = 2
    optim_n_embd: int = 32
    optim_window: int = 32
    search_trials: int = 16
    search_steps: int = 300
    memo_sizes: tuple[int, ...] = (100, 300, 1000, 3000)
    memo_steps: int = 1500
    memo_image_size: int | None = None
    memo_width: int | None = None
    memo_evals: int = 10
    memo_eval_images: int = 256
    memo_samples: int = 200
    memo_sample_steps: int = 20
    search_reports: int = 10
    resume_steps: int = 200
    ddp_steps: int = 100
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"throughput_steps": 4, "throughput_warmup": 1, "throughput_rounds": 1,
                  "optim_steps": 30, "search_trials": 6, "search_steps": 40,
                  "memo_sizes": (100, 1000), "memo_steps": 100, "resume_steps": 20,
                  "ddp_steps": 10, "num_threads": 1},
        "cpu": {"throughput_steps": 6, "throughput_warmup": 1, "throughput_rounds": 2,
                "throughput_compile": True, "search_trials": 10, "search_steps": 150,
                "memo_sizes": (100, 300, 1000), "memo_steps": 400, "memo_image_size": 8,
                "memo_width": 32,
                "resume_steps": 100, "ddp_steps": 60, "num_threads": 1},
        "gpu": {"throughput_steps": 50, "throughput_compile": True, "optim_steps": 1000,
                "optim_n_layer": 4, "optim_n_embd": 128, "optim_window": 64, "search_trials": 30,
                "search_steps": 1000, "memo_sizes": (100, 300, 1000, 3000, 10000),
                "memo_steps": 4000, "resume_steps": 1000, "ddp_steps": 300},
    }
    # the gpu shape: its 64-channel U-Net at 32x32 costs about 1 s per 16 images a step on
    # one CPU thread, so batches, measurements and samples are capped hardest
    DRY_RUN: ClassVar[dict[str, Any]] = {"throughput_steps": 1, "throughput_warmup": 1,
                                         "throughput_rounds": 1, "throughput_batch": 4,
                                         "optim_steps": 6, "optim_seeds": 1,
                                         "search_trials": 3, "search_steps": 4,
                                         "memo_sizes": 2, "memo_steps": 4, "memo_evals": 2,
                                         "memo_eval_images": 16, "memo_samples": 16,
                                         "memo_sample_steps": 4, "search_reports": 3,
                                         "resume_steps": 8, "ddp_steps": 4}


@dataclass(frozen=True)
class ResponsibleProfile(Profile):
    """Chapter 11's knobs (``profiles.resolve(name, cls=ResponsibleProfile)``).

    The models marked, detected, audited and priced are the chapters' own on
    ``model_profile`` (the shipped 16x16 digits checkpoints on ``smoke`` and ``cpu``, the
    ones chapters 03-05 train on ``gpu``) and chapter 06's GPT on ``gpt_profile``.

    Attributes:
        model_profile: the profile whose chapter 03-05 models are used.
        gpt_profile: the profile of chapter 06's GPT (the text watermark, the text costs).
        clean_images: clean images the pixel watermark's threshold is set on (a
            false-positive rate of 1e-3 needs 1,000 at least and 10,000 to be measured to
            about 30%: exercise ex-11-clean).
        marked_images: marked samples per perturbation of the pixel watermark.
        ring_calibration: clean images the Tree-Ring threshold is set on (each is inverted
            by DDIM: one network call per step and image).
        ring_clean: held-out clean images its false-positive rate is measured on.
        ring_marked: marked diffusion samples of the Tree-Ring study.
        ring_steps: DDIM steps of Tree-Ring generation and inversion.
        ring_attacks: the perturbations of its robustness table (names of
            :func:`aigc_course.provenance.attacks.standard_attacks`).
        text_prompts: prompts of the text watermark's study (each continued with and
            without the mark).
        text_lengths: scored lengths $T$ of the detection-against-length study.
        detector_steps: training steps of the real-vs-generated detector.
        detector_images: generated images per family for the detector.
        detector_seeds: detector runs (seeds) whose AUCs are reported.
        audit_samples: samples per generator of the audits.
        card_samples: samples the model card is measured on.
        sample_steps: DDIM steps of the diffusion model's samples in the audits, the card
            and the detector's unseen family.
        cost_samples: samples (tokens: 64 per sample) timed per round of the cost table.
        cost_rounds: alternated timing rounds of the cost table.
        cost_ddim_steps: the DDIM steps of the diffusion rows of the cost table (the last
            prices the business cases' images).
        cost_batches: the batch sizes of the cost table.
        detector_train: real training images of the detector, as many generated (``None``:
            the whole train split).
        detector_views: the sizes it is trained at: ``"native"`` (the dataset's own) and
            ``"model"`` (the models' output size, where a shortcut hides).
        cost_tokens: tokens per GPT sample of the cost table.
    """

    model_profile: str = "cpu"
    gpt_profile: str = "cpu"
    clean_images: int = 10_000
    marked_images: int = 1_000
    ring_calibration: int = 2_000
    ring_clean: int = 10_000
    ring_marked: int = 200
    ring_steps: int = 10
    ring_attacks: tuple[str, ...] = ("none", "jpeg90", "jpeg70", "jpeg50", "noise0.05",
                                     "noise0.1", "resize0.75", "resize0.5", "crop0.9",
                                     "crop0.75")
    text_prompts: int = 40
    text_lengths: tuple[int, ...] = (16, 32, 64, 128, 200)
    detector_steps: int = 300
    detector_images: int = 1_000
    detector_seeds: int = 3
    audit_samples: int = 1_000
    card_samples: int = 1_000
    sample_steps: int = 10
    cost_samples: int = 64
    cost_rounds: int = 5
    cost_ddim_steps: tuple[int, ...] = (10, 50)
    cost_batches: tuple[int, ...] = (1, 16)
    detector_train: int | None = None
    detector_views: tuple[str, ...] = ("native", "model")
    cost_tokens: int = 64
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "smoke": {"gpt_profile": "smoke", "clean_images": 2_000, "marked_images": 200,
                  "ring_calibration": 199, "ring_clean": 300, "ring_marked": 32,
                  "text_prompts": 8, "cost_ddim_steps": (10,), "cost_batches": (16,),
                  "text_lengths": (16, 64, 128), "detector_steps": 60,
                  "detector_images": 300, "detector_seeds": 1, "audit_samples": 300,
                  "card_samples": 200, "cost_samples": 16, "cost_rounds": 3,
                  "num_threads": 1},
        "cpu": {"num_threads": 1},
        "gpu": {"model_profile": "gpu", "gpt_profile": "gpu", "clean_images": 20_000,
                "marked_images": 2_000, "ring_calibration": 4_000, "ring_marked": 1_000,
                "text_prompts": 100, "detector_steps": 1_000,
                "detector_images": 4_000, "audit_samples": 2_000, "card_samples": 2_000,
                "sample_steps": 25, "cost_samples": 256},
    }
    # the gpu shape: chapter 03-05's 32x32 models that the dry run trains, few images each;
    # its 64-channel U-Net costs about 1 s per 16 images a step on one thread: one step
    DRY_RUN: ClassVar[dict[str, Any]] = {"clean_images": 2_000, "marked_images": 64,
                                         "ring_calibration": 40, "ring_clean": 40,
                                         "ring_marked": 16, "ring_steps": 2,
                                         "ring_attacks": 2, "text_prompts": 2,
                                         "text_lengths": 1, "detector_steps": 20,
                                         "detector_images": 100, "detector_seeds": 1,
                                         "audit_samples": 64, "card_samples": 50,
                                         "sample_steps": 1, "cost_samples": 8,
                                         "cost_rounds": 3, "cost_ddim_steps": (1,),
                                         "cost_batches": 1, "detector_train": 256,
                                         "detector_views": 1, "cost_tokens": 8}
