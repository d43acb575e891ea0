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
``cls=`` to :func:`resolve`, or by ``profile.replace(...)``. The dataset
is a knob like any other, so the ``gpu`` profile runs on an offline GPU machine with
``resolve("gpu", dataset="mnist5k")``.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypeVar, get_args

import torch

ProfileName = Literal["smoke", "cpu", "gpu"]
PROFILE_NAMES: tuple[str, ...] = get_args(ProfileName)
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
        return env  # type: ignore[return-value]
    return "gpu" if torch.cuda.is_available() else "cpu"


def resolve(name: str = "auto", cls: type[P] = Profile, **overrides: Any) -> P:  # type: ignore[assignment]
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
