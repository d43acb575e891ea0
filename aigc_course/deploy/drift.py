"""A drift monitor on a service's outputs: is the model still drawing what it drew?

A generative service can go wrong without an error: a bad checkpoint swapped in (an
under-trained or over-pruned one), a broken export, a numerics change. Nothing in the
requests shows it, so the monitor watches the *outputs*. It buffers the images the
service generated (and, for a class-conditional model, the labels the users asked
for) into windows of $W$ images and scores each full window twice with the dataset's
judge (:mod:`aigc_course.metrics.judge`):

* **class score** -- the population stability index between the histogram $p$ of the
  judge's predicted classes in the window and the histogram $q$ a healthy model gives
  *for the labels that were requested*:

  $$\\mathrm{PSI}(p, q) = \\sum_{k=1}^{K} (p_k - q_k)\\,\\ln\\frac{p_k}{q_k},$$

  the symmetrised KL divergence $\\mathrm{KL}(p\\Vert q) + \\mathrm{KL}(q\\Vert p)$. Both
  histograms are smoothed with $\\varepsilon = 0.5$ pseudo-counts per class,
  $p_k = (c_k + \\varepsilon) / (W + K\\varepsilon)$ and likewise $q_k = (W q^0_k +
  \\varepsilon) / (W + K\\varepsilon)$, so an empty class never gives $\\ln 0$. The
  expected histogram is $q^0 = \\frac1W\\sum_i C_{y_i,\\cdot}$, where $C_{y,k} = P(\\hat
  k = k \\mid \\text{requested } y)$ is the healthy model's confusion matrix measured at
  calibration: users asking only for 3s move $q^0$ with them, so traffic mix is not
  mistaken for drift. An unconditional model has one row, its healthy class histogram.
  $C$ comes from 10,000 healthy outputs drawn at calibration.
* **feature score** -- the unbiased squared MMD (Gretton et al. 2012, eq. 3) between
  the judge's 64-d features of the window $Y = \\{y_j\\}_{j=1}^W$ and of a reference
  $X = \\{x_i\\}_{i=1}^M$ of $M = 1000$ outputs of the *healthy* model, drawn at
  calibration and stored with it, with a Gaussian kernel
  $k(a, b) = \\exp(-\\lVert a - b\\rVert^2 / 2\\sigma^2)$ whose $\\sigma$ is the median
  distance between reference features. The reference is weighted to the window's
  requested class mix $\\pi_c = n_c / W$ (stratified: class blocks, $i \\ne i'$ in the
  within-class blocks):

  $$\\widehat{\\mathrm{MMD}}^2 = \\sum_{c, c'} \\pi_c \\pi_{c'} \\big(A_{cc'} + B_{cc'}
  - C_{cc'} - C_{c'c}\\big),$$

  $A_{cc'}$, $B_{cc'}$ the mean of $k$ over pairs of window (reference) points of
  classes $c$ and $c'$, $C_{cc'}$ the mean of $k(x_i, y_j)$ with $x_i$ of class $c$,
  $y_j$ of class $c'$; each block is unbiased, so the null mean is 0 for any mix (a
  class requested once borrows its $A_{cc}$ from $B_{cc}$). With one class (an
  unconditional model) it is the plain U-statistic,
  exactly :func:`aigc_course.metrics.distances.mmd2`. Why
  healthy outputs and not the real train split, against chapter 08's rule that a
  metric compares against the samples' own dataset: that rule is for *quality*, and
  chapter 08 does that; a monitor asks whether the model *changed*. Against real
  digits the healthy GAN's score has an offset that depends on the classes requested
  (measured: windows of only 3s scored 0.0029 against balanced ones' -0.0007, threshold
  -0.0001, so every all-3s window alarmed); against its own outputs, weighted to the
  same mix, the null mean is 0 whatever the mix. The judge is still the dataset's.

**Thresholds** (:func:`calibrate`): a false-alarm rate $\\alpha$ per window, shared by
the two scores by Bonferroni ($\\alpha/2$ each, so $P(\\text{alarm} \\mid \\text{healthy})
\\le \\alpha$). The PSI's threshold is computed for the window's labels: given the
requested labels, a healthy model's predicted classes are independent draws from the
rows of $C$, so 4,000 simulated windows (a parametric bootstrap, seeded by the label
counts) give its $1 - \\alpha/2$ quantile. Each simulated window first draws its rows
from their posterior $\\mathrm{Dirichlet}(N_{c\\cdot} + 1/K)$ given the calibration's
counts $N$: with the plug-in rows, a class never misread in its ~400 calibration draws
alarmed at its first misread digit, and an all-correct window "exceeded" an identical
simulated one by rounding (measured: 9 of 30 one-class windows alarmed on the PSI).
Its null is far from a scaled $\\chi^2$: the predicted histogram is nearly the
requested one, only a few misclassifications move it, so the PSI is small and
heavy-tailed (on 200 healthy windows of 256 its mean and standard
deviation were both 0.0016; a moment-matched $\\chi^2$ fit alarmed on 2 of 100 fresh
windows at $\\alpha = 1\\%$). The MMD², a U-statistic averaging $W^2$ kernel terms, is
fitted on healthy windows by a Pearson type III law matching their mean, standard
deviation and skewness (a Gaussian fit, $m + z_{1-\\alpha/2} s$, was too light-tailed:
5 of 200 calibration windows over a 0.5% threshold) (seeded, labels
uniform at random; the quantile of 200 values at 99.5% would be their maximum, so the
tail is fitted, not read). Its null depends on the window's label mix: with fewer
classes requested each class block rests on fewer window and reference points
(measured at $W = 128$, $M = 600$: standard deviation $9 \\times 10^{-5}$ for uniform
labels, up to $4 \\times 10^{-4}$ for one class, whose offset from the fixed reference
also differs by class). So a conditional model is calibrated on ``windows`` healthy
windows per mix -- labels uniform over $m = 1, 2, 5$ and $K$ classes, the $m$ classes
rotating with the window so every class is in each mix -- one fit per mix, stored as
a table of (mean $n_{\\mathrm{eff}}$, threshold), $n_{\\mathrm{eff}} = 1/\\sum_c \\pi_c^2$
the effective number of classes (:func:`effective_classes`). A window's threshold is
that table interpolated linearly in $\\ln n_{\\mathrm{eff}}$ of its requested labels,
clamped at the ends (measured there: $2.4 \\times 10^{-3}$ at $n_{\\mathrm{eff}} = 1$,
$1.7 \\times 10^{-3}$ at 2, $4.9 \\times 10^{-4}$ at 4.8, $3.2 \\times 10^{-4}$ at 9.4;
one-class traffic of every class then alarmed on 2 of 30 windows, 16 before). An
unconditional model has one mix. An alert fires on the first window where either score
exceeds its threshold, so a swapped-in bad checkpoint is caught within $W$ requests
(plus what was pending).

Simplified: one window size and no sequential test (CUSUM would catch slower drift
with fewer images); the MMD² threshold follows the mix only through $n_{\\mathrm{eff}}$:
the one-class fit pools every class, so a window of only the widest class (8 or 9
here) alarms more often than $\\alpha/2$ and one of another class less, and two mixes
of equal $n_{\\mathrm{eff}}$ share a threshold (a per-class table would need about
$K$ times the calibration windows); the judge sees only what it was trained to see
(class and its 64-d features), not, say, a watermark removed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import stats

from aigc_course.checkpoint import atomic_write
from aigc_course.metrics.distances import median_bandwidth
from aigc_course.metrics.judge import judge_for, judge_outputs
from aigc_course.models.classifier import ImageClassifier

Tensor = torch.Tensor

#: the ``format`` tag of a calibration file
FORMAT = "aigc-course-drift-calibration"
VERSION = 2
#: pseudo-count added to every class of both histograms before the PSI
EPSILON = 0.5
WINDOW = 256
CALIBRATION_WINDOWS = 200
FALSE_ALARM_RATE = 0.01
CONFUSION_SAMPLES = 10_000
REFERENCE_SIZE = 1000
SIMULATIONS = 4000
RULE = ("alarm when PSI or MMD2 > its per-window threshold; Bonferroni alpha/2 each; PSI "
        "threshold: Monte Carlo quantile under the confusion matrix for the window's requested "
        "labels; MMD2 threshold: feature_thresholds interpolated linearly in log n_eff = "
        "1 / sum_c pi_c^2 of the requested labels (clamped), each a Pearson III (3-moment) fit "
        "to healthy windows of one label mix")
#: the label mixes of a conditional model's calibration: uniform over this many classes
#: (the last, every class, is the uniform draw; values above $K$ are dropped)
MIXES = (1, 2, 5)
#: seeds of the calibration windows start here; a health check should use others
CALIBRATION_SEED = 10_000


# --- the two statistics ----------------------------------------------------------------

def smoothed_histogram(counts: Tensor, epsilon: float = EPSILON) -> Tensor:
    """$(c_k + \\varepsilon) / (\\sum c + K\\varepsilon)$ of counts ``(K,)`` (float64)."""
    counts = counts.double()
    return (counts + epsilon) / (counts.sum() + epsilon * len(counts))


def psi(observed: Tensor, expected: Tensor, epsilon: float = EPSILON) -> float:
    """Population stability index $\\sum_k (p_k - q_k) \\ln(p_k / q_k)$ of two count vectors.

    Args:
        observed: ``(K,)`` counts (the window's predicted classes).
        expected: ``(K,)`` expected counts (may be fractional), same total.
        epsilon: pseudo-count added to every class of both.

    Raises:
        ValueError: shapes differ, fewer than 2 classes, or negative counts.
    """
    if observed.shape != expected.shape or observed.ndim != 1 or len(observed) < 2:
        raise ValueError(f"observed and expected must be (K,) with K >= 2, got "
                         f"{tuple(observed.shape)} and {tuple(expected.shape)}")
    if bool((observed < 0).any()) or bool((expected < 0).any()):
        raise ValueError("counts must be non-negative")
    return float(psi_rows(observed[None], expected, epsilon)[0])


def psi_rows(observed: Tensor, expected: Tensor, epsilon: float = EPSILON) -> Tensor:
    """:func:`psi` of each row of ``observed`` ``(S, K)`` against one ``expected`` ``(K,)``."""
    counts = observed.double()
    p = (counts + epsilon) / (counts.sum(dim=1, keepdim=True) + epsilon * counts.shape[1])
    q = smoothed_histogram(expected, epsilon)
    return ((p - q) * (p / q).log()).sum(dim=1)


def gaussian_kernel(a: Tensor, b: Tensor, sigma: float) -> Tensor:
    """$\\exp(-\\lVert a_i - b_j\\rVert^2 / 2\\sigma^2)$ for all pairs, ``(n, m)`` float64."""
    return torch.exp(-torch.cdist(a.double(), b.double()).pow(2) / (2 * sigma**2))


def block_means(k: Tensor, groups: Tensor, num_groups: int) -> tuple[Tensor, Tensor]:
    """Mean kernel value between groups $c, c'$, pairs $i \\ne i'$: ``(G, G)``, and counts.

    ``k`` is a square kernel matrix of points labelled ``groups`` ``(n,)``; a block with
    no pair (a group of fewer than 2 points on the diagonal) is ``nan``.
    """
    onehot = torch.nn.functional.one_hot(groups, num_groups).double()        # (n, G)
    counts = onehot.sum(dim=0)                                               # n_c
    sums = onehot.T @ k @ onehot - torch.diag(onehot.T @ k.diagonal())       # i != i'
    pairs = counts[:, None] * counts[None, :] - torch.diag(counts)
    return sums / pairs, counts                                              # 0/0 = nan


def stratified_mmd2(b_xx: Tensor, k_xy: Tensor, x_groups: Tensor, k_yy: Tensor,
                    y_groups: Tensor, num_groups: int) -> float:
    """Unbiased MMD² of a window against a reference weighted to the window's class mix.

    $\\sum_{c,c'} \\pi_c \\pi_{c'} (A_{cc'} + B_{cc'} - C_{cc'} - C_{c'c})$ with $A$, $B$
    the block means of the window's and the reference's kernel (:func:`block_means`)
    and $C_{cc'}$ the mean of $k(x_i, y_j)$, $x_i$ of class $c$, $y_j$ of class $c'$.
    With one group it is the U-statistic of :func:`aigc_course.metrics.distances.mmd2`.

    Args:
        b_xx: ``(G, G)`` block means of the reference (precomputed once).
        k_xy: ``(M, W)`` kernel between reference and window.
        x_groups: ``(M,)`` reference classes; k_yy: ``(W, W)``; y_groups: ``(W,)``.
        num_groups: $G$.

    Raises:
        ValueError: a class of the window has no reference point.
    """
    a_yy, n = block_means(k_yy, y_groups, num_groups)
    x_onehot = torch.nn.functional.one_hot(x_groups, num_groups).double()
    m = x_onehot.sum(dim=0)
    if bool(((n > 0) & (m == 0)).any()):
        raise ValueError("a requested class has no reference image: recalibrate with a "
                         "larger reference_size")
    pi = n / n.sum()
    a_yy = torch.where(torch.isnan(a_yy), b_xx, a_yy)       # a class requested once: B_cc
    a_yy = torch.nan_to_num(a_yy)                           # (weight 0 where pi_c = 0)
    b = torch.nan_to_num(b_xx)
    weights = (x_onehot @ (pi / m.clamp(min=1)))            # w_i = pi_{r_i} / M_{r_i}
    cross = weights @ k_xy.mean(dim=1)                      # sum_i w_i mean_j k(x_i, y_j)
    return float(pi @ a_yy @ pi + pi @ b @ pi - 2 * cross)


# --- calibration -----------------------------------------------------------------------

@dataclass(frozen=True)
class DriftCalibration:
    """What a service loads at start: thresholds and the healthy model's reference.

    Self-contained (the reference features are in it), so a service never rebuilds its
    reference from the model it is watching.

    Attributes:
        dataset, image_size, channels: the samples' dataset (its judge) and shape.
        num_classes: the judge's classes $K$.
        conditional: whether requests carry labels.
        window_size: images per window $W$.
        windows: healthy windows per label mix the feature thresholds were fitted on;
            seed: the first one's.
        false_alarm_rate: $\\alpha$ per window (both scores together, Bonferroni).
        threshold_feature: the alarm level of the MMD² for labels uniform over every
            class; null_feature: ``(mean, std)`` of the MMD² on those windows.
        feature_thresholds: ``(n_eff, threshold)`` of the MMD², one per label mix, by
            increasing $n_{\\mathrm{eff}}$ (:func:`effective_classes`, the mix's mean);
            a window's level is :func:`feature_threshold` of its requested labels.
        null_class: ``(mean, std)`` of the PSI on the uniform windows.
        healthy_exceedances: ``(class, feature)`` counts of the uniform calibration
            windows over their thresholds (expected about ``windows * alpha / 2`` each).
        simulations: Monte Carlo draws behind each window's class threshold.
        confusion: ``K x K`` rows $P(\\hat k \\mid y)$ (one row, the class histogram, when
            unconditional); confusion_counts: the counts they were estimated from.
        bandwidth: the Gaussian kernel's $\\sigma$ on judge features.
        reference_features, reference_labels: the healthy reference outputs ($-1$
            labels when unconditional).
        model: a free description of the calibrated checkpoint.
    """

    dataset: str
    image_size: int
    channels: int
    num_classes: int
    conditional: bool
    window_size: int
    windows: int
    seed: int
    false_alarm_rate: float
    threshold_feature: float
    null_class: tuple[float, float]
    null_feature: tuple[float, float]
    feature_thresholds: tuple[tuple[float, float], ...]
    healthy_exceedances: tuple[int, int]
    simulations: int
    confusion: list[list[float]]
    confusion_counts: list[list[int]]
    bandwidth: float
    reference_features: list[list[float]] = field(repr=False)
    reference_labels: list[int] = field(repr=False)
    model: str = ""
    rule: str = RULE
    format: str = FORMAT
    version: int = VERSION

    def save(self, path: str | Path) -> Path:
        """Write it as JSON, atomically; returns the path."""
        path = Path(path)
        with atomic_write(path) as scratch:
            scratch.write_text(json.dumps(asdict(self)))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DriftCalibration:
        """Read a file written by :meth:`save`.

        Raises:
            FileNotFoundError: no file. ValueError: not JSON, another format or version,
                or fields missing, of the wrong type or of inconsistent shapes.
        """
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a drift calibration (not JSON: {error})") from error
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"{path} is not a drift calibration (format {found!r}, "
                             f"expected {FORMAT!r}); write one with calibrate(...).save()")
        if data.get("version") != VERSION:
            raise ValueError(f"{path} is drift calibration version {data.get('version')!r}; "
                             f"this code reads version {VERSION}: recalibrate")
        try:
            for name in ("null_class", "null_feature", "healthy_exceedances"):
                data[name] = tuple(data[name])
            data["feature_thresholds"] = tuple(tuple(map(float, row))
                                               for row in data["feature_thresholds"])
            calibration = cls(**data)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"{path} is a drift calibration with bad fields: {error}") from error
        calibration.check()
        return calibration

    def check(self) -> None:
        """Raise a ValueError when the shapes of its arrays disagree."""
        rows = len(self.confusion)
        if rows != (self.num_classes if self.conditional else 1) or any(
                len(row) != self.num_classes for row in self.confusion) or \
                len(self.confusion_counts) != rows or any(
                len(row) != self.num_classes for row in self.confusion_counts):
            raise ValueError(f"drift calibration: confusion matrix of the wrong shape "
                             f"({rows} rows for {self.num_classes} classes)")
        if len(self.reference_features) != len(self.reference_labels) or \
                len(self.reference_features) < 2:
            raise ValueError("drift calibration: reference features and labels disagree")
        table = self.feature_thresholds
        if not table or any(len(row) != 2 or not row[0] >= 1 for row in table) or any(
                a[0] >= b[0] for a, b in zip(table, table[1:], strict=False)):
            raise ValueError("drift calibration: feature_thresholds must be (n_eff >= 1, "
                             "threshold) rows by increasing n_eff")


def effective_classes(labels: Tensor | None, num_classes: int) -> float:
    """$n_{\\mathrm{eff}} = 1 / \\sum_c \\pi_c^2$ of requested ``labels`` (1 when ``None``).

    The effective number of classes of the mix $\\pi_c = n_c / W$: $m$ for $m$ classes
    requested equally often, 1 for one class or an unconditional model.
    """
    if labels is None or len(labels) == 0:
        return 1.0
    pi = torch.bincount(labels.long(), minlength=num_classes).double() / len(labels)
    return float(1 / pi.pow(2).sum())


def feature_threshold(table: Sequence[Sequence[float]], n_eff: float) -> float:
    """The MMD² alarm level at ``n_eff``: ``table`` interpolated linearly in $\\ln n$.

    ``table`` holds ``(n_eff, threshold)`` rows by increasing ``n_eff``; outside its
    range the nearest end's threshold holds.
    """
    x = np.log([row[0] for row in table])
    return float(np.interp(math.log(n_eff), x, [row[1] for row in table]))


def pearson3_quantile(values: np.ndarray, level: float) -> float:
    """The ``level`` quantile of the Pearson type III law matching ``values``' mean,
    standard deviation and skewness (a Gaussian when the skewness is 0)."""
    skew = float(stats.skew(values, bias=False))
    return float(stats.pearson3.ppf(level, skew, loc=values.mean(), scale=values.std(ddof=1)))


def draw_window(model: Any, size: int, seed: int, label: int | None = None,
                classes: Sequence[int] | None = None) -> tuple[Tensor, Tensor | None]:
    """``size`` images of ``model`` for labels uniform at random, seeded.

    Uniform over every class by default, over ``classes`` when given, or all ``label``
    (which wins over ``classes``).

    Returns:
        images ``(size, C, H, W)`` and labels ``(size,)`` (``None`` if unconditional).
    """
    generator = torch.Generator().manual_seed(seed)
    labels = None
    if model.conditional:
        if label is not None:
            labels = torch.full((size,), label)
        elif classes is not None:
            pool = torch.as_tensor(list(classes), dtype=torch.long)
            labels = pool[torch.randint(len(pool), (size,), generator=generator)]
        else:
            labels = torch.randint(model.num_classes, (size,), generator=generator)
    with torch.no_grad():
        images = model.sample(size, y=labels, generator=generator).float().cpu()
    return images, labels


def confusion_counts(predicted: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """Counts of (requested $y$, predicted $\\hat k$) ``(K, K)``, or ``(1, K)`` without labels."""
    rows = labels.long() if labels is not None else torch.zeros_like(predicted)
    size = num_classes if labels is not None else 1
    counts = torch.bincount(rows * num_classes + predicted, minlength=size * num_classes)
    return counts.view(size, num_classes)


def confusion_matrix(predicted: Tensor, labels: Tensor | None, num_classes: int) -> Tensor:
    """Rows $P(\\hat k \\mid y)$ ``(K, K)``, or the class histogram ``(1, K)`` without labels.

    A pseudo-count of $10^{-3}$ per cell keeps a little mass on classes never seen.
    """
    counts = confusion_counts(predicted, labels, num_classes).double() + 1e-3
    return counts / counts.sum(dim=1, keepdim=True)


def calibrate(model: Any, *, dataset: str = "digits", window_size: int = WINDOW,
              windows: int = CALIBRATION_WINDOWS, false_alarm_rate: float = FALSE_ALARM_RATE,
              seed: int = CALIBRATION_SEED, confusion_samples: int = CONFUSION_SAMPLES,
              reference_size: int = REFERENCE_SIZE, simulations: int = SIMULATIONS,
              description: str = "") -> DriftCalibration:
    """Fit the monitor on healthy outputs of ``model`` (module docstring).

    ``confusion_samples`` images drawn with seed ``seed - 1`` give the confusion matrix,
    their first ``reference_size`` the reference; uniform window ``i`` is
    :func:`draw_window` with seed ``seed + i``. A conditional model then gets ``windows``
    more per mix of :data:`MIXES`: window ``i`` of the ``j``-th mix, $m$ classes, has
    seed ``seed + (j + 1) * windows + i`` and labels uniform over classes
    $(i + l) \\bmod K$, $l < m$ (so each class is in the mix when ``windows >= K``).

    Args:
        model: a healthy model of the contract of :mod:`aigc_course.kinds`, drawing
            images of ``dataset``.
        dataset: the samples' dataset (its judge scores them).
        window_size: images per window $W$ (at least 2).
        windows: healthy windows per label mix to fit the feature thresholds on (at
            least 10); the class score's statistics come from the uniform ones.
        false_alarm_rate: $\\alpha$ per window, in ``(0, 0.5)``.
        simulations: Monte Carlo draws behind each window's class threshold.

    Raises:
        ValueError: a bad argument.
    """
    if window_size < 2 or windows < 10 or not 0 < false_alarm_rate < 0.5 or \
            not 2 <= reference_size <= confusion_samples or simulations < 100:
        raise ValueError(f"need window_size >= 2, windows >= 10, 0 < false_alarm_rate < 0.5, "
                         f"2 <= reference_size <= confusion_samples and simulations >= 100, "
                         f"got {window_size}, {windows}, {false_alarm_rate}, {reference_size}, "
                         f"{confusion_samples}, {simulations}")
    judge = judge_for(dataset)
    images, labels = draw_window(model, confusion_samples, seed - 1)
    probs, features = judge_outputs(images, judge)
    num_classes = int(probs.shape[1])
    confusion = confusion_matrix(probs.argmax(dim=1), labels, num_classes)
    counts = confusion_counts(probs.argmax(dim=1), labels, num_classes)
    ref = features[:reference_size].double().round(decimals=5)    # what the JSON keeps
    ref_labels = (labels[:reference_size] if labels is not None
                  else torch.full((reference_size,), -1))
    partial = DriftCalibration(
        dataset=dataset, image_size=int(images.shape[-1]), channels=int(images.shape[1]),
        num_classes=num_classes, conditional=bool(model.conditional), window_size=window_size,
        windows=windows, seed=seed, false_alarm_rate=false_alarm_rate,
        threshold_feature=math.inf, null_class=(0.0, 0.0), null_feature=(0.0, 0.0),
        feature_thresholds=((1.0, math.inf),), healthy_exceedances=(0, 0),
        simulations=simulations, confusion=confusion.tolist(),
        confusion_counts=counts.tolist(),
        bandwidth=median_bandwidth(ref), reference_features=ref.tolist(),
        reference_labels=ref_labels.tolist(), model=description)
    scorer = _Scorer(partial, judge)
    level = 1 - false_alarm_rate / 2                                 # Bonferroni: alpha / 2
    uniform = [draw_window(model, window_size, seed + i) for i in range(windows)]
    results = [(*scorer.statistics(*w), scorer.class_threshold(w[1], window_size))
               for w in uniform]
    psis = np.array([r[0] for r in results])
    mmds = np.array([r[1] for r in results])
    threshold = pearson3_quantile(mmds, level)
    table = {float(np.mean([effective_classes(w[1], num_classes) for w in uniform])): threshold}
    mixes = [m for m in MIXES if m < num_classes] if model.conditional else []
    for j, m in enumerate(mixes):
        windows_of_mix = [draw_window(model, window_size, seed + (j + 1) * windows + i,
                                      classes=[(i + c) % num_classes for c in range(m)])
                          for i in range(windows)]
        n_eff = float(np.mean([effective_classes(w[1], num_classes) for w in windows_of_mix]))
        values = np.array([scorer.statistics(*w)[1] for w in windows_of_mix])
        table[n_eff] = pearson3_quantile(values, level)
    return dataclasses.replace(
        partial, threshold_feature=threshold,
        null_class=(float(psis.mean()), float(psis.std(ddof=1))),
        null_feature=(float(mmds.mean()), float(mmds.std(ddof=1))),
        feature_thresholds=tuple(sorted(table.items())),
        healthy_exceedances=(int(sum(r[0] > r[2] for r in results)),
                             int((mmds > threshold).sum())))


class _Scorer:
    """The two scores of a window, and its class threshold, for one calibration."""

    def __init__(self, calibration: DriftCalibration, judge: ImageClassifier) -> None:
        self.calibration = calibration
        self.judge = judge
        self.confusion = torch.tensor(calibration.confusion, dtype=torch.float64)
        self.counts = np.asarray(calibration.confusion_counts, dtype=np.float64)
        self.features = torch.tensor(calibration.reference_features, dtype=torch.float64)
        self.labels = torch.tensor(calibration.reference_labels, dtype=torch.long)
        self.sigma = calibration.bandwidth
        self.groups = calibration.num_classes if calibration.conditional else 1
        if not calibration.conditional:
            self.labels = torch.zeros_like(self.labels)
        k_xx = gaussian_kernel(self.features, self.features, self.sigma)
        self.b_xx = block_means(k_xx, self.labels, self.groups)[0]

    def requested(self, labels: Tensor | None, size: int) -> Tensor:
        """Requests per confusion row ``(rows,)``: $n_c$, or ``[size]`` when unconditional."""
        if labels is None:
            return torch.tensor([float(size)], dtype=torch.float64)
        return torch.bincount(labels.long(), minlength=self.calibration.num_classes).double()

    def expected(self, per_row: Tensor) -> Tensor:
        """$W q^0 = \\sum_i C_{y_i, \\cdot} = \\sum_c n_c C_{c, \\cdot}$ ``(K,)`` (one formula for
        the window and its simulations, so that a tie is a tie to the last bit)."""
        return per_row @ self.confusion

    def class_threshold(self, requested: Tensor | None, size: int) -> float:
        """The $1 - \\alpha/2$ quantile of the PSI of healthy windows with these labels.

        Monte Carlo (parametric bootstrap): for each class $c$ requested $n_c$ times a
        confusion row is drawn from its posterior $\\mathrm{Dirichlet}(N_{c\\cdot} + 1/K)$
        given the calibration's counts $N$ (a class never misread in a few hundred draws
        may still be misread once in a window), then its $n_c$ predicted classes; a
        generator seeded by the label counts makes the threshold a function of the mix.
        """
        cal = self.calibration
        k, sims = cal.num_classes, cal.simulations
        per_row = self.requested(requested, size)
        mix = tuple((c, int(n)) for c, n in enumerate(per_row.tolist()) if n)
        rng = np.random.default_rng(hash(mix) % 2**31)
        counts = np.zeros((sims, k), dtype=np.int64)
        for c, n in mix:
            rows = rng.dirichlet(self.counts[c] + 1 / k, size=sims)          # (sims, K)
            counts += rng.multinomial(n, rows / rows.sum(axis=1, keepdims=True))
        simulated = psi_rows(torch.from_numpy(counts), self.expected(per_row))
        return float(torch.quantile(simulated, 1 - cal.false_alarm_rate / 2))

    def feature_threshold(self, labels: Tensor | None) -> float:
        """The MMD²'s alarm level for these requested labels (:func:`feature_threshold`)."""
        cal = self.calibration
        return feature_threshold(cal.feature_thresholds,
                                 effective_classes(labels, cal.num_classes))

    def score(self, images: Tensor, labels: Tensor | None
              ) -> tuple[float, float, float, float]:
        """(PSI, weighted MMD², their thresholds for these labels) of one window."""
        score_class, score_feature = self.statistics(images, labels)
        labels = labels.long() if labels is not None else None
        return (score_class, score_feature, self.class_threshold(labels, len(images)),
                self.feature_threshold(labels))

    def statistics(self, images: Tensor, labels: Tensor | None) -> tuple[float, float]:
        """(PSI, weighted MMD²) of one window."""
        probs, features = judge_outputs(images, self.judge)
        k = self.calibration.num_classes
        observed = torch.bincount(probs.argmax(dim=1), minlength=k)
        expected = self.expected(self.requested(labels, len(images)))
        y_groups = labels.long() if labels is not None else \
            torch.zeros(len(images), dtype=torch.long)
        mmd = stratified_mmd2(self.b_xx, gaussian_kernel(self.features, features, self.sigma),
                              self.labels, gaussian_kernel(features, features, self.sigma),
                              y_groups, self.groups)
        return psi(observed, expected), mmd


# --- the monitor -----------------------------------------------------------------------

@dataclass(frozen=True)
class WindowResult:
    """The scores of one full window."""

    index: int
    score_class: float
    score_feature: float
    threshold_class: float
    threshold_feature: float
    alert: bool
    ms: float


@dataclass(frozen=True)
class DriftStatus:
    """A snapshot for ``/metrics`` (plain fields, one gauge each).

    ``score_*`` and ``threshold_*`` (which follow the window's requested labels) are
    ``nan`` before the first window; ``alert`` is the last window's, ``alerts`` counts
    every window that alarmed, ``first_alert_window`` is ``-1`` until one does.
    """

    windows: int
    observed: int
    pending: int
    window_size: int
    score_class: float
    score_feature: float
    threshold_class: float
    threshold_feature: float
    alert: bool
    alerts: int
    first_alert_window: int
    false_alarm_rate: float
    ms_per_window: float

    def as_dict(self) -> dict[str, float | int | bool]:
        """The fields as a plain dict."""
        return asdict(self)


@dataclass
class _State:
    windows: int = 0
    observed: int = 0
    score_class: float = math.nan
    score_feature: float = math.nan
    threshold_class: float = math.nan
    threshold_feature: float = math.nan
    alert: bool = False
    alerts: int = 0
    first_alert_window: int = -1
    ms_total: float = 0.0
    history: list[WindowResult] = field(default_factory=list)


class DriftMonitor:
    """Scores a service's outputs window by window against a :class:`DriftCalibration`.

    ``observe`` may be called from worker threads while ``status`` is read from the event
    loop: the buffer and the state each sit behind a lock, and a window is scored
    outside the buffer's lock.
    """

    def __init__(self, calibration: DriftCalibration, judge: ImageClassifier | None = None
                 ) -> None:
        """Load the judge of ``calibration``'s dataset (``judge``: another one, for tests).

        Raises:
            ValueError: an inconsistent calibration.
        """
        calibration.check()
        self.calibration = calibration
        self.judge = judge if judge is not None else judge_for(calibration.dataset)
        self.shape = (calibration.channels, calibration.image_size, calibration.image_size)
        self._scorer = _Scorer(calibration, self.judge)
        self._images: list[Tensor] = []
        self._labels: list[Tensor] = []
        self._pending = 0
        self._buffer_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._state = _State()

    def _check(self, images: Tensor, labels: Tensor | None) -> Tensor | None:
        if not isinstance(images, Tensor) or images.ndim != 4 or tuple(images.shape[1:]) != \
                self.shape or not images.is_floating_point():
            found = (f"{tuple(images.shape)} {images.dtype}" if isinstance(images, Tensor)
                     else type(images).__name__)
            raise ValueError(f"images must be float (N, {', '.join(map(str, self.shape))}) "
                             f"in [-1, 1], got {found}")
        if not self.calibration.conditional:
            if labels is not None:
                raise ValueError("labels given to the monitor of an unconditional model")
            return None
        if labels is None:
            raise ValueError("the model is class-conditional: pass the requested labels")
        labels = torch.as_tensor(labels).reshape(-1)
        if len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        if labels.is_floating_point() or (len(labels) and not bool(
                ((labels >= 0) & (labels < self.calibration.num_classes)).all())):
            raise ValueError(f"labels must be integers in 0..{self.calibration.num_classes - 1}")
        return labels.long()

    def observe(self, images: Tensor, labels: Tensor | None = None) -> list[WindowResult]:
        """Add a batch of generated images (and their requested labels); score full windows.

        Args:
            images: ``(N, C, H, W)`` in ``[-1, 1]``, the calibrated shape.
            labels: ``(N,)`` requested classes (conditional models only).

        Returns:
            The windows completed by this batch (usually none or one).

        Raises:
            ValueError: wrong shape or dtype, labels missing, superfluous, of the wrong
                length or out of range.
        """
        labels = self._check(images, labels)
        size = self.calibration.window_size
        full: list[tuple[Tensor, Tensor | None]] = []
        with self._buffer_lock:
            self._images.append(images.detach().float().cpu())
            if labels is not None:
                self._labels.append(labels)
            self._pending += len(images)
            if self._pending >= size:
                all_images = torch.cat(self._images)
                all_labels = torch.cat(self._labels) if labels is not None else None
                count = len(all_images) // size
                for w in range(count):
                    chunk = slice(w * size, (w + 1) * size)
                    full.append((all_images[chunk],
                                 all_labels[chunk] if all_labels is not None else None))
                self._images = [all_images[count * size:]]
                self._labels = [all_labels[count * size:]] if all_labels is not None else []
                self._pending = len(all_images) - count * size
        with self._state_lock:
            self._state.observed += len(images)
        return [self._score_window(*window) for window in full]

    def _score_window(self, images: Tensor, labels: Tensor | None) -> WindowResult:
        start = time.perf_counter()
        score_class, score_feature, threshold_class, threshold_feature = \
            self._scorer.score(images, labels)
        ms = (time.perf_counter() - start) * 1000
        alert = score_class > threshold_class or score_feature > threshold_feature
        with self._state_lock:
            state = self._state
            result = WindowResult(state.windows, score_class, score_feature, threshold_class,
                                  threshold_feature, alert, ms)
            state.windows += 1
            state.score_class, state.score_feature, state.alert = score_class, score_feature, alert
            state.threshold_class, state.threshold_feature = threshold_class, threshold_feature
            state.alerts += int(alert)
            if alert and state.first_alert_window < 0:
                state.first_alert_window = result.index
            state.ms_total += ms
            state.history.append(result)
        return result

    def status(self) -> DriftStatus:
        """A consistent snapshot of the monitor (safe from any thread)."""
        with self._buffer_lock:
            pending = self._pending
        with self._state_lock:
            s = self._state
            cal = self.calibration
            return DriftStatus(
                windows=s.windows, observed=s.observed, pending=pending,
                window_size=cal.window_size, score_class=s.score_class,
                score_feature=s.score_feature, threshold_class=s.threshold_class,
                threshold_feature=s.threshold_feature, alert=s.alert, alerts=s.alerts,
                first_alert_window=s.first_alert_window,
                false_alarm_rate=cal.false_alarm_rate,
                ms_per_window=s.ms_total / s.windows if s.windows else math.nan)

    def history(self) -> list[WindowResult]:
        """Every scored window so far, oldest first."""
        with self._state_lock:
            return list(self._state.history)

    def gauges(self) -> dict[str, float]:
        """The status as Prometheus readings: ``drift_score_class``, ``drift_score_feature``,
        ``drift_threshold_class``, ``drift_threshold_feature`` (both the last window's),
        ``drift_alert`` (0/1), ``drift_alerts``, ``drift_windows``."""
        s = self.status()
        return {"drift_score_class": s.score_class, "drift_score_feature": s.score_feature,
                "drift_threshold_class": s.threshold_class,
                "drift_threshold_feature": s.threshold_feature,
                "drift_alert": float(s.alert), "drift_alerts": float(s.alerts),
                "drift_windows": float(s.windows)}


def load_monitor(path: str | Path, model: Any | None = None) -> DriftMonitor:
    """The monitor of the calibration file at ``path`` (what a service builds at start).

    Args:
        model: the served model, checked against the calibration (conditioning, classes).

    Raises:
        FileNotFoundError: no file. ValueError: not a drift calibration, or one of a
            model with other conditioning.
    """
    calibration = DriftCalibration.load(path)
    if model is not None and bool(getattr(model, "conditional", False)) != \
            calibration.conditional:
        raise ValueError(f"{path} calibrates a{'' if calibration.conditional else 'n un'}"
                         f"conditional model; the served model is not")
    return DriftMonitor(calibration)


def plot_windows(histories: dict[str, list[WindowResult]], calibration: DriftCalibration
                 ) -> Any:
    """Each window's two scores against their alarm levels, one line per history.

    ``histories`` maps a name (``"healthy"``, ``"over-pruned"``) to
    :meth:`DriftMonitor.history`. Both thresholds follow each window's requested labels,
    so they are drawn per window (bars).
    Scores are on a symmetric-log axis (the MMD² of a healthy window is about 0, either
    sign).
    """
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
    for (name, history), colour in zip(histories.items(), ("C0", "C3", "C2", "C1"),
                                       strict=False):
        windows = [w.index for w in history]
        left.plot(windows, [w.score_class for w in history], "o-", color=colour, label=name)
        left.plot(windows, [w.threshold_class for w in history], "_", color=colour,
                  markersize=12)
        right.plot(windows, [w.score_feature for w in history], "o-", color=colour,
                   label=name)
        right.plot(windows, [w.threshold_feature for w in history], "_", color=colour,
                   markersize=12)
        alarms = [w for w in history if w.alert]
        right.plot([w.index for w in alarms], [w.score_feature for w in alarms], "x",
                   color="k", markersize=9)
    rate = f"{calibration.false_alarm_rate / 2:.1%}"
    left.set(yscale="log", xlabel="window", ylabel="PSI of the judge's classes",
             title=f"class score (bars: each window's {rate} alarm level)")
    right.set(yscale="symlog", xlabel="window", ylabel="MMD² of judge features",
              title="feature score (bars: alarm level, x: alarmed)")
    right.set_yscale("symlog", linthresh=max(abs(calibration.threshold_feature) / 10, 1e-8))
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    plt.close(fig)
    return fig
