"""Solutions to the exercises of chapter 06 (text generation and large models)."""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def causal_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    """Causal scaled dot-product attention: softmax(Q K^T / sqrt(d_k) + M) V.

    M_ij = -inf for j > i (a position never sees a later one), 0 otherwise.

    Args:
        q, k, v: ``(B, h, T, d_k)``.

    Returns:
        ``(B, h, T, d_k)``.
    """
    T, d_k = q.shape[-2], q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)                  # (B, h, T, T)
    future = torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1) @ v


def top_p_filter(probs: Tensor, p: float) -> Tensor:
    """Nucleus filtering of a distribution ``(V,)``: the smallest set of most probable
    tokens with mass >= p, renormalised; the rest get probability 0."""
    sorted_probs, order = probs.sort(descending=True)
    before = sorted_probs.cumsum(0) - sorted_probs                     # mass of better tokens
    keep_sorted = before < p                                           # the one crossing p stays
    keep = torch.zeros_like(keep_sorted).scatter(0, order, keep_sorted)
    kept = probs * keep
    return kept / kept.sum()


def one_bpe_merge(ids: list[int], new_id: int) -> tuple[tuple[int, int], list[int]]:
    """One step of byte-pair encoding: the most frequent adjacent pair (ties: the smallest
    pair) and ``ids`` with its non-overlapping occurrences, left to right, as ``new_id``."""
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:], strict=False):
        counts[pair] = counts.get(pair, 0) + 1
    pair = min(counts, key=lambda p: (-counts[p], p))
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return pair, out
