"""Improved precision and recall: quality and coverage as two separate numbers.

Kynkäänniemi, Karras, Laine, Lehtinen & Aila (2019), "Improved precision and recall
metric for assessing generative models", section 2. Each feature set defines a
manifold estimate: the union of balls around its points, each ball reaching the
point's $k$-th nearest neighbour within the set (eq. 1),

$$f(\\phi, \\Phi) = 1 \\text{ if } \\lVert\\phi - \\phi'\\rVert_2 \\le
\\lVert\\phi' - \\mathrm{NN}_k(\\phi', \\Phi)\\rVert_2 \\text{ for some } \\phi' \\in \\Phi,$$

and (eq. 2)

$$\\mathrm{precision} = \\frac{1}{|\\Phi_g|}\\sum_{\\phi_g} f(\\phi_g, \\Phi_r),
\\qquad \\mathrm{recall} = \\frac{1}{|\\Phi_r|}\\sum_{\\phi_r} f(\\phi_r, \\Phi_g).$$

Precision is the share of generated samples that look real (fidelity); recall the share
of real samples the model can produce (diversity). A mode-collapsed model has high
precision and low recall; a blurry one low precision. Both are sensitive to outliers
(one far-away real point makes a huge ball) and to $k$ (the paper uses 3) and to the
sample sizes (use the same number of real and generated samples). Nothing is
simplified: every pairwise distance is computed in float64, a block of rows at a time so
that memory stays near :data:`BLOCK_ELEMENTS` distances (MNIST's 54,000 training features
against themselves would need 23 GB at once, more than Colab's 12.7 GB of RAM).
"""

from __future__ import annotations

import torch

from aigc_course.metrics.frechet import ArrayLike, _as_float64

Tensor = torch.Tensor
#: Distances held at once (2**26 float64 values: 512 MB).
BLOCK_ELEMENTS = 2**26


def knn_radii(features: Tensor, k: int = 3) -> Tensor:
    """Distance of each point to its $k$-th nearest neighbour in the same set, ``(N,)``.

    The point itself is its 0-th neighbour (distance 0), so this is the ``k + 1``-th
    smallest distance in its row.
    """
    if not 1 <= k < len(features):
        raise ValueError(f"k must be in 1..{len(features) - 1} (the set size - 1), got {k}")
    rows = max(1, BLOCK_ELEMENTS // len(features))
    return torch.cat([torch.cdist(features[i:i + rows], features).kthvalue(k + 1, dim=1).values
                      for i in range(0, len(features), rows)])                # (N,)


def in_manifold(queries: Tensor, support: Tensor, k: int = 3) -> Tensor:
    """$f(\\phi, \\Phi)$ for each query: inside some support point's $k$-NN ball, ``(Q,)`` bool."""
    radii = knn_radii(support, k)                                       # (S,)
    rows = max(1, BLOCK_ELEMENTS // len(support))
    return torch.cat([(torch.cdist(queries[i:i + rows], support) <= radii[None, :]).any(dim=1)
                      for i in range(0, len(queries), rows)])           # (Q, S) -> (Q,)


def precision_recall_from_features(real: ArrayLike, fake: ArrayLike, k: int = 3
                                   ) -> dict[str, float]:
    """Improved precision and recall of generated features against real ones.

    Args:
        real: ``(M, d)`` real features.
        fake: ``(N, d)`` generated features.
        k: the neighbourhood size of the manifold estimate (3 in the paper).

    Returns:
        ``{"precision", "recall", "f_score"}``, each in ``[0, 1]``; ``f_score`` is the
        harmonic mean $2PR/(P+R)$.

    Raises:
        ValueError: not 2-D, different ``d``, or ``k`` not in ``1..min(M, N) - 1``.
    """
    x = torch.from_numpy(_as_float64(real, "real"))
    y = torch.from_numpy(_as_float64(fake, "fake"))
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"real and fake must be (M, d) and (N, d), got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    precision = float(in_manifold(y, x, k).double().mean())            # eq. 2, left
    recall = float(in_manifold(x, y, k).double().mean())               # eq. 2, right
    f_score = 2 * precision * recall / max(precision + recall, 1e-12)
    return {"precision": precision, "recall": recall, "f_score": f_score}
