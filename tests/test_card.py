"""Data cards: counts, licence and findings of the digits card; static cards offline."""

from __future__ import annotations

import json
import os

import pytest

from aigc_course.data.card import DataCard, make_data_card


@pytest.fixture(scope="module")
def digits_card() -> DataCard:
    return make_data_card("digits")


def test_digits_card_counts(digits_card: DataCard) -> None:
    card = digits_card
    assert card.image_shape == (1, 8, 8)
    assert card.split_counts["all"] == 1797
    assert sum(card.split_counts[s] for s in ("train", "val", "test")) == 1797
    assert sum(card.class_counts.values()) == 1797 and card.class_counts["0"] == 178
    assert card.pixel_min == -1.0 and card.pixel_max == 1.0
    assert -1 < card.pixel_mean < 0 and card.pixel_std > 0


def test_digits_card_findings(digits_card: DataCard) -> None:
    # Measured: no exact duplicates, 2 near-duplicate pairs (two pairs of near-identical
    # 1s), no corrupt items, 6 suspicious labels out of 1,797.
    card = digits_card
    assert card.exact_duplicates == []
    assert card.near_duplicates is not None and len(card.near_duplicates) <= 4
    assert card.cross_split_duplicates is not None
    assert card.corrupt is not None and not any(card.corrupt.values())
    assert card.suspicious_labels is not None and len(card.suspicious_labels) <= 30


def test_digits_card_markdown(digits_card: DataCard) -> None:
    md = digits_card.to_markdown()
    assert md.startswith("# Data card: digits")
    for text in ("CC BY 4.0", "1,797", "| 0 | 178 |", "1 x 8 x 8", "train 1,25",
                 "suspicious labels: ", "near duplicates"):
        assert text in md
    # In a notebook the card sits inside a section: its headings start at level 3.
    shown = digits_card._repr_markdown_()
    assert shown.startswith("### Data card: digits") and "\n#### Checks" in shown
    assert shown.replace("### ", "# ").replace("#### ", "## ") == md


def test_card_to_dict_is_json(digits_card: DataCard) -> None:
    data = json.loads(json.dumps(digits_card.to_dict()))
    assert data["licence"].startswith("CC BY 4.0")
    assert data["split_counts"]["all"] == 1797


def test_card_without_label_check() -> None:
    card = make_data_card("digits", check_labels=False, notes=["hand-checked"])
    assert card.suspicious_labels is None
    md = card.to_markdown()
    assert "suspicious labels: not checked" in md and "- hand-checked" in md


def test_online_card_without_cache_is_static(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIGC_DATA_DIR", str(tmp_path))                  # an empty cache
    monkeypatch.delenv("AIGC_OFFLINE")
    card = make_data_card("cifar10")
    assert card.licence and card.image_shape == (3, 32, 32)
    assert card.split_counts == {} and card.exact_duplicates is None
    assert "Not in the cache" in card.to_markdown()
    assert "AIGC_OFFLINE" not in os.environ                             # restored


def test_bad_names_raise_with_the_valid_values() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'cats'; valid: .*digits"):
        make_data_card("cats")
    with pytest.raises(ValueError, match="point dataset.*digits, .*mnist5k"):
        make_data_card("toy2d_ring")
