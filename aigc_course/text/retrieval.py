"""BM25: the keyword retriever in front of the chapter-06 answerer.

Okapi BM25 (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework: BM25
and Beyond", §3.4) scores a document $d$ for a query $q$ as

$$\\mathrm{score}(d, q) = \\sum_{t \\in q} \\mathrm{idf}(t)
    \\frac{f_{t,d}\\,(k_1 + 1)}{f_{t,d} + k_1 (1 - b + b\\,|d| / \\mathrm{avgdl})},$$

with $f_{t,d}$ the count of term $t$ in $d$, $|d|$ the length of $d$ in terms and
$\\mathrm{avgdl}$ the mean length. $k_1$ caps how much repeating a term helps (term-frequency
saturation) and $b$ how much long documents are penalised.

Two IDF variants (Kamphuis et al. 2020, "Which BM25 do you mean?", list more), with $N$
documents of which $n_t$ contain $t$:

- ``"lucene"`` (the default, Lucene's ``BM25Similarity``):
  $\\mathrm{idf}(t) = \\log(1 + (N - n_t + 0.5) / (n_t + 0.5))$, never negative;
- ``"okapi"`` (Robertson–Spärck Jones): $\\log((N - n_t + 0.5) / (n_t + 0.5))$, negative for a
  term in more than half of the documents. ``rank_bm25.BM25Okapi`` uses it and raises those
  negative values to $\\epsilon$ times the mean IDF; we do not, which is why the default is
  ``"lucene"``: in a product catalogue "price" and "warranty" are in almost every passage,
  and a negative weight would push product passages below the policy ones.

Simplified: terms are lowercase runs of ``[a-z0-9]`` with a tiny stop-word list removed
(:data:`STOP_WORDS`); no stemming, so "open" does not match "opening". A query term counts
once per occurrence in the query, as in ``rank_bm25``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Literal, get_args

import numpy as np

IdfVariant = Literal["lucene", "okapi"]
IDF_VARIANTS: tuple[str, ...] = get_args(IdfVariant)

# Question words, articles, pronouns, auxiliaries and the commonest prepositions: frequent in
# questions, they carry no topic ("to" would send "send back the ..." to "Monday to Friday").
STOP_WORDS: frozenset[str] = frozenset(
    "a an the is are was be do does did have has can could will would i me my you your we our "
    "it its this that there what which who how when where why of for to on at by from with "
    "and or please tell".split()
)


def tokenize(text: str, stop_words: Collection[str] = STOP_WORDS) -> list[str]:
    """Lowercase words of ``text`` (runs of ``[a-z0-9]``) minus ``stop_words``."""
    return [w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in stop_words]


class BM25:
    """An Okapi BM25 index over a fixed list of documents.

    Args:
        documents: the texts to search, at least one.
        k1: term-frequency saturation, $k_1 \\ge 0$.
        b: length normalisation, $0 \\le b \\le 1$.
        idf: ``"lucene"`` (never negative) or ``"okapi"`` (Robertson–Spärck Jones).
        stop_words: words dropped from documents and queries.
    """

    def __init__(self, documents: Sequence[str], k1: float = 1.5, b: float = 0.75,
                 idf: IdfVariant = "lucene", stop_words: Collection[str] = STOP_WORDS) -> None:
        if len(documents) == 0:
            raise ValueError("BM25 needs at least one document, got an empty corpus")
        if idf not in IDF_VARIANTS:
            raise ValueError(f"unknown idf {idf!r}; valid: {', '.join(IDF_VARIANTS)}")
        if k1 < 0 or not 0 <= b <= 1:
            raise ValueError(f"need k1 >= 0 and 0 <= b <= 1, got k1={k1}, b={b}")
        self.k1, self.b, self.stop_words = k1, b, stop_words
        self.counts = [Counter(tokenize(doc, stop_words)) for doc in documents]  # f_{t,d}
        self.lengths = np.array([sum(c.values()) for c in self.counts], dtype=np.float64)
        self.avgdl = max(float(self.lengths.mean()), 1e-12)  # all-stop-word corpus: no 0/0
        n_docs = len(documents)  # N
        containing = Counter(t for c in self.counts for t in c)  # n_t
        self.idf: dict[str, float] = {}
        for term, n_t in containing.items():
            ratio = (n_docs - n_t + 0.5) / (n_t + 0.5)
            self.idf[term] = math.log(1 + ratio) if idf == "lucene" else math.log(ratio)

    def __len__(self) -> int:
        return len(self.counts)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query``: float64 array of shape ``(N,)``."""
        norm = self.k1 * (1 - self.b + self.b * self.lengths / self.avgdl)  # (N,)
        total = np.zeros(len(self.counts))
        for term in tokenize(query, self.stop_words):
            if term not in self.idf:  # in no document: adds nothing
                continue
            f = np.array([c[term] for c in self.counts], dtype=np.float64)  # f_{t,d}, (N,)
            total += self.idf[term] * f * (self.k1 + 1) / (f + norm)  # the sum of §3.4
        return total

    def search(self, query: str, k: int = 1) -> list[tuple[int, float]]:
        """The ``k`` best documents as ``(index, score)``, best first, ties by lower index."""
        if k < 1:
            raise ValueError(f"k must be a positive integer, got {k}")
        s = self.scores(query)
        order = np.argsort(-s, kind="stable")[:k]
        return [(int(i), float(s[i])) for i in order]
