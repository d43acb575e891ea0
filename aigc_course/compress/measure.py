"""Measuring a compression honestly: latency, size on disk and quality, side by side.

A compression is only worth what it measures, so every method of chapter 09 goes through
the same three functions:

* :func:`compare_latency` -- wall time of several candidates on one CPU thread, each
  round timing every candidate once in a rotated order (A B C, B C A, C A B, ...), and
  the median over rounds. Alternation spreads a busy machine's slow spells over all
  candidates instead of one; the median ignores the odd stall. Report ratios to a
  baseline measured in the same rounds, never absolute times from another run.
* :func:`size_on_disk` -- bytes of the file a method produces (a checkpoint, an ONNX
  file), or of a module's state dict as ``torch.save`` writes it.
* :func:`generator_quality` -- judge FID, label accuracy and recognisability of a
  generator callable ``(z, y) -> images`` on fixed latents, against the train split of
  the samples' own dataset at their size (:func:`aigc_course.metrics.evaluate`): every
  variant of one teacher sees the same ``z`` and ``y``, so their differences are the
  compression's, not the draw's.

:class:`TradeOff` is one row of the chapter's table; :func:`trade_off_table` and
:func:`plot_pareto` show all rows and the Pareto front (no other row is both faster and
better).
"""

from __future__ import annotations

import io
import math
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from aigc_course.metrics import evaluate
from aigc_course.utils import count_params, num_threads

Tensor = torch.Tensor
Generate = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Latency:
    """Seconds per call of one candidate: the median over rounds, and every round's value."""

    name: str
    seconds: float
    rounds: tuple[float, ...]

    @property
    def spread(self) -> float:
        """(max - min) / median over rounds: how noisy the machine was for this candidate."""
        return (max(self.rounds) - min(self.rounds)) / self.seconds if self.seconds else 0.0


def _calls_per_round(fn: Callable[[], object], target_s: float) -> int:
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-6)
    return max(1, min(1000, math.ceil(target_s / once)))


@torch.no_grad()
def compare_latency(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 7,
                    warmup: int = 2, round_seconds: float = 0.05, threads: int | None = 1
                    ) -> dict[str, Latency]:
    """Median seconds per call of each candidate, timed in alternation.

    Each candidate is first called ``warmup`` times (a compiled function compiles then:
    time compilation separately). Each round then times every candidate once, for as
    many calls as fill about ``round_seconds`` (fixed per candidate, from one call after
    warm-up), starting with a different candidate each round.

    Args:
        candidates: name -> a function of no arguments doing one unit of work (e.g.
            ``lambda: generator(z, y)`` for a batch).
        rounds: timed rounds (at least 3: the median of fewer is not robust).
        warmup: untimed calls first.
        round_seconds: about this long per candidate per round.
        threads: torch CPU threads while timing (``None``: leave as is). One thread is
            what a laptop core or a serving worker gets and the least noisy here.

    Returns:
        name -> :class:`Latency`, in the order of ``candidates``.

    Raises:
        ValueError: fewer than 3 rounds or no candidates.
    """
    if rounds < 3:
        raise ValueError(f"rounds must be at least 3 for a median, got {rounds}")
    if not candidates:
        raise ValueError("no candidates to time")
    names = list(candidates)
    times: dict[str, list[float]] = {name: [] for name in names}
    with num_threads(threads):
        for fn in candidates.values():
            for _ in range(warmup):
                fn()
        calls = {name: _calls_per_round(fn, round_seconds) for name, fn in candidates.items()}
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:   # rotated order
                fn, n = candidates[name], calls[name]
                start = time.perf_counter()
                for _ in range(n):
                    fn()
                if torch.cuda.is_available():
                    torch.cuda.synchronize()     # CUDA runs asynchronously: wait for it
                times[name].append((time.perf_counter() - start) / n)
    return {name: Latency(name, statistics.median(t), tuple(t)) for name, t in times.items()}


def size_on_disk(obj: str | Path | nn.Module | Mapping[str, Tensor]) -> int:
    """Bytes of a file, or of a module's (or state dict's) ``torch.save`` file.

    ``torch.save`` writes every tensor densely (a zip archive, stored, not compressed):
    a weight that is 90% zeros takes as many bytes as a dense one.

    Raises:
        FileNotFoundError: a path that is not a file.
    """
    if isinstance(obj, str | Path):
        path = Path(obj)
        if not path.is_file():
            raise FileNotFoundError(f"no file {path}")
        return path.stat().st_size
    state = obj.state_dict() if isinstance(obj, nn.Module) else dict(obj)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getbuffer().nbytes


def fixed_latents(n: int, shape: int | tuple[int, ...], num_classes: int, seed: int = 0
                  ) -> tuple[Tensor, Tensor]:
    """``n`` latents ``(n, *shape)`` from a seeded generator and labels ``(n,)``.

    ``shape`` is a GAN's ``latent_dim`` or a diffusion model's image shape ``(C, H, W)``
    (its $x_T$). Labels are the classes in turn (``-1`` for an unconditional model), as
    :func:`aigc_course.kinds.draw` draws them.
    """
    generator = torch.Generator().manual_seed(seed)
    dims = (shape,) if isinstance(shape, int) else tuple(shape)
    z = torch.randn(n, *dims, generator=generator)                        # (n, *shape)
    y = torch.arange(n) % num_classes if num_classes else torch.full((n,), -1)
    return z, y


@torch.no_grad()
def generator_quality(generate: Generate, z: Tensor, y: Tensor, *, dataset: str,
                      batch_size: int = 500) -> dict[str, Any]:
    """Judge metrics of ``generate(z, y)`` against the dataset's train split.

    Args:
        generate: a generator callable ``(z (B, latent), y (B,)) -> (B, C, H, W)`` in
            ``[-1, 1]``: eager, compiled, quantised or an ONNX session's wrapper alike.
        z, y: the fixed latents and labels (:func:`fixed_latents`); labels ``-1``
            mean unconditional.
        dataset: the samples' own dataset (its judge and its train split at the
            samples' size are the reference).
        batch_size: latents per call.

    Returns:
        ``n``, ``fid``, ``label_accuracy`` (NaN when unconditional),
        ``recognisability``, ``coverage``, ``precision``, ``recall``.
    """
    images = torch.cat([generate(z[i:i + batch_size], y[i:i + batch_size]).float().cpu()
                        for i in range(0, len(z), batch_size)])          # (n, C, H, W)
    report = evaluate(images.clamp(-1, 1), y, dataset=dataset, kid_subsets=10)
    keys = ("n", "fid", "label_accuracy", "recognisability", "coverage", "precision", "recall")
    return {k: report.get(k, math.nan) for k in keys}


@dataclass
class TradeOff:
    """One row of chapter 09's table: what a method costs and what it gives.

    Attributes:
        method: what was done (``"fp32 eager"``, ``"channels 50% + fine-tune"``, ...).
        model: which model it was applied to (``"GAN (03)"``, ``"diffusion (05)"``).
        params: parameters of the network that runs (zeros included).
        nonzero: non-zero parameters.
        bytes: size on disk of what would ship.
        seconds: median seconds per batch (:func:`compare_latency`).
        baseline_seconds: the same model's fp32 eager seconds, timed in the same rounds.
        fid: judge FID against the train split (same ``n`` for every row of a model).
        label_accuracy: the judge's agreement with the requested labels.
        note: how it ran (runtime, steps, batch).
    """

    method: str
    model: str
    params: int
    nonzero: int
    bytes: int
    seconds: float
    baseline_seconds: float
    fid: float
    label_accuracy: float = math.nan
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def speedup(self) -> float:
        """Baseline seconds over this row's: above 1 is faster."""
        return self.baseline_seconds / self.seconds

    def as_dict(self) -> dict[str, Any]:
        """Plain values (for ``record`` and the table), the speed-up included."""
        row = {k: v for k, v in asdict(self).items() if k != "extra"}
        return {**row, "speedup": self.speedup, **self.extra}


def pareto_front(rows: Sequence[TradeOff]) -> list[TradeOff]:
    """Rows no other row beats on both latency and FID (ties kept), fastest first."""
    front = [r for r in rows
             if not any(o.seconds <= r.seconds and o.fid <= r.fid
                        and (o.seconds < r.seconds or o.fid < r.fid) for o in rows)]
    return sorted(front, key=lambda r: r.seconds)


def compress_goal(rows: Sequence[TradeOff], max_fid_ratio: float = 1.1
                  ) -> dict[int, dict[str, Any]]:
    """Per batch size, the fastest row whose FID is at most ``max_fid_ratio`` x the baseline's.

    The baseline is the first row (fp32 eager). Batch sizes are those of the rows'
    ``speedup_bB`` extras (:meth:`Bench.rows`).

    Returns:
        batch size -> ``method``, ``speedup``, ``fid``, ``fid_ratio``.
    """
    base = rows[0]
    good = [r for r in rows if r.fid <= max_fid_ratio * base.fid]
    batches = [int(k[len("speedup_b"):]) for k in base.extra if k.startswith("speedup_b")]
    goal = {}
    for b in batches:
        key = f"speedup_b{b}"
        best = max(good, key=lambda r: float(r.extra[key]))  # noqa: B023 (used right here)
        goal[b] = {"method": best.method, "speedup": best.extra[f"speedup_b{b}"],
                   "fid": best.fid, "fid_ratio": best.fid / base.fid}
    return goal


def trade_off_table(rows: Sequence[TradeOff]) -> Any:
    """A pandas table of ``rows``: size in KB, ms per batch, speed-ups, FID, label accuracy.

    ``ms / batch`` and ``speed-up`` are at each row's main batch size; a ``speed-up,
    batch B`` column is added for each ``speedup_bB`` in the rows' ``extra``.
    """
    import pandas as pd

    front = {id(r) for model in {r.model for r in rows}
             for r in pareto_front([x for x in rows if x.model == model])}
    return pd.DataFrame([{
        "model": r.model, "method": r.method, "params": r.params, "non-zero": r.nonzero,
        "size KB": round(r.bytes / 1024, 1), "ms / batch": round(r.seconds * 1e3, 2),
        "speed-up": round(r.speedup, 2),
        **{f"speed-up, batch {k[len('speedup_b'):]}": round(v, 2) for k, v in r.extra.items()
           if k.startswith("speedup_b")},
        "judge FID": round(r.fid, 2), "label acc.": round(r.label_accuracy, 3),
        "Pareto": "yes" if id(r) in front else "", "note": r.note} for r in rows])


def plot_pareto(rows: Sequence[TradeOff], max_fid_ratio: float = 1.1) -> Any:
    """One panel per model: speed-up against judge FID, both on log scales.

    The Pareto front is joined and labelled, with the baseline (the model's first row);
    the other rows are drawn smaller, unlabelled (the table names them). A dotted line
    marks ``max_fid_ratio`` times the baseline's FID, the quality budget.

    Returns:
        The matplotlib figure.
    """
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(r.model for r in rows))
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.5), squeeze=False)
    for ax, model in zip(axes[0], models, strict=True):
        mine = [r for r in rows if r.model == model]
        front = pareto_front(mine)
        ax.scatter([r.speedup for r in mine], [r.fid for r in mine], s=18, color="0.6",
                   label="other rows (see the table)")
        ax.plot([r.speedup for r in front], [r.fid for r in front], "o--", color="C0",
                label="Pareto front")
        labelled = [mine[0], *[r for r in front if r is not mine[0]]]
        for r in labelled:                 # slanted: front points often share one FID
            ax.annotate(r.method, (r.speedup, r.fid), fontsize=7, xytext=(3, 5), rotation=35,
                        textcoords="offset points")
        ax.axhline(max_fid_ratio * mine[0].fid, color="C3", ls=":", lw=1,
                   label=f"{max_fid_ratio:.2g} x the baseline's FID")
        ax.axvline(1, color="grey", lw=0.8)
        ax.set(xscale="log", yscale="log", title=model,
               xlabel="speed-up over fp32 eager (1 thread, log scale)",
               ylabel="judge FID (lower is better, log scale)")
        ax.legend(fontsize=8)
    fig.suptitle("What each compression buys")
    fig.tight_layout()
    return fig


class Bench:
    """One model's candidates, scored on the same latents and timed side by side.

    The first candidate added is the baseline (fp32 eager): every row's speed-up is
    against it, timed in the same alternated rounds, at each batch size of ``batches``
    (one request, ``1``, is overhead-bound; a large batch is throughput-bound, and the
    two can rank methods differently). The first batch size is the table's main one.

    Args:
        model: the model's name in the table (``"GAN (03)"``).
        dataset: the samples' own dataset (the judge's reference).
        z, y: fixed latents and labels for quality (:func:`fixed_latents`).
        batches: how many of them one timed call generates, one timing per size.
        rounds: alternated timing rounds.
    """

    def __init__(self, model: str, dataset: str, z: Tensor, y: Tensor,
                 batches: Sequence[int] = (64,), rounds: int = 7) -> None:
        if not batches or min(batches) < 1 or max(batches) > len(z):
            raise ValueError(f"batch sizes must be in 1..{len(z)} (the latents), got {batches}")
        self.model, self.dataset, self.z, self.y = model, dataset, z, y
        self.batches, self.rounds = tuple(batches), rounds
        self.candidates: dict[str, dict[str, Any]] = {}
        self.latency: dict[int, dict[str, Latency]] = {}
        self._timed_together = False          # the latencies come from one call over all

    def add(self, method: str, generate: Generate, network: nn.Module, *,
            nbytes: int | None = None, note: str = "", **extra: Any) -> dict[str, Any]:
        """Score ``generate`` on the fixed latents and keep it for timing.

        Args:
            method: the row's name (unique).
            generate: ``(z, y) -> images`` as it would run in production.
            network: the module whose parameters it runs (counted, zeros apart).
            nbytes: bytes of what would ship (``None``: ``network``'s state dict).
            note: how it runs. extra: more columns for the record.

        Returns:
            The quality report (:func:`generator_quality`).
        """
        if method in self.candidates:
            raise ValueError(f"a row {method!r} exists already")
        quality = generator_quality(generate, self.z, self.y, dataset=self.dataset)
        params = count_params(network, trainable_only=False)
        nonzero = sum(int((p != 0).sum()) for p in network.parameters())
        self.candidates[method] = dict(generate=generate, quality=quality, params=params,
                                       nonzero=nonzero, note=note, extra=extra,
                                       nbytes=size_on_disk(network) if nbytes is None else nbytes)
        self._timed_together = False
        return quality

    def time(self, methods: Sequence[str] | None = None) -> dict[int, dict[str, Latency]]:
        """Time the baseline and ``methods`` (``None``: all) in alternation, per batch size.

        Returns:
            batch size -> name -> :class:`Latency` (also kept for :meth:`rows`).
        """
        first = next(iter(self.candidates))
        names = list(self.candidates) if methods is None else [
            first, *[m for m in methods if m != first]]
        timed = {}
        for b in self.batches:
            zb, yb = self.z[:b], self.y[:b]
            calls = {m: (lambda g=self.candidates[m]["generate"], zb=zb, yb=yb: g(zb, yb))
                     for m in names}
            timed[b] = compare_latency(calls, rounds=self.rounds)
        self.latency = timed
        self._timed_together = set(names) == set(self.candidates)
        return timed

    def speedups(self, timed: dict[int, dict[str, Latency]] | None = None
                 ) -> dict[str, dict[int, float]]:
        """name -> batch size -> baseline seconds / its seconds (of ``timed`` or the last)."""
        timed = self.latency if timed is None else timed
        first = next(iter(self.candidates))
        return {m: {b: timed[b][first].seconds / timed[b][m].seconds for b in timed}
                for m in timed[self.batches[0]]}

    def rows(self) -> list[TradeOff]:
        """Every candidate as a :class:`TradeOff`, all timed in the same rounds.

        ``seconds`` are at the first batch size; ``extra`` holds ``speedup_b{B}`` and
        ``ms_b{B}`` for every batch size.
        """
        if not self._timed_together:
            self.time()
        first, main = next(iter(self.candidates)), self.batches[0]
        rows = []
        for m, c in self.candidates.items():
            per_batch = {}
            for b in self.batches:
                per_batch[f"speedup_b{b}"] = (self.latency[b][first].seconds
                                              / self.latency[b][m].seconds)
                per_batch[f"ms_b{b}"] = self.latency[b][m].seconds * 1e3
            rows.append(TradeOff(method=m, model=self.model, params=c["params"],
                                 nonzero=c["nonzero"], bytes=c["nbytes"],
                                 seconds=self.latency[main][m].seconds,
                                 baseline_seconds=self.latency[main][first].seconds,
                                 fid=c["quality"]["fid"],
                                 label_accuracy=c["quality"]["label_accuracy"], note=c["note"],
                                 extra={**per_batch, **c["extra"]}))
        return rows
