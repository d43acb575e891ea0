"""The model-kind contract: one registry every chapter's generative models plug into.

A *model kind* (``gan`` of chapter 03, ``vae`` of 04, ``ddpm`` of 05; later chapters add
theirs) is one module of :mod:`aigc_course.train` that defines ``KIND``, a
:class:`ModelKind`, and one line in :data:`KINDS` below: that line is the only place a
kind is registered. Everything generic is written once, here, against the contract:

* :func:`load_or_train` -- what notebooks call: the shipped checkpoint when the profile
  allows it (``profile.use_shipped`` and the profile asks for the shipped recipe's
  dataset, size and conditioning), else a training run from the profile's knobs.
* :func:`train_and_save` / :func:`retrain_shipped` -- what ``aigc-course train`` and the
  regeneration of ``aigc_course/checkpoints/*.pt`` run.
* :func:`load_model`, :func:`draw` -- what ``aigc-course sample`` / ``reconstruct`` and
  chapter 08's comparison run.

The contract a kind fulfils:

* a profile class (the chapter's knobs, in :mod:`aigc_course.profiles`);
* ``train(profile, *, dataset=None, image_size=None, conditional=None, steps=None,
  seed=0, progress=True, run=None) -> Trained``: ``None`` takes the profile's (or the
  shipped recipe's) value; ``run`` (:class:`aigc_course.train.engine.RunOptions`) is how
  the loop executes -- precision, resumable checkpoints, ``torch.compile`` -- through the
  shared :class:`aigc_course.train.engine.Engine`, which also makes it data parallel under
  ``torchrun``; it leaves global state alone (no global seeding, no
  ``torch.use_deterministic_algorithms``);
* a trained model with ``config``, ``conditional``, ``num_classes`` and
  ``sample(n, *, y=None, generator=None, **options)`` (:class:`GenerativeModel`), whose
  options are listed in ``sample_options`` (``steps``, ``guidance`` for diffusion); an
  image kind's model is also an :class:`ImageModel`: ``noise_shape`` and
  ``sample(..., noise=...)`` take the starting noise from outside, so a service can draw
  each request's noise from its own seed and still run many requests in one batch;
* ``save(model, path, metadata)`` and ``from_checkpoint(checkpoint, path)`` in the one
  format of :mod:`aigc_course.checkpoint` (``weights_only=True``);
* the shipped checkpoint's path and recipe (the :func:`train_and_save` arguments that
  regenerate it), and optionally ``reconstruct`` for kinds with an encoder.

The registry maps names to module paths, imported on first use, so this module is a
leaf near the bottom of the package (it imports only :mod:`aigc_course.checkpoint`,
:mod:`aigc_course.profiles` and :mod:`aigc_course.utils`) while the kinds live above it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch

from aigc_course.checkpoint import read_checkpoint
from aigc_course.profiles import Profile, resolve
from aigc_course.utils import Timer, ranks_from_env

Tensor = torch.Tensor

#: name -> the module whose ``KIND`` implements it: the one place a kind registers.
KINDS: dict[str, str] = {
    "gan": "aigc_course.train.gan",          # chapter 03
    "vae": "aigc_course.train.vae",          # chapter 04
    "ddpm": "aigc_course.train.diffusion",   # chapter 05
    "gpt": "aigc_course.train.gpt",          # chapter 06
}

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
MODEL_DIR_ENV = "AIGC_MODEL_DIR"
#: the code a trained model depends on: a change to any of it invalidates cached models
_CODE = ("models", "train", "diffusion", "text", "losses.py", "kinds.py", "profiles.py")


@runtime_checkable
class GenerativeModel(Protocol):
    """What a trained model of every kind offers."""

    config: Any

    @property
    def conditional(self) -> bool:
        """Whether ``sample`` takes class labels ``y``."""

    @property
    def num_classes(self) -> int:
        """The number of classes of a conditional model (0: unconditional)."""

    def sample(self, n: int, *, y: Tensor | None = None,
               generator: torch.Generator | None = None, **options: Any) -> Tensor:
        """``n`` samples ``(n, C, H, W)`` in ``[-1, 1]`` (labels ``y`` ``(n,)`` if conditional)."""


@runtime_checkable
class ImageModel(GenerativeModel, Protocol):
    """An image kind's model: its starting noise can be drawn outside ``sample``."""

    @property
    def noise_shape(self) -> tuple[int, ...]:
        """One sample's starting noise (a GAN's or VAE's $z$, a diffusion model's $x_T$)."""

    def sample(self, n: int, *, y: Tensor | None = None,
               generator: torch.Generator | None = None, noise: Tensor | None = None,
               **options: Any) -> Tensor:
        """As :meth:`GenerativeModel.sample`; ``noise`` ``(n, *noise_shape)`` replaces the
        draw from ``generator``, and the same noise gives the same images."""


class ClassConditional:
    """The contract's ``conditional`` and ``num_classes``, read from ``config.num_classes``.

    Mixed into every kind's model class (``DCGAN``, ``ConvVAE``, ``DiffusionModel``) so the
    two properties are written once.
    """

    config: Any

    @property
    def conditional(self) -> bool:
        """Whether ``sample`` takes class labels ``y``."""
        return int(self.config.num_classes) > 0

    @property
    def num_classes(self) -> int:
        """Classes of a conditional model (0: unconditional)."""
        return int(self.config.num_classes)


@dataclass
class Trained:
    """A model from :func:`load_or_train` or a kind's ``train``.

    Attributes:
        model: the trained model (eval mode, CPU).
        kind: the kind's name.
        metrics: plain values (``dataset``, ``image_size``, ``params``, ``seconds``,
            ``threads``, ``steps``, ``seed``, ``profile``, ``conditional``, ...); for a
            shipped model, its checkpoint's metadata.
        history: per-step training curves (empty for a shipped model without them).
        source: ``"trained"`` here, ``"cached"`` (trained earlier with the same profile,
            seed and code, loaded from :func:`model_cache_dir`) or ``"shipped"`` (loaded
            from the package).
        seconds: wall time of training or loading.
    """

    model: Any
    kind: str
    metrics: dict[str, Any]
    history: dict[str, list[float]] = field(default_factory=dict)
    source: Literal["trained", "cached", "shipped"] = "trained"
    seconds: float = 0.0


TrainFn = Callable[..., Trained]


@dataclass(frozen=True)
class ModelKind:
    """One model kind: how to train, save, load and sample it (see the module docstring).

    Attributes:
        name: the registry name (``"gan"``).
        description: one line for listings.
        profile: the chapter's :class:`~aigc_course.profiles.Profile` subclass.
        train: ``train(profile, *, dataset, image_size, conditional, steps, seed,
            progress) -> Trained``.
        save: ``save(model, path, metadata) -> Path`` in the common checkpoint format.
        from_checkpoint: ``from_checkpoint(checkpoint_dict, path) -> model``.
        shipped: the shipped checkpoint (``None``: none ships).
        recipe: the :func:`train_and_save` keyword arguments that regenerate ``shipped``
            (``profile``, ``dataset``, ``image_size``, ``conditional``, ``steps``).
        sample_options: the keyword options of the model's ``sample`` beyond
            ``y``/``generator`` that the command line may pass.
        reconstruct: ``reconstruct(model, images, labels) -> images`` for kinds with an
            encoder (``None``: the kind cannot reconstruct).
        modality: ``"image"`` (``sample`` returns images ``(n, C, H, W)`` in ``[-1, 1]``)
            or ``"text"`` (token ids ``(n, T)``; the model decodes them, and
            ``aigc-course generate`` / ``score`` serve it instead of ``sample`` /
            ``evaluate``).
    """

    name: str
    description: str
    profile: type[Profile]
    train: TrainFn
    save: Callable[[Any, str | Path, dict[str, Any]], Path]
    from_checkpoint: Callable[[dict[str, Any], str | Path], Any]
    shipped: Path | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    sample_options: tuple[str, ...] = ()
    reconstruct: Callable[[Any, Tensor, Tensor | None], Tensor] | None = None
    modality: Literal["image", "text"] = "image"

    def load(self, path: str | Path | None = None) -> Any:
        """The model saved at ``path`` (default: the shipped checkpoint), eval mode, CPU.

        Raises:
            FileNotFoundError: no file (or no shipped checkpoint). ValueError: corrupt,
                foreign, another kind, or weights that do not fit the config.
        """
        if path is None:
            if self.shipped is None:
                raise FileNotFoundError(f"no shipped checkpoint for kind {self.name!r}")
            path = self.shipped
        return self.from_checkpoint(read_checkpoint(path, self.name), path)


def names() -> tuple[str, ...]:
    """The registered kinds, sorted."""
    return tuple(sorted(KINDS))


def get(name: str) -> ModelKind:
    """The :class:`ModelKind` registered as ``name``.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    if name not in KINDS:
        raise ValueError(f"unknown model kind {name!r}; valid: {', '.join(names())}")
    kind = importlib.import_module(KINDS[name]).KIND
    if not isinstance(kind, ModelKind) or kind.name != name:
        raise TypeError(f"{KINDS[name]}.KIND is not the ModelKind {name!r}")
    return kind


def profile_for(kind: ModelKind, profile: str | Profile = "auto", **overrides: Any) -> Profile:
    """``profile`` as an instance of the kind's profile class.

    A name is resolved with the kind's class; an instance of another
    :class:`~aigc_course.profiles.Profile` class keeps its shared knobs (``dataset``,
    ``image_size``, ...) and takes the kind's defaults for the others.
    """
    if isinstance(profile, str):
        return resolve(profile, cls=kind.profile, **overrides)
    if isinstance(profile, kind.profile):
        return profile.replace(**overrides) if overrides else profile
    shared = {f.name: getattr(profile, f.name) for f in dataclasses.fields(Profile)
              if f.name != "name"}
    return resolve(profile.name, cls=kind.profile, **{**shared, **overrides})


def _uses_shipped(kind: ModelKind, p: Profile, conditional: bool | None) -> bool:
    recipe = kind.recipe
    return (kind.shipped is not None and kind.shipped.is_file()
            and bool(getattr(p, "use_shipped", False))
            and p.dataset == recipe.get("dataset") and p.image_size == recipe.get("image_size")
            and (conditional is None or conditional == recipe.get("conditional")))


def model_cache_dir() -> Path:
    """Where trained models are cached: ``$AIGC_MODEL_DIR`` or ``~/.cache/aigc_course/models``."""
    root = os.environ.get(MODEL_DIR_ENV) or Path.home() / ".cache" / "aigc_course" / "models"
    return Path(root)


def _code_digest() -> str:
    package = Path(__file__).resolve().parent
    # the text corpora ship with Python, so its version is part of what trained a model
    digest = hashlib.sha256(f"{torch.__version__} {sys.version_info[:2]}".encode())
    for entry in _CODE:
        path = package / entry
        for file in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            digest.update(file.read_bytes())
    return digest.hexdigest()


def cached_model_path(kind: ModelKind, p: Profile, conditional: bool, seed: int) -> Path:
    """The cache file of a model trained with these knobs, seed and code (may not exist)."""
    knobs = {"profile": dataclasses.asdict(p), "conditional": conditional, "seed": seed,
             "code": _code_digest()}
    key = hashlib.sha256(json.dumps(knobs, sort_keys=True, default=str).encode()).hexdigest()
    return model_cache_dir() / f"{kind.name}_{p.name}_{key[:16]}.pt"


def load_or_train(kind: str, profile: str | Profile = "auto", *, retrain: bool = False,
                  conditional: bool | None = None, seed: int = 0, progress: bool = True
                  ) -> Trained:
    """The kind's shipped model when the profile allows it, else one trained here (cached).

    The shipped checkpoint is used when ``profile.use_shipped`` is set, ``retrain`` is
    not, and the profile asks for the shipped recipe's dataset and image size (and
    ``conditional`` is ``None`` or the recipe's). Otherwise the kind's ``train`` runs on
    the profile's knobs (``conditional=None``: the shipped recipe's conditioning) and
    the model is saved to :func:`cached_model_path`; a later call with the same
    profile, conditioning, seed and package code loads it from there instead of
    training again (so chapter 08 scores the models chapters 03-05 trained).
    ``retrain=True`` trains anyway and overwrites the cached file.

    Args:
        kind: a registered kind (:func:`names`).
        profile: a profile name (``"auto"``, ``"smoke"``, ...) or instance.
        retrain: train even when the shipped model would do.
        conditional: class-conditional or not (``None``: as the shipped recipe).
        seed: the training seed.
        progress: show a progress bar while training.

    Returns:
        The :class:`Trained` model, with ``source`` ``"shipped"`` or ``"trained"``.
    """
    model_kind = get(kind)
    p = profile_for(model_kind, profile)
    if not retrain and _uses_shipped(model_kind, p, conditional):
        shipped = model_kind.shipped
        assert shipped is not None                                    # _uses_shipped checked it
        with Timer() as timer:
            checkpoint = read_checkpoint(shipped, kind)
            model = model_kind.from_checkpoint(checkpoint, shipped)
        metadata = dict(checkpoint.get("metadata", {}))
        history = metadata.pop("history", {}) or {}
        # older shipped files do not record these: the recipe's profile trained them
        recipe_profile = profile_for(model_kind, str(model_kind.recipe.get("profile", "cpu")))
        metadata.setdefault("steps", recipe_profile.train_steps)
        metadata.setdefault("conditional", bool(model.conditional))
        return Trained(model, kind, metadata, history, "shipped", timer.seconds)
    if conditional is None:
        conditional = bool(model_kind.recipe.get("conditional", False))
    path = cached_model_path(model_kind, p, conditional, seed)
    if not retrain and path.is_file():
        try:
            with Timer() as timer:
                checkpoint = read_checkpoint(path, kind)
                model = model_kind.from_checkpoint(checkpoint, path)
            metadata = dict(checkpoint.get("metadata", {}))
            history = metadata.pop("history", {}) or {}
            return Trained(model, kind, metadata, history, "cached", timer.seconds)
        except ValueError:
            pass                                      # a corrupt cache file: train again
    trained = model_kind.train(p, conditional=conditional, seed=seed, progress=progress)
    try:
        model_kind.save(trained.model, path, {**trained.metrics, "profile": p.name,
                                              "history": trained.history})
    except OSError:
        pass                                          # a read-only cache: keep the model only
    return trained


def train_and_save(kind: str, out: str | Path, profile: str | Profile = "cpu", *,
                   dataset: str | None = None, image_size: int | None = None,
                   conditional: bool = False, steps: int | None = None, seed: int = 0,
                   progress: bool = True, run: Any = None) -> dict[str, Any]:
    """Train a model of ``kind`` on a profile's knobs and save it: ``aigc-course train``.

    ``None`` for ``dataset``, ``image_size`` or ``steps`` takes the profile's value;
    ``run`` is how the run executes (:class:`aigc_course.train.engine.RunOptions`:
    precision, checkpoints and resume). Under ``torchrun`` every rank trains and only
    rank 0 writes ``out``.

    Returns:
        The run's metrics (the checkpoint's metadata, without its history) and ``path``
        (``None`` on the other ranks).
    """
    model_kind = get(kind)
    p = profile_for(model_kind, profile)
    trained = model_kind.train(p, dataset=dataset, image_size=image_size,
                               conditional=conditional, steps=steps, seed=seed,
                               progress=progress, run=run)
    metadata = {**trained.metrics, "profile": p.name, "history": trained.history}
    path = model_kind.save(trained.model, out, metadata) if ranks_from_env().is_main else None
    return {**trained.metrics, "profile": p.name, "path": None if path is None else str(path)}


def retrain_shipped(kind: str, out: str | Path | None = None, steps: int | None = None,
                    seed: int = 0, progress: bool = False) -> dict[str, Any]:
    """Regenerate a kind's shipped checkpoint from its recipe (``out=None``: overwrite it).

    The same as ``aigc-course train KIND`` with the recipe's arguments, e.g. for ``gan``
    ``--dataset digits --image-size 16 --conditional --profile cpu``.
    """
    model_kind = get(kind)
    if model_kind.shipped is None:
        raise ValueError(f"kind {kind!r} ships no checkpoint")
    recipe = {**model_kind.recipe}
    if steps is not None:
        recipe["steps"] = steps
    return train_and_save(kind, out if out is not None else model_kind.shipped, seed=seed,
                          progress=progress, **recipe)


def checkpoint_of(kind: str, trained: Trained, directory: str | Path) -> Path:
    """The file of a model :func:`load_or_train` returned: the shipped checkpoint it was
    loaded from, or ``directory/KIND.pt`` written with its metrics and history."""
    model_kind = get(kind)
    if trained.source == "shipped" and model_kind.shipped is not None:
        return model_kind.shipped
    return model_kind.save(trained.model, Path(directory) / f"{kind}.pt",
                           {**trained.metrics, "history": trained.history})


def load_model(path: str | Path) -> tuple[ModelKind, Any]:
    """The kind and model of any model checkpoint (``weights_only=True``).

    Raises:
        FileNotFoundError: no file. ValueError: corrupt, foreign, or a kind that is not
            a registered model kind (e.g. a judge's checkpoint).
    """
    checkpoint = read_checkpoint(path)
    name = str(checkpoint.get("kind"))
    if name not in KINDS:
        raise ValueError(f"{path} holds a {name!r} checkpoint, not a generative model; "
                         f"valid kinds: {', '.join(names())}")
    kind = get(name)
    return kind, kind.from_checkpoint(checkpoint, path)


def sample_labels(n: int, label: int | None, num_classes: int) -> Tensor:
    """The labels ``n`` samples are drawn for, ``(n,)``.

    A conditional model (``num_classes > 0``) gets ``label`` for every sample, or the
    classes in turn when ``label`` is ``None``; an unconditional one gets ``-1`` (and
    ``label`` must be ``None``).

    Raises:
        ValueError: ``label`` for an unconditional model, or out of ``0..num_classes-1``.
    """
    if not num_classes:
        if label is not None:
            raise ValueError("--label needs a class-conditional model (train with --conditional)")
        return torch.full((n,), -1)
    if label is not None and not 0 <= label < num_classes:
        raise ValueError(f"--label must be in 0..{num_classes - 1}, got {label}")
    return torch.full((n,), label) if label is not None else torch.arange(n) % num_classes


def check_options(kind: ModelKind, options: dict[str, Any]) -> None:
    """Refuse sampling options the kind does not take.

    Raises:
        ValueError: naming the options and the kind's valid ones.
    """
    unknown = sorted(set(options) - set(kind.sample_options))
    if unknown:
        valid = ", ".join("--" + o for o in kind.sample_options) or "none"
        raise ValueError(f"{', '.join('--' + k for k in unknown)} do not apply to a "
                         f"{kind.name!r} model (its sampling options: {valid})")


@torch.no_grad()
def draw(model: GenerativeModel, n: int, *, label: int | None = None, seed: int = 0,
         batch_size: int = 500, device: str | torch.device | None = None,
         **options: Any) -> tuple[Tensor, Tensor, float]:
    """``n`` samples of any model, timed: what ``aigc-course sample`` and chapter 08 draw.

    Conditional models draw ``label`` (or the classes in turn); one generator seeded
    with ``seed`` serves every batch of ``batch_size`` (its noise is drawn on the CPU, so
    a seed gives the same starting noise on every device).

    Args:
        device: where to run the network (``None``: CUDA when available, else the CPU).
            The model is moved there for sampling and back to the CPU afterwards.

    Returns:
        ``images`` ``(n, C, H, W)`` float32 in ``[-1, 1]`` on the CPU, ``labels`` ``(n,)``
        (``-1`` for an unconditional model) and the sampling wall time in seconds.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    labels = sample_labels(n, label, model.num_classes if model.conditional else 0)
    generator = torch.Generator().manual_seed(seed)
    target = torch.device(device if device is not None
                          else "cuda" if torch.cuda.is_available() else "cpu")
    movable = target.type != "cpu" and hasattr(model, "to")
    if movable:
        model.to(target)                                     # type: ignore[attr-defined]
    chunks = []
    try:
        with Timer() as timer:
            for start in range(0, n, batch_size):
                y = labels[start:start + batch_size] if model.conditional else None
                count = min(batch_size, n - start)
                chunks.append(model.sample(count, y=y, generator=generator,
                                           **options).float().cpu())
    finally:
        if movable:
            model.to("cpu")                                  # type: ignore[attr-defined]
    return torch.cat(chunks), labels, timer.seconds
