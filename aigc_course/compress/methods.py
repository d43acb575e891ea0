"""Compress a checkpoint into another checkpoint: what ``aigc-course compress`` runs.

Every method reads a model checkpoint of a registered kind and writes one of the same
kind, so the result loads with ``aigc-course sample`` and ``aigc-course evaluate`` (and
:func:`aigc_course.kinds.load_model`) like any other. The teacher's metadata (dataset,
image size, conditioning) is kept and a ``compression`` record is added: the method,
its options, the source file's SHA-256 and the sizes before and after.

Methods (:data:`METHODS`):

* ``gan``: ``magnitude`` (unstructured pruning, ``sparsity``: the file does not shrink),
  ``channels`` (structured pruning to a ``keep`` fraction of each level's channels, then
  ``steps`` of distillation from the unpruned generator), ``student`` (a new resize +
  convolution generator, ``width`` times the teacher's channels, trained for ``steps`` to
  match the teacher), ``int8`` (weights stored as int8 per output channel, 4x smaller;
  they load as float32 on the int8 grid; run them with int8 kernels through
  :func:`aigc_course.compress.quantize.pt2e_int8`).
* ``ddpm``: ``steps`` (progressive distillation from ``start`` DDIM steps down to
  ``steps``; the student records its step count so sampling uses it by default) and
  ``int8``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from aigc_course import kinds
from aigc_course.checkpoint import pack_checkpoint, read_checkpoint
from aigc_course.models.gan import DCGAN, GANConfig
from aigc_course.utils import file_sha256, seeded

#: the shipped student of the shipped chapter 03 generator (see checkpoints/README.md)
SHIPPED_STUDENT = Path(__file__).resolve().parents[1] / "checkpoints" / "gan_student_digits16.pt"
#: kind -> its methods and their options with defaults
METHODS: dict[str, dict[str, dict[str, Any]]] = {
    "gan": {"magnitude": {"sparsity": 0.5},
            "channels": {"keep": 0.5, "steps": 500, "seed": 0},
            "student": {"width": 1.0, "steps": 2000, "seed": 0},
            "int8": {}},
    "ddpm": {"steps": {"steps": 4, "start": 16, "round_steps": 200, "seed": 0},
             "int8": {}},
}


def student_config(teacher: GANConfig, width: float = 1.0) -> GANConfig:
    """A resize + convolution generator's config with ``width`` times the teacher's channels.

    The discriminator's layout (``width`` of the config) is the teacher's, so the
    student's checkpoint carries the teacher's $D$ unchanged.

    Raises:
        ValueError: ``width`` leaves a level without channels.
    """
    channels = tuple(round(c * width) for c in teacher.generator_channels)
    if min(channels) < 1 or width <= 0:
        raise ValueError(f"width {width} leaves no channels at some level ({channels})")
    return dataclasses.replace(teacher, upsample="resize", level_channels=channels)


def make_student(teacher: DCGAN, width: float = 1.0, seed: int = 0) -> DCGAN:
    """An untrained resize-conv student :class:`DCGAN` holding the teacher's $D$."""
    with seeded(seed):
        student = DCGAN(student_config(teacher.config, width))
    student.discriminator.load_state_dict(teacher.discriminator.state_dict())
    return student


def _options(kind: str, method: str, given: dict[str, Any]) -> dict[str, Any]:
    if kind not in METHODS:
        raise ValueError(f"a {kind!r} model cannot be compressed here; kinds with methods: "
                         f"{', '.join(METHODS)}")
    if method not in METHODS[kind]:
        raise ValueError(f"unknown method {method!r} for a {kind!r} model; valid: "
                         f"{', '.join(METHODS[kind])}")
    defaults = METHODS[kind][method]
    unknown = sorted(k for k, v in given.items() if v is not None and k not in defaults)
    if unknown:
        valid = ", ".join("--" + k.replace("_", "-") for k in defaults) or "none"
        raise ValueError(f"{', '.join('--' + k.replace('_', '-') for k in unknown)} do not "
                         f"apply to --method {method} (its options: {valid})")
    return {**defaults, **{k: v for k, v in given.items() if v is not None}}


def _compress_gan(model: DCGAN, method: str, o: dict[str, Any], progress: bool) -> DCGAN:
    from aigc_course.compress.distill import distill_generator
    from aigc_course.compress.prune import magnitude_prune, prune_channels, with_generator

    if not isinstance(model, DCGAN):
        raise ValueError("compression needs a convolutional GAN (DCGAN), not an MLP GAN")
    if method == "magnitude":
        pruned = magnitude_prune(model.generator, float(o["sparsity"]))
        return with_generator(model, pruned)
    if method == "channels":
        small = with_generator(model, prune_channels(model.generator, float(o["keep"])))
    else:                                                            # "student"
        small = make_student(model, float(o["width"]), int(o["seed"]))
    if int(o["steps"]) > 0:   # a student from scratch: larger batches, a cosine decay
        scratch = method == "student"
        distill_generator(small.generator, model.generator, steps=int(o["steps"]),
                          batch=128 if scratch else 64, lr=2e-3 if scratch else 1e-3,
                          cosine=scratch, seed=int(o["seed"]), progress=progress)
    return small.eval()


def _compress_ddpm(model: Any, o: dict[str, Any], progress: bool) -> tuple[Any, dict]:
    from aigc_course.compress.distill_diffusion import DistillConfig, progressive_distill

    config = DistillConfig(start_steps=int(o["start"]), end_steps=int(o["steps"]),
                           steps_per_round=int(o["round_steps"]), seed=int(o["seed"]))
    rounds = progressive_distill(model, None, config, progress=progress)
    steps, student = rounds[-1]
    return student, {"sampling_steps": steps, "guidance": config.guidance}


def compress_checkpoint(path: str | Path, method: str, out: str | Path, *,
                        progress: bool = False, **options: Any) -> dict[str, Any]:
    """Compress the model checkpoint ``path`` with ``method``; write ``out``.

    Args:
        path: a model checkpoint (``aigc-course train``, or a shipped one).
        method: a method of the checkpoint's kind (:data:`METHODS`).
        out: the checkpoint to write (atomically; ``path`` is never overwritten).
        progress: show training progress (``channels``, ``student``, ``steps``).
        options: the method's options (``None`` values take the defaults).

    Returns:
        The ``compression`` record written into ``out``'s metadata, with ``out``.

    Raises:
        FileNotFoundError: no ``path``. ValueError: a corrupt or foreign file, an
            unknown method for the kind (the valid ones listed), an option the method
            does not take, a bad option value, or ``out`` the same file as ``path``.
    """
    path, out = Path(path), Path(out)
    if out.exists() and out.resolve() == path.resolve():
        raise ValueError(f"--out {out} is the input checkpoint: write the result elsewhere")
    checkpoint = read_checkpoint(path)
    kind, model = kinds.load_model(path)
    o = _options(kind.name, method, options)
    metadata = {k: v for k, v in checkpoint.get("metadata", {}).items()
                if k not in ("history", "torch_version", "weights")}
    record: dict[str, Any] = {"method": method, "options": o, "source": str(path),
                              "source_sha256": file_sha256(path),
                              "source_bytes": path.stat().st_size}
    if method == "int8":
        result = model
    elif kind.name == "gan":
        result = _compress_gan(model, method, o, progress)
    else:
        result, extra = _compress_ddpm(model, o, progress)
        metadata.update(extra)
    metadata["compression"] = record
    kind.save(result, out, metadata)
    if method == "int8":
        pack_checkpoint(out, out)
    record.update(out=str(out), bytes=out.stat().st_size)
    return record
