"""The judges, one per dataset, loaded, and the per-sample metrics they give.

A judge is a small CNN (:class:`~aigc_course.models.classifier.ImageClassifier`) trained
on one dataset's train split (:mod:`aigc_course.metrics._judge_training`, re-exported
here): it scores generated images *of that dataset* and nothing else. :func:`judge_for`
finds it: the package ships the judges of the offline sets (``digits``, ``mnist5k``,
``shapes``; ``aigc_course/checkpoints/judge_<dataset>.pt``); the judges of the online
sets (``mnist``, ``fashion_mnist``, ``cifar10``) are trained on first use and cached
beside the data (``<cache_dir>/judges/judge_<dataset>.pt``). Every file is the common
checkpoint format of :mod:`aigc_course.checkpoint` (kind ``judge``, loaded with
``weights_only=True``) and its metadata holds the judge's accuracy and its pinned
real-vs-real and noise FIDs.

On a batch of generated images ``(N, C, H, W)`` in ``[-1, 1]`` a judge gives (judge
FID and :func:`~aigc_course.metrics.scores.judge_report` are computed in
:mod:`aigc_course.metrics.scores`, one feature path for every FID):

* **judge FID** -- the Fréchet distance (:mod:`aigc_course.metrics.frechet`) between
  Gaussians fitted to its 64-d penultimate features of the samples and of the real
  train split of the same dataset (loaded at the samples' size): FID (Heusel et al.
  2017) with the judge in place of Inception-v3. Lower is better; it sees quality and
  diversity.
* **recognisability** -- the share of samples the judge classifies with confidence
  $\\max_k p(k \\mid x) \\ge 0.9$, a per-sample quality score in the spirit of the
  Inception Score's sharp-prediction term (Salimans et al. 2016).
* **class coverage** -- the normalised entropy $H(\\hat p) / \\log K$ of the histogram
  $\\hat p$ of predicted classes: 1 when all $K$ classes are equally frequent, 0 when
  every sample is the same class (mode collapse). The Inception Score's other term.
* **label accuracy** -- for class-conditional samples, how often the judge agrees
  with the requested label (overall and per class).

Never read one alone: a collapsed generator that draws one perfect digit is 100%
recognisable (coverage tells), and an average of two digits is "recognisable" 58% of
the time (FID tells). The judges were trained to be unsure on noise and blank images
(outlier exposure), so the digits judge calls 0% of them recognisable; other failure
modes may still fool it. Simplified with respect to the originals: the feature
extractor is a 0.1-0.2 M-parameter CNN trained on the same data, so numbers are
comparable only between runs scored by the same judge, and FID is biased upwards on
few samples (use 1,000; held-out real digits score 1.7 with 269 samples, 1.3 with 539).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch

from aigc_course.checkpoint import read_checkpoint
from aigc_course.data.online import cache_dir
from aigc_course.data.registry import load_images
from aigc_course.metrics._judge_training import (
    KIND,
    RECIPES,
    JudgeRecipe,
    accuracy,
    outliers,
    random_translate,
    recipe,
    save_judge,
    train_judge,
)
from aigc_course.metrics.frechet import frechet_distance_from_features
from aigc_course.models.classifier import ClassifierConfig, ImageClassifier

__all__ = ["KIND", "RECIPES", "JudgeRecipe", "accuracy", "outliers", "random_translate",
           "recipe", "save_judge", "train_judge"]

Tensor = torch.Tensor
Reference = Literal["train", "val", "test"]
REFERENCES: tuple[Reference, ...] = ("train", "val", "test")
BATCH_SIZE = 500
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "checkpoints"
#: The judges the package ships (offline sets); the others are trained on first use.
SHIPPED: tuple[str, ...] = ("digits", "mnist5k", "shapes")
DEFAULT_PATH = SHIPPED_DIR / "judge_digits.pt"
NOISE_IMAGES = 1000


def regenerate_hint(dataset: str = "digits") -> str:
    """How to rebuild the judge of ``dataset``."""
    return f"regenerate it with `aigc-course judge --dataset {dataset}` (or `make judge`)"


def judge_path(dataset: str) -> Path:
    """Where the judge of ``dataset`` lives: shipped in the package, or cached beside the data.

    Raises:
        ValueError: ``dataset`` has no judge (the message lists those that do).
    """
    recipe(dataset)
    if dataset in SHIPPED:
        return SHIPPED_DIR / f"judge_{dataset}.pt"
    return cache_dir() / "judges" / f"judge_{dataset}.pt"


def read_judge_checkpoint(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a judge checkpoint without building the model.

    Args:
        path: the file; ``None`` is the shipped ``checkpoints/judge_digits.pt``.

    Returns:
        The dict with keys ``format``, ``config``, ``state_dict`` and ``metadata``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt or is not a judge checkpoint.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        return read_checkpoint(path, KIND)
    except (FileNotFoundError, ValueError) as error:
        dataset = path.stem.removeprefix("judge_") if path.stem.startswith("judge_") else "D"
        raise type(error)(f"{error}; {regenerate_hint(dataset)}") from error


def load_judge(path: str | Path | None = None) -> ImageClassifier:
    """Load a judge checkpoint (the shipped digits judge by default) in eval mode on CPU.

    Args:
        path: the file; ``None`` is the shipped ``checkpoints/judge_digits.pt``.

    Returns:
        The judge, in eval mode, with gradients switched off; its checkpoint's
        metadata (``dataset``, accuracies, pinned FIDs) is in ``judge.metadata``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt, is not a judge checkpoint, or its weights do
            not fit its configuration.
    """
    checkpoint = read_judge_checkpoint(path)
    try:
        model = ImageClassifier(ClassifierConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path or DEFAULT_PATH} is a judge checkpoint but its config or "
                         f"weights do not fit an ImageClassifier ({str(error)[:300]}); "
                         f"{regenerate_hint()}") from error
    model.metadata = dict(checkpoint.get("metadata", {}))
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=8)
def _load_cached(path: Path, dataset: str) -> ImageClassifier:
    judge = load_judge(path)
    found = judge.metadata.get("dataset", "digits")
    if found != dataset:
        raise ValueError(f"{path} is the judge of {found!r}, not of {dataset!r}; delete it "
                         f"or {regenerate_hint(dataset)}")
    return judge


def judge_for(dataset: str = "digits", *, train: bool = True,
              progress: bool = True) -> ImageClassifier:
    """The judge of ``dataset``: shipped, cached, or trained now and cached (loaded once).

    Args:
        dataset: the dataset the samples to score come from.
        train: train and cache the judge when it is neither shipped nor cached (the
            first use of an online dataset: 6-20 epochs, see :data:`RECIPES`); with
            ``False`` a missing judge raises.
        progress: show the training's progress bar.

    Raises:
        ValueError: ``dataset`` has no judge (the valid names are listed).
        FileNotFoundError: a shipped judge is missing, or ``train=False`` and none is cached.
    """
    path = judge_path(dataset)
    if not path.is_file():
        if dataset in SHIPPED or not train:
            raise FileNotFoundError(f"no judge for {dataset!r} at {path}; "
                                    f"{regenerate_hint(dataset)}")
        print(f"training the {dataset} judge on first use; it is cached in {path}")
        retrain(dataset, path, progress=progress)
    return _load_cached(path, dataset)


def default_judge() -> ImageClassifier:
    """The shipped digits judge, loaded once (what metrics use for ``dataset="digits"``)."""
    return judge_for("digits")


def clear_cache() -> None:
    """Forget the loaded judges (after retraining one in place)."""
    _load_cached.cache_clear()


@torch.no_grad()
def reference_fids(judge: ImageClassifier, dataset: str, seed: int = 0) -> dict[str, Any]:
    """The judge's pinned floor and ceiling: FID of real test and of noise images.

    Both against the train split's features at the dataset's native size.

    Returns:
        ``{"fid_test": ..., "fid_noise": ..., "fid_reference": "<dataset> train, native
        size, judge features"}``.
    """
    real, _ = load_images(dataset, "train")
    test, _ = load_images(dataset, "test")
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand((NOISE_IMAGES, *test.shape[1:]), generator=g) * 2 - 1
    ref = judge_outputs(real, judge)[1]
    return {"fid_test": frechet_distance_from_features(ref, judge_outputs(test, judge)[1]),
            "fid_noise": frechet_distance_from_features(ref, judge_outputs(noise, judge)[1]),
            "fid_reference": f"{dataset} train split at {real.shape[-1]}x{real.shape[-1]}, "
                             f"judge features; {len(test)} test images, "
                             f"{NOISE_IMAGES} uniform-noise images"}


def retrain(dataset: str = "digits", out: Path | None = None, epochs: int | None = None,
            seed: int = 0, progress: bool = True, **options: Any) -> dict[str, Any]:
    """Train the judge of ``dataset`` and save it: what ``aigc-course judge`` runs.

    Args:
        dataset: a dataset of :data:`RECIPES`.
        out: where to write; ``None`` is :func:`judge_path` (the shipped file for an
            offline set).
        epochs: training epochs (``None``: the recipe's).
        seed: the random seed.
        progress: show a progress bar.
        **options: other arguments of :func:`train_judge` (``max_train=``, ...).

    Returns:
        The metrics of :func:`train_judge`, the pinned FIDs of :func:`reference_fids`
        and the ``path`` written.
    """
    model, metrics = train_judge(dataset, epochs=epochs, seed=seed, progress=progress,
                                 **options)
    metrics.update(reference_fids(model, dataset))
    path = save_judge(model, out if out is not None else judge_path(dataset), metrics)
    clear_cache()
    return {**metrics, "path": str(path)}


def _resolve(judge: ImageClassifier | None) -> ImageClassifier:
    return judge if judge is not None else default_judge()


def check_images(images: Tensor, judge: ImageClassifier | None = None) -> ImageClassifier:
    """Check that the judge can score ``images``; returns the judge (``None``: the shipped one).

    Raises:
        ValueError: not ``(N, C, H, W)`` floats with the judge's channels and at least
            its native size, or ``N = 0``; the message says what was found.
    """
    judge = _resolve(judge)
    if not isinstance(images, Tensor) or images.ndim != 4:
        judge.prepare(images)                          # raises a ValueError that explains
    if len(images) == 0:
        raise ValueError("no images to judge (N = 0)")
    judge.prepare(images[:1])                          # fail fast on channels, size, dtype
    return judge


@torch.no_grad()
def judge_outputs(images: Tensor, judge: ImageClassifier | None = None,
                  batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """Class probabilities and features of ``images``, in batches, without gradients.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``, at least the judge's native size
            (resized to it inside).
        judge: the classifier; ``None`` is the shipped digits judge.
        batch_size: images per forward pass.

    Returns:
        ``probs`` ``(N, K)`` (softmax) and ``features`` ``(N, 64)``, float32 on CPU.

    Raises:
        ValueError: wrong shape or dtype (see ``ImageClassifier.prepare``), or no images.
    """
    judge = check_images(images, judge)
    was_training = judge.training
    judge.eval()
    probs, features = [], []
    for start in range(0, len(images), batch_size):
        logits, feats = judge.logits_and_features(images[start:start + batch_size])
        probs.append(torch.softmax(logits.float(), dim=1).cpu())    # p(k | x)
        features.append(feats.float().cpu())
    judge.train(was_training)
    return torch.cat(probs), torch.cat(features)


def judge_features(images: Tensor, judge: ImageClassifier | None = None) -> Tensor:
    """The judge's 64-d penultimate features ``(N, 64)`` of ``images`` ``(N, C, H, W)``."""
    return judge_outputs(images, judge)[1]


def _recognisability(probs: Tensor, threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return float((probs.max(dim=1).values >= threshold).float().mean())  # P(max_k p >= t)


def _class_coverage(probs: Tensor) -> float:
    num_classes = probs.shape[1]
    counts = torch.bincount(probs.argmax(dim=1), minlength=num_classes).double()
    p_hat = counts / counts.sum()                                      # (K,) histogram
    entropy = -(p_hat[p_hat > 0] * p_hat[p_hat > 0].log()).sum()       # H(p_hat)
    return max(0.0, float(entropy / math.log(num_classes)))            # H / log K, not -0.0


def _per_class_accuracy(probs: Tensor, labels: Tensor) -> dict[int, float]:
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    hits = probs.argmax(dim=1) == labels
    return {int(c): float(hits[labels == c].float().mean()) for c in torch.unique(labels)}


def _label_accuracy(probs: Tensor, labels: Tensor) -> float:
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels for {len(probs)} images")
    return float((probs.argmax(dim=1) == labels).float().mean())


def recognisability(images: Tensor, threshold: float = 0.9,
                    judge: ImageClassifier | None = None) -> float:
    """Share of samples classified with confidence $\\max_k p(k\\mid x) \\ge$ ``threshold``.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        threshold: the confidence bar, in ``(0, 1]``.
        judge: the classifier; ``None`` is the shipped digits judge.
    """
    return _recognisability(judge_outputs(images, judge)[0], threshold)


def class_coverage(images: Tensor, judge: ImageClassifier | None = None) -> float:
    """Normalised entropy $H(\\hat p)/\\log K$ of the predicted-class histogram.

    1 means the $K$ classes are predicted equally often, 0 that all samples get one class.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        judge: the classifier; ``None`` is the shipped digits judge.
    """
    return _class_coverage(judge_outputs(images, judge)[0])


def label_accuracy(images: Tensor, labels: Tensor, judge: ImageClassifier | None = None
                   ) -> float:
    """Share of conditional samples the judge assigns to their requested label.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        labels: the requested classes ``(N,)``, integers in ``0..K-1``.
        judge: the classifier; ``None`` is the shipped digits judge.
    """
    return _label_accuracy(judge_outputs(images, judge)[0], labels)
