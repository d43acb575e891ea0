"""What a marked image goes through after it leaves the model: the perturbations a
watermark must survive (JPEG, Gaussian noise, resizing, cropping), and how a detector's
threshold is set from clean images.

Every perturbation maps images ``(N, C, H, W)`` in ``[-1, 1]`` to images of the same shape
in ``[-1, 1]``: a detector always sees the size it was keyed for. JPEG goes through
Pillow (the codec a user's tools run), resizing scales down and back up with bilinear
interpolation (antialiased), cropping keeps the centre and scales it back up (so a crop is
also a zoom, as when a picture is cropped and re-posted at the same size).

The threshold of a detector is set on clean images (a calibration set) by rank, the
conformal rule (Vovk et al. 2005; Angelopoulos & Bates 2023): with the $n$ calibration
scores sorted $s_{(1)} \\ge s_{(2)} \\ge \\dots$ and $k = \\lfloor \\alpha (n + 1) \\rfloor$,
the threshold $t = s_{(k)}$ gives a new clean image from the same source
$P(S > t) = k / (n + 1) \\le \\alpha$ exactly (for continuous scores: $S$ is equally likely
to take any of the $n + 1$ ranks). It needs $n + 1 \\ge 1/\\alpha$, and the rate it promises
is then *measured* on clean images it was not set on: with $m$ of them the smallest rate
that can be seen is $1/m$, so $\\alpha = 10^{-3}$ is resolved to a few counts only with
$m \\ge 10{,}000$ (exercise ex-11-clean).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

Tensor = torch.Tensor
Attack = Callable[[Tensor], Tensor]


def _check(images: Tensor) -> None:
    if images.dim() != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")


def jpeg(images: Tensor, quality: int) -> Tensor:
    """Encode and decode each image as JPEG at ``quality`` (1--95) with Pillow."""
    _check(images)
    if not 1 <= quality <= 95:
        raise ValueError(f"JPEG quality must be in [1, 95], got {quality}")
    quantised = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)  # (N, C, H, W)
    pixels = quantised.permute(0, 2, 3, 1).cpu().numpy()                      # (N, H, W, C)
    out = []
    for image in pixels:
        mode = "L" if image.shape[-1] == 1 else "RGB"
        buffer = io.BytesIO()
        Image.fromarray(image.squeeze(-1) if mode == "L" else image, mode).save(
            buffer, format="JPEG", quality=quality)
        decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
        out.append(decoded.reshape(image.shape))
    back = torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float()     # (N, C, H, W)
    return (back / 127.5 - 1).to(images.dtype)


def gaussian_noise(images: Tensor, sigma: float, seed: int = 0) -> Tensor:
    """Add $\\mathcal N(0, \\sigma^2)$ noise (on the $[-1, 1]$ scale) and clip."""
    _check(images)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(images.shape, generator=generator).to(images)
    return (images + sigma * noise).clamp(-1, 1)


def resize(images: Tensor, scale: float) -> Tensor:
    """Scale by ``scale`` (< 1: down) and back to the original size, bilinear."""
    _check(images)
    if not 0 < scale <= 4:
        raise ValueError(f"scale must be in (0, 4], got {scale}")
    h, w = images.shape[-2:]
    small = F.interpolate(images, size=(max(1, round(h * scale)), max(1, round(w * scale))),
                          mode="bilinear", align_corners=False, antialias=scale < 1)
    return F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False).clamp(-1, 1)


def crop(images: Tensor, keep: float) -> Tensor:
    """Keep the central ``keep`` fraction of each side, scaled back to the full size."""
    _check(images)
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    h, w = images.shape[-2:]
    ch, cw = max(1, round(h * keep)), max(1, round(w * keep))
    top, left = (h - ch) // 2, (w - cw) // 2
    centre = images[..., top:top + ch, left:left + cw]                     # (N, C, ch, cw)
    return F.interpolate(centre, size=(h, w), mode="bilinear",
                         align_corners=False).clamp(-1, 1)


def standard_attacks() -> dict[str, Attack]:
    """The chapter's perturbations, by name: JPEG 90/70/50, noise, resizing, cropping."""
    return {
        "none": lambda x: x,
        "jpeg90": lambda x: jpeg(x, 90),
        "jpeg70": lambda x: jpeg(x, 70),
        "jpeg50": lambda x: jpeg(x, 50),
        "noise0.05": lambda x: gaussian_noise(x, 0.05),
        "noise0.1": lambda x: gaussian_noise(x, 0.1),
        "resize0.75": lambda x: resize(x, 0.75),
        "resize0.5": lambda x: resize(x, 0.5),
        "crop0.9": lambda x: crop(x, 0.9),
        "crop0.75": lambda x: crop(x, 0.75),
    }


def threshold_at_fpr(clean_scores: Tensor, fpr: float = 1e-3) -> float:
    """The conformal threshold: a new clean score lies strictly above it with probability
    $k / (n + 1) \\le$ ``fpr``, $k = \\lfloor \\mathrm{fpr}\\,(n + 1) \\rfloor$ (module docstring;
    higher scores mean marked). $k - 1$ of the ``clean_scores`` themselves lie above it.

    Raises:
        ValueError: fewer than ``1/fpr - 1`` clean scores (no rank gives the rate).
    """
    scores = clean_scores.detach().double().flatten()
    if not 0 < fpr < 1:
        raise ValueError(f"fpr must be in (0, 1), got {fpr}")
    k = math.floor(fpr * (scores.numel() + 1) + 1e-9)     # the rank of the threshold
    if k < 1:
        raise ValueError(f"a false-positive rate of {fpr:g} needs at least "
                         f"{math.ceil(1 / fpr - 1 - 1e-9)} clean scores, got {scores.numel()}")
    return float(scores.sort(descending=True).values[k - 1])


@dataclass(frozen=True)
class Operating:
    """A detector at its threshold, set on ``calibration`` clean scores.

    Attributes:
        threshold: the conformal threshold (:func:`threshold_at_fpr`).
        guarantee: $k / (n + 1)$, the false-positive rate it promises for new clean images.
        false_positive_rate: the rate measured on ``held_out`` clean scores it was not set
            on (``None`` without them).
        calibration, held_out: how many clean scores set it and tested it.
    """

    threshold: float
    guarantee: float
    false_positive_rate: float | None
    calibration: int
    held_out: int


def operating_point(calibration: Tensor, fpr: float = 1e-3,
                    held_out: Tensor | None = None) -> Operating:
    """:func:`threshold_at_fpr` on ``calibration``, and the rate it gives on ``held_out``."""
    threshold = threshold_at_fpr(calibration, fpr)
    n = calibration.numel()
    guarantee = math.floor(fpr * (n + 1) + 1e-9) / (n + 1)
    measured = None if held_out is None else detection_rate(held_out, threshold)
    return Operating(threshold, guarantee, measured, int(n),
                     0 if held_out is None else int(held_out.numel()))


def attainable_rate(n: int, fpr: float = 5e-4) -> float:
    """``fpr``, or the smallest rate $1/(n + 1)$ that ``n`` calibration scores can promise."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    return max(fpr, 1 / (n + 1))


def clean_images(real: Tensor, generators: Sequence[Any], n: int, seed: int) -> Tensor:
    """``n`` clean (unmarked) images ``(n, C, H, W)``: real ones, half of ``n`` at most, and
    samples of ``generators`` in equal shares (``kinds.draw`` with ``seed``).

    The real images are the first half of ``real`` for an even ``seed`` and the second
    half for an odd one, so a calibration set and a held-out set drawn with seeds of
    different parity share no real image (and no sample: their seeds differ).
    """
    from aigc_course import kinds

    if n < 1 or not generators:
        raise ValueError("clean_images needs n >= 1 and at least one generator")
    half = len(real) // 2
    take = min(half, n // 2)
    start = 0 if seed % 2 == 0 else half
    rest, parts = n - take, [real[start:start + take]]
    for i, model in enumerate(generators):
        count = rest // len(generators) + (1 if i < rest % len(generators) else 0)
        if count:
            parts.append(kinds.draw(model, count, seed=seed)[0])
    return torch.cat(parts)


def detection_rate(scores: Tensor, threshold: float) -> float:
    """The fraction of ``scores`` strictly above ``threshold``."""
    return float((scores.double() > threshold).double().mean())


def roc_auc(negative: Tensor, positive: Tensor) -> float:
    """Area under the ROC curve: $P(s^+ > s^-) + \\tfrac12 P(s^+ = s^-)$ (Mann--Whitney)."""
    neg, pos = negative.double().flatten(), positive.double().flatten()
    if neg.numel() == 0 or pos.numel() == 0:
        raise ValueError("roc_auc needs at least one negative and one positive score")
    scores = torch.cat([neg, pos])
    order = scores.argsort()
    ranks = torch.empty_like(scores)
    ranks[order] = torch.arange(1, scores.numel() + 1, dtype=scores.dtype)
    for value in scores[order].unique_consecutive():    # average the ranks of ties
        tied = scores == value
        if int(tied.sum()) > 1:
            ranks[tied] = ranks[tied].mean()
    u = ranks[neg.numel():].sum() - pos.numel() * (pos.numel() + 1) / 2
    return float(u / (neg.numel() * pos.numel()))
