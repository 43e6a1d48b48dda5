"""Words that can name an interest topic: the labels of the audience interest clusters
(``audiencefit.features.compute``) and the terms explanations show (``audiencefit.serving.explain``).

Cluster labels are the words most over-represented in a cluster's profiles. Two kinds of word are over-represented
without naming anything, and both are dropped here:

- Stop words ("since", "cada", "vez", "est"), in whatever language the text is in. The lists are stopwords-iso's
  (``stopwordsiso``: 58 languages). A word can be a stop word in one language and a topic in another ("car" is
  French for "because", "dog" a Danish stop word), so each text is filtered with the list of its own language —
  the one whose stop words make up most of its words, a robust guess on short social texts — and with English's,
  which is mixed into captions and bios in every language.
- Generic words ("happiest", "loving", "best"): spread over every cluster about as evenly as the profiles are.
  A word's spread is the normalised entropy of its rate (profiles using it / profiles) across the clusters; a word
  that names a topic is concentrated in a few clusters (spread well under 0.5 with a few dozen clusters), filler
  is near 1. No word list is involved, so this holds in every language, for emoji names and hashtag words too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

WORD_PATTERN = r"[^\W\d_]{3,}"  # words of 3+ letters, in any script (what cluster labels are made of)
_WORD_RE = re.compile(WORD_PATTERN)
ALWAYS = "en"  # filtered in every text: English is mixed into social text in every language
# A word this evenly spread over the clusters (normalised entropy of its rates, 0–1) names none of them.
MAX_SPREAD = 0.8
MIN_CLUSTERS_FOR_SPREAD = 4  # with fewer clusters the spread says little: only stop words are dropped


@lru_cache(maxsize=1)
def stop_lists() -> dict[str, frozenset[str]]:
    """ISO 639-1 code → that language's stop words (lower case), from stopwords-iso."""
    import stopwordsiso

    return {lang: frozenset(w.lower() for w in stopwordsiso.stopwords(lang)) for lang in sorted(stopwordsiso.langs())}


@lru_cache(maxsize=1)
def _languages_by_word() -> dict[str, tuple[str, ...]]:
    """stop word → the languages it is a stop word in (one look-up per word instead of one per language)."""
    out: dict[str, list[str]] = {}
    for lang, stops in stop_lists().items():
        for word in stops:
            out.setdefault(word, []).append(lang)
    return {word: tuple(langs) for word, langs in out.items()}


def language_of(words: Sequence[str]) -> str:
    """The language whose stop words cover most of ``words``: English unless another covers more (then, on a tie,
    the alphabetically first code); English too when none of them is a stop word anywhere."""
    index = _languages_by_word()
    hits: dict[str, int] = {}
    for word in words:
        for lang in index.get(word, ()):
            hits[lang] = hits.get(lang, 0) + 1
    best, most = ALWAYS, hits.get(ALWAYS, 0)
    for lang in sorted(hits):
        if hits[lang] > most:
            best, most = lang, hits[lang]
    return best


@lru_cache(maxsize=64)
def _stops_cached(lang: str) -> frozenset[str]:
    """The stop words a text in ``lang`` is filtered with: its language's and English's."""
    lists = stop_lists()
    return lists[ALWAYS] | lists.get(lang, frozenset())


def content_words(text: str) -> list[str]:
    """The lower-case words (3+ letters) of ``text`` that are not stop words of its language or of English."""
    words = _WORD_RE.findall(text.lower())
    stops = _stops_cached(language_of(words))
    return [w for w in words if w not in stops]


def topic_terms(terms: Iterable[str]) -> list[str]:
    """Stored cluster terms without stop words (feature sets labelled before the filtering: the terms as one text,
    filtered like a profile)."""
    words = [str(t).lower() for t in terms]
    stops = _stops_cached(language_of(words))
    return [w for w in words if w not in stops]


def spread(rates: Sequence[float]) -> float:
    """Normalised entropy (0: in one cluster, 1: equally in all) of a word's per-cluster rates."""
    total = sum(rates)
    k = len(rates)
    if total <= 0 or k < 2:
        return 0.0
    entropy = -sum(r / total * math.log(r / total) for r in rates if r > 0)
    return entropy / math.log(k)
