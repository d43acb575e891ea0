"""Scaling laws in miniature: a width sweep, a Chinchilla-form fit, the compute-optimal split.

Hoffmann et al. (2022, "Training compute-optimal large language models", eq. 2) model the
loss of a model of $N$ parameters trained on $D$ tokens as

$$L(N, D) = E + \\frac{A}{N^{\\alpha}} + \\frac{B}{D^{\\beta}},$$

fitted by minimising a Huber loss ($\\delta = 10^{-3}$) between $\\log L$ and the log of
the prediction from a grid of starting points with L-BFGS (their appendix D.2). With the
compute of a training run $C \\approx 6ND$ FLOPs (Kaplan et al. 2020), minimising $L$ on
the line $6ND = C$ gives (their eq. 4)

$$N_{opt}(C) = G\\left(\\frac{C}{6}\\right)^{\\frac{\\beta}{\\alpha+\\beta}},\\quad
D_{opt}(C) = \\frac{C}{6 N_{opt}(C)},\\quad
G = \\left(\\frac{\\alpha A}{\\beta B}\\right)^{\\frac{1}{\\alpha+\\beta}}.$$

:func:`scaling_sweep` trains GPTs of several widths for the same number of steps and
records each one's validation bits per character against tokens seen, so every run gives
points $(N, D, L)$ along its curve. Simplified, and said so in the chapter: the points of
one run share its learning-rate schedule (Chinchilla trains a run per $D$, each with its
own cosine), the widths span one decade, and $N$ counts the parameters without the
position embeddings (:meth:`~aigc_course.models.gpt.GPT.num_params`; the token embeddings
are the tied output layer, so they stay); so the exponents describe this corpus at this
size, not GPT-scale models.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import minimize

from aigc_course.kinds import Trained
from aigc_course.profiles import TextProfile
from aigc_course.train.gpt import (
    TextData,
    config_from_profile,
    train_config_from_profile,
    train_gpt,
)
from aigc_course.utils import Timer, num_threads


@dataclass(frozen=True)
class ChinchillaFit:
    """The coefficients of $L(N, D) = E + A/N^\\alpha + B/D^\\beta$ and the fit's error.

    Attributes:
        E, A, alpha, B, beta: the coefficients.
        rmse_log: root-mean-square error of $\\log L$ over the fitted points.
        points: how many points were fitted.
    """

    E: float
    A: float
    alpha: float
    B: float
    beta: float
    rmse_log: float
    points: int

    def predict(self, N: np.ndarray | float, D: np.ndarray | float) -> np.ndarray:
        """$L(N, D)$."""
        return self.E + self.A / np.power(N, self.alpha) + self.B / np.power(D, self.beta)

    def compute_optimal(self, C: float) -> tuple[float, float]:
        """$N_{opt}(C), D_{opt}(C)$ on the line $6ND = C$ (Hoffmann et al. 2022, eq. 4)."""
        a, b = self.alpha, self.beta
        G = (a * self.A / (b * self.B)) ** (1.0 / (a + b))
        N = G * (C / 6.0) ** (b / (a + b))
        return float(N), float(C / (6.0 * N))


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    return np.where(np.abs(r) <= delta, 0.5 * r**2, delta * (np.abs(r) - 0.5 * delta))


def fit_chinchilla(N: Sequence[float], D: Sequence[float], L: Sequence[float],
                   delta: float = 1e-3) -> ChinchillaFit:
    """Fit $L(N, D)$ to points, as Hoffmann et al. (2022, appendix D.2).

    Parametrised as $E = e^e, A = e^a, B = e^b$, the objective is
    $\\sum_i \\mathrm{Huber}_\\delta(\\mathrm{LSE}(a - \\alpha\\log N_i, b - \\beta\\log D_i,
    e) - \\log L_i)$, minimised with L-BFGS from every start of a small grid; the best wins.

    Args:
        N, D, L: parameters, tokens and losses of the points (at least 5, all positive).
        delta: the Huber loss's threshold.

    Raises:
        ValueError: fewer than 5 points or a non-positive value.
    """
    n, d, loss = (np.asarray(v, dtype=np.float64) for v in (N, D, L))
    if not n.shape == d.shape == loss.shape or n.size < 5:
        raise ValueError(f"need at least 5 points (N, D, L) of one length, got {n.size}")
    if (n <= 0).any() or (d <= 0).any() or (loss <= 0).any():
        raise ValueError("N, D and L must be positive")
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        a, b, e, alpha, beta = theta
        # log(A/N^alpha + B/D^beta + E) as a log-sum-exp of three terms (3, P)
        terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
        predicted = np.logaddexp.reduce(terms, axis=0)
        r = predicted - log_l
        weights = np.exp(terms - predicted)              # d predicted / d term (softmax)
        slope = np.clip(r, -delta, delta)                # Huber'(r)
        gradient = np.array([(slope * weights[0]).sum(), (slope * weights[1]).sum(),
                             (slope * weights[2]).sum(), -(slope * weights[0] * log_n).sum(),
                             -(slope * weights[1] * log_d).sum()])
        return float(_huber(r, delta).sum()), gradient

    best = None
    grid = itertools.product((0.0, 5.0, 10.0), (0.0, 5.0, 10.0), (-1.0, 0.5),
                             (0.3, 0.8), (0.3, 0.8))                 # 72 starts
    for start in grid:
        result = minimize(objective, np.array(start), method="L-BFGS-B", jac=True,
                          bounds=[(-20, 40), (-20, 40), (-10, 5), (0.0, 3.0), (0.0, 3.0)])
        if best is None or result.fun < best.fun:
            best = result
    assert best is not None
    a, b, e, alpha, beta = best.x
    fit = ChinchillaFit(float(math.exp(e)), float(math.exp(a)), float(alpha),
                        float(math.exp(b)), float(beta), 0.0, int(n.size))
    rmse = float(np.sqrt(np.mean((np.log(fit.predict(n, d)) - log_l) ** 2)))
    return ChinchillaFit(fit.E, fit.A, fit.alpha, fit.B, fit.beta, rmse, int(n.size))


def scaling_sweep(data: TextData, p: TextProfile, widths: Sequence[int] | None = None,
                  steps: int | None = None, seed: int = 0, progress: bool = True,
                  base: Trained | None = None) -> list[dict[str, Any]]:
    """Train a GPT per width (the profile's other knobs) and keep its validation curve.

    Args:
        data: the prepared text.
        p: the profile (depth, heads, block, batch, learning rate).
        widths: ``n_embd`` values (``None``: ``p.scaling_widths``); each must divide by
            ``p.n_head``.
        steps: steps per run (``None``: ``p.scaling_steps``).
        base: an already trained run of the profile (chapter 06's main model) to include
            as a point of the sweep instead of training its width again.

    Returns:
        One row per width: ``n_embd``, ``params`` (non-embedding), ``steps``, ``seconds``,
        ``val_bpc`` (the last evaluation), and its curve ``tokens``/``curve_bpc``.
    """
    widths = tuple(widths if widths is not None else p.scaling_widths)
    rows: list[dict[str, Any]] = []
    if base is not None:
        history = base.history
        rows.append({"n_embd": p.n_embd, "params": int(base.metrics["params"]),
                     "steps": base.metrics["steps"], "seconds": base.metrics["seconds"],
                     "val_bpc": history["val_bpc"][-1], "tokens": history["val_tokens"],
                     "curve_bpc": history["val_bpc"], "source": base.source})
    with num_threads(p.num_threads):
        for width in widths:
            if base is not None and width == p.n_embd:
                continue
            config = config_from_profile(p, data.tokenizer.vocab_size, n_embd=width,
                                         n_head=math.gcd(p.n_head, width))
            train = train_config_from_profile(p, steps=steps or p.scaling_steps, seed=seed,
                                              progress=progress)
            with Timer() as timer:
                lm, history = train_gpt(data, config, train)
            rows.append({"n_embd": width, "params": lm.gpt.num_params(), "steps": train.steps,
                         "seconds": timer.seconds, "val_bpc": history["val_bpc"][-1],
                         "tokens": history["val_tokens"], "curve_bpc": history["val_bpc"],
                         "source": "trained"})
    return sorted(rows, key=lambda row: row["params"])


def sweep_points(rows: Sequence[dict[str, Any]], skip_first: int = 1
                 ) -> tuple[list[float], list[float], list[float]]:
    """The $(N, D, L)$ points of a sweep's curves (the first evaluations of each run, at
    the top of the warm-up, are left out: ``skip_first``)."""
    N, D, L = [], [], []
    for row in rows:
        for tokens, bpc in list(zip(row["tokens"], row["curve_bpc"], strict=True))[skip_first:]:
            N.append(float(row["params"]))
            D.append(float(tokens))
            L.append(float(bpc))
    return N, D, L
