"""Solutions to the exercises of chapter 01 (data)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def average_hash(images: Tensor, hash_size: int = 8) -> Tensor:
    """Average hash: shrink each image to ``hash_size x hash_size``, compare to its mean.

    The simplest perceptual hash: near-copies (noise, brightness shifts) keep most
    bits, different images flip about half of them.

    Args:
        images: ``(N, C, H, W)`` in ``[-1, 1]``.
        hash_size: side of the shrunken image; the hash has ``hash_size**2`` bits.

    Returns:
        ``(N, hash_size**2)`` bool tensor.
    """
    grey = images.mean(dim=1, keepdim=True)                                 # (N, 1, H, W)
    small = F.interpolate(grey, size=(hash_size, hash_size), mode="area")   # (N, 1, s, s)
    flat = small.flatten(1)                                                 # (N, s*s)
    return flat > flat.mean(dim=1, keepdim=True)


def split_report(labels: Tensor, splits: dict[str, Tensor]) -> dict[str, float]:
    """Audit a train/val/test split: overlaps, coverage and class balance.

    Args:
        labels: ``(N,)`` integer class labels of the whole dataset.
        splits: split name -> ``(n_k,)`` indices into ``labels``.

    Returns:
        ``overlap``: indices found in more than one split; ``missing``: indices in no
        split; ``max_share_gap``: the largest absolute difference, over splits and
        classes, between a class's share in a split and in the whole dataset.
    """
    num_classes = int(labels.max()) + 1
    overall = torch.bincount(labels, minlength=num_classes) / len(labels)   # (num_classes,)
    counts = torch.zeros(len(labels), dtype=torch.long)                     # splits per index
    gap = 0.0
    for idx in splits.values():
        counts[idx] += 1
        share = torch.bincount(labels[idx], minlength=num_classes) / max(len(idx), 1)
        gap = max(gap, float((share - overall).abs().max()))
    return {"overlap": int((counts > 1).sum()), "missing": int((counts == 0).sum()),
            "max_share_gap": gap}


def cross_split_duplicates(train: Tensor, test: Tensor, max_distance: int = 2) -> Tensor:
    """Indices of test images whose average hash is within ``max_distance`` bits of a train one.

    Such images leak: a model that memorised train would look good on them.

    Args:
        train: ``(N, C, H, W)`` in ``[-1, 1]``.
        test: ``(M, C, H, W)`` in ``[-1, 1]``.
        max_distance: the largest Hamming distance that counts as a near copy.

    Returns:
        ``(K,)`` sorted indices into ``test``.
    """
    h_train = average_hash(train).float()                                   # (N, 64)
    h_test = average_hash(test).float()                                     # (M, 64)
    # Hamming distance of bit vectors a, b: a(1-b) + (1-a)b summed over bits.
    distance = h_test @ (1 - h_train).T + (1 - h_test) @ h_train.T          # (M, N)
    return torch.nonzero(distance.min(dim=1).values <= max_distance).flatten()
