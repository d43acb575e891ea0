"""Data cards: what a dataset is, how it is split, and what the cleaning checks found.

A data card is the dataset's counterpart of a model card: provenance, licence,
composition and known problems, written down before anyone trains on the data
(Gebru et al. 2021, "Datasheets for Datasets", CACM 64(12); Pushkarna et al. 2022,
"Data Cards: Purposeful and Transparent Dataset Documentation for Responsible AI").

:func:`make_data_card` fills one from the registry (:func:`aigc_course.data.info`)
and the checks of :mod:`aigc_course.data.cleaning`. Simplified: a handful of the
datasheet questions (those a program can answer), and checks on at most
``max_check_items`` images. Online datasets that are not in the cache get the
static part only; making a card never touches the network.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from aigc_course.data import cleaning, registry
from aigc_course.data.online import DatasetUnavailableError, cache_dir

Tensor = torch.Tensor
SHOWN = 10  # indices listed per finding in the markdown; to_dict() keeps them all


@dataclass
class DataCard:
    """A dataset's card. Indices refer to ``load_images(name, "all")``.

    ``None`` in a finding means "not checked", an empty list "checked, none found".
    """

    name: str
    description: str
    source: str
    licence: str
    image_shape: tuple[int, int, int]
    split_counts: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)
    pixel_mean: float | None = None
    pixel_std: float | None = None
    pixel_min: float | None = None
    pixel_max: float | None = None
    exact_duplicates: list[list[int]] | None = None
    near_duplicates: list[tuple[int, int, int]] | None = None
    cross_split_duplicates: int | None = None
    corrupt: dict[str, list[int]] | None = None
    suspicious_labels: list[int] | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Every field, as plain Python values (JSON-serialisable)."""
        return asdict(self)

    def to_markdown(self, level: int = 1) -> str:
        """The card as markdown; its title is a heading of ``level`` (1 = a page)."""
        h1, h2 = "#" * level, "#" * (level + 1)
        lines = [f"{h1} Data card: {self.name}", "", self.description, "",
                 "| | |", "|---|---|",
                 f"| source | {self.source} |", f"| licence | {self.licence} |",
                 f"| image shape (C, H, W) | {' x '.join(map(str, self.image_shape))} |",
                 f"| items | {_counts(self.split_counts)} |",
                 f"| pixels | {self._pixels()} |", ""]
        if self.class_counts:
            lines += [f"{h2} Classes", "", "| class | items |", "|---|---|",
                      *(f"| {c} | {n:,} |" for c, n in self.class_counts.items()), ""]
        lines += [f"{h2} Checks", "", *self._checks(), ""]
        if self.notes:
            lines += [f"{h2} Notes", "", *(f"- {note}" for note in self.notes), ""]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        # Shown inside a notebook section: a level-3 title keeps the page's outline.
        return self.to_markdown(level=3)

    def _pixels(self) -> str:
        if self.pixel_mean is None:
            return "not computed"
        return (f"mean {self.pixel_mean:.3f}, std {self.pixel_std:.3f}, "
                f"min {self.pixel_min:.3f}, max {self.pixel_max:.3f}")

    def _checks(self) -> list[str]:
        corrupt = None
        if self.corrupt is not None:
            corrupt = [f"{kind} {_first(idx)}" for kind, idx in self.corrupt.items() if idx]
        cross = self.cross_split_duplicates
        return [
            _finding("exact duplicates (groups)", self.exact_duplicates),
            _finding("near duplicates (pairs i, j, Hamming distance)", self.near_duplicates),
            f"- duplicate pairs across splits (test leakage): "
            f"{'not checked' if cross is None else cross}",
            _finding("corrupt items", corrupt),
            _finding("suspicious labels", self.suspicious_labels),
        ]


def _first(items: Sequence[Any]) -> str:
    shown = ", ".join(str(tuple(i) if isinstance(i, list) else i) for i in items[:SHOWN])
    return f"[{shown}{', ...' if len(items) > SHOWN else ''}]"


def _finding(what: str, found: Sequence[Any] | None) -> str:
    if found is None:
        return f"- {what}: not checked"
    return f"- {what}: {len(found):,}" + (f" {_first(found)}" if found else "")


def _counts(split_counts: dict[str, int]) -> str:
    if not split_counts:
        return "not counted"
    total = split_counts.get("all", sum(split_counts.values()))
    parts = " / ".join(f"{s} {n:,}" for s, n in split_counts.items() if s != "all")
    return f"{total:,} ({parts})"


@contextmanager
def _offline() -> Iterator[None]:
    """Forbid downloads (``AIGC_OFFLINE=1``) for the duration of the block."""
    old = os.environ.get("AIGC_OFFLINE")
    os.environ["AIGC_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            del os.environ["AIGC_OFFLINE"]
        else:
            os.environ["AIGC_OFFLINE"] = old


def _split_counts(name: str, labels: Tensor, online: bool) -> tuple[dict[str, int], Tensor]:
    """Items per split, and each item's split number (0 train, 1 val, 2 test; -1 unknown)."""
    split_of = torch.full((len(labels),), -1)
    counts = {"all": len(labels)}
    splits: tuple[registry.Split, ...] = ("train", "val", "test")
    for k, split in enumerate(splits):
        if online:
            counts[split] = len(registry.load_images(name, split)[1])
        else:
            idx = registry.split_indices(labels, split)
            split_of[idx] = k
            counts[split] = len(idx)
    return counts, split_of


def _cross_split(pairs: list[tuple[int, int, int]], split_of: Tensor) -> int | None:
    """Duplicate pairs whose two items lie in different splits."""
    if (split_of < 0).any():
        return None
    return sum(int(split_of[i] != split_of[j]) for i, j, _ in pairs)


def make_data_card(name: str, check_labels: bool = True, max_check_items: int = 10_000,
                   notes: Sequence[str] = ()) -> DataCard:
    """Describe and check an image dataset of the registry.

    Loads ``load_images(name, "all")`` (online sets only from the cache), counts
    items per split and class, computes pixel statistics, and runs
    :func:`~aigc_course.data.cleaning.find_exact_duplicates`,
    :func:`~aigc_course.data.cleaning.find_near_duplicates`,
    :func:`~aigc_course.data.cleaning.find_corrupt` and (if ``check_labels``)
    :func:`~aigc_course.data.cleaning.find_suspicious_labels`. About 2 s for
    ``digits`` on 2 CPU cores.

    Args:
        name: an image dataset of :func:`aigc_course.data.available`.
        check_labels: run the (slowest) label check.
        max_check_items: the checks look at the first this many images only.
        notes: extra notes to append.

    Returns:
        A :class:`DataCard`.

    Raises:
        ValueError: an unknown dataset (the message lists the valid names) or a
            point dataset.
    """
    meta = registry.info(name)
    if meta.kind != "images":
        raise ValueError(f"{name!r} is a point dataset; data cards are for image datasets: "
                         f"{', '.join(registry.available('images'))}")
    size = meta.native_size or 0
    card = DataCard(meta.name, meta.description, meta.source, meta.licence,
                    (meta.channels, size, size), notes=list(notes))
    try:
        with _offline():
            images, labels = registry.load_images(name, "all")
    except DatasetUnavailableError:
        card.notes.append(f"Not in the cache ({cache_dir()}): only the static "
                          f"description is shown; load_images({name!r}) once online fills it.")
        return card
    split_of = _describe(card, images, labels, meta.class_names, meta.online)
    n = max_check_items
    _check(card, images[:n], labels[:n], split_of[:n], check_labels)
    if len(images) > max_check_items:
        card.notes.append(f"Checks ran on the first {max_check_items:,} of "
                          f"{len(images):,} images.")
    return card


def _describe(card: DataCard, images: Tensor, labels: Tensor, class_names: Sequence[str],
              online: bool) -> Tensor:
    """Fill shape, counts and pixel statistics; return each item's split number."""
    _, channels, height, width = images.shape
    card.image_shape = (channels, height, width)
    card.split_counts, split_of = _split_counts(card.name, labels, online)
    counts = torch.bincount(labels, minlength=len(class_names)).tolist()
    names = [*class_names, *map(str, range(len(class_names), len(counts)))]
    card.class_counts = dict(zip(names, counts, strict=True))
    finite = images[torch.isfinite(images)]
    card.pixel_mean, card.pixel_std = finite.mean().item(), finite.std().item()
    card.pixel_min, card.pixel_max = finite.min().item(), finite.max().item()
    return split_of


def _check(card: DataCard, images: Tensor, labels: Tensor, split_of: Tensor,
           check_labels: bool) -> None:
    """Run the cleaning checks and record what they found."""
    card.exact_duplicates = cleaning.find_exact_duplicates(images)
    card.near_duplicates = cleaning.find_near_duplicates(images)
    card.cross_split_duplicates = _cross_split(card.near_duplicates, split_of)
    card.corrupt = cleaning.find_corrupt(images).to_dict()
    card.notes.append(
        f"Near duplicates: pHash ({cleaning.HASH_SIZE}x{cleaning.HASH_SIZE} bits) within "
        f"{cleaning.MAX_HASH_DISTANCE} bits, confirmed by a standardised pixel distance "
        f"<= {cleaning.MAX_PIXEL_DISTANCE}; exact duplicates are near duplicates too.")
    if check_labels:
        flagged, _ = cleaning.find_suspicious_labels(images, labels)
        card.suspicious_labels = flagged.tolist()
        card.notes.append(
            f"Suspicious labels: out-of-fold probability of the given label below "
            f"{cleaning.LABEL_THRESHOLD} (logistic regression, 5 folds); review them by eye, "
            f"many are merely hard examples.")
