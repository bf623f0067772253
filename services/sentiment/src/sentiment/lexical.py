"""Letter n-grams of a text read in Latin letters: the second view the heads score, beside the embedding.

The embedding knows little of Georgian, Armenian or Russian typed in Latin letters, Kazakh in its new Latin
alphabet or Uzbek in Cyrillic. Read through ``sentiment.scripts.fold_to_latin``, though, "მადლობა" and a
typed "madloba" are the same letters, and so are "спасибо" and "spasibo": n-grams learnt from the native
texts of the training set then carry over to the other scripts. The n-grams are hashed into a fixed number
of columns (no vocabulary to ship) and weighted like sublinear TF, L2-normalised. Computing them costs
a fraction of a millisecond per text, and no second pass of the encoder.
"""

from __future__ import annotations

import math
import re
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from sentiment.scripts import fold_to_latin

#: Hashed columns. Collisions cost a little accuracy; more columns make the head files larger
#: (16 needs + 3 labels, one weight per column).
LEXICAL_DIM = 2**13
NGRAM_SIZES = (3, 4, 5)
_WORD = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=1 << 16)
def word_columns(word: str) -> tuple[int, ...]:
    """The hashed columns of one word's n-grams. Words repeat across texts, so they are cached."""
    padded = f"<{word}>"
    grams = [padded[i:i + n] for n in NGRAM_SIZES for i in range(len(padded) - n + 1)]
    if len(padded) < NGRAM_SIZES[0]:
        grams.append(padded)
    return tuple(zlib.crc32(gram.encode("utf-8")) % LEXICAL_DIM for gram in grams)


def ngram_counts(text: str) -> Counter[int]:
    """Hashed column -> count of the n-grams of every word, padded with ``<`` and ``>`` so that word
    starts and ends are their own n-grams; a short word also counts as a whole."""
    counts: Counter[int] = Counter()
    for word in _WORD.findall(fold_to_latin(text)):
        counts.update(word_columns(word))
    return counts


def weighted(counts: Counter[int]) -> dict[int, float]:
    """1 + log(count), L2-normalised (an empty text stays empty)."""
    values = {column: 1.0 + math.log(count) for column, count in counts.items()}
    norm = math.sqrt(sum(v * v for v in values.values()))
    return {column: v / norm for column, v in values.items()} if norm else {}


@dataclass(frozen=True)
class SparseRows:
    """(n, LEXICAL_DIM) features as their non-zero entries: a text has a few hundred of 8192 columns, and a
    dense product with the heads' weights cost more than the rest of the scoring after the encoder."""

    n: int
    rows: npt.NDArray[np.int64]
    columns: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]

    def dot(self, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """``features @ weights.T`` for weights of shape (k, LEXICAL_DIM): (n, k)."""
        contributions = weights[:, self.columns].T * self.values[:, None]  # (nnz, k)
        out = np.zeros((self.n, weights.shape[0]), dtype=np.float64)
        np.add.at(out, self.rows, contributions)
        return out

    def toarray(self) -> npt.NDArray[np.float64]:
        out = np.zeros((self.n, LEXICAL_DIM), dtype=np.float64)
        out[self.rows, self.columns] = self.values
        return out


def lexical_features(texts: Sequence[str]) -> SparseRows:
    """The features of each text, row by row."""
    rows: list[int] = []
    columns: list[int] = []
    values: list[float] = []
    for row, text in enumerate(texts):
        for column, value in weighted(ngram_counts(text)).items():
            rows.append(row)
            columns.append(column)
            values.append(value)
    return SparseRows(len(texts), np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64),
                      np.asarray(values, dtype=np.float64))
