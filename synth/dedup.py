"""Near-duplicate removal by TF-IDF cosine similarity (numpy only).

    from ember.synth.dedup import near_duplicates
    near_duplicates(["What is 2+3?", "what is 2 + 3 ?", "Who wrote Hamlet?"])
    # -> {1: (0, 1.0)}: text 1 repeats text 0 (cosine 1.0); texts 0 and 2 are kept

`ember synth questions` uses it to drop generated questions that say the same thing in
nearly the same words. Each text becomes a TF-IDF vector of its lowercased word unigrams
and bigrams (smoothed idf, as scikit-learn computes it, then L2-normalised); texts are
visited in order and one is a duplicate when its cosine with an earlier kept text (or
with a text in ``keep``, e.g. the questions of an earlier round) reaches the threshold.
"""

from __future__ import annotations

import re
from collections import Counter


_WORD = re.compile(r"\w+")


def terms(text: str) -> list[str]:
    """Word unigrams and bigrams of the lowercased text."""
    words = _WORD.findall(text.lower())
    return words + [f"{a} {b}" for a, b in zip(words, words[1:])]


def tfidf(texts: list[str]) -> np.ndarray:
    import numpy as np  # loaded when dedup runs, not with `ember --help`

    """Row-normalised TF-IDF matrix (texts x vocabulary), dense float32."""
    counts = [Counter(terms(t)) for t in texts]
    vocab: dict[str, int] = {}
    for c in counts:
        for term in c:
            vocab.setdefault(term, len(vocab))
    df = np.zeros(len(vocab), dtype=np.float32)
    for c in counts:
        df[[vocab[t] for t in c]] += 1
    idf = np.log((1 + len(texts)) / (1 + df)) + 1
    m = np.zeros((len(texts), max(len(vocab), 1)), dtype=np.float32)
    for i, c in enumerate(counts):
        for term, k in c.items():
            m[i, vocab[term]] = k * idf[vocab[term]]
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return m / np.where(norms == 0, 1, norms)


def near_duplicates(texts: list[str], threshold: float = 0.8,
                    keep: list[str] = ()) -> dict[int, tuple[int, float]]:
    """Indices of ``texts`` that repeat an earlier text: ``{i: (j, cosine)}``.

    ``j`` indexes ``keep + texts`` (texts in ``keep`` are always kept and come first).
    A text without words is never a duplicate of anything.
    """
    import numpy as np

    if not texts:
        return {}
    m = tfidf(list(keep) + list(texts))
    sims = m @ m.T  # dense: fine for the few thousand questions a run makes
    kept = list(range(len(keep)))
    dups: dict[int, tuple[int, float]] = {}
    for i in range(len(keep), len(m)):
        row = sims[i, kept] if kept else np.zeros(0)
        j = int(row.argmax()) if len(row) else -1
        if j >= 0 and row[j] >= threshold - 1e-6:
            dups[i - len(keep)] = (kept[j], round(float(row[j]), 4))
        else:
            kept.append(i)
    return dups


def cosine(a: str, b: str) -> float:
    """TF-IDF cosine of two texts (idf fitted on the pair), for tests and inspection."""
    m = tfidf([a, b])
    return float(m[0] @ m[1])
