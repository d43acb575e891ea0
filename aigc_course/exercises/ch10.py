"""Solutions to the exercises of chapter 10 (deployment and monitoring)."""

from __future__ import annotations

import math
from collections.abc import Sequence


def psi_by_hand(observed: Sequence[float], expected: Sequence[float],
                epsilon: float = 0.5) -> float:
    """$\\mathrm{PSI} = \\sum_k (p_k - q_k) \\ln(p_k / q_k)$ of two count vectors, with
    $p_k = (c_k + \\varepsilon) / (\\sum c + K\\varepsilon)$ (and likewise $q$): plain
    Python, one class at a time (eq. eq-10-psi)."""
    if len(observed) != len(expected) or len(observed) < 2:
        raise ValueError("two count vectors of the same length >= 2")
    k = len(observed)
    n_p, n_q = sum(observed) + k * epsilon, sum(expected) + k * epsilon
    total = 0.0
    for c, e in zip(observed, expected, strict=True):
        p, q = (c + epsilon) / n_p, (e + epsilon) / n_q
        total += (p - q) * math.log(p / q)
    return total


def littles_law_concurrency(throughput_rps: float, mean_latency_ms: float) -> float:
    """Little's law, $L = \\lambda W$: the requests in the system on average, from the
    completed requests per second $\\lambda$ and the mean time each spent $W$ (eq.
    eq-10-little). In a closed loop with no think time, $L$ is the concurrency."""
    return throughput_rps * mean_latency_ms / 1000.0
