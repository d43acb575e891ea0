"""The offline corpora, text files and the contiguous train/val/test split of chapter 06."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_course.text import corpus
from aigc_course.text.corpus import (
    CORPORA,
    TextSplits,
    corpus_text,
    load_corpus,
    read_text_file,
    split_text,
)


def test_pydoc_corpus_size_and_determinism() -> None:
    text = load_corpus("pydoc")
    # Measured 465,047 characters on Python 3.11.7; other versions have other topics.
    assert 400_000 < len(text) < 550_000
    assert text.startswith('The "assert" statement')
    assert corpus._pydoc.__wrapped__() == text  # rebuilt, not only cached: deterministic
    assert load_corpus() is text


def test_unknown_corpus_lists_the_valid_ones() -> None:
    assert CORPORA == ("pydoc", "stdlib")
    with pytest.raises(ValueError, match=r"valid: pydoc, stdlib.*read_text_file / --text-file"):
        load_corpus("wikipedia")


def test_stdlib_corpus_is_bigger_docstring_prose() -> None:  # parses 477 files: measured 1.5 s
    text = load_corpus("stdlib")
    # Measured 1,609,233 characters on Python 3.11.7, 3.5 times pydoc.
    assert len(text) > 2.5 * len(load_corpus("pydoc"))
    assert load_corpus("stdlib") is text  # cached
    assert "JSON (JavaScript Object Notation)" in text  # json's module docstring
    assert "\r" not in text and text == text.strip()


def test_split_covers_the_text_at_paragraph_boundaries() -> None:
    text = load_corpus("pydoc")
    splits = split_text(text)
    assert splits.train + splits.val + splits.test == text
    assert splits == split_text(text)
    sizes = splits.sizes
    # A cut moves at most 2000 characters, 0.43% of the text (measured: +106 and +1731).
    for name, fraction in zip(sizes, (0.9, 0.05, 0.05), strict=True):
        assert abs(sizes[name] / len(text) - fraction) < 0.005
    for cut in (sizes["train"], sizes["train"] + sizes["val"]):
        assert text[cut - 2:cut] == "\n\n"
    assert splits.describe().startswith("train ") and "(90.0%)" in splits.describe()


def test_split_falls_back_to_lines_and_spaces_then_the_raw_cut() -> None:
    words = split_text("word " * 200)  # no newline: cuts after a space
    assert words.train.endswith(" ") and words.val.endswith(" ")
    assert words.val.startswith("word") and words.test.startswith("word")
    raw = split_text("x" * 100)  # no separator at all: the raw cut
    assert raw.sizes == {"train": 90, "val": 5, "test": 5}


@pytest.mark.parametrize("text", ["abc", "a\n\nb\n\nc", "\n\n" * 20, "one two\n\nthree " * 7])
def test_short_texts_keep_every_split_non_empty(text: str) -> None:
    splits = split_text(text, (0.4, 0.3, 0.3))
    assert splits.train + splits.val + splits.test == text
    assert min(splits.sizes.values()) >= 1


def test_split_rejects_bad_fractions_and_too_short_texts() -> None:
    with pytest.raises(ValueError, match="too short"):
        split_text("tiny")
    with pytest.raises(ValueError, match="summing to 1"):
        split_text("abc" * 100, (0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        split_text("abc" * 100, (1.0, 0.0, 0.0))


def test_read_text_file_normalises_and_refuses_clearly(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_bytes("\ufeffline one\r\nline two\rthree é\n".encode())
    assert read_text_file(good) == "line one\nline two\nthree é\n"
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café au lait".encode("latin-1"))
    with pytest.raises(ValueError, match=r"not UTF-8 text: byte 0xe9 at offset 3"):
        read_text_file(latin)
    for content in (b"", b"  \n\t\r\n"):
        (tmp_path / "empty.txt").write_bytes(content)
        with pytest.raises(ValueError, match="empty or whitespace only"):
            read_text_file(tmp_path / "empty.txt")
    with pytest.raises(FileNotFoundError, match="no such text file"):
        read_text_file(tmp_path / "missing.txt")


def test_corpus_text_takes_a_name_or_a_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("my own corpus\n", encoding="utf-8")
    assert corpus_text("pydoc") is load_corpus("pydoc")
    assert corpus_text(str(path)) == corpus_text(path) == "my own corpus\n"
    with pytest.raises(ValueError, match=r"neither a corpus \(pydoc, stdlib\)"):
        corpus_text("no-such-corpus")
    with pytest.raises(FileNotFoundError):
        corpus_text(tmp_path / "missing.txt")


def test_text_splits_is_frozen() -> None:
    splits = TextSplits("a", "b", "c")
    with pytest.raises(AttributeError):
        splits.train = "x"  # type: ignore[misc]


def test_known_word_rate() -> None:
    from aigc_course.text.corpus import known_word_rate

    reference = "The if statement is used for conditional execution."
    assert known_word_rate("The statement is used", reference) == 1.0
    assert known_word_rate("The qzx statement vbnm", reference) == 0.5
    with pytest.raises(ValueError, match="no word of 2 or more letters"):
        known_word_rate("a 1 2 ;", reference)
