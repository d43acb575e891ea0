"""Audits of an image generator: which classes it draws, how well, and whether it copies.

A generator trained on a balanced dataset can still be biased: it may draw some classes
more often than the data has them (a *representation* bias, the generative cousin of the
disaggregated evaluation of Mitchell et al. 2019, "Model Cards for Model Reporting") or
draw some classes worse than others (a *quality* bias). :func:`audit_generator` samples
a model, labels every sample with the dataset's judge (:mod:`aigc_course.metrics.judge`)
and measures, against a reference class distribution $q$:

* the judged class shares $\\hat p_k = O_k / n$ and their total-variation distance
  $\\mathrm{TV}(\\hat p, q) = \\tfrac12 \\sum_k |\\hat p_k - q_k|$ (0: the same shares,
  1: disjoint);
* the over/under-representation ratios $\\hat p_k / q_k$ (the largest and the smallest;
  0 means a class is never drawn: a dropped mode);
* Pearson's (1900) chi-square goodness-of-fit statistic
  $\\chi^2 = \\sum_k (O_k - E_k)^2 / E_k$, $E_k = n q_k$, with $K - 1$ degrees of
  freedom, and its p-value (a small p: the shares differ by more than sampling noise);
* per-class recognisability (the quality bias) and, for a class-conditional model, the
  label accuracy overall and per class;
* the memorisation check of :func:`aigc_course.metrics.memorisation_report`: the share of
  samples nearer a training image than 99% of held-out test images are.

Decisions. An *unconditional* model is compared with the class shares of the train
split it learnt from. A *conditional* model is asked for the classes in turn
(:func:`aigc_course.kinds.draw`'s default: exactly uniform requests), so its class shares
are a choice of whoever samples it, not a property of the model; its reference is the
requested distribution and a gap from it means the model draws other classes than
asked, which label accuracy (overall and per class) measures directly. Its worst classes
are those of lowest label accuracy; an unconditional model's are the most
under-represented ones.

Simplified: the judge's labels are taken as the truth (it errs on about 0.4% of real test
digits, more on poor samples); per-class recognisability is grouped by the judged class
for an unconditional model, so a class drawn badly enough to be misjudged leaks into
another; per-class FID is left out (100 samples per class in 64-d features would be
dominated by its small-sample bias). The chi-square test assumes independent samples and
expected counts of 5 or more (``n >= 50`` for ten balanced classes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from scipy import stats

from aigc_course import kinds
from aigc_course.data.registry import load_images
from aigc_course.metrics import memorisation_report
from aigc_course.metrics.judge import judge_for, judge_outputs

Tensor = torch.Tensor
WORST = 3            # classes listed as the worst
THRESHOLD = 0.9      # the recognisability bar of aigc_course.metrics.judge


@dataclass
class AuditResult:
    """One generator's audit (plain values: it prints, records and serialises).

    Attributes:
        name: the row's label. kind: the model kind. dataset: its training dataset.
        conditional: whether the model was asked for classes.
        n, seed: samples drawn and their seed. options: the sampling options.
        reference: what the class shares are compared with (text).
        shares, reference_shares: class -> share of the samples / of the reference.
        tv: total-variation distance between them. max_ratio, min_ratio: the extreme
            ratios share / reference share. chi2, dof, p_value: Pearson's test.
        worst_classes: the :data:`WORST` worst classes (see the module docstring).
        recognisability, recognisability_per_class: overall and per class.
        label_accuracy, label_accuracy_per_class: conditional models only (else ``None``).
        copy_fraction: share of samples nearer the train split than the 1% quantile of
            test images; test_copy_fraction: the same share of test images (about 0.01);
            median_ratio: median nearest-train distance of samples over that of test
            images (about 1 when the model generalises); threshold: that quantile.
        seconds: sampling wall time.
    """

    name: str
    kind: str
    dataset: str
    conditional: bool
    n: int
    seed: int
    reference: str
    shares: dict[int, float]
    reference_shares: dict[int, float]
    tv: float
    max_ratio: float
    min_ratio: float
    chi2: float
    dof: int
    p_value: float
    worst_classes: list[int]
    recognisability: float
    recognisability_per_class: dict[int, float]
    copy_fraction: float
    test_copy_fraction: float
    median_ratio: float
    threshold: float
    seconds: float
    options: dict[str, Any] = field(default_factory=dict)
    label_accuracy: float | None = None
    label_accuracy_per_class: dict[int, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Every field as plain Python values."""
        return asdict(self)


def class_balance(labels_pred: Tensor | Sequence[int], reference_labels: Tensor | Sequence[int],
                  num_classes: int) -> dict[str, Any]:
    """Compare the class distribution of judged samples with a reference one.

    Args:
        labels_pred: judged classes ``(n,)`` of the samples, in ``0..num_classes-1``.
        reference_labels: classes ``(m,)`` whose shares are the reference $q$ (the train
            split's labels, or the requested labels of conditional samples).
        num_classes: $K$.

    Returns:
        ``counts`` (list of $O_k$), ``expected`` ($E_k = n q_k$), ``shares`` and
        ``reference_shares`` (class -> share), ``ratios`` (class -> $\\hat p_k / q_k$),
        ``tv``, ``max_ratio``, ``min_ratio``, ``chi2``, ``dof`` ($K' - 1$ over the $K'$
        classes the reference has) and ``p_value``.

    Raises:
        ValueError: ``num_classes < 2``, empty inputs, a label outside
            ``0..num_classes-1``, or samples of a class the reference never has
            (the statistic would be infinite).
    """
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    pred = torch.as_tensor(labels_pred).reshape(-1).long()
    ref = torch.as_tensor(reference_labels).reshape(-1).long()
    for what, t in (("labels_pred", pred), ("reference_labels", ref)):
        if len(t) == 0:
            raise ValueError(f"{what} is empty")
        if int(t.min()) < 0 or int(t.max()) >= num_classes:
            raise ValueError(f"{what} must be in 0..{num_classes - 1}, got "
                             f"{int(t.min())}..{int(t.max())}")
    counts = torch.bincount(pred, minlength=num_classes).double()          # (K,) O_k
    q = torch.bincount(ref, minlength=num_classes).double() / len(ref)     # (K,) q_k
    n = len(pred)
    p_hat = counts / n                                                      # (K,) p_hat_k
    present = q > 0
    if bool((counts[~present] > 0).any()):
        missing = [int(k) for k in torch.nonzero(~present & (counts > 0)).flatten()]
        raise ValueError(f"samples of classes {missing} that the reference never has: "
                         "chi-square is infinite; pass reference labels covering them")
    expected = n * q                                                        # E_k = n q_k
    tv = 0.5 * float((p_hat - q).abs().sum())                 # TV = 1/2 sum_k |p_k - q_k|
    chi2 = float(((counts - expected)[present] ** 2 / expected[present]).sum())  # Pearson
    dof = int(present.sum()) - 1
    p_value = float(stats.chi2.sf(chi2, dof)) if dof > 0 else 1.0          # P(X >= chi2)
    ratios = {k: float(p_hat[k] / q[k]) for k in range(num_classes) if present[k]}
    return {"counts": [int(c) for c in counts], "expected": expected.tolist(),
            "shares": {k: float(p_hat[k]) for k in range(num_classes)},
            "reference_shares": {k: float(q[k]) for k in range(num_classes)},
            "ratios": ratios, "tv": tv, "max_ratio": max(ratios.values()),
            "min_ratio": min(ratios.values()), "chi2": chi2, "dof": dof, "p_value": p_value}


def _per_class(values: Tensor, groups: Tensor, num_classes: int) -> dict[int, float]:
    """Mean of ``values`` ``(n,)`` within each group present in ``groups`` ``(n,)``."""
    return {k: float(values[groups == k].float().mean()) for k in range(num_classes)
            if bool((groups == k).any())}


def audit_samples(images: Tensor, requested: Tensor | None, name: str, kind: str, *,
                  dataset: str, seed: int = 0, seconds: float = 0.0,
                  options: dict[str, Any] | None = None) -> AuditResult:
    """Audit samples already drawn (what :func:`audit_generator` and the model card call).

    Args:
        images: samples ``(n, C, H, W)`` in ``[-1, 1]``.
        requested: the requested classes ``(n,)`` of a conditional model, or ``None``
            (unconditional: compared with the train split's class shares).
        name, kind: the row's label and the model kind.
        dataset: the dataset the model was trained on (its judge labels the samples).
        seed, seconds, options: recorded as they were drawn.

    Raises:
        ValueError: fewer than 50 samples (the chi-square test needs expected counts
            of about 5 per class), or images the judge cannot score.
    """
    if len(images) < 50:
        raise ValueError(f"an audit needs at least 50 samples (expected counts >= 5 per "
                         f"class for the chi-square test), got {len(images)}")
    judge = judge_for(dataset)
    probs, _ = judge_outputs(images, judge)                                # (n, K)
    num_classes = probs.shape[1]
    judged = probs.argmax(dim=1)                                           # (n,)
    recognised = probs.max(dim=1).values >= THRESHOLD                      # (n,)
    size = int(images.shape[-1])
    train, train_labels = load_images(dataset, "train", image_size=size)
    test, _ = load_images(dataset, "test", image_size=size)
    conditional = requested is not None
    if requested is not None:
        requested = torch.as_tensor(requested).reshape(-1).long()
        balance = class_balance(judged, requested, num_classes)
        reference = "the requested labels (the classes in turn)"
        hits = judged == requested
        accuracy: float | None = float(hits.float().mean())
        by_class = _per_class(hits, requested, num_classes)
        per_class_accuracy: dict[int, float] | None = by_class
        per_class = _per_class(recognised, requested, num_classes)
        worst = sorted(by_class, key=lambda k: by_class[k])[:WORST]
    else:
        balance = class_balance(judged, train_labels, num_classes)
        reference = f"the {dataset} train split's class shares ({len(train_labels):,} images)"
        accuracy, per_class_accuracy = None, None
        per_class = _per_class(recognised, judged, num_classes)
        ratios = balance["ratios"]
        worst = sorted(ratios, key=lambda k: ratios[k])[:WORST]
    copying = memorisation_report(images, train, test)
    return AuditResult(
        name=name, kind=kind, dataset=dataset, conditional=conditional, n=len(images),
        seed=seed, reference=reference, shares=balance["shares"],
        reference_shares=balance["reference_shares"], tv=balance["tv"],
        max_ratio=balance["max_ratio"], min_ratio=balance["min_ratio"], chi2=balance["chi2"],
        dof=balance["dof"], p_value=balance["p_value"], worst_classes=worst,
        recognisability=float(recognised.float().mean()), recognisability_per_class=per_class,
        copy_fraction=copying["copy_fraction"],
        test_copy_fraction=copying["test_copy_fraction"],
        median_ratio=copying["median_ratio"], threshold=copying["threshold"],
        seconds=seconds, options=dict(options or {}), label_accuracy=accuracy,
        label_accuracy_per_class=per_class_accuracy)


def audit_generator(model: kinds.GenerativeModel, name: str, *, dataset: str, n: int = 1000,
                    seed: int = 0, kind: str | None = None,
                    **sample_options: Any) -> AuditResult:
    """Draw ``n`` samples of ``model`` (conditional: the classes in turn) and audit them.

    Args:
        model: a trained image model of any kind.
        name: the row's label.
        dataset: the dataset it was trained on.
        n: samples (1,000: the shares' standard error is then about 0.01).
        seed: the sampling seed.
        kind: the model kind, recorded (``None``: the model's class name).
        **sample_options: the kind's sampling options (``steps=``, ``guidance=``).

    Returns:
        The :class:`AuditResult`.
    """
    images, labels, seconds = kinds.draw(model, n, seed=seed, **sample_options)
    return audit_samples(images, labels if model.conditional else None, name,
                         kind or type(model).__name__,
                         dataset=dataset, seed=seed, seconds=seconds, options=sample_options)


def audit_table(results: Sequence[AuditResult]) -> Any:
    """One row per audit: the numbers a reader compares (a ``pandas.DataFrame``)."""
    import pandas as pd

    rows = []
    for r in results:
        rows.append({
            "model": r.name, "kind": r.kind, "conditional": r.conditional, "n": r.n,
            "seed": r.seed, "tv": r.tv, "max_ratio": r.max_ratio, "min_ratio": r.min_ratio,
            "chi2": r.chi2, "dof": r.dof, "p_value": r.p_value,
            "worst_classes": ", ".join(map(str, r.worst_classes)),
            "recognisability": r.recognisability,
            "worst_recognisability": min(r.recognisability_per_class.values()),
            "label_accuracy": (float("nan") if r.label_accuracy is None
                               else r.label_accuracy),
            "worst_label_accuracy": (float("nan") if not r.label_accuracy_per_class
                                     else min(r.label_accuracy_per_class.values())),
            "copy_fraction": r.copy_fraction, "test_copy_fraction": r.test_copy_fraction,
            "median_ratio": r.median_ratio, "reference": r.reference})
    return pd.DataFrame(rows)


def plot_class_shares(results: Sequence[AuditResult]) -> Figure:
    """Judged class shares of each audited generator beside the reference shares.

    Bars: one group per class, one bar per generator; black ticks: each generator's
    reference share (the train split's, or the requested uniform shares).
    """
    import matplotlib.pyplot as plt

    if not results:
        raise ValueError("plot_class_shares needs at least one AuditResult")
    classes = sorted(results[0].reference_shares)
    width = 0.8 / len(results)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.7 * len(classes)), 3.2))
    for i, r in enumerate(results):
        x = np.arange(len(classes)) + (i - (len(results) - 1) / 2) * width
        ax.bar(x, [r.shares.get(k, 0.0) for k in classes], width,
               label=f"{r.name} (TV {r.tv:.3f})")
        ax.scatter(x, [r.reference_shares[k] for k in classes], marker="_", s=120,
                   color="black", zorder=3)
    ax.set_xticks(np.arange(len(classes)), [str(k) for k in classes])
    ax.set_xlabel("class (judged)")
    ax.set_ylabel("share of samples")
    ax.set_title("class shares of the samples; black: the reference share")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    plt.close(fig)               # drawable, shown only when displayed (as aigc_course.viz)
    return fig
