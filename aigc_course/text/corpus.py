"""Offline text corpora for chapter 06 and a contiguous train/val/test split.

Two corpora ship with every Python, so nothing is downloaded:

- ``"pydoc"``: the English help text of CPython's ``help()`` (``pydoc_data.topics``,
  79 topics, about 465 K characters on Python 3.11), the cpu profile's corpus.
- ``"stdlib"``: the docstrings of the standard library's own source files, read with
  :mod:`ast` (never imported), about 1.6 MB on Python 3.11, the gpu profile's corpus.

Both are under the Python Software Foundation License and both depend on the Python
version: Colab's 3.12 has other topics and docstrings than 3.11, so numbers measured on
one differ slightly on the other. Any other UTF-8 text file works through
:func:`read_text_file` (the command line's ``--text-file``).

:func:`split_text` cuts a text into three contiguous pieces instead of shuffling its
lines: neighbouring lines of a text repeat each other (a heading and its underline, the
lines of one code example, a phrase carried over from the line before), so a random line
shuffle would put near-copies of the validation lines into the training set and the
validation loss would reward memorising them. A contiguous cut leaks only across the two
cut points, which are moved to paragraph boundaries.

Simplified: no cleaning, deduplication across documents or language filtering of the kind
web corpora need (the two corpora are small, English and already clean).
"""

from __future__ import annotations

import ast
import functools
import gc
import re
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

Corpus = Literal["pydoc", "stdlib"]
CORPORA: tuple[str, ...] = get_args(Corpus)
FRACTIONS = (0.9, 0.05, 0.05)
# Directories of the standard library whose docstrings are not prose of the library itself:
# test suites, the IDLE application, a removed converter, installed packages, generated codec
# tables and the pydoc corpus (which is the other corpus).
SKIPPED_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "site-packages",
                          "dist-packages", "encodings", "pydoc_data", "__pycache__"})
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def load_corpus(name: str = "pydoc") -> str:
    """One of the offline corpora, the same string on every call.

    ``"pydoc"`` is ``pydoc_data.topics.topics`` (the text of ``help("assert")`` and the
    other 78 topics), topics sorted by key and joined by a blank line: 465,047 characters,
    103 distinct, on Python 3.11.7 (a few milliseconds to build).

    ``"stdlib"`` is the module, class and function docstrings of the ``.py`` files under
    ``sysconfig.get_paths()["stdlib"]``, files in sorted order and each file's docstrings in
    source order, cleaned by ``inspect.cleandoc`` (``ast.get_docstring``), exact repeats
    dropped, joined by a blank line. Test suites, ``idlelib``, ``lib2to3``, the codec tables of
    ``encodings``, ``pydoc_data`` and installed packages are skipped (:data:`SKIPPED_DIRS`);
    a file that does not parse is skipped too. On Python 3.11.7: 477 files, 7,259 docstrings,
    1,609,233 characters (3.5 times pydoc, 107 distinct), 1.5 s to parse on one core,
    cached afterwards (``functools.lru_cache``).

    Both are under the PSF License, and both change with the Python version (3.11 here,
    3.12 on Colab).

    Args:
        name: ``"pydoc"`` or ``"stdlib"``.

    Returns:
        The corpus as one string.

    Raises:
        ValueError: an unknown name.
    """
    if name not in CORPORA:
        raise ValueError(f"unknown corpus {name!r}; valid: {', '.join(CORPORA)} "
                         "(any UTF-8 text file works through read_text_file / --text-file)")
    return _pydoc() if name == "pydoc" else _stdlib()


@functools.cache
def _pydoc() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key].rstrip().lstrip("\n") for key in sorted(topics))


@functools.lru_cache(maxsize=1)
def _stdlib() -> str:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted((p for p in root.rglob("*.py")
                    if not SKIPPED_DIRS.intersection(p.relative_to(root).parts[:-1])),
                   key=lambda p: p.relative_to(root).as_posix())
    docstrings: dict[str, None] = {}  # an ordered set: the first occurrence of each
    # Syntax trees hold no reference cycles, and the cyclic collector's passes over the
    # millions of objects torch keeps alive doubled the time (4.7 s against 1.8 s): pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for path in files:
            try:
                tree = ast.parse(path.read_bytes(), filename=str(path))
            except (SyntaxError, ValueError):  # a deliberately broken file, a null byte
                continue
            for node in _statements(tree):
                if isinstance(node, _DOCUMENTED):
                    doc = ast.get_docstring(node, clean=True)
                    if doc and doc.strip():
                        docstrings.setdefault(doc.strip(), None)
    finally:
        if collecting:
            gc.enable()
    return "\n\n".join(docstrings)


def _statements(node: ast.AST) -> Iterator[ast.AST]:
    """``node`` and every statement nested in it, in source order (expressions skipped)."""
    yield node
    for field in ("body", "orelse", "finalbody", "handlers", "cases"):
        for child in getattr(node, field, None) or ():
            if isinstance(child, ast.AST):
                yield from _statements(child)


def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file as a string, with ``\\r\\n`` and ``\\r`` turned into ``\\n``.

    A leading byte-order mark is dropped.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is not UTF-8 (the message gives the first bad byte's offset),
            or it is empty or whitespace only.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such text file: {path}")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not UTF-8 text: byte 0x{data[error.start]:02x} at offset "
                         f"{error.start} ({error.reason}); convert it first, e.g. "
                         f"`iconv -f latin1 -t utf-8`") from None
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise ValueError(f"{path} is empty or whitespace only: there is nothing to train on")
    return text


def corpus_text(source: str | Path) -> str:
    """The text of a corpus name (:data:`CORPORA`) or of a UTF-8 text file.

    Raises:
        ValueError: a string that is neither a corpus name nor an existing file, or a
            file :func:`read_text_file` refuses.
        FileNotFoundError: a :class:`~pathlib.Path` to a missing file.
    """
    if isinstance(source, str) and source in CORPORA:
        return load_corpus(source)
    if isinstance(source, str) and not Path(source).exists():
        raise ValueError(f"{source!r} is neither a corpus ({', '.join(CORPORA)}) nor an "
                         "existing text file")
    return read_text_file(source)


@dataclass(frozen=True)
class TextSplits:
    """Three contiguous pieces of one text; ``train + val + test`` is the text."""

    train: str
    val: str
    test: str

    @property
    def sizes(self) -> dict[str, int]:
        """Characters in each split."""
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}

    def describe(self) -> str:
        """One line, e.g. ``train 418,648 chars (90.0%) | val 24,878 chars (5.3%) | ...``."""
        total = sum(self.sizes.values())
        return " | ".join(f"{name} {size:,} chars ({100 * size / total:.1f}%)"
                          for name, size in self.sizes.items())


def split_text(text: str, fractions: tuple[float, float, float] = FRACTIONS,
               window: int = 2000) -> TextSplits:
    """Cut ``text`` into contiguous train, val and test pieces, the same on every machine.

    Each cut sits at ``fractions``' cumulative share of the characters, then moves to the
    nearest paragraph boundary (just after a ``"\\n\\n"``) at most ``window`` characters
    away; without one, to the nearest line end, then to the nearest space, so that no split
    starts in the middle of a word when it can be helped. The window shrinks for short texts
    so a moved cut never empties a split.

    Args:
        text: the whole corpus.
        fractions: the shares of train, val and test (positive, summing to 1).
        window: how far, in characters, a cut may move.

    Returns:
        The three splits; ``train + val + test == text``.

    Raises:
        ValueError: bad fractions, or a text too short for three non-empty splits.
    """
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three positive shares summing to 1, got {fractions}")
    n = len(text)
    raw = [round(fractions[0] * n), round((fractions[0] + fractions[1]) * n)]
    pieces = (raw[0], raw[1] - raw[0], n - raw[1])
    if min(pieces) < 1:
        raise ValueError(f"a text of {n} characters is too short to split by {fractions}: "
                         "every split must be non-empty")
    reach = min(window, (min(pieces) - 1) // 2)  # moved cuts stay ordered and splits non-empty
    first, second = (_nearest_boundary(text, cut, reach) for cut in raw)
    return TextSplits(text[:first], text[first:second], text[second:])


def _nearest_boundary(text: str, cut: int, reach: int) -> int:
    """The position just after the separator nearest to ``cut``, at most ``reach`` away."""
    for separator in ("\n\n", "\n", " "):
        width = len(separator)
        before = text.rfind(separator, max(cut - reach - width, 0), cut)
        after = text.find(separator, cut - width + 1, cut + reach)
        candidates = [i + width for i in (before, after)
                      if i >= 0 and abs(i + width - cut) <= reach]
        if candidates:
            return min(candidates, key=lambda i: (abs(i - cut), i))
    return cut


def known_word_rate(sample: str, reference: str, min_length: int = 2) -> float:
    """The share of ``sample``'s words (letters only, at least ``min_length`` long) that
    occur in ``reference``: a crude, checkable "does it write English words?".

    Uniformly random letters score near 0; the reference's own text scores 1; a
    character model that learnt words but not sense scores in between.

    Raises:
        ValueError: a sample without a word of ``min_length`` letters.
    """
    pattern = rf"[A-Za-z]{{{min_length},}}"
    words = re.findall(pattern, sample)
    if not words:
        raise ValueError(f"the sample has no word of {min_length} or more letters")
    vocabulary = set(re.findall(pattern, reference))
    return sum(w in vocabulary for w in words) / len(words)
