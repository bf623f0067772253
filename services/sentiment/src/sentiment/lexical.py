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

import numpy as np
import numpy.typing as npt

from sentiment.scripts import fold_to_latin

#: Hashed columns. Collisions cost a little accuracy; more columns make the head files larger
#: (16 needs + 3 labels, one weight per column).
LEXICAL_DIM = 2**13
NGRAM_SIZES = (3, 4, 5)
_WORD = re.compile(r"[a-z0-9]+")


def ngram_counts(text: str) -> Counter[int]:
    """Hashed column -> count of the n-grams of every word, padded with ``<`` and ``>`` so that word
    starts and ends are their own n-grams; a short word also counts as a whole."""
    counts: Counter[int] = Counter()
    for word in _WORD.findall(fold_to_latin(text)):
        padded = f"<{word}>"
        grams = [padded[i:i + n] for n in NGRAM_SIZES for i in range(len(padded) - n + 1)]
        if len(padded) < NGRAM_SIZES[0]:
            grams.append(padded)
        for gram in grams:
            counts[zlib.crc32(gram.encode("utf-8")) % LEXICAL_DIM] += 1
    return counts


def weighted(counts: Counter[int]) -> dict[int, float]:
    """1 + log(count), L2-normalised (an empty text stays empty)."""
    values = {column: 1.0 + math.log(count) for column, count in counts.items()}
    norm = math.sqrt(sum(v * v for v in values.values()))
    return {column: v / norm for column, v in values.items()} if norm else {}


def lexical_features(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """(n, LEXICAL_DIM) dense features: a batch of 32 texts is 2 MB, and a dense product is simplest."""
    out = np.zeros((len(texts), LEXICAL_DIM), dtype=np.float64)
    for row, text in enumerate(texts):
        for column, value in weighted(ngram_counts(text)).items():
            out[row, column] = value
    return out
