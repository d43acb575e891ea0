"""The Inception Score (IS): confident and diverse class predictions.

Salimans, Goodfellow, Zaremba, Cheung, Radford & Chen (2016), "Improved techniques for
training GANs", section 4:

$$\\mathrm{IS} = \\exp\\Big(\\mathbb E_x\\,
\\mathrm{KL}\\big(p(y\\mid x)\\,\\Vert\\, p(y)\\big)\\Big),
\\qquad p(y) = \\mathbb E_x\\, p(y \\mid x),$$

between 1 (every sample gets the same prediction, or every prediction is uniform) and
the number of classes $K$ (each sample confidently one class, all classes equally
often). It needs a classifier, looks only at generated samples (no real data: it
cannot tell a model that copies the training set, or draws "too clean" digits, from
a good one) and depends on the classifier (here the digits judge: $K = 10$). As in the
reference code the samples are shuffled and split into ``splits`` groups, the score
computed per group and the mean and standard deviation reported; torch-fidelity's
shuffle (NumPy ``RandomState(seed).permutation``) and split boundaries are reproduced,
so a seed gives torch-fidelity's number. Small groups bias IS downwards ($p(y)$ is
estimated from fewer samples): compare scores only at one sample size and split count.
"""

from __future__ import annotations

import numpy as np
import torch

from aigc_course.metrics.frechet import ArrayLike, _as_float64


def inception_score_from_logits(logits: ArrayLike, splits: int = 10, shuffle: bool = True,
                                seed: int = 0) -> tuple[float, float]:
    """Inception Score from class logits.

    Args:
        logits: ``(N, K)`` unnormalised log-probabilities $\\log p(y \\mid x) + c$.
        splits: groups the (shuffled) samples are split into, ``1 <= splits <= N``.
        shuffle: shuffle before splitting (with ``numpy.random.RandomState(seed)``).
        seed: the shuffle's seed.

    Returns:
        ``(mean, std)`` of $\\exp(\\mathbb E\\,\\mathrm{KL})$ over the groups (std ``ddof=0``).

    Raises:
        ValueError: not 2-D, or ``splits`` not in ``1..N``.
    """
    z = _as_float64(logits, "logits")
    if z.ndim != 2:
        raise ValueError(f"logits must be 2-D (N, K), got shape {z.shape}")
    n = len(z)
    if not 1 <= splits <= n:
        raise ValueError(f"splits must be in 1..{n} (the number of samples), got {splits}")
    if shuffle:
        z = z[np.random.RandomState(seed).permutation(n)]
    log_p = torch.log_softmax(torch.from_numpy(z), dim=1).numpy()       # log p(y | x), (N, K)
    scores = []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]              # (n_i, K)
        log_marginal = np.log(np.exp(part).mean(axis=0, keepdims=True))  # log p(y), (1, K)
        kl = (np.exp(part) * (part - log_marginal)).sum(axis=1)          # KL(p(y|x) || p(y))
        scores.append(np.exp(kl.mean()))                                 # exp E_x KL
    return float(np.mean(scores)), float(np.std(scores))
