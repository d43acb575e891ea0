"""Solutions to the exercises of chapter 11 (responsible and valuable AIGC)."""

from __future__ import annotations

import math


def green_list_z(green: int, tokens: int, gamma: float = 0.25) -> float:
    """The z-score of ``green`` green tokens among ``tokens`` scored ones when each is green
    with probability ``gamma`` under the null (Kirchenbauer et al. 2023, eq. 2):
    $z = (|s|_G - \\gamma T) / \\sqrt{T \\gamma (1 - \\gamma)}$, in plain Python."""
    if tokens < 1 or not 0 < gamma < 1:
        raise ValueError("tokens must be >= 1 and gamma in (0, 1)")
    return (green - gamma * tokens) / math.sqrt(tokens * gamma * (1 - gamma))


def clean_images_needed(fpr: float, relative_error: float) -> int:
    """How many clean images measure a false-positive rate ``fpr`` to a relative standard
    error ``relative_error``: the count above threshold is binomial, so the estimate's
    relative error is $\\sqrt{(1 - p) / (n p)}$ and
    $n = \\lceil (1 - p) / (p\\, r^2) \\rceil$."""
    if not 0 < fpr < 1 or relative_error <= 0:
        raise ValueError("fpr must be in (0, 1) and relative_error > 0")
    return math.ceil((1 - fpr) / (fpr * relative_error**2) - 1e-9)   # not 11,101 from rounding


def break_even_volume(fixed_cost: float, value_per_unit: float, cost_per_unit: float) -> float:
    """Units per period at which the margin pays a fixed cost:
    $V^* = F / (v - c)$; infinite when a unit earns no more than it costs."""
    margin = value_per_unit - cost_per_unit
    return math.inf if margin <= 0 else fixed_cost / margin
