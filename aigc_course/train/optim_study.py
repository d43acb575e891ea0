"""Optimisers, schedules, clipping and an EMA of the weights on chapter 06's GPT (chapter 07).

Every variant is **one change** to the GPT's recipe (:func:`~aigc_course.train.gpt.fit`:
AdamW with decoupled decay 0.1 on the matrices, $\\beta = (0.9, 0.99)$, a linear warm-up
then a cosine to a tenth of the peak, the gradient norm clipped to 1), trained for the
same fixed number of steps on the same windows from the same initialisation for each seed,
and scored by the validation split's bits per character
(:func:`~aigc_course.train.gpt.bits_per_char`, on the profile's ``eval_tokens``):

* ``recipe``: AdamW, warm-up + cosine (Loshchilov & Hutter 2019; 2017);
* ``adam``: Adam with the same decay *coupled* into the gradient, $g + \\lambda\\theta$
  (an L2 penalty, which Adam's per-coordinate normalisation then rescales);
* ``sgd``: SGD with heavy-ball momentum 0.9 (Polyak 1964), same schedule and clipping.
  Its peak learning rate is its own: by default the best final validation bpc of
  :data:`SGD_GRID` on **seed 0 only** (:func:`sgd_lr_grid`; the grid is returned with the
  rows, and the seed-0 grid run at the chosen rate is the study's seed-0 SGD run, so the
  selection favours SGD slightly, which makes "AdamW beats SGD" a conservative claim);
* ``constant``: AdamW at a constant learning rate, no warm-up and no cosine;
* ``no_clip``: AdamW without gradient clipping;
* ``ema``: the recipe plus an exponential moving average of the weights,
  $\\theta_\\text{EMA} \\leftarrow d\\,\\theta_\\text{EMA} + (1-d)\\,\\theta$
  (:class:`~aigc_course.train.ema.EMA`, $d$ = :data:`EMA_DECAY`, a memory of about
  $1/(1-d) = 20$ steps, short against the run); the model scored and returned is the EMA's;
* ``constant_ema``: the EMA on the constant learning rate, where the last steps' noise
  is not annealed away by the cosine (compare it with ``constant``:
  ``summarise(rows, reference="constant")``).

A variant's effect is the difference of its mean final bpc to the recipe's. The seeds are
*common random numbers*: seed $s$ gives every variant the same initial weights and the
same minibatches, so the difference is taken per seed, $\\Delta_s = b_{v,s} - b_{r,s}$,
with the standard error $\\mathrm{se} = \\mathrm{sd}(\\Delta)/\\sqrt n$ (:func:`summarise`;
unpaired, $\\sqrt{s_v^2/n_v + s_r^2/n_r}$, when the seeds differ).

The GPT is smaller than chapter 06's (a study trains ``len(variants) x len(seeds)``
runs): by default 2 layers of width 32 on windows of 32 characters (:data:`STUDY_GPT`);
the profile gives the batch, learning rate, warm-up and evaluation size.

Measured on the cpu profile (pydoc, characters, batch 16, peak lr 3e-3, warm-up 50, the
default GPT of 28k parameters, 250 steps, seeds 0 / 1 / 2; final validation bpc, mean
± sd, and the paired difference to the recipe ± its standard error):

* recipe 3.485 ± 0.019;
* Adam (L2) 4.069 ± 0.023, +0.584 ± 0.010 (coupled, the decay of 0.1 is normalised with
  the gradient, so weights with small gradients are pulled to 0 at about lr a step);
* SGD 3.907 ± 0.024, +0.422 ± 0.023 (lr 0.1: 0.03 / 0.1 / 0.3 gave 4.02 / 3.88 / 3.92 on
  seed 0);
* constant lr 3.369 ± 0.019, -0.117 ± 0.015 (this short a run is far from converged, and
  decaying the rate early costs progress);
* no clipping 3.538 ± 0.036, +0.053 ± 0.020;
* EMA 3.490 ± 0.012, +0.005 ± 0.005 (the cosine's low last rates already average);
* constant lr + EMA 3.376 ± 0.006, +0.008 ± 0.008 against constant lr (no measurable gain).

At 300 steps the same signs: +0.632, +0.492, -0.104, +0.037, +0.001 and -0.006 (EMA on
the constant lr, against it). 23 runs (3 of SGD's grid), about 60 s of CPU time on one
thread of a busy 2-core machine.

Simplified: one corpus, one model size and one step budget, so the table says which
change matters *here*; the learning rates of the AdamW variants are not re-tuned.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from aigc_course.models.gpt import GPTConfig
from aigc_course.profiles import TextProfile
from aigc_course.train.engine import RunOptions
from aigc_course.train.gpt import (
    GPTTrainConfig,
    LanguageModel,
    TextData,
    config_from_profile,
    train_config_from_profile,
    train_gpt,
)
from aigc_course.utils import Timer, num_threads

#: short name -> what the variant changes (the order of the table)
VARIANTS: dict[str, str] = {
    "recipe": "AdamW, warm-up + cosine (the recipe)",
    "adam": "Adam (decay as L2)",
    "sgd": "SGD + momentum 0.9",
    "constant": "AdamW, constant lr (no warm-up, no cosine)",
    "no_clip": "AdamW, no clipping",
    "ema": "AdamW + EMA",
    "constant_ema": "AdamW, constant lr + EMA",
}
#: SGD's candidate peak learning rates (:func:`sgd_lr_grid`, on seed 0)
SGD_GRID: tuple[float, ...] = (0.03, 0.1, 0.3)
#: the EMA variant's decay: a memory of about $1/(1-d) = 20$ steps
EMA_DECAY = 0.95
#: the study's GPT, smaller than chapter 06's (``config_from_profile`` changes, and the window)
STUDY_GPT: dict[str, int] = {"n_layer": 2, "n_embd": 32, "window": 32}
#: the final train loss is the mean over this many last steps (one batch is noisy)
LOSS_TAIL = 10


def check_variants(names: Sequence[str]) -> tuple[str, ...]:
    """``names`` as a tuple, or a ``ValueError`` naming the unknown ones and the valid ones."""
    unknown = [name for name in names if name not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variant(s) {', '.join(map(repr, unknown))}; valid: "
                         f"{', '.join(VARIANTS)}")
    if not names:
        raise ValueError(f"no variants given; valid: {', '.join(VARIANTS)}")
    return tuple(names)


def variant_config(name: str, base: GPTTrainConfig, *, sgd_lr: float = 0.3,
                   ema_decay: float = EMA_DECAY) -> GPTTrainConfig:
    """The train config of variant ``name``: ``base`` (the recipe) with one change.

    Args:
        name: a key of :data:`VARIANTS`.
        base: the recipe (AdamW, cosine, clipping, no EMA).
        sgd_lr: the ``sgd`` variant's peak learning rate.
        ema_decay: the decay $d$ of the ``ema`` and ``constant_ema`` variants.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
    """
    check_variants([name])
    recipe = dataclasses.replace(base, optimizer="adamw", schedule="cosine", ema_decay=0.0)
    changes: dict[str, dict[str, Any]] = {
        "recipe": {},
        "adam": {"optimizer": "adam"},
        "sgd": {"optimizer": "sgd", "lr": sgd_lr},
        "constant": {"schedule": "constant", "warmup": 0},
        "no_clip": {"grad_clip": 0.0},
        "ema": {"ema_decay": ema_decay},
        "constant_ema": {"schedule": "constant", "warmup": 0, "ema_decay": ema_decay},
    }
    return dataclasses.replace(recipe, **changes[name])


def study_configs(p: TextProfile, vocab_size: int, steps: int, *, n_layer: int | None = None,
                  n_embd: int | None = None, window: int | None = None, evals: int = 6
                  ) -> tuple[GPTConfig, GPTTrainConfig]:
    """The study's GPT config and its recipe train config (seed 0) from a profile.

    Args:
        p: the profile (batch, learning rate, warm-up, evaluation tokens, block size).
        vocab_size: the tokenizer's.
        steps: steps per run.
        n_layer, n_embd, window: the GPT's depth, width and training window (``None``:
            :data:`STUDY_GPT`'s); the heads are ``gcd(p.n_head, n_embd)``.
        evals: validation evaluations per run (the curve), the last one at ``steps``.
    """
    n_layer = n_layer or STUDY_GPT["n_layer"]
    n_embd = n_embd or STUDY_GPT["n_embd"]
    window = min(window or STUDY_GPT["window"], p.block_size)
    model = config_from_profile(p, vocab_size, n_layer=n_layer, n_embd=n_embd,
                                n_head=math.gcd(p.n_head, n_embd), block_size=window)
    base = dataclasses.replace(train_config_from_profile(p, steps=steps, progress=False),
                               window=window, eval_every=max(1, steps // max(1, evals)))
    return model, base


def train_variant(data: TextData, model_config: GPTConfig, config: GPTTrainConfig, name: str,
                  threads: int | None = 1, run: RunOptions | None = None
                  ) -> tuple[LanguageModel, dict[str, Any]]:
    """Train one run of a study and describe it as a row.

    Args:
        data: the prepared text.
        model_config: the GPT's :class:`~aigc_course.models.gpt.GPTConfig`.
        config: the run's train config (:func:`variant_config`, with its seed).
        name: the variant's name (a key of :data:`VARIANTS`, for the row).
        threads: torch's CPU threads during the run (``None``: leave them).
        run: how it executes (:class:`~aigc_course.train.engine.RunOptions`, e.g. an
            ``on_step`` that watches the weights).

    Returns:
        The trained model (the EMA's weights for an EMA run) and its row: ``variant``,
        ``label``, ``seed``, ``lr`` (peak), ``val_bpc`` (the last evaluation, on the
        validation split), ``train_loss`` (nats per token, mean of the last
        :data:`LOSS_TAIL` steps), ``seconds``, ``params`` and the curve ``val_step`` /
        ``val_curve``.
    """
    check_variants([name])
    with num_threads(threads), Timer() as timer:
        lm, history = train_gpt(data, model_config, config, run)
    label = VARIANTS[name] + (f" (decay {config.ema_decay:g})" if config.ema_decay else "")
    row = {"variant": name, "label": label, "seed": config.seed, "lr": config.lr,
           "val_bpc": history["val_bpc"][-1],
           "train_loss": float(np.mean(history["loss"][-LOSS_TAIL:])),
           "seconds": timer.seconds, "params": lm.gpt.num_params(),
           "val_step": [int(s) for s in history["val_step"]],
           "val_curve": list(history["val_bpc"])}
    return lm, row


def sgd_lr_grid(data: TextData, p: TextProfile, steps: int,
                grid: Sequence[float] = SGD_GRID, seed: int = 0, threads: int | None = 1,
                **size: Any) -> list[dict[str, Any]]:
    """SGD's runs over a grid of peak learning rates on one seed (the ``sgd`` variant's lr).

    Args:
        data, p, steps: as :func:`optim_study`.
        grid: the candidate peak learning rates.
        seed: the one seed the choice is made on.
        threads: torch's CPU threads.
        size: :func:`study_configs`'s ``n_layer``, ``n_embd``, ``window``, ``evals``.

    Returns:
        One ``sgd`` row per rate (:func:`train_variant`), in the grid's order.
    """
    if not grid:
        raise ValueError("the SGD grid is empty")
    model, base = study_configs(p, data.tokenizer.vocab_size, steps, **size)
    base = dataclasses.replace(base, seed=seed)
    return [train_variant(data, model, variant_config("sgd", base, sgd_lr=lr), "sgd",
                          threads)[1] for lr in grid]


def optim_study(data: TextData, p: TextProfile, steps: int, seeds: Sequence[int] = (0, 1, 2),
                variants: Sequence[str] | None = None, *, sgd_lr: float | None = None,
                sgd_grid: Sequence[float] = SGD_GRID, ema_decay: float = EMA_DECAY,
                threads: int | None = 1, **size: Any) -> list[dict[str, Any]]:
    """Every variant of :data:`VARIANTS` trained for ``steps`` steps on each seed.

    Args:
        data: the prepared text (:func:`~aigc_course.train.gpt.prepare_text`, shared).
        p: the text profile (batch, learning rate, warm-up, evaluation tokens).
        steps: steps of every run (fixed: ``ScaleProfile.optim_steps``).
        seeds: the seeds of every variant (quality claims need at least 3).
        variants: names of :data:`VARIANTS` (``None``: all, in that order).
        sgd_lr: SGD's peak learning rate (``None``: the best of ``sgd_grid`` on
            ``seeds[0]``, :func:`sgd_lr_grid`).
        sgd_grid: the candidates when ``sgd_lr`` is ``None``.
        ema_decay: the decay of the ``ema`` and ``constant_ema`` variants.
        threads: torch's CPU threads during each run.
        size: :func:`study_configs`'s ``n_layer``, ``n_embd``, ``window``, ``evals``.

    Returns:
        One row per (variant, seed) (:func:`train_variant`); the ``sgd`` rows chosen from
        a grid also hold it as ``sgd_grid`` (``{lr: final val bpc on seeds[0]}``).

    Raises:
        ValueError: unknown variant names, no seeds.
    """
    names = check_variants(list(variants) if variants is not None else list(VARIANTS))
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("optim_study needs at least one seed")
    model, base = study_configs(p, data.tokenizer.vocab_size, steps, **size)
    grid_rows: list[dict[str, Any]] = []
    if "sgd" in names and sgd_lr is None:
        grid_rows = sgd_lr_grid(data, p, steps, sgd_grid, seeds[0], threads, **size)
        best = min(grid_rows, key=lambda row: _finite(row["val_bpc"]))
        sgd_lr = float(best["lr"])
    rows: list[dict[str, Any]] = []
    for name in names:
        for seed in seeds:
            config = variant_config(name, dataclasses.replace(base, seed=seed),
                                    sgd_lr=sgd_lr or 0.3, ema_decay=ema_decay)
            reused = [r for r in grid_rows if seed == seeds[0] and r["lr"] == config.lr]
            row = dict(reused[0]) if name == "sgd" and reused else train_variant(
                data, model, config, name, threads)[1]
            if name == "sgd" and grid_rows:
                row["sgd_grid"] = {float(r["lr"]): r["val_bpc"] for r in grid_rows}
            rows.append(row)
    return rows


def _finite(value: float) -> float:
    return value if math.isfinite(value) else math.inf


def summarise(rows: Sequence[Mapping[str, Any]], metric: str = "val_bpc",
              reference: str = "recipe") -> list[dict[str, Any]]:
    """Per variant: mean and standard deviation over seeds, and the effect against the recipe.

    Args:
        rows: :func:`optim_study`'s.
        metric: the column summarised (``val_bpc``, ``train_loss``, ``seconds``).
        reference: the variant differences are taken against.

    Returns:
        One dict per variant, in the rows' order: ``variant``, ``label``, ``n``, ``mean``,
        ``std`` (``ddof=1``; NaN for one seed), ``seeds``, ``diff`` (mean minus the
        reference's; NaN without it) and its standard error ``diff_se``: paired over the
        seeds when the variant and the reference share the same seeds,
        $\\mathrm{sd}(b_{v,s} - b_{r,s})/\\sqrt n$, else $\\sqrt{s_v^2/n_v + s_r^2/n_r}$;
        ``paired`` says which; plus the mean ``train_loss`` and ``seconds``.
    """
    if not rows:
        raise ValueError("no rows to summarise")
    by: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["variant"], []).append(row)

    def values(group: Sequence[Mapping[str, Any]]) -> dict[int, float]:
        return {int(r["seed"]): float(r[metric]) for r in group}

    ref = values(by[reference]) if reference in by else {}
    out = []
    for name, group in by.items():
        v = values(group)
        x = np.array(list(v.values()))
        std = float(np.std(x, ddof=1)) if x.size > 1 else math.nan
        diff, se, paired = math.nan, math.nan, False
        if ref:
            r = np.array(list(ref.values()))
            diff = float(x.mean() - r.mean())
            if set(v) == set(ref):
                paired = True
                d = np.array([v[s] - ref[s] for s in v])
                se = float(np.std(d, ddof=1) / math.sqrt(d.size)) if d.size > 1 else math.nan
            elif x.size > 1 and r.size > 1:
                se = float(math.sqrt(np.var(x, ddof=1) / x.size + np.var(r, ddof=1) / r.size))
        out.append({"variant": name, "label": group[0].get("label", name), "n": int(x.size),
                    "mean": float(x.mean()), "std": std, "seeds": sorted(v), "diff": diff,
                    "diff_se": se, "paired": paired,
                    "train_loss": float(np.mean([r["train_loss"] for r in group])),
                    "seconds": float(np.mean([r["seconds"] for r in group]))})
    return out


def plot_optim_study(rows: Sequence[Mapping[str, Any]]) -> Any:
    """Validation curves (mean over seeds, a band of one standard deviation) and the final
    bits per character (bars: mean, error bars: standard deviation, dots: the seeds).

    Returns:
        A matplotlib ``Figure`` (closed in pyplot: shown where it is displayed).
    """
    import matplotlib.pyplot as plt

    table = summarise(rows)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8),
                                      gridspec_kw={"width_ratios": [1.4, 1]})
    for i, summary in enumerate(table):
        group = [r for r in rows if r["variant"] == summary["variant"]]
        steps = np.asarray(group[0]["val_step"], dtype=float)
        curves = np.array([r["val_curve"] for r in group], dtype=float)    # (seeds, evals)
        mean = curves.mean(axis=0)
        line, = left.plot(steps, mean, marker="o", ms=3,
                          label=f"{summary['label']} ({len(group)} seeds)")
        if len(group) > 1:
            sd = curves.std(axis=0, ddof=1)
            left.fill_between(steps, mean - sd, mean + sd, alpha=0.15, color=line.get_color())
        right.bar(i, summary["mean"], yerr=0 if len(group) < 2 else summary["std"],
                  color=line.get_color(), alpha=0.7, capsize=4)
        right.plot([i] * len(group), [r["val_bpc"] for r in group], "k.", ms=4)
    left.set(xlabel="training step", ylabel="validation bits / char",
             title="validation curves (mean ± sd over seeds)")
    left.legend(fontsize=7)
    left.grid(alpha=0.3)
    finals = [r["val_bpc"] for r in rows if math.isfinite(r["val_bpc"])]
    if finals:
        span = max(finals) - min(finals)
        right.set_ylim(min(finals) - 0.3 * span - 0.01, max(finals) + 0.3 * span + 0.01)
    right.set_xticks(range(len(table)), [s["variant"] for s in table], rotation=30,
                     ha="right")
    right.set(ylabel="final validation bits / char", title="after the same steps")
    right.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    plt.close(fig)
    return fig
