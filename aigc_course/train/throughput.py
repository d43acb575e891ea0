"""Chapter 07's throughput table: what precision, ``torch.compile``, ``channels_last`` and
DataLoader workers do to the speed of the *real* DDPM training loop.

Every row is a run of :func:`aigc_course.train.diffusion.train_diffusion` with its own
:class:`~aigc_course.train.engine.RunOptions`; ``on_step`` records
``time.perf_counter()`` after each step, so the step times come out of the kind's own
loop (sampling the batch, $t$ and $\\epsilon$, forward, backward, Adam, EMA, logging).
With $t_k$ the time after step $k$, the first ``warmup`` steps are reported apart as
the *first-step time* $t_w - t_\\text{call}$ of the first round (``torch.compile``
compiles here; it also holds building the network), and the steady state is the median
$\\tilde t = \\operatorname{median}_k (t_k - t_{k-1})$ over the ``steps`` timed steps.
A row's throughput and its ratio to the plain fp32 loop are

$$\\text{samples/s} = B / \\tilde t, \\qquad
  r = \\frac{B / \\tilde t_\\text{row}}{B / \\tilde t_\\text{fp32}}
    = \\tilde t_\\text{fp32} / \\tilde t_\\text{row}$$

($r > 1$: faster). Rows alternate over ``rounds`` with the order rotated each round, so
slow phases of a shared machine fall on every row alike; a row's step time is the
median of its rounds' medians.

The input pipeline is measured twice: :func:`loader_table` times a
``torch.utils.data.DataLoader`` alone (the digits' label-preserving augmentation of
:func:`aigc_course.data.augment.augmentations`, per image) at 0, 1, 2 workers, and the
table's ``loader-N`` rows run the fp32 loop while drawing one such batch per step. With
0 workers a step costs about $t_\\text{model} + t_\\text{load}$; with $W$ workers the
loading overlaps the step, $\\max(t_\\text{model}, t_\\text{load}/W)$, but only if there
are free cores: on 2 cores the workers compete with the training threads.

Simplified: wall-clock medians of one process (no profiler traces, no GPU kernel
timings); the ``loader-N`` rows draw their batches and drop them (the loop still trains
on its in-memory tensors), so they measure the pipeline's cost, not another computation.
Their $W$ workers queue $2W$ batches during the warm-up: a round of fewer timed steps
than that hides a loader slower than the model (:func:`loader_table` drains the queue
before timing).
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure
from torch.utils.data import DataLoader, Dataset, RandomSampler

from aigc_course import kinds
from aigc_course.data.augment import augmentations
from aigc_course.data.registry import load_images
from aigc_course.models.unet import DenoiserConfig
from aigc_course.profiles import DiffusionProfile, ScaleProfile
from aigc_course.train.diffusion import DiffusionTrainConfig, train_diffusion
from aigc_course.train.engine import Engine, Precision, RunOptions
from aigc_course.utils import num_threads, seeded

Tensor = torch.Tensor


@dataclass(frozen=True)
class Row:
    """One row of the table: how the loop runs.

    Attributes:
        name: the row's key (``rows=`` of :func:`throughput_table`).
        label: what the table and the plot print.
        precision: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (autocast; fp16 with a scaler).
        compile: ``torch.compile`` the network.
        channels_last: NHWC weights and inputs.
        workers: draw one augmented batch per step from a DataLoader with this many
            workers (``None``: no DataLoader).
    """

    name: str
    label: str
    precision: Precision = "fp32"
    compile: bool = False
    channels_last: bool = False
    workers: int | None = None


ROWS: dict[str, Row] = {row.name: row for row in (
    Row("fp32", "fp32 (baseline)"),
    Row("bf16", "bf16 autocast", precision="bf16"),
    Row("fp16", "fp16 + GradScaler", precision="fp16"),
    Row("compile", "torch.compile", compile=True),
    Row("channels_last", "channels_last", channels_last=True),
    Row("bf16+channels_last", "bf16 + channels_last", precision="bf16", channels_last=True),
    Row("loader-0", "fp32 + DataLoader, 0 workers", workers=0),
    Row("loader-1", "fp32 + DataLoader, 1 worker", workers=1),
    Row("loader-2", "fp32 + DataLoader, 2 workers", workers=2),
)}
#: the rows measured by default; ``"compile"`` is opt-in: compiling the smoke-size U-Net
#: took 157 s cold (14 s from inductor's disk cache) on the 2-core course machine
DEFAULT_ROWS: tuple[str, ...] = ("fp32", "bf16", "fp16", "channels_last", "loader-0",
                                 "loader-2")
BASELINE = "fp32"
PREFETCH = 2                      # DataLoader's prefetch_factor: batches queued per worker


def _row(name: str) -> Row:
    """The row called ``name`` (``ValueError`` listing the valid ones)."""
    if name not in ROWS:
        raise ValueError(f"unknown throughput row {name!r}; valid: {', '.join(ROWS)}")
    return ROWS[name]


def run_options(name: str, on_step: Callable[[Engine], None] | None = None) -> RunOptions:
    """The :class:`RunOptions` of row ``name`` (precision, compile, channels_last)."""
    row = _row(name)
    return RunOptions(precision=row.precision, compile=row.compile,
                      channels_last=row.channels_last, on_step=on_step)


def row_order(rows: Sequence[str], rounds: int) -> list[list[str]]:
    """The order rows run in, per round: round $k$ starts at row $k \\bmod n$.

    ``row_order(["a", "b", "c"], 3) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"]]``
    """
    n = len(rows)
    return [[rows[(k + i) % n] for i in range(n)] for k in range(rounds)]


def note(name: str, device: str | torch.device = "cpu") -> str:
    """What row ``name`` means on ``device`` (emulated precisions are said so)."""
    row, kind = _row(name), torch.device(device).type
    if row.workers is not None:
        return (f"fp32 loop + one augmented batch per step from {row.workers} DataLoader "
                "worker(s) (main process when 0); workers compete for the cores")
    if row.compile:
        return "inductor; the first-step time holds the compile (on-disk cache: faster again)"
    parts = []
    if row.precision == "bf16":
        if kind == "cuda":
            native = torch.cuda.is_available() and torch.cuda.is_bf16_supported(
                including_emulation=False)
            parts.append("native bf16" if native else
                         "bf16 EMULATED on this GPU (pre-Ampere, e.g. T4): use fp16")
        else:
            parts.append(f"bf16 on the CPU ({torch.backends.cpu.get_cpu_capability()}; "
                         "fast only with AVX512-BF16/AMX)")
    if row.precision == "fp16":
        parts.append("fp16 tensor cores + loss scaling" if kind == "cuda" else
                     "EMULATED on the CPU (no fp16 math): not meaningful here, shown anyway")
    if row.channels_last:
        parts.append("NHWC weights and inputs")
    return "; ".join(parts) or "the plain loop: weights, activations and Adam in fp32"


class AugmentedImages(Dataset[tuple[Tensor, Tensor]]):
    """``images[i]`` through a dataset's light augmentation (one random draw per image).

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``. labels: ``(N,)``.
        dataset: the name :func:`~aigc_course.data.augment.augmentations` knows.
    """

    def __init__(self, images: Tensor, labels: Tensor, dataset: str = "digits") -> None:
        self.images, self.labels = images, labels
        self.transform = augmentations(dataset, "light")

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.transform(self.images[index]), self.labels[index]


def make_loader(images: Tensor, labels: Tensor, *, batch_size: int, batches: int,
                workers: int, dataset: str = "digits", seed: int = 0) -> DataLoader[Any]:
    """A DataLoader of ``batches`` augmented batches drawn with replacement (one epoch
    covers them all, so the workers start once)."""
    data = AugmentedImages(images, labels, dataset)
    sampler = RandomSampler(data, replacement=True, num_samples=batch_size * batches,
                            generator=torch.Generator().manual_seed(seed))
    return DataLoader(data, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      drop_last=True, prefetch_factor=PREFETCH if workers else None)


def time_row(name: str, images: Tensor, labels: Tensor, model_config: DenoiserConfig, *,
             batch_size: int, steps: int, warmup: int, seed: int = 0, device: str = "cpu",
             dataset: str = "digits") -> dict[str, Any]:
    """One run of row ``name``: ``warmup + steps`` steps of :func:`train_diffusion`.

    Returns:
        ``{"step_s": [timed step seconds], "first_s": call to the end of the warm-up,
        "loss": [loss per step]}``.
    """
    row = _row(name)
    stamps: list[float] = []
    batches: Iterator[Any] | None = None
    if row.workers is not None:                      # the workers start (fork) here
        batches = iter(make_loader(images, labels, batch_size=batch_size,
                                   batches=warmup + steps, workers=row.workers,
                                   dataset=dataset, seed=seed))
    cuda = torch.device(device).type == "cuda"

    def on_step(engine: Engine) -> None:
        if batches is not None:
            next(batches)                            # the pipeline's batch, dropped
        if cuda:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    if row.compile:
        torch.compiler.reset()                       # compile afresh in every round
    config = DiffusionTrainConfig(steps=warmup + steps, batch_size=batch_size, seed=seed,
                                  device=device, progress=False)
    start = time.perf_counter()
    _, history = train_diffusion(images, labels, model_config, config,
                                 run_options(name, on_step))
    batches = None                                   # stops the workers
    if len(stamps) != warmup + steps or len(history["loss"]) != warmup + steps:
        raise RuntimeError(f"row {name!r} ran {len(stamps)} steps, expected {warmup + steps}")
    return {"step_s": [b - a for a, b in pairwise(stamps[warmup - 1:])],
            "first_s": stamps[warmup - 1] - start, "loss": history["loss"]}


def throughput_table(images: Tensor, labels: Tensor, model_config: DenoiserConfig, *,
                     batch_size: int, steps: int, warmup: int, rounds: int, seed: int = 0,
                     device: str = "cpu", rows: Sequence[str] = DEFAULT_ROWS,
                     threads: int | None = None, dataset: str = "digits"
                     ) -> list[dict[str, Any]]:
    """Time the rows of :data:`ROWS` on the DDPM loop; ratios to the fp32 loop.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``. labels: ``(N,)`` (the model's classes).
        model_config: the denoiser (e.g. the profile's U-Net).
        batch_size: minibatch size $B$.
        steps: timed steps per row and round.
        warmup: untimed steps before them (at least 1; compiling happens here).
        rounds: rounds over the rows, each in a rotated order (:func:`row_order`).
        seed: every run's seed (all rows train the same computation).
        device: ``"cpu"`` or ``"cuda"``.
        rows: names from :data:`ROWS`; ``"fp32"`` is added first if missing (the baseline).
        threads: torch CPU threads (``None``: leave as is).
        dataset: the augmentation of the ``loader-N`` rows.

    Returns:
        One dict per row, in ``rows`` order: ``row``, ``label``, ``precision``, ``compile``,
        ``channels_last``, ``workers``, ``step_ms`` (median of the rounds' median step),
        ``rounds_ms`` (those medians), ``samples_per_s`` ($B/\\tilde t$), ``ratio`` (to
        fp32's samples/s), ``first_s`` (the first round's time from the call to the end of
        the warm-up: the compile or first-step time a new process pays; later rounds find
        inductor's kernels in its on-disk cache, ``first_rounds_s`` lists every round's),
        ``overhead_s`` (``first_s`` less
        ``warmup`` steady steps: the one-off cost; noise can make it slightly negative),
        ``steps`` (steps each run trained), ``loss`` (mean loss of the last round's timed
        steps), ``finite`` (every loss of every round finite) and ``note``.

    Raises:
        ValueError: an unknown row, or ``steps``, ``warmup``, ``rounds`` below 1.
    """
    names = list(dict.fromkeys([BASELINE, *rows] if BASELINE not in rows else rows))
    for name in names:
        _row(name)
    if steps < 1 or warmup < 1 or rounds < 1:
        raise ValueError(f"steps, warmup and rounds must be >= 1, got {steps}, {warmup}, "
                         f"{rounds} (the warm-up's last step starts the clock)")
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with num_threads(threads):
        train_diffusion(images, labels, model_config,           # warms the process, untimed
                        DiffusionTrainConfig(steps=1, batch_size=batch_size, seed=seed,
                                             device=device, progress=False))
        for order in row_order(names, rounds):
            for name in order:
                runs[name].append(time_row(name, images, labels, model_config,
                                           batch_size=batch_size, steps=steps, warmup=warmup,
                                           seed=seed, device=device, dataset=dataset))
    table = []
    for name in names:
        row = ROWS[name]
        medians = [statistics.median(r["step_s"]) for r in runs[name]]
        step_s = statistics.median(medians)
        first_s = runs[name][0]["first_s"]
        losses = [v for r in runs[name] for v in r["loss"]]
        table.append({
            "row": name, "label": row.label, "precision": row.precision,
            "compile": row.compile, "channels_last": row.channels_last,
            "workers": row.workers, "step_ms": 1000 * step_s,
            "rounds_ms": [1000 * m for m in medians], "samples_per_s": batch_size / step_s,
            "first_s": first_s, "first_rounds_s": [r["first_s"] for r in runs[name]],
            "overhead_s": first_s - warmup * step_s,
            "steps": warmup + steps,
            "loss": statistics.fmean(runs[name][-1]["loss"][warmup:]),
            "finite": all(math.isfinite(v) for v in losses), "note": note(name, device)})
    base = table[names.index(BASELINE)]["samples_per_s"]
    for entry in table:
        entry["ratio"] = entry["samples_per_s"] / base
    return table


def loader_table(images: Tensor, labels: Tensor, *, batch_size: int, batches: int,
                 workers: Sequence[int] = (0, 1, 2), dataset: str = "digits",
                 seed: int = 0, threads: int | None = None,
                 step_ms: float | None = None) -> list[dict[str, Any]]:
    """The input pipeline alone: images/s of an augmenting DataLoader per worker count.

    Args:
        images, labels: the training set. batch_size: images per batch.
        batches: timed batches per worker count, after untimed ones: the first (it holds
            the workers' start) and the $2W$ the $W$ workers prefetched meanwhile
            (``prefetch_factor`` 2), which would otherwise come for free.
        workers: the ``num_workers`` to time.
        dataset: whose light augmentation (:func:`~aigc_course.data.augment.augmentations`).
        seed: the sampler's seed (and, with 0 workers, the augmentation's).
        threads: torch CPU threads of the main process (``None``: leave as is).
        step_ms: a training step's time (e.g. the fp32 row's ``step_ms``): adds
            ``vs_step``, the loader's images/s over the step's samples/s ($> 1$: the
            loader keeps up with the model, on cores of its own).

    Returns:
        One dict per worker count: ``row`` ("DataLoader, N workers"), ``workers``,
        ``batch_ms`` (mean per timed batch), ``images_per_s``, ``startup_s`` (to the first
        batch) and ``vs_step`` (``None`` without ``step_ms``).
    """
    table = []
    with num_threads(threads), seeded(seed):
        for n in workers:
            drain = 1 + n * PREFETCH                  # the start, then what was prefetched
            start = time.perf_counter()
            iterator = iter(make_loader(images, labels, batch_size=batch_size,
                                        batches=drain + batches, workers=n, dataset=dataset,
                                        seed=seed))
            next(iterator)
            startup_s = time.perf_counter() - start
            for _ in range(drain - 1):
                next(iterator)
            begin = time.perf_counter()
            for _ in range(batches):
                next(iterator)
            batch_s = (time.perf_counter() - begin) / batches
            del iterator
            table.append({"row": f"DataLoader, {n} workers", "workers": n,
                          "batch_ms": 1000 * batch_s, "images_per_s": batch_size / batch_s,
                          "startup_s": startup_s,
                          "vs_step": None if step_ms is None else step_ms / 1000 / batch_s})
    return table


def throughput_from_profile(p: ScaleProfile, *, rows: Sequence[str] | None = None,
                            with_compile: bool | None = None, seed: int = 0,
                            loader: bool = True) -> dict[str, list[dict[str, Any]]]:
    """The throughput table (and the loader table) at profile ``p``'s sizes.

    The model and data are the DDPM's of the same profile name
    (:class:`~aigc_course.profiles.DiffusionProfile`: dataset, image size, ``max_train``,
    U-Net width, batch size, device); ``p`` gives ``throughput_steps``,
    ``throughput_warmup``, ``throughput_rounds``, ``throughput_batch`` (``None``: the
    DDPM's batch) and ``num_threads``.

    Args:
        p: chapter 07's profile.
        rows: the rows (``None``: :data:`DEFAULT_ROWS`, plus ``"compile"`` if asked).
        with_compile: add the ``torch.compile`` row (``None``: the profile's
            ``throughput_compile`` knob, except in a dry run, which never compiles; on the
            2-core CPU compiling the smoke U-Net took 157 s with a cold cache).
        seed: every run's seed.
        loader: also time the DataLoader alone (:func:`loader_table`, 0/1/2 workers).

    Returns:
        ``{"table": throughput_table(...), "loader": loader_table(...) or []}``.
    """
    d = kinds.profile_for(kinds.get("ddpm"), p.name, dry_run=p.dry_run)
    if not isinstance(d, DiffusionProfile):
        raise TypeError(f"the ddpm kind's profile is a {type(d).__name__}")
    if with_compile is None:
        with_compile = p.throughput_compile and not p.dry_run
    names = list(DEFAULT_ROWS if rows is None else rows)
    if with_compile and "compile" not in names:
        names.append("compile")
    x, y = load_images(d.dataset, "train", image_size=d.image_size, max_items=d.max_train)
    model_config = DenoiserConfig(arch="unet", image_size=x.shape[-1], channels=x.shape[1],
                                  width=d.width, num_classes=10)
    batch = p.throughput_batch or d.batch_size
    table = throughput_table(x, y, model_config, batch_size=batch,
                             steps=p.throughput_steps, warmup=p.throughput_warmup,
                             rounds=p.throughput_rounds, seed=seed, device=d.device,
                             rows=names, threads=p.num_threads, dataset=d.dataset)
    loaders = loader_table(x, y, batch_size=batch, batches=p.throughput_steps,
                           dataset=d.dataset, seed=seed, threads=p.num_threads,
                           step_ms=table[0]["step_ms"]) if loader else []
    return {"table": table, "loader": loaders}


def plot_throughput(rows: Sequence[dict[str, Any]]) -> Figure:
    """Bars of each row's ratio to fp32 (a line at 1), labelled with samples/s."""
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
    labels = [r["label"] for r in rows][::-1]
    ratios = [r["ratio"] for r in rows][::-1]
    colours = ["tab:green" if v >= 1 else "tab:red" for v in ratios]
    bars = ax.barh(labels, ratios, color=colours, alpha=0.8)
    for bar, r in zip(bars, rows[::-1], strict=True):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                f"  {r['ratio']:.2f}x ({r['samples_per_s']:.0f}/s)", va="center", fontsize=8)
    ax.axvline(1.0, color="black", lw=1)
    ax.set_xlabel("samples/s relative to the fp32 loop")
    ax.set_xlim(0, max(1.0, *ratios) * 1.35)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig
