"""The digits judge, loaded, and the per-sample metrics it gives.

The judge is a small CNN (:class:`~aigc_course.models.classifier.DigitClassifier`)
trained on 8x8 digits by :mod:`aigc_course.train.judge`; this module loads it from its
checkpoint (kind ``judge`` in the common format of :mod:`aigc_course.checkpoint`,
``weights_only=True``). On a batch of generated digits ``images`` ``(N, 1, H, W)`` in
``[-1, 1]`` it gives (judge FID and :func:`~aigc_course.metrics.scores.judge_report` are
computed in :mod:`aigc_course.metrics.scores`, one feature path for every FID):

* **judge FID** -- the Fréchet distance (:mod:`aigc_course.metrics.frechet`) between
  Gaussians fitted to its 64-d penultimate features of the samples and of the real
  ``digits`` train split (loaded at the samples' size): FID (Heusel et al. 2017) with
  the judge in place of Inception-v3. Lower is better; it sees quality and diversity.
* **recognisability** -- the share of samples the judge classifies with confidence
  $\\max_k p(k \\mid x) \\ge 0.9$, a per-sample quality score in the spirit of the
  Inception Score's sharp-prediction term (Salimans et al. 2016).
* **class coverage** -- the normalised entropy $H(\\hat p) / \\log 10$ of the histogram
  $\\hat p$ of predicted classes: 1 when all ten digits are equally frequent, 0 when
  every sample is the same digit (mode collapse). The Inception Score's other term.
* **label accuracy** -- for class-conditional samples, how often the judge agrees
  with the requested label.

Never read one alone: a collapsed generator that draws one perfect digit is 100%
recognisable (coverage tells), and an average of two digits is "recognisable" 58% of
the time (FID tells). The judge was trained to be unsure on noise and blank images
(outlier exposure), so it calls 0% of them recognisable; other failure modes may still
fool it. Simplified with respect to the originals: the feature extractor is a
107 K-parameter CNN trained on the same data, so numbers are comparable only between
runs scored by the same judge, and FID is biased upwards on few samples (use 1,000;
held-out real digits score 1.7 with 269 samples, 1.3 with 539).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import torch

from aigc_course.checkpoint import read_checkpoint
from aigc_course.models.classifier import ClassifierConfig, DigitClassifier

Tensor = torch.Tensor
Reference = Literal["train", "val", "test"]
REFERENCES: tuple[Reference, ...] = ("train", "val", "test")
BATCH_SIZE = 500
KIND = "judge"
DEFAULT_PATH = Path(__file__).resolve().parents[1] / "checkpoints" / "judge_digits.pt"
REGENERATE = "regenerate it with `aigc-course judge` (or `make judge`)"

def read_judge_checkpoint(path: str | Path | None = None) -> dict[str, Any]:
    """Read and check a judge checkpoint without building the model.

    Args:
        path: the file; ``None`` is the shipped ``checkpoints/judge_digits.pt``.

    Returns:
        The dict with keys ``format``, ``config``, ``state_dict`` and ``metadata``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt or is not a digits-judge checkpoint.
    """
    path = Path(path) if path is not None else DEFAULT_PATH
    try:
        return read_checkpoint(path, KIND)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f"{error}; {REGENERATE}") from error


def load_judge(path: str | Path | None = None) -> DigitClassifier:
    """Load a judge checkpoint (the shipped one by default) in eval mode on CPU.

    Args:
        path: the file; ``None`` is the shipped ``checkpoints/judge_digits.pt``.

    Returns:
        The judge, in eval mode, with gradients switched off.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt, is not a digits-judge checkpoint, or its
            weights do not fit its configuration.
    """
    checkpoint = read_judge_checkpoint(path)
    try:
        model = DigitClassifier(ClassifierConfig(**checkpoint["config"]))
        model.load_state_dict(checkpoint["state_dict"])
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f"{path or DEFAULT_PATH} is a judge checkpoint but its config or "
                         f"weights do not fit a DigitClassifier ({str(error)[:300]}); "
                         f"{REGENERATE}") from error
    return model.eval().requires_grad_(False)


@lru_cache(maxsize=1)
def default_judge() -> DigitClassifier:
    """The shipped judge, loaded once and cached (metrics call this; do not train it)."""
    return load_judge()


def _resolve(judge: DigitClassifier | None) -> DigitClassifier:
    return judge if judge is not None else default_judge()


def check_images(images: Tensor, judge: DigitClassifier | None = None) -> DigitClassifier:
    """Check that the judge can score ``images``; returns the judge (``None``: the shipped one).

    Raises:
        ValueError: not ``(N, 1, H, W)`` floats with ``H, W >= 8``, or ``N = 0``; the
            message says what was found.
    """
    judge = _resolve(judge)
    if not isinstance(images, Tensor) or images.ndim != 4:
        judge.prepare(images)                          # raises a ValueError that explains
    if len(images) == 0:
        raise ValueError("no images to judge (N = 0)")
    judge.prepare(images[:1])                          # fail fast on channels, size, dtype
    return judge


@torch.no_grad()
def judge_outputs(images: Tensor, judge: DigitClassifier | None = None,
                  batch_size: int = BATCH_SIZE) -> tuple[Tensor, Tensor]:
    """Class probabilities and features of ``images``, in batches, without gradients.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``, ``H, W >= 8`` (resized to 8x8 inside).
        judge: the classifier; ``None`` is the shipped judge.
        batch_size: images per forward pass.

    Returns:
        ``probs`` ``(N, 10)`` (softmax) and ``features`` ``(N, 64)``, float32 on CPU.

    Raises:
        ValueError: wrong shape or dtype (see ``DigitClassifier.prepare``), or no images.
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


def judge_features(images: Tensor, judge: DigitClassifier | None = None) -> Tensor:
    """The judge's 64-d penultimate features ``(N, 64)`` of ``images`` ``(N, 1, H, W)``."""
    return judge_outputs(images, judge)[1]


def _recognisability(probs: Tensor, threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    return float((probs.max(dim=1).values >= threshold).float().mean())  # P(max_k p >= t)


def _class_coverage(probs: Tensor) -> float:
    num_classes = probs.shape[1]
    counts = torch.bincount(probs.argmax(dim=1), minlength=num_classes).double()
    p_hat = counts / counts.sum()                                      # (10,) histogram
    entropy = -(p_hat[p_hat > 0] * p_hat[p_hat > 0].log()).sum()       # H(p_hat)
    return max(0.0, float(entropy / math.log(num_classes)))            # H / log 10, not -0.0


def _label_accuracy(probs: Tensor, labels: Tensor) -> float:
    labels = torch.as_tensor(labels).reshape(-1).long().cpu()
    if len(labels) != len(probs):
        raise ValueError(f"{len(labels)} labels for {len(probs)} images")
    return float((probs.argmax(dim=1) == labels).float().mean())


def recognisability(images: Tensor, threshold: float = 0.9,
                    judge: DigitClassifier | None = None) -> float:
    """Share of samples classified with confidence $\\max_k p(k\\mid x) \\ge$ ``threshold``.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        threshold: the confidence bar, in ``(0, 1]``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _recognisability(judge_outputs(images, judge)[0], threshold)


def class_coverage(images: Tensor, judge: DigitClassifier | None = None) -> float:
    """Normalised entropy $H(\\hat p)/\\log 10$ of the predicted-class histogram.

    1 means the ten digits are predicted equally often, 0 that all samples get one class.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _class_coverage(judge_outputs(images, judge)[0])


def label_accuracy(images: Tensor, labels: Tensor, judge: DigitClassifier | None = None
                   ) -> float:
    """Share of conditional samples the judge assigns to their requested label.

    Args:
        images: ``(N, 1, H, W)`` in ``[-1, 1]``.
        labels: the requested classes ``(N,)``, integers in ``0..9``.
        judge: the classifier; ``None`` is the shipped judge.
    """
    return _label_accuracy(judge_outputs(images, judge)[0], labels)
