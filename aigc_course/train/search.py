"""Hyper-parameter search with Optuna: chapter 05's DDPM on a short run, pruned (chapter 07).

Each trial trains the DDPM of :func:`aigc_course.train.diffusion.train_diffusion` with
hyper-parameters $\\lambda$ drawn from a search space (learning rate, EMA decay, batch
size) and is scored by the validation loss of its EMA network,

$$f(\\lambda) = \\frac{1}{|V|} \\sum_{x_0 \\in V}
\\lVert \\epsilon - \\epsilon_\\theta(\\sqrt{\\bar\\alpha_t}\\,x_0 +
\\sqrt{1 - \\bar\\alpha_t}\\,\\epsilon, t) \\rVert^2,$$

on a fixed subset $V$ of the validation split with *fixed* draws of $t$ and $\\epsilon$
(:func:`~aigc_course.train.diffusion.validation_loss`): every trial and every report is
scored on the same noisy inputs, so differences are the networks', not the draws'.

* **sampler** -- the Tree-structured Parzen Estimator (Bergstra et al. 2011,
  :class:`optuna.samplers.TPESampler`, seeded; it takes log-scaled ranges and
  categorical choices alike and costs nothing next to a trial): after
  ``max(3, trials // 3)`` random trials it splits the finished ones at a quantile
  $\\gamma$ of $f$ into good and bad, fits densities $\\ell(\\lambda)$ and
  $g(\\lambda)$ to each, and proposes the candidate maximising
  $\\ell(\\lambda) / g(\\lambda)$ (the expected improvement, up to a monotone map).
  Seeded, the study is reproducible: on the CPU the same seed gives the same trials,
  parameters and values.
* **pruner** -- the median rule (Golovin et al. 2017, "Google Vizier",
  :class:`optuna.pruners.MedianPruner`): every ``report_every`` steps a trial reports
  its validation loss; it is stopped when that is worse than the median of the earlier
  trials' values at the same step. Not before ``n_startup_trials = max(2, trials // 5)``
  trials have finished (a median of one is a coin toss) and not in the first quarter of
  the budget (``n_warmup_steps = max_steps // 4``: while the learning rate warms up and
  the EMA still holds the initial weights, early losses rank trials poorly). The rule
  assumes that curves do not cross, so it is biased against slow starters that would
  catch up: long EMA memories and small learning rates (pass ``pruner=`` with a later
  ``n_warmup_steps`` to weaken it, or :class:`optuna.pruners.NopPruner` to switch it off).
* **a fair budget** -- the batch size changes the work of a step, so with ``budget=
  "samples"`` (the default) every trial sees the same number of training examples,
  $S_\\text{max} B_\\text{ref}$ with $B_\\text{ref}$ the smallest batch in the space: a
  trial with batch $B$ runs $\\lceil S_\\text{max} B_\\text{ref} / B \\rceil$ steps (and
  a warm-up shortened in proportion). Equal examples is equal FLOPs; equal steps
  (``budget="steps"``) would hand the larger batches more compute and the search would
  mostly learn that more compute helps. Progress, reports and the pruner's comparisons
  are in *reference steps* $s B / B_\\text{ref}$ (examples seen over $B_\\text{ref}$),
  so trials with different batches are compared at the same number of examples.
  Equal FLOPs is not equal wall time on a GPU, where small batches leave it idle.
* **common random numbers** -- every trial trains with the same ``seed`` (the same
  initial weights; the same data order where the batch is the same), which lowers the
  variance of the *differences* between trials; the price is that the winner is chosen
  for that seed.

:meth:`SearchResult.best_config` turns the winner into the next run's
:class:`~aigc_course.train.diffusion.DiffusionTrainConfig`. Simplified, and said so in
the chapter: the trials are short, and short runs favour large learning rates and short
EMA memories (the short-horizon bias, Wu et al. 2018), so the winner is a starting point
for the long run, not its optimum; one seed; the study lives in memory (a real search
would use a database storage so that several workers share it and a crash loses
nothing).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import matplotlib.pyplot as plt
import numpy as np
import optuna
import pandas as pd
import torch
from matplotlib.figure import Figure

from aigc_course.data.registry import load_images
from aigc_course.diffusion import NoiseSchedule
from aigc_course.models.unet import DenoiserConfig
from aigc_course.profiles import DiffusionProfile, ScaleProfile, resolve
from aigc_course.train.diffusion import (
    DiffusionModel,
    DiffusionTrainConfig,
    train_diffusion,
    validation_loss,
)
from aigc_course.train.ema import EMA
from aigc_course.train.engine import Engine, RunOptions
from aigc_course.utils import num_threads

Tensor = torch.Tensor
Budget = Literal["samples", "steps"]

#: the hyper-parameters a space may search: ``DiffusionTrainConfig`` fields and their types
SEARCHABLE: dict[str, type] = {"lr": float, "ema_decay": float, "batch_size": int,
                               "warmup": int, "p_uncond": float}
#: the columns the trials table always has (the base value where a field is not searched)
COLUMNS: tuple[str, ...] = ("lr", "ema_decay", "batch_size")


@dataclass(frozen=True)
class Range:
    """An interval to draw a number from: ``trial.suggest_float`` / ``suggest_int``.

    Attributes:
        low, high: the bounds (both included).
        log: draw uniformly in $\\log$ (for scales such as a learning rate).
        integer: draw integers.
    """

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"a Range needs low < high, got {self.low} and {self.high}")
        if self.log and self.low <= 0:
            raise ValueError(f"a log Range needs low > 0, got {self.low}")


@dataclass(frozen=True)
class Choice:
    """A finite set to choose from: ``trial.suggest_categorical``.

    Attributes:
        values: the choices (numbers; at least one).
    """

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a Choice needs at least one value")


Param = Range | Choice


def default_space(batch_size: int = 64) -> dict[str, Param]:
    """The chapter's space: learning rate, EMA decay and batch size around ``batch_size``.

    The learning rate spans two decades around the DDPM's $2\\cdot 10^{-3}$ (log-uniform);
    the EMA decays have memories $1/(1-d)$ of 10 to 1000 steps; the batch sizes are
    ``batch_size`` and its half and quarter (the smallest sets the budget's unit).
    """
    batches = tuple(sorted({max(1, batch_size // 4), max(1, batch_size // 2), batch_size}))
    return {"lr": Range(2e-4, 2e-2, log=True),
            "ema_decay": Choice((0.9, 0.99, 0.995, 0.999)),
            "batch_size": Choice(batches)}


#: :func:`default_space` for batches of 16, 32 and 64
DEFAULT_SPACE: dict[str, Param] = default_space(64)


def check_space(space: Mapping[str, Param]) -> None:
    """Raise ``ValueError`` for an empty space, an unknown name or a badly typed range."""
    if not space:
        raise ValueError(f"the search space is empty; searchable: {', '.join(SEARCHABLE)}")
    unknown = sorted(set(space) - set(SEARCHABLE))
    if unknown:
        raise ValueError(f"unknown hyper-parameter(s) {unknown} in the search space; "
                         f"valid: {', '.join(SEARCHABLE)}")
    for name, spec in space.items():
        if not isinstance(spec, Range | Choice):
            raise ValueError(f"{name}: expected a Range or a Choice, got {type(spec).__name__}")
        if SEARCHABLE[name] is int:
            values = spec.values if isinstance(spec, Choice) else (spec.low, spec.high)
            if (isinstance(spec, Range) and not spec.integer) or any(
                    isinstance(v, bool) or int(v) != v or v < 1 for v in values):
                raise ValueError(f"{name} takes positive integers, got {spec}")


def reference_batch(space: Mapping[str, Param], base: DiffusionTrainConfig) -> int:
    """$B_\\text{ref}$: the smallest batch size of the space (else the base config's)."""
    spec = space.get("batch_size")
    if spec is None:
        return base.batch_size
    return int(min(spec.values) if isinstance(spec, Choice) else spec.low)


def _suggest(trial: optuna.Trial, name: str, spec: Param) -> Any:
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, list(spec.values))
    if spec.integer:
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, spec.low, spec.high, log=spec.log)


def _thresholds(max_steps: int, report_every: int) -> list[int]:
    """The reference steps at which a trial reports: every ``report_every`` and the last."""
    return sorted({*range(report_every, max_steps, report_every), max_steps})


class _Reporter:
    """``on_step``: score the EMA network at each report point; report; prune."""

    def __init__(self, trial: optuna.Trial, schedule: NoiseSchedule, images: Tensor,
                 labels: Tensor | None, thresholds: list[int], ratio: float, seed: int
                 ) -> None:
        self.trial, self.schedule, self.images, self.labels = trial, schedule, images, labels
        self.thresholds, self.ratio, self.seed = thresholds, ratio, seed
        self.next = 0
        self.steps = 0
        self.curve: list[tuple[int, float]] = []
        self.diverged = False

    def __call__(self, engine: Engine) -> None:
        self.steps = engine.step
        progress = engine.step * self.ratio + 1e-9            # reference steps done
        crossed = [k for k in self.thresholds[self.next:] if k <= progress]
        if not crossed:
            return
        self.next += len(crossed)
        key = crossed[-1]                                     # one report per step
        network = cast(EMA[torch.nn.Module], engine.parts["ema"]).model
        value = validation_loss(network, self.schedule, self.images, self.labels,
                                seed=self.seed)
        if not math.isfinite(value):                          # diverged: stop it now
            self.diverged = True
            raise optuna.TrialPruned(f"validation loss {value} at step {engine.step}")
        self.curve.append((key, value))
        self.trial.report(value, key)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at reference step {key}")


@dataclass
class SearchResult:
    """A finished study.

    Attributes:
        trials: one row per trial: ``number``, the searched parameters (and ``lr``,
            ``ema_decay``, ``batch_size`` always, at their base value when not searched),
            ``state`` (``"COMPLETE"``, ``"PRUNED"``), ``value`` (the last reported
            validation loss), ``steps`` (optimisation steps run), ``examples`` (training
            examples seen), ``diverged`` and ``seconds``.
        curves: per trial number, its reports ``[(reference step, validation loss)]``.
        best: the best complete trial's parameters. best_value: its validation loss.
        best_number: its number. best_model: its trained model (EMA weights, CPU).
        base: the config each trial started from (its other fields are fixed).
        space: the search space. budget: ``"samples"`` or ``"steps"``.
        max_steps: the budget in reference steps. reference_batch: $B_\\text{ref}$.
        report_every: reference steps between reports.
        pruner: a description of the pruner. seconds: the study's wall time.
        extra: what the caller adds (:func:`search_from_profile`: the profile, dataset,
            image size, set sizes and network).
    """

    trials: pd.DataFrame
    curves: dict[int, list[tuple[int, float]]]
    best: dict[str, Any]
    best_value: float
    best_number: int
    best_model: DiffusionModel | None
    base: DiffusionTrainConfig
    space: dict[str, Param]
    budget: Budget
    max_steps: int
    reference_batch: int
    report_every: int
    pruner: str
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)

    def best_changes(self) -> dict[str, Any]:
        """The winner's hyper-parameters, as ``DiffusionTrainConfig`` field changes."""
        return {name: SEARCHABLE[name](value) for name, value in self.best.items()}

    def best_config(self, config: DiffusionTrainConfig | None = None) -> DiffusionTrainConfig:
        """The next run's config: ``config`` (default: the DDPM's) with the winner's values.

        With ``budget="samples"`` and a batch size that changes, the steps are scaled so
        that the run sees the same number of examples, $S' = \\lceil S B / B' \\rceil$
        (what the search compared trials at); the warm-up likewise, unless searched.
        """
        config = config or DiffusionTrainConfig()
        changes = self.best_changes()
        new_batch = changes.get("batch_size", config.batch_size)
        if self.budget == "samples" and new_batch != config.batch_size:
            scale = config.batch_size / new_batch
            changes["steps"] = max(1, math.ceil(config.steps * scale))
            if "warmup" not in changes:
                changes["warmup"] = math.ceil(config.warmup * scale)
        return dataclasses.replace(config, **changes)


def search(images: Tensor, labels: Tensor | None, val_images: Tensor,
           val_labels: Tensor | None, model_config: DenoiserConfig, *, trials: int,
           max_steps: int, report_every: int, seed: int = 0,
           space: Mapping[str, Param] = DEFAULT_SPACE,
           base: DiffusionTrainConfig | None = None, budget: Budget = "samples",
           pruner: optuna.pruners.BasePruner | None = None,
           enqueue: Sequence[Mapping[str, Any]] = (), keep_best: bool = True
           ) -> SearchResult:
    """Search ``space`` with a seeded TPE sampler and the median pruner (module docstring).

    Args:
        images, labels: the training set (``(N, C, H, W)`` in ``[-1, 1]``; ``(N,)``).
        val_images, val_labels: the validation images every report is scored on.
        model_config: the network (fixed for the study).
        trials: how many trials.
        max_steps: the budget in reference steps (the steps of a trial with the
            smallest batch; with ``budget="steps"`` every trial's).
        report_every: reference steps between validation reports (and pruning checks).
        seed: seeds the sampler, every trial's training and the validation draws.
        space: hyper-parameter name -> :class:`Range` or :class:`Choice`
            (names from :data:`SEARCHABLE`).
        base: the rest of each trial's config (default: the DDPM's, with a warm-up of
            a tenth of ``max_steps``).
        budget: ``"samples"`` (equal training examples per trial) or ``"steps"``.
        pruner: replaces the median pruner (e.g. ``optuna.pruners.NopPruner()``).
        enqueue: parameter sets to try first, in order (e.g. the current recipe),
            before the sampler proposes; each must set every name in ``space``.
        keep_best: keep the best trial's trained model (``best_model``).

    Returns:
        The :class:`SearchResult`.

    Raises:
        ValueError: an unknown or badly typed hyper-parameter, a bad budget or count,
            an enqueued set that misses a name, or no trial completing.
    """
    space = dict(space)
    check_space(space)
    if budget not in ("samples", "steps"):
        raise ValueError(f"unknown budget {budget!r}; valid: samples, steps")
    if trials < 1 or max_steps < 1 or report_every < 1:
        raise ValueError("trials, max_steps and report_every must be >= 1")
    for params in enqueue:
        if set(params) != set(space):
            raise ValueError(f"an enqueued trial must set exactly {sorted(space)}, "
                             f"got {sorted(params)}")
    base = base or DiffusionTrainConfig(warmup=max(1, max_steps // 10))
    b_ref = reference_batch(space, base)
    thresholds = _thresholds(max_steps, report_every)
    schedule = NoiseSchedule.from_name(base.schedule, base.T)
    if pruner is None:
        startup, warm = max(2, trials // 5), max_steps // 4
        pruner = optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warm)
        described = f"MedianPruner(n_startup_trials={startup}, n_warmup_steps={warm})"
    else:
        described = type(pruner).__name__
    sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(3, trials // 3))
    rows: list[dict[str, Any]] = []
    curves: dict[int, list[tuple[int, float]]] = {}
    kept: dict[str, Any] = {"value": math.inf, "model": None}

    def objective(trial: optuna.Trial) -> float:
        params = {name: _suggest(trial, name, spec) for name, spec in space.items()}
        config = dataclasses.replace(base, **params, seed=seed, progress=False)
        ratio = config.batch_size / b_ref if budget == "samples" else 1.0
        config.steps = max(1, math.ceil(max_steps / ratio))
        if budget == "samples" and "warmup" not in params:
            config.warmup = max(1, math.ceil(base.warmup / ratio))
        reporter = _Reporter(trial, schedule, val_images, val_labels, thresholds, ratio,
                             seed)
        row = {"number": trial.number, **{c: getattr(base, c) for c in COLUMNS}, **params}
        start = time.perf_counter()
        state = "COMPLETE"
        try:
            model, _ = train_diffusion(images, labels, model_config, config,
                                       RunOptions(on_step=reporter))
        except optuna.TrialPruned:
            state = "PRUNED"
            raise
        except BaseException:
            state = "FAIL"
            raise
        finally:
            value = reporter.curve[-1][1] if reporter.curve else math.nan
            rows.append({**row, "state": state, "value": value, "steps": reporter.steps,
                         "examples": reporter.steps * config.batch_size,
                         "diverged": reporter.diverged,
                         "seconds": time.perf_counter() - start})
            curves[trial.number] = list(reporter.curve)
        if keep_best and value < kept["value"]:
            kept.update(value=value, model=model)
        return value

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    try:
        study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner)
        for params in enqueue:
            study.enqueue_trial(dict(params))
        study.optimize(objective, n_trials=trials)
    finally:
        optuna.logging.set_verbosity(verbosity)
    seconds = time.perf_counter() - start
    table = pd.DataFrame(rows).sort_values("number").reset_index(drop=True)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ValueError(f"no trial of {trials} completed (all pruned or diverged); widen "
                         "the budget, narrow the space or loosen the pruner")
    best = study.best_trial
    return SearchResult(
        trials=table, curves=curves, best=dict(best.params),
        best_value=float(cast(float, best.value)), best_number=best.number,
        best_model=kept["model"], base=base, space=space, budget=budget,
        max_steps=max_steps, reference_batch=b_ref, report_every=report_every,
        pruner=described, seconds=seconds)


def search_from_profile(p: ScaleProfile, seed: int = 0, *,
                        space: Mapping[str, Param] | None = None, val_items: int = 512,
                        reports: int | None = None) -> SearchResult:
    """The chapter's study: :func:`search` on a profile's DDPM, data and budget.

    The network (``arch``, ``width``, ``hidden``), dataset, image size, training-set
    size and device come from :class:`~aigc_course.profiles.DiffusionProfile` of the same
    name (class-conditional, as the shipped DDPM); ``p.search_trials`` trials with a
    budget of ``p.search_steps`` reference steps, ``reports`` reports each.

    Args:
        p: the chapter's profile.
        seed: the study's seed.
        space: the search space (default: :func:`default_space` around the profile's
            batch size).
        val_items: validation images each report is scored on (the first of the split).
        reports: validation reports per trial (``None``: ``p.search_reports``).
    """
    reports = reports or p.search_reports
    dp = resolve(p.name, cls=DiffusionProfile, dry_run=p.dry_run)
    x, y = load_images(dp.dataset, "train", image_size=dp.image_size, max_items=dp.max_train)
    vx, vy = load_images(dp.dataset, "val", image_size=dp.image_size,
                         max_items=min(val_items, dp.eval_samples))
    model_config = DenoiserConfig(arch=cast(Any, dp.arch), image_size=x.shape[-1],
                                  channels=x.shape[1], width=dp.width, hidden=dp.hidden,
                                  num_classes=10)
    base = DiffusionTrainConfig(batch_size=dp.batch_size, device=dp.device,
                                warmup=max(1, p.search_steps // 10))
    with num_threads(p.num_threads):
        result = search(x, y, vx, vy, model_config, trials=p.search_trials,
                        max_steps=p.search_steps,
                        report_every=max(1, p.search_steps // reports), seed=seed,
                        space=default_space(dp.batch_size) if space is None else space,
                        base=base)
    result.extra.update(profile=p.name, dataset=dp.dataset, image_size=int(x.shape[-1]),
                        train_items=len(x), val_items=len(vx), arch=dp.arch,
                        width=dp.width)
    return result


def plot_search(result: SearchResult) -> Figure:
    """The study at a glance: validation curves (pruned trials stop early) and the
    final loss against the learning rate, coloured by batch size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    table = result.trials.set_index("number")
    batches = sorted(table["batch_size"].unique())
    colours = {b: plt.get_cmap("viridis")(i / max(1, len(batches) - 1))
               for i, b in enumerate(batches)}
    for number, curve in result.curves.items():
        if not curve:
            continue
        row = table.loc[number]
        steps, values = np.array(curve, dtype=float).T
        examples = steps * result.reference_batch
        pruned = row["state"] != "COMPLETE"
        best = number == result.best_number
        left.plot(examples, values, color="black" if best else colours[row["batch_size"]],
                  lw=2.2 if best else 1.0, ls="--" if pruned else "-",
                  alpha=1.0 if best else 0.7, zorder=3 if best else 2)
        if pruned:
            left.plot(examples[-1], values[-1], "x", color="tab:red", ms=7, zorder=4)
    left.set_xlabel("training examples seen")
    left.set_ylabel("validation loss (EMA network)")
    left.set_yscale("log")
    left.set_title(f"{len(table)} trials; dashed, x: pruned; black: best (#{result.best_number})")
    left.grid(alpha=0.3)
    for b in batches:
        rows = table[table["batch_size"] == b]
        for pruned, marker in ((False, "o"), (True, "x")):
            part = rows[(rows["state"] != "COMPLETE") == pruned]
            right.scatter(part["lr"], part["value"], color=colours[b], marker=marker,
                          label=f"B={b}" if not pruned else None, s=40)
    best_row = table.loc[result.best_number]
    right.scatter([best_row["lr"]], [best_row["value"]], s=160, facecolors="none",
                  edgecolors="black", label="best")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("learning rate")
    right.set_ylabel("last validation loss")
    right.set_title("o: complete, x: pruned (its last report)")
    right.legend(title="batch", fontsize=8)
    right.grid(alpha=0.3)
    fig.tight_layout()
    plt.close(fig)
    return fig
