"""Recent captions per creator, kept in memory to quote in explanations.

The feature set has one content vector per creator, not per caption, and embedding captions per request would
cost more than the whole recommendation. So at start-up (only when the raw data directory is given) the service
keeps each creator's few most recent captions, and at request time it quotes those sharing the most words with
the matched segment: cheap, and a marketer can see why the quote was chosen.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import polars as pl

from features.text import prepare_text

CAPTIONS_PER_CREATOR = 8
QUOTE_CHARS = 200
_WORD_RE = re.compile(r"[^\W\d_]{3,}")
# Words too common to show that a caption is about the segment.
_STOP = frozenset(
    "the and for with who are you your our their this that from have has into about people love like just "
    "more most them they very what when where which while will than then also been being over under".split()
)


def words(text: str) -> set[str]:
    """Lower-case content words (3+ letters, no stop words) of a prepared text."""
    return {w for w in _WORD_RE.findall(prepare_text(text).lower()) if w not in _STOP}


def recent_captions(posts: pl.DataFrame, per_creator: int = CAPTIONS_PER_CREATOR) -> dict[str, list[str]]:
    """creator_id → its ``per_creator`` most recent non-empty captions, newest first, shortened for quoting."""
    frame = (
        posts.lazy()
        .filter(pl.col("caption").is_not_null() & (pl.col("caption").str.strip_chars().str.len_chars() > 0))
        .sort(["creator_id", "posted_at", "post_id"], descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .agg(pl.col("caption").head(per_creator).str.slice(0, QUOTE_CHARS))
        .collect()
    )
    return dict(zip(frame["creator_id"].to_list(), frame["caption"].to_list(), strict=True))


class CaptionStore:
    """Recent captions per creator; :meth:`best` quotes those closest in words to a segment."""

    def __init__(self, captions: dict[str, list[str]], remembered: int = 50_000) -> None:
        self._captions = captions
        # Content words of the creators quoted lately (and of segment texts): requests quote the same creators and
        # segments again, and splitting captions into words is most of what quoting costs. Kept as tuples of
        # strings, which the cyclic garbage collector stops tracking: as sets, a full cache was hundreds of
        # thousands of objects for every full collection to walk (measured: 61k after 4,000 requests, 41-53 ms per
        # collection, a dozen collections per 4,000 requests).
        self._caption_words = lru_cache(maxsize=remembered)(self._words_of)
        self._segment_words = lru_cache(maxsize=4096)(_sorted_words)

    def _words_of(self, creator_id: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        return tuple((caption, _sorted_words(caption)) for caption in self._captions.get(creator_id, []))

    @classmethod
    def from_data_dir(cls, data_dir: Path, secret: str) -> CaptionStore:
        """Read and validate the raw tables in ``data_dir`` and keep recent captions (posts only)."""
        from features.dataset import load_dataset

        dataset = load_dataset(data_dir, secret=secret, tables=())
        return cls(recent_captions(dataset.posts))

    def __len__(self) -> int:
        return len(self._captions)

    def best(self, creator_id: str, segment_text: str, n: int = 2) -> list[str]:
        """Up to ``n`` recent captions sharing at least one content word with the segment, most shared first."""
        target = frozenset(self._segment_words(segment_text))
        if not target:
            return []
        scored = []
        for age, (caption, caption_words) in enumerate(self._caption_words(creator_id)):
            overlap = len(target.intersection(caption_words))
            if overlap:
                scored.append((-overlap, age, caption))
        return [caption for _, _, caption in sorted(scored)[:n]]


def _sorted_words(text: str) -> tuple[str, ...]:
    """:func:`words` as a sorted tuple (a cache entry the garbage collector does not track)."""
    return tuple(sorted(words(text)))
