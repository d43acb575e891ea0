"""What every training loop shares: precision, clipping, checkpoints that resume exactly,
and data parallelism over ``torch.distributed`` (chapter 07).

Each kind's loop (:mod:`~aigc_course.train.gan`, :mod:`~aigc_course.train.vae`,
:mod:`~aigc_course.train.diffusion`, :mod:`~aigc_course.train.gpt`) stays a plain
``zero_grad -> forward -> loss -> backward -> step`` loop in view; an :class:`Engine`
takes over the parts that are the same everywhere:

* **steps and resume** -- ``for step in engine.steps(total):`` starts where the last
  good checkpoint of ``RunOptions.checkpoint_dir`` stopped (``resume=True``) and saves
  the *full* state every ``checkpoint_every`` steps: every tracked network, optimiser,
  scheduler, EMA and gradient scaler, the loop's minibatch generator (the data order),
  torch's global generators, Python's and NumPy's, the step and the history. Restoring
  all of it makes the resumed run compute exactly what the uninterrupted one would
  have: on the CPU the final weights are bit-identical (tested by killing a run with
  SIGKILL). Files are written beside their destination, ``fsync``-ed and renamed over it
  (:func:`aigc_course.checkpoint.atomic_write`), so a kill at any point leaves the last
  file whole; a truncated or foreign file is skipped with a warning and the previous good
  one is used.
* **precision** -- :meth:`Engine.autocast` runs the forward in ``bf16`` (CPU and CUDA) or
  ``fp16`` (CUDA; with a gradient scaler, :meth:`Engine.backward`) while weights and the
  optimiser stay float32 (mixed precision, Micikevicius et al. 2018).
* **throughput** -- :meth:`Engine.prepare` puts a network in ``channels_last`` memory
  format and wraps it in ``torch.compile`` when asked; state is always read from the
  original module.
* **gradient clipping** -- ``backward(loss, optimiser, clip=c)``: the global norm
  $\\lVert g\\rVert_2$ is rescaled to at most $c$ (Pascanu et al. 2013).
* **data parallelism** -- under ``torchrun`` (``WORLD_SIZE > 1``) the engine joins the
  process group (gloo on CPU, NCCL on CUDA, a timeout so a hang fails fast); every rank
  draws the *global* minibatch and its noise from the same generator and keeps its
  slice (:meth:`Engine.shard`); after ``backward`` the gradients are averaged over the
  ranks with ``all_reduce``:
  $g = \\tfrac1W \\sum_r g_r = \\nabla \\tfrac1B \\sum_i \\ell_i$ when every rank holds
  $B/W$ examples, the gradient of the global batch, so every rank takes the same step
  (what ``DistributedDataParallel`` does, bucketed and overlapped with the backward
  pass). Only rank 0 logs and writes checkpoints.

Simplified against production engines (Lightning, Accelerate, torchtitan): one process
per device, no gradient accumulation, no sharded optimiser states (FSDP would shard
parameters, gradients and optimiser state across ranks when a model no longer fits one
device).
"""

from __future__ import annotations

import dataclasses
import datetime
import os
import random
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, get_args

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from aigc_course.checkpoint import atomic_write, load_checked
from aigc_course.utils import Ranks, ranks_from_env

Tensor = torch.Tensor
Precision = Literal["fp32", "bf16", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
STATE_FORMAT = "aigc_course.train-state/v1"
#: a training state file: ``step-00000120.pt`` (the step the run has completed)
STATE_NAME = re.compile(r"^step-(\d{8})\.pt$")


class Stateful(Protocol):
    """What the engine saves and restores: a ``state_dict`` and its ``load_state_dict``."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> Any: ...


@dataclass(frozen=True)
class RunOptions:
    """How a run executes (what it computes is the loop's config).

    Attributes:
        precision: ``"fp32"``, ``"bf16"`` (autocast, CPU and CUDA) or ``"fp16"`` (autocast
            with a gradient scaler; for GPUs without bf16, e.g. a T4).
        compile: wrap the networks in ``torch.compile`` (pays a compile time up front).
        channels_last: store image networks' weights and inputs NHWC.
        checkpoint_dir: where training states are written (``None``: none).
        checkpoint_every: save every this many steps (0: only at the end, if a folder
            is given).
        resume: start from the newest good state in ``checkpoint_dir`` (none: from 0).
        keep: how many states to keep (older ones are deleted; at least 2, so a kill
            while the newest is written leaves a good one).
        timeout_s: how long a collective may wait for the other ranks before the run
            fails (a hang fails fast).
        on_step: called with the engine after every step (after its checkpoint), e.g. to
            score a validation set (``engine.step``, ``engine.parts``, ``engine.history``)
            or to stop a hyper-parameter trial early by raising.
    """

    precision: Precision = "fp32"
    compile: bool = False
    channels_last: bool = False
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0
    resume: bool = False
    keep: int = 2
    timeout_s: float = 120.0
    on_step: Callable[[Engine], None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"unknown precision {self.precision!r}; valid: "
                             f"{', '.join(PRECISIONS)}")
        if self.checkpoint_every < 0 or self.keep < 2:
            raise ValueError("checkpoint_every must be >= 0 and keep >= 2")
        if self.resume and not self.checkpoint_dir:
            raise ValueError("resume needs a checkpoint_dir to resume from")


# --- distributed ---------------------------------------------------------------------

def init_distributed(device: torch.device, timeout_s: float = 120.0) -> Ranks:
    """Join ``torchrun``'s process group when ``WORLD_SIZE > 1`` (idempotent).

    gloo on the CPU, NCCL on CUDA (each rank on ``cuda:LOCAL_RANK``); the rendezvous
    address comes from ``torchrun`` (``MASTER_ADDR``/``MASTER_PORT``; ``--standalone``
    picks a free local port).
    """
    ranks = ranks_from_env()
    if ranks.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(ranks.local_rank)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return ranks


def local_device(device: str | torch.device) -> torch.device:
    """``device``, with CUDA pinned to this rank's GPU (``cuda:LOCAL_RANK``) under torchrun."""
    device = torch.device(device)
    if device.type == "cuda" and device.index is None and ranks_from_env().world_size > 1:
        return torch.device("cuda", ranks_from_env().local_rank)
    return device


# --- the engine ----------------------------------------------------------------------

class Engine:
    """The shared part of a training loop (see the module docstring).

    Args:
        options: how to run (``None``: fp32, no checkpoints, no compile).
        device: where the loop computes.
        generator: the loop's generator for minibatches and noise (saved and restored).
        fingerprint: plain values that identify the run (its config); a state written by
            a run with another fingerprint is refused on resume.
        desc: the progress bar's label.
    """

    def __init__(self, options: RunOptions | None, *, device: torch.device | str,
                 generator: torch.Generator, fingerprint: dict[str, Any],
                 desc: str = "train") -> None:
        self.options = options or RunOptions()
        self.device = torch.device(device)
        self.generator = generator
        self.fingerprint = fingerprint
        self.desc = desc
        self.ranks = init_distributed(self.device, self.options.timeout_s)
        self.step = 0
        self.history: dict[str, list[float]] = {}
        self.parts: dict[str, Stateful] = {}
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.options.precision == "fp16")
        self.resumed_from: Path | None = None
        if self.options.precision == "bf16" and self.device.type == "mps":
            raise ValueError("bf16 autocast is not supported on mps; use fp32")

    # -- what is saved --
    def track(self, history: dict[str, list[float]] | None = None, **parts: Stateful) -> None:
        """Save and restore ``parts`` (networks, optimisers, schedulers, EMAs) and ``history``.

        Call it once, with every part, before the loop: with ``resume`` the newest good
        state is loaded here, so what follows sees the resumed run (``self.step > 0``).
        """
        self.parts.update(parts)
        if history is not None:
            self.history = history
        if self.options.resume:
            self.resume()

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (plain values and tensors)."""
        numpy_state: tuple[Any, ...] = tuple(np.random.get_state())  # noqa: NPY002 (legacy)
        return {
            "format": STATE_FORMAT, "step": self.step, "fingerprint": self.fingerprint,
            "world_size": self.ranks.world_size,
            "parts": {name: part.state_dict() for name, part in self.parts.items()},
            "scaler": self.scaler.state_dict(),
            "history": {k: list(v) for k, v in self.history.items()},
            "rng": {"generator": self.generator.get_state(),
                    "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "python": random.getstate(),
                    "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)),
                              *numpy_state[2:]]},
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "?") -> None:
        """Restore a :meth:`state_dict` (refused if another run wrote it)."""
        if state.get("fingerprint") != self.fingerprint:
            theirs = state.get("fingerprint") or {}
            keys = sorted(k for k in {*theirs, *self.fingerprint}
                          if theirs.get(k) != self.fingerprint.get(k))
            raise ValueError(f"{source} was written by another run (it differs in "
                             f"{', '.join(keys[:8]) or 'its format'}); resume with the same "
                             "settings or use a fresh --checkpoint-dir")
        missing = set(self.parts) - set(state["parts"])
        if missing:
            raise ValueError(f"{source} has no state for {sorted(missing)}")
        for name, part in self.parts.items():
            part.load_state_dict(state["parts"][name])
        self.scaler.load_state_dict(state["scaler"])
        self.history.clear()
        self.history.update({k: list(v) for k, v in state["history"].items()})
        rng = state["rng"]
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
        python = rng["python"]
        random.setstate((python[0], tuple(python[1]), python[2]))
        numpy = rng["numpy"]
        np.random.set_state((numpy[0], numpy[1].numpy().astype(np.uint32),  # noqa: NPY002
                             *numpy[2:]))
        self.step = int(state["step"])

    # -- checkpoints --
    def save(self) -> Path | None:
        """Write the state as ``step-NNNNNNNN.pt`` (rank 0; atomic, fsync-ed); prune old ones."""
        folder = self.options.checkpoint_dir
        if folder is None or not self.ranks.is_main:
            return None
        path = Path(folder) / f"step-{self.step:08d}.pt"
        with atomic_write(path) as scratch:
            with scratch.open("wb") as file:
                torch.save(self.state_dict(), file)
                file.flush()
                os.fsync(file.fileno())
        for old in state_files(folder)[self.options.keep:]:
            old.unlink(missing_ok=True)
        return path

    def resume(self) -> None:
        """Load the newest good state of ``checkpoint_dir`` (a run with none starts at 0).

        Scratch files a killed save left behind (``.step-*``, never renamed into place)
        are deleted first (rank 0).
        """
        folder = Path(self.options.checkpoint_dir or ".")
        if self.ranks.is_main and folder.is_dir():
            for scratch in folder.glob(".step-*"):
                scratch.unlink(missing_ok=True)
        path, state = latest_state(folder)
        if state is not None:
            self.load_state_dict(state, str(path))
            self.resumed_from = path

    def steps(self, total: int, *, progress: bool = True, first: int = 0) -> Iterator[int]:
        """The loop's step indices ``first .. first + total - 1``, resumed and checkpointed.

        A resumed run (:meth:`track`) continues after its step; after each step (when the
        loop body has run) the state is saved every ``checkpoint_every`` steps and after
        the last one.
        """
        every = self.options.checkpoint_every
        bar = tqdm(range(first + self.step, first + total), desc=self.desc,
                   initial=self.step, total=total,
                   disable=not progress or not self.ranks.is_main)
        self.bar = bar
        for index in bar:
            yield index
            self.step += 1
            if self.options.checkpoint_dir and (
                    (every and self.step % every == 0) or self.step == total):
                self.save()
            if self.options.on_step is not None:
                self.options.on_step(self)

    # -- compute --
    def prepare(self, module: nn.Module) -> nn.Module:
        """``module`` as the loop should call it: ``channels_last`` and compiled if asked.

        The engine saves the original module (tracked by the caller), never the wrapper.
        """
        if self.options.channels_last:
            module.to(memory_format=torch.channels_last)
        if self.options.compile:
            return torch.compile(module)  # type: ignore[return-value]
        return module

    def autocast(self) -> AbstractContextManager[Any]:
        """The forward pass's precision context (``fp32``: a no-op)."""
        if self.options.precision == "fp32":
            return nullcontext()
        dtype = torch.bfloat16 if self.options.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def inputs(self, x: Tensor) -> Tensor:
        """A batch of images in the memory format the networks expect."""
        if self.options.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def shard(self, *tensors: Tensor | None) -> Any:
        """This rank's contiguous slice of global-batch tensors (``None`` stays ``None``).

        Alone, the tensors themselves. Raises ``ValueError`` if a batch does not divide
        by the number of ranks (the global batch would change).
        """
        w, r = self.ranks.world_size, self.ranks.rank
        out = []
        for t in tensors:
            if t is None or w == 1:
                out.append(t)
                continue
            if t.shape[0] % w:
                raise ValueError(f"the global batch {t.shape[0]} does not divide by "
                                 f"{w} ranks")
            per = t.shape[0] // w
            out.append(t[r * per:(r + 1) * per])
        return out[0] if len(out) == 1 else tuple(out)

    def mean(self, value: Tensor) -> float:
        """A logged scalar averaged over the ranks (the global batch's, as alone)."""
        value = value.detach().float()
        if self.ranks.world_size > 1:
            value = value.clone()
            dist.all_reduce(value, op=dist.ReduceOp.SUM)
            value /= self.ranks.world_size
        return value.item()

    def backward(self, loss: Tensor, optimiser: torch.optim.Optimizer, *,
                 clip: float = 0.0) -> float:
        """``backward`` -> average gradients over ranks -> clip -> ``optimiser.step()``.

        Only the parameters of ``optimiser`` are averaged and stepped (a GAN's G step
        leaves D's gradients alone). Returns the gradient norm before clipping (0 when
        not clipping).
        """
        self.scaler.scale(loss).backward()
        params = [p for group in optimiser.param_groups for p in group["params"]]
        if self.ranks.world_size > 1:
            average_gradients(params)
        norm = 0.0
        if clip > 0:
            self.scaler.unscale_(optimiser)
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        self.scaler.step(optimiser)
        self.scaler.update()
        return norm


Optimiser = Literal["sgd", "adam", "adamw"]
OPTIMISERS: tuple[str, ...] = get_args(Optimiser)


def build_optimiser(name: Optimiser, groups: list[dict[str, Any]], lr: float, *,
                    betas: tuple[float, float] = (0.9, 0.999), momentum: float = 0.9
                    ) -> torch.optim.Optimizer:
    """One of the three optimisers chapter 07 compares, on parameter ``groups``.

    * ``"sgd"``: $v \\leftarrow \\mu v + g$, $\\theta \\leftarrow \\theta - \\eta v$ (heavy ball,
      Polyak 1964; a group's ``weight_decay`` $\\lambda$ adds $\\lambda\\theta$ to $g$);
    * ``"adam"``: $\\theta \\leftarrow \\theta - \\eta\\,\\hat m / (\\sqrt{\\hat v} + \\epsilon)$
      (Kingma & Ba 2015), weight decay coupled into $g$ (an L2 penalty that the
      normalisation then shrinks for parameters with large gradients);
    * ``"adamw"``: Adam with the decay decoupled, $\\theta \\leftarrow \\theta(1 - \\eta\\lambda)$
      (Loshchilov & Hutter 2019).
    """
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=betas)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr, betas=betas)
    raise ValueError(f"unknown optimiser {name!r}; valid: {', '.join(OPTIMISERS)}")


#: config fields that change how a run executes or reports, not what it computes
VOLATILE = frozenset({"progress", "device", "threads", "checkpoint_every", "checkpoint_path"})


def fingerprint(config: Any, model_config: Any, data: Tensor,
                options: RunOptions | None = None) -> dict[str, Any]:
    """What identifies a run for resuming, flat: its config (less :data:`VOLATILE` fields),
    the network's config, the data's shape and the precision (``{"config.lr": ...}``)."""
    def plain(c: Any) -> dict[str, Any]:
        d = (dataclasses.asdict(c) if dataclasses.is_dataclass(c) and not isinstance(c, type)
             else dict(c))
        return {k: v for k, v in d.items() if k not in VOLATILE}

    return {**{f"config.{k}": v for k, v in plain(config).items()},
            **{f"model.{k}": v for k, v in plain(model_config).items()},
            "data.shape": list(data.shape), "precision": (options or RunOptions()).precision}


def average_gradients(params: list[nn.Parameter]) -> None:
    """$g \\leftarrow \\frac1W \\sum_r g_r$ for every parameter with a gradient (one all-reduce)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])                 # one message, not many
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def state_files(folder: str | Path) -> list[Path]:
    """The training states in ``folder``, newest (highest step) first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    files = [p for p in folder.iterdir() if STATE_NAME.match(p.name)]
    return sorted(files, key=lambda p: p.name, reverse=True)


def latest_state(folder: str | Path) -> tuple[Path | None, dict[str, Any] | None]:
    """The newest state of ``folder`` that loads (``weights_only``); a bad one is skipped.

    A truncated or corrupt file (a copy cut short, a full disk) gives a warning naming it,
    and the one before it is tried. Returns ``(None, None)`` when none is good.
    """
    for path in state_files(folder):
        try:
            return path, load_checked(path, STATE_FORMAT, "a training state")
        except ValueError as error:
            warnings.warn(f"skipping {path.name}: {error}", RuntimeWarning, stacklevel=2)
    return None, None
