"""One table of every metric for the generative models of chapters 03-05.

:func:`compare` takes models as they came out of :func:`aigc_course.kinds.load_or_train`
(so on each profile they are the models the chapters trained, or the shipped ones where
the chapters used those), samples each through :func:`aigc_course.kinds.draw` (the code
``aigc-course sample`` runs) with one or more sampling seeds, times the sampling, and
scores the samples with :func:`aigc_course.metrics.evaluate` against the train split of
the models' own dataset at their size: judge FID, KID, Inception Score, improved
precision and recall, recognisability, class coverage and, for conditional models,
label accuracy. Each metric is the mean over the seeds with its standard deviation
beside it. Each row also says what the model cost: parameters, training steps and
seconds, where it came from, its conditioning and its sampling (steps, guidance). A
row of real held-out images (the ``test`` split, at the models' size) gives the values
a perfect model would approach. :func:`chapter_rows` builds the rows chapter 08 shows:
the GAN, the VAE, and the diffusion model both guided and unguided.

Read the table with chapter 08's caveats: all numbers are in the judge's feature space
of one dataset, FID depends on ``n`` (compare rows of one ``n``), the spread is over
sampling seeds of one trained model (a spread over training seeds retrains every model
once per seed), and wall time depends on the machine and its load (quote ratios).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from aigc_course import kinds
from aigc_course.checkpoint import read_checkpoint
from aigc_course.data.registry import load_images
from aigc_course.metrics import FeatureExtractor, evaluate

Tensor = torch.Tensor
#: table name -> the kind of chapters 03, 04, 05
SHIPPED = {"GAN (03)": "gan", "VAE (04)": "vae", "diffusion (05)": "ddpm"}
#: the metrics averaged over sampling seeds (each with a ``<name>_std`` column)
METRICS = ("fid", "kid", "inception_score", "precision", "recall", "recognisability",
           "coverage", "label_accuracy")
COLUMNS = ("model", "kind", "dataset", "image_size", "conditional", "source", "params",
           "train_steps", "train_seconds", "sampling", "sampling_steps", "n", "seeds",
           *(c for m in METRICS for c in (m, f"{m}_std")), "seconds_per_1000", "reference")


@dataclass(frozen=True)
class Row:
    """One model of the table: a trained model and how to sample it.

    Attributes:
        name: the row's label, e.g. ``"diffusion (05), w = 2"``.
        trained: what :func:`aigc_course.kinds.load_or_train` returned.
        options: the kind's sampling options (``{"steps": 50, "guidance": 2.0}``).
    """

    name: str
    trained: kinds.Trained
    options: dict[str, Any] = field(default_factory=dict)


def shipped_checkpoints() -> dict[str, Path]:
    """The shipped model checkpoints that exist: table name (e.g. ``"VAE (04)"``) -> path."""
    paths = {name: kinds.get(kind).shipped for name, kind in SHIPPED.items()}
    return {name: path for name, path in paths.items() if path is not None and path.is_file()}


def sample_model(checkpoint: str | Path, n: int, seed: int = 0,
                 **sample_options: Any) -> tuple[Tensor, Tensor, float]:
    """Draw ``n`` samples of any model checkpoint, timed (conditional: classes in turn).

    Raises:
        ValueError: a checkpoint that is not a registered model kind, or an option the
            kind does not take.
    """
    kind, model = kinds.load_model(checkpoint)
    kinds.check_options(kind, sample_options)
    return kinds.draw(model, n, seed=seed, **sample_options)


def chapter_rows(profile: Any = "auto", *, steps: int | None = None,
                 guidance: float | None = None, retrain: bool = False, seed: int = 0,
                 progress: bool = True) -> list[Row]:
    """The models of chapters 03-05 on ``profile``, as those chapters got them.

    Each comes from :func:`aigc_course.kinds.load_or_train` with the chapter's own
    profile class (so the ``gpu`` profile's MNIST models, the ``cpu`` profile's shipped
    digits models); the diffusion model appears twice, guided with ``guidance`` and
    unguided, both with ``steps`` DDIM steps (``None``: chapter 05's ``sample_steps``
    and ``guidance`` on the same profile, what that chapter reports).
    """
    diffusion = kinds.profile_for(kinds.get("ddpm"), profile)
    steps = int(getattr(diffusion, "sample_steps", 50)) if steps is None else steps
    guidance = float(getattr(diffusion, "guidance", 0.0)) if guidance is None else guidance
    rows = []
    for name, kind in SHIPPED.items():
        trained = kinds.load_or_train(kind, profile, retrain=retrain, seed=seed,
                                      progress=progress)
        if kind != "ddpm":
            rows.append(Row(name, trained))
            continue
        if trained.model.conditional and guidance:
            rows.append(Row(f"{name}, w = {guidance:g}", trained,
                            {"steps": steps, "guidance": guidance}))
        rows.append(Row(f"{name}, unguided", trained, {"steps": steps, "guidance": 0.0}))
    return rows


def _sampling(kind: str, options: Mapping[str, Any]) -> tuple[str, int]:
    if "steps" not in kinds.get(kind).sample_options:
        return "one forward pass", 1
    steps = int(options.get("steps", 50))
    guidance = float(options.get("guidance", 0.0))
    return f"{steps} DDIM steps, w = {guidance:g}", steps * (2 if guidance else 1)


def _mean_std(values: list[float]) -> tuple[float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    if torch.isnan(t).all():
        return math.nan, math.nan
    return float(t.mean()), float(t.std()) if len(t) > 1 else math.nan


def _summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric in METRICS:
        out[metric], out[f"{metric}_std"] = _mean_std(
            [float(r.get(metric, math.nan)) for r in runs])
    out["reference"] = runs[0]["reference"]["text"]
    return out


def compare(rows: Sequence[Row], n: int = 1000, seeds: Sequence[int] = (0,),
            extractor: FeatureExtractor | None = None, include_real: bool = True,
            kid_subsets: int = 100, inception: bool = False) -> Any:
    """Sample each model with every seed and score it with every metric: one row per model.

    Args:
        rows: the models (:func:`chapter_rows`), all trained on one dataset at one size.
        n: samples per model and seed.
        seeds: sampling seeds; each metric is their mean, ``<metric>_std`` their spread.
        extractor: the feature space; ``None`` is the dataset's judge.
        include_real: add a ``"real (test split)"`` row: at most ``n`` held-out images.
        kid_subsets: KID subsets (subset size ``min(1000, n)``).
        inception: also compute Inception-v3 FID (reported in ``inception_fid``).

    Returns:
        A ``pandas.DataFrame`` with columns :data:`COLUMNS` (and ``inception_fid``).

    Raises:
        ValueError: ``n < 10``, no rows or seeds, or rows of different datasets or sizes.
    """
    import pandas as pd

    if n < 10:
        raise ValueError(f"n must be at least 10 (the Inception Score's splits), got {n}")
    if not rows or not seeds:
        raise ValueError("compare needs at least one model and one seed")
    places = {(r.trained.metrics.get("dataset"), r.trained.metrics.get("image_size"))
              for r in rows}
    if len(places) != 1:
        raise ValueError(f"the models were trained on different datasets or sizes {places}: "
                         "a table compares models of one dataset at one size")
    (dataset, image_size), = places
    if dataset is None:
        raise ValueError("a model records no training dataset")
    table: list[dict[str, Any]] = []
    for row in rows:
        kind = kinds.get(row.trained.kind)
        kinds.check_options(kind, row.options)
        model = row.trained.model
        runs, seconds = [], []
        for seed in seeds:
            images, labels, took = kinds.draw(model, n, seed=seed, **row.options)
            runs.append(evaluate(images, labels if model.conditional else None,
                                 extractor=extractor, dataset=dataset,
                                 kid_subsets=kid_subsets, seed=seed, inception=inception))
            seconds.append(took)
        sampling, sampling_steps = _sampling(kind.name, row.options)
        metrics = row.trained.metrics
        table.append({
            "model": row.name, "kind": kind.name, "dataset": dataset, "image_size": image_size,
            "conditional": bool(model.conditional), "source": row.trained.source,
            "params": metrics.get("params", math.nan),
            "train_steps": metrics.get("steps", math.nan),
            "train_seconds": metrics.get("seconds", math.nan),
            "sampling": sampling, "sampling_steps": sampling_steps, "n": n,
            "seeds": len(seeds), **_summarise(runs),
            "seconds_per_1000": sum(seconds) / len(seconds) / n * 1000,
            **({"inception_fid": _mean_std([r["inception_fid"] for r in runs])[0]}
               if inception else {}),
        })
    if include_real:
        real, real_labels = load_images(str(dataset), "test", image_size=image_size,
                                        max_items=n)
        scores = evaluate(real, real_labels, extractor=extractor, dataset=str(dataset),
                          kid_subsets=kid_subsets, seed=seeds[0], inception=inception)
        table.append({"model": "real (test split)", "kind": "data", "dataset": dataset,
                      "image_size": image_size, "conditional": False, "source": "data",
                      "params": 0, "train_steps": 0, "train_seconds": 0.0,
                      "sampling": "", "sampling_steps": 0, "n": len(real), "seeds": 1,
                      **_summarise([scores]), "seconds_per_1000": math.nan,
                      **({"inception_fid": scores["inception_fid"]} if inception else {})})
    columns = list(COLUMNS) + (["inception_fid"] if inception else [])
    return pd.DataFrame(table, columns=columns)


def checkpoint_row(name: str, checkpoint: str | Path, **options: Any) -> Row:
    """A :class:`Row` of a model checkpoint file (its metadata gives dataset and cost)."""
    kind, model = kinds.load_model(checkpoint)
    metadata = dict(read_checkpoint(checkpoint).get("metadata", {}))
    metadata.pop("history", None)
    metadata.setdefault("conditional", bool(model.conditional))
    return Row(name, kinds.Trained(model, kind.name, metadata, {}, "shipped"), dict(options))


def compare_models(models: Mapping[str, str | Path] | None = None, n: int = 1000,
                   seeds: Sequence[int] = (0,),
                   sample_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
                   extractor: FeatureExtractor | None = None, include_real: bool = True,
                   kid_subsets: int = 100) -> Any:
    """:func:`compare` of checkpoint files (``None``: the shipped ones).

    Args:
        models: name -> checkpoint path.
        sample_kwargs: per *kind* sampling options, e.g.
            ``{"ddpm": {"steps": 50, "guidance": 2.0}}``.
        n, seeds, extractor, include_real, kid_subsets: as in :func:`compare`.
    """
    models = dict(models) if models is not None else shipped_checkpoints()
    if not models:
        raise ValueError("no models to compare: pass name -> checkpoint, or ship checkpoints")
    sample_kwargs = sample_kwargs or {}
    rows = []
    for name, path in models.items():
        kind_name = str(read_checkpoint(path).get("kind"))
        rows.append(checkpoint_row(name, path, **dict(sample_kwargs.get(kind_name, {}))))
    return compare(rows, n=n, seeds=seeds, extractor=extractor, include_real=include_real,
                   kid_subsets=kid_subsets)


def reading(table: Any) -> str:
    """What a :func:`compare` table says, in sentences built from its own numbers.

    Names, for each quality column, the best model and its value with its spread, the
    effect of guidance where a model appears guided and unguided, and the cost ratio of
    the slowest to the fastest sampler, so prose beside the table never types a number.
    """
    models = table[table["kind"] != "data"]
    lines = []
    for column, best, what in (("fid", "min", "lowest judge FID"),
                               ("precision", "max", "highest precision (fidelity)"),
                               ("recall", "max", "highest recall (diversity)"),
                               ("label_accuracy", "max", "highest label accuracy")):
        values = models[column].dropna()
        if values.empty:
            continue
        index = values.idxmin() if best == "min" else values.idxmax()
        spread = models.loc[index, f"{column}_std"]
        spread_text = f" +- {spread:.3g}" if spread == spread else ""
        lines.append(f"{what}: {models.loc[index, 'model']} ({values[index]:.3g}{spread_text})")
    guided = models[models["sampling"].str.contains("w = ") &
                    ~models["sampling"].str.endswith("w = 0")]
    for _, row in guided.iterrows():
        plain = models[(models["kind"] == row["kind"]) & models["sampling"].str.endswith("w = 0")]
        if not plain.empty:
            other = plain.iloc[0]
            lines.append(f"guidance ({row['sampling']}): FID {other['fid']:.3g} -> "
                         f"{row['fid']:.3g}, "
                         f"recall {other['recall']:.3g} -> {row['recall']:.3g}, "
                         f"label accuracy {other['label_accuracy']:.3g} -> "
                         f"{row['label_accuracy']:.3g}")
    fast = models.loc[models["seconds_per_1000"].idxmin()]
    slow = models.loc[models["seconds_per_1000"].idxmax()]
    ratio = slow["seconds_per_1000"] / fast["seconds_per_1000"]
    lines.append(f"cost: {slow['model']} takes {ratio:.0f}x "
                 f"the sampling time of {fast['model']} ({slow['sampling_steps']} network "
                 f"evaluations per sample against {fast['sampling_steps']})")
    return "\n".join(lines)
