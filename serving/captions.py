"""Recent captions per creator, kept in memory to quote in explanations.

The feature set has one content vector per creator, not per caption, and embedding captions per request would
cost more than the whole recommendation. So at start-up the service keeps each creator's few most recent captions
(from the raw data directory when it is given, else from the feature set's ``recent_captions.parquet``, which
``features build`` writes) and, when it is given the creators' embedder, one vector per caption
(through the embedding cache, which the feature build already filled with these captions). At request time a
caption is related to the matched segment when it shares a word stem with the segment text or its vector is close
to the segment's vector; the related captions closest to the segment are quoted.

Real captions defeated the word match alone (measured on a real Instagram sample: no quote at all): they run to
hundreds of characters with the hashtags at the end (the match read only the first 200), are written in many
languages ("estudiante" for a segment of students), and inflect ("meals", "studying"). So words are matched on the
whole prepared caption (hashtags split into words by ``audiencefit.features.text.prepare_text``) by a light stem, the
vectors catch captions in other words or languages, and the quote is the part of the caption around the first
matching word.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import polars as pl

from audiencefit.features.featureset import MANIFEST, QUOTE_CAPTION_CHARS, QUOTE_CAPTIONS, RECENT_CAPTIONS
from audiencefit.features.mapped_tables import mapped_table
from audiencefit.features.stored_paths import contained_path
from audiencefit.features.text import prepare_text
from audiencefit.models.remembered import Remembered

if TYPE_CHECKING:
    from audiencefit.features.embed import Embedder
    from audiencefit.features.embed_cache import EmbeddingCache
    from audiencefit.features.featureset import FeatureSet
    from audiencefit.settings import Settings

log = logging.getLogger(__name__)

CAPTIONS_PER_CREATOR = QUOTE_CAPTIONS
QUOTE_CHARS = 200
MATCH_CHARS = QUOTE_CAPTION_CHARS  # captions are matched on this much text; only the quote is shortened
# Cosine between a caption and the segment above which the caption counts as related without a shared word. Measured
# with minilm-aligned on the synthetic world (docs/evaluation.md, "Caption quotes"): a creator's captions against the
# segment it was matched to, against a random other segment.
MIN_SIMILARITY = 0.3
# Each stem a caption shares with the segment adds this to its cosine when ranking: a caption naming the segment's
# words is the clearer quote, among captions about equally close in meaning.
OVERLAP_BONUS = 0.05
# Caption vectors are made at start-up only up to this many captions (12,500 creators with 8 each: 77 MB of float16
# vectors at 384 dimensions; 22,151 captions took 8.7-11.8 s, cached, on the loaded 2-core machine). Beyond it,
# quotes fall back to the word match: at 100k creators the vectors would take 614 MB per worker and minutes to start.
MAX_EMBEDDED_CAPTIONS = 100_000
_CONTEXT_CHARS = 60  # characters kept before the first matching word when a long caption is shortened
_WORD_RE = re.compile(r"[^\W\d_]{3,}")
_TOKEN_RE = re.compile(r"#?[^\W_]+(?:['’][^\W_]+)?")
_NON_ASCII_RE = re.compile(r"[^\x00-\x7f]")
_WIDE = "\ufffd"  # stands for a character that folds to several characters, none of them ASCII (see _folded_view)
# Words too common to show that a caption is about the segment.
_STOP = frozenset(
    "the and for with who are you your our their this that from have has into about people love like just "
    "more most them they very what when where which while will than then also been being over under want wants "
    "brand brands reach audience care new every after first make get got one all out now back good best really "
    "much many some".split()
)
_SUFFIXES = ("ing", "ies", "ers", "es", "er", "ed", "s")
_STEM_CHARS = 6


WORDS_REMEMBERED = 1 << 16  # distinct words whose stem and folded form are kept (captions repeat their words)


@lru_cache(maxsize=WORDS_REMEMBERED)
def stem(word: str) -> str:
    """A light, language-neutral stem: accents off, one common English ending off (when 4+ letters remain), then
    the first 6 letters (students → studen, studying → study, meals → meal, universidad/university → univer)."""
    folded = _fold(word)
    for suffix in _SUFFIXES:
        if folded.endswith(suffix) and len(folded) - len(suffix) >= 4:
            folded = folded[: -len(suffix)] + ("y" if suffix == "ies" else "")
            break
    return folded[:_STEM_CHARS]


@lru_cache(maxsize=WORDS_REMEMBERED)
def _fold(word: str) -> str:
    """Lower case without accents (étudiant → etudiant)."""
    if word.isascii():  # most words: nothing to decompose (and no ASCII character is a combining mark)
        return word.lower()
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def words(text: str) -> set[str]:
    """Lower-case content words (3+ letters, no stop words) of a prepared text."""
    return set(_WORD_RE.findall(prepare_text(text).lower())) - _STOP


def stems(text: str) -> set[str]:
    """The stems of :func:`words` (hashtags split into their words)."""
    return set(map(stem, words(text)))


def recent_captions(posts: pl.DataFrame, per_creator: int = CAPTIONS_PER_CREATOR) -> dict[str, list[str]]:
    """creator_id → its ``per_creator`` most recent non-empty captions, newest first (at most MATCH_CHARS each)."""
    frame = (
        posts.lazy()
        .filter(pl.col("caption").is_not_null() & (pl.col("caption").str.strip_chars().str.len_chars() > 0))
        .sort(["creator_id", "posted_at", "post_id"], descending=[False, True, False])
        .group_by("creator_id", maintain_order=True)
        .agg(pl.col("caption").head(per_creator).str.slice(0, MATCH_CHARS))
        .collect()
    )
    return dict(zip(frame["creator_id"].to_list(), frame["caption"].to_list(), strict=True))


@lru_cache(maxsize=4096)  # few distinct marks and emoji recur across captions
def _is_filler(token: str) -> bool:
    """True for a run of punctuation, symbols of layout or invisible characters only ("." "•" "-" the braille blank
    U+2800 that keeps empty lines on Instagram): what captions use to space lines out, nothing to quote."""
    if token[:1].isalnum() or token[-1:].isalnum():  # most tokens: a letter or digit is never filler
        return False
    return all(unicodedata.category(c)[0] in "PZC" or c == "\u2800" or unicodedata.category(c) == "Sk" for c in token)


def tidy_caption(caption: str) -> str:
    """A caption as one line to quote: lines of filler only ("." "•" "⠀": what spaces a caption out) left out,
    runs of two or more filler marks within a line too, whitespace collapsed to single spaces; a mark standing alone
    between words ("a - b") stays."""
    spaced = caption.replace("\u2800", " ")
    words = spaced.split()
    # The caption's distinct filler marks, looked up only for tokens without a letter or digit at either end.
    fillers = {w for w in set(words) if not (w[:1].isalnum() or w[-1:].isalnum()) and _is_filler(w)}
    if not fillers:  # most captions: every word kept (a line break is whitespace to str.split too)
        return " ".join(words)
    tokens: list[str] = []
    for line in spaced.splitlines():
        on_line = line.split()
        if any(w not in fillers for w in on_line):
            tokens.extend(on_line)
    last = len(tokens) - 1
    return " ".join(
        token
        for i, token in enumerate(tokens)
        if token not in fillers or not ((i > 0 and tokens[i - 1] in fillers) or (i < last and tokens[i + 1] in fillers))
    )


def quote(caption: str, target: frozenset[str], limit: int = QUOTE_CHARS) -> str:
    """``caption`` tidied (:func:`tidy_caption`) and shortened to about ``limit`` characters around its first word
    (or hashtag) whose stem is in ``target``; the start when none is. Cuts are marked with '…'."""
    return cut(tidy_caption(caption), target, limit)


def cut(text: str, target: frozenset[str], limit: int = QUOTE_CHARS) -> str:
    """A tidied caption (:func:`tidy_caption`) shortened as :func:`quote` does."""
    return cut_from(text, target, limit, scan_from(text, target) if len(text) > limit else 0)


def cut_from(text: str, target: frozenset[str], limit: int, begin: int) -> str:
    """:func:`cut`, reading tokens for the first hit from ``begin`` (0: every token; :func:`scan_from` says where
    reading may start without passing one)."""
    if len(text) <= limit:
        return text
    start = 0
    for match in _TOKEN_RE.finditer(text, begin):
        token = match.group()
        if _hits(token, target):
            start = max(0, match.start() - _CONTEXT_CHARS)
            if start:
                space = text.find(" ", start)
                start = space + 1 if 0 <= space < match.start() else start
            break
    end = min(len(text), start + limit)
    if end < len(text):
        space = text.rfind(" ", start, end)
        end = space if space > start + limit // 2 else end
    return ("…" if start else "") + text[start:end].strip() + ("…" if end < len(text) else "")


def quotable_captions(table: pl.DataFrame) -> pl.DataFrame:
    """The ``recent_captions`` rows quotes are taken from, flat, in (creator, newest first) order: each creator's
    newest ``CAPTIONS_PER_CREATOR``, cut to ``MATCH_CHARS`` (``creator_id``, ``caption``)."""
    return (
        table.lazy()
        .sort(["creator_id", "rank"])
        .with_columns(position=pl.int_range(pl.len()).over("creator_id"))
        .filter(pl.col("position") < CAPTIONS_PER_CREATOR)
        .select("creator_id", pl.col("caption").str.slice(0, MATCH_CHARS))
        .collect()
    )


class CaptionTable:
    """creator_id → its captions (newest first), over one flat string column and an offsets array.

    At a million creators the captions as a ``dict`` of lists were ~9 million Python objects per worker (GBs, and
    a million lists for every full garbage collection to walk); here they are one arrow buffer, one int64 array and
    a dict of plain ``str → int`` (which the collector does not track). A lookup slices the column (microseconds).
    """

    def __init__(self, creator_ids: list[str], counts: npt.NDArray[np.int64], captions: pl.Series) -> None:
        if len(creator_ids) != len(counts) or int(counts.sum()) != captions.len():
            raise ValueError(
                f"{len(creator_ids)} creators, {len(counts)} counts and {captions.len()} captions do not agree"
            )
        self._row = {creator_id: i for i, creator_id in enumerate(creator_ids)}
        self._starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        captions = captions.cast(pl.String)
        # One chunk, for slicing; a memory-mapped column is one already and is not copied.
        self._captions = captions if captions.n_chunks() == 1 else captions.rechunk()

    @classmethod
    def from_dict(cls, captions: dict[str, list[str]]) -> CaptionTable:
        counts = np.fromiter((len(texts) for texts in captions.values()), dtype=np.int64, count=len(captions))
        flat = pl.Series("caption", [c for texts in captions.values() for c in texts], dtype=pl.String)
        return cls(list(captions), counts, flat)

    @classmethod
    def from_flat(cls, flat: pl.DataFrame) -> CaptionTable:
        """From one row per caption (``creator_id``, ``caption``), each creator's rows together, newest first."""
        counts = flat.group_by("creator_id", maintain_order=True).len()
        return cls(counts["creator_id"].to_list(), counts["len"].to_numpy().astype(np.int64), flat["caption"])

    def __len__(self) -> int:
        return len(self._row)

    def creator_ids(self) -> list[str]:
        """The creators kept, in table order."""
        return list(self._row)

    def span(self, creator_id: str) -> tuple[int, int] | None:
        """(first row, caption count) of ``creator_id`` in :meth:`texts` order; None when it has none kept."""
        i = self._row.get(creator_id)
        if i is None:
            return None
        start = int(self._starts[i])
        return start, int(self._starts[i + 1]) - start

    def get(self, creator_id: str) -> list[str]:
        span = self.span(creator_id)
        if span is None or span[1] == 0:
            return []
        return [str(c) for c in self._captions.slice(span[0], span[1]).to_list()]

    def texts(self) -> list[str]:
        """Every caption, creators in table order, newest first (the order caption vectors are kept in)."""
        return [str(c) for c in self._captions.to_list()]

    @property
    def n_captions(self) -> int:
        return self._captions.len()


class CaptionStore:
    """Recent captions per creator (and their vectors, when embedded); :meth:`best` quotes those closest to a
    segment."""

    def __init__(
        self,
        captions: dict[str, list[str]] | CaptionTable,
        remembered: int = 50_000,
        vectors: npt.NDArray[np.float16] | None = None,
    ) -> None:
        """``vectors``, when given, hold one unit-length row per caption in the order of ``captions`` (creators in
        dict / table order, captions newest first); a zero row for a caption with nothing to embed."""
        self._captions = captions if isinstance(captions, CaptionTable) else CaptionTable.from_dict(captions)
        self._vectors = vectors
        if vectors is not None and vectors.shape[0] != self._captions.n_captions:
            raise ValueError(f"{vectors.shape[0]} caption vectors for {self._captions.n_captions} captions")
        # Stems of the creators quoted lately (and of segment texts): requests quote the same creators and
        # segments again, and splitting captions into words is most of what quoting costs. Kept as tuples of
        # strings, which the cyclic garbage collector stops tracking: as sets, a full cache was hundreds of
        # thousands of objects for every full collection to walk (measured: 61k after 4,000 requests, 41-53 ms per
        # collection, a dozen collections per 4,000 requests).
        self._caption_stems = lru_cache(maxsize=remembered)(self._stems_of)
        self._segment_stems = lru_cache(maxsize=4096)(_sorted_stems)
        # Quotes made lately, by creator, segment text, n and the segment vector's digest: a repeat brief shows the
        # same creators for the same segments, and tidying and cutting their captions was a fifth of a request's
        # CPU (py-spy, 100k world). Tuples of strings, untracked by the garbage collector, like the stems.
        self._quotes: Remembered[tuple[str, str, int, bytes], tuple[str, ...]] = Remembered(remembered)

    def _stems_of(self, creator_id: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """(the caption tidied, its stems) for each of the creator's captions, newest first: what quoting reads of
        a creator whatever the segment (a quote is :func:`cut` of the tidied caption, as :func:`quote` makes it)."""
        return tuple((tidy_caption(caption), _sorted_stems(caption)) for caption in self._captions.get(creator_id))

    @classmethod
    def from_data_dir(
        cls,
        data_dir: Path,
        secret: str,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
    ) -> CaptionStore:
        """Read and validate the raw tables in ``data_dir`` and keep recent captions (posts only); with
        ``embedder`` (the one that embedded the creators' content), also one vector per caption."""
        from audiencefit.features.dataset import load_dataset

        dataset = load_dataset(data_dir, secret=secret, tables=())
        captions = recent_captions(dataset.posts)
        if embedder is None:
            return cls(captions)
        return cls(captions, vectors=embed_captions(captions, embedder, cache))

    @classmethod
    def from_feature_set(
        cls,
        fs: FeatureSet,
        embedder: Embedder | None = None,
        cache: EmbeddingCache | None = None,
        table_cache: Path | None = None,
    ) -> CaptionStore | None:
        """The captions ``features build`` kept in the feature set (``recent_captions.parquet``), so that quotes
        need no raw data at serving time; None for a feature set built before it kept them. ``table_cache``: the
        quotable captions are memory-mapped from an Arrow copy kept there (``audiencefit.features.mapped_tables``),
        read from the parquet (checksummed when ``fs`` was loaded, also when ``fs`` skipped the table)."""
        rel = f"{RECENT_CAPTIONS}.parquet"
        checksum = fs.manifest["files"].get(rel)
        if table_cache is not None and checksum is not None:
            source = contained_path(fs.path, rel, where=f"{fs.path / MANIFEST}, field 'files'")
            flat = mapped_table(
                source,
                checksum,
                table_cache,
                derive=quotable_captions,
                derivation=f"quotable{CAPTIONS_PER_CREATOR}x{MATCH_CHARS}",
            )
        elif fs.recent_captions is not None:
            flat = quotable_captions(fs.recent_captions)
        else:
            return None
        captions = CaptionTable.from_flat(flat)
        del flat
        if embedder is None:
            return cls(captions)
        return cls(captions, vectors=embed_captions(captions, embedder, cache))

    @property
    def embedded(self) -> bool:
        return self._vectors is not None

    def __len__(self) -> int:
        return len(self._captions)

    def best(
        self, creator_id: str, segment_text: str, n: int = 2, segment_vector: npt.NDArray[np.float32] | None = None
    ) -> list[str]:
        """Up to ``n`` recent captions related to the segment, closest first, each shortened around its match.

        Related: sharing a word stem with ``segment_text``, or (with caption vectors and ``segment_vector``) a
        cosine of at least :data:`MIN_SIMILARITY` to the segment. Closest: by cosine (when there are vectors) plus
        :data:`OVERLAP_BONUS` per shared stem; ties go to the newer caption. Answers are remembered (least
        recently used out): the same arguments give the same quotes."""
        # Without caption vectors the segment's vector changes nothing: not hashed (a few microseconds a quote).
        digest = b""
        if segment_vector is not None and self._vectors is not None:
            digest = hashlib.blake2b(segment_vector.tobytes(), digest_size=16).digest()
        key = (creator_id, segment_text, n, digest)
        return list(self._quotes.get(key, lambda: tuple(self._best(creator_id, segment_text, n, segment_vector))))

    def _best(
        self, creator_id: str, segment_text: str, n: int, segment_vector: npt.NDArray[np.float32] | None
    ) -> list[str]:
        target = frozenset(self._segment_stems(segment_text))
        similarity = self._similarity(creator_id, segment_vector)
        captions = self._caption_stems(creator_id)
        ranked: list[str]
        if similarity is None:
            # Related by shared stems alone, and the score is OVERLAP_BONUS per stem: the order of the loop below
            # is by overlap, then age (so no score is computed, in one pass, for the store without vectors).
            by_overlap = sorted(
                (-overlap, age, tidied)
                for age, (tidied, caption_stems) in enumerate(captions)
                if (overlap := len(target.intersection(caption_stems)))
            )
            ranked = [tidied for _, _, tidied in by_overlap]
        else:
            scored = []
            for age, (tidied, caption_stems) in enumerate(captions):
                overlap = len(target.intersection(caption_stems))
                if overlap or similarity[age] >= MIN_SIMILARITY:
                    score = OVERLAP_BONUS * overlap + float(similarity[age])
                    scored.append((-score, -overlap, age, tidied))
            ranked = [tidied for _, _, _, tidied in sorted(scored)]
        out: list[str] = []
        for tidied in ranked:
            text = cut(tidied, target)
            if text:  # a caption of filler only quotes as nothing
                out.append(text)
                if len(out) == n:  # tidying and cutting is most of a quote's cost: only the n shown are made
                    break
        return out

    def _similarity(self, creator_id: str, segment_vector: npt.NDArray[np.float32] | None) -> np.ndarray | None:
        span = self._captions.span(creator_id) if self._vectors is not None and segment_vector is not None else None
        if span is None or self._vectors is None or segment_vector is None:
            return None
        rows = self._vectors[span[0] : span[0] + span[1]].astype(np.float32)
        norm = float(np.linalg.norm(segment_vector))
        if norm == 0.0:
            return None
        return np.asarray(rows @ (np.asarray(segment_vector, dtype=np.float32) / norm))


def embed_captions(
    captions: dict[str, list[str]] | CaptionTable, embedder: Embedder, cache: EmbeddingCache | None
) -> npt.NDArray[np.float16] | None:
    """Unit-length float16 vectors of every caption, in the order :class:`CaptionStore` expects (2 bytes per
    dimension: 6 KB per creator with 8 captions of 384 dimensions); None beyond :data:`MAX_EMBEDDED_CAPTIONS`."""
    from audiencefit.features.embed import embed_texts

    table = captions if isinstance(captions, CaptionTable) else CaptionTable.from_dict(captions)
    if table.n_captions > MAX_EMBEDDED_CAPTIONS:
        log.warning(
            "too many captions to embed for quotes; quotes match words only",
            extra={"captions": table.n_captions, "max_embedded_captions": MAX_EMBEDDED_CAPTIONS},
        )
        return None
    texts = table.texts()
    try:
        result = embed_texts(texts, embedder, cache, progress=False, desc="quote captions")
    except OSError as exc:  # a cache that cannot be written: embed without it rather than not start
        log.warning("embedding cache not writable; caption vectors are embedded without it", extra={"error": str(exc)})
        result = embed_texts(texts, embedder, None, progress=False, desc="quote captions")
    vectors = result.vectors.astype(np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    log.info(
        "caption vectors ready",
        extra={"captions": len(texts), "embedded": result.n_embedded, "cached": result.n_cached},
    )
    return np.asarray(vectors, dtype=np.float16)


def _hits(token: str, target: frozenset[str]) -> bool:
    """Whether a word or hashtag of a caption matches: a word by its stem, a hashtag when a target stem occurs in
    it (#latenightstudy holds "study"), which is cheaper than splitting the tag again."""
    if not token.startswith("#"):
        return stem(token) in target
    folded = _fold(token[1:])
    return any(len(t) >= 4 and t in folded for t in target)


def scan_from(text: str, target: frozenset[str]) -> int:
    """Where the search of :func:`cut` for the first word or hashtag of ``text`` that hits ``target`` (:func:`_hits`)
    can start without passing one: just after the last space before the first place any token could hit (the
    length of ``text`` when no token can), 0 when that cannot be told cheaply.

    A token hits only if its folded form (:func:`_fold`) holds the *needle* of a target stem: the stem, without a
    last "y" (what :func:`stem` puts in place of "ies"). A stem is the start of the folded word, and a hashtag hits
    when it holds the stem; so when the needles are ASCII, searching them in the caption folded one character for
    one character (:func:`_folded_view`) finds no later than the first hit. No token spans a space, so the tokens
    :data:`_TOKEN_RE` finds from just after one are those it finds there reading the caption from its start."""
    needles = _needles(target)
    if needles is None:
        return 0
    view = _folded_view(text)
    if view is None:
        return 0
    first = min((at for at in map(view.find, needles) if at >= 0), default=-1)
    if first < 0:
        return len(text)
    return text.rfind(" ", 0, first) + 1


@lru_cache(maxsize=4096)
def _needles(target: frozenset[str]) -> tuple[str, ...] | None:
    """The strings that any token hitting ``target`` holds once folded (see :func:`scan_from`); None when one is
    not ASCII (the caption's folded view keeps only its ASCII letters in place)."""
    needles = tuple(sorted({t[:-1] if t.endswith("y") else t for t in target}))
    return needles if all(n.isascii() for n in needles) else None


def _folded_view(text: str) -> str | None:
    """``text`` lower-cased and folded as :func:`_fold` folds a word, one character for each of ``text``'s (so a
    position in it is the same position in ``text``): a character folding to several non-ASCII characters stands
    as one, :data:`_WIDE`. None when that cannot keep every ASCII letter of a folded word in place: a character
    that lower-cases to several (İ), folds to nothing (a combining mark), or to several characters with an ASCII
    one among them (the ligature ﬁ)."""
    view = text.lower()
    if len(view) != len(text):
        return None
    if view.isascii():
        return view
    for ch in set(_NON_ASCII_RE.findall(view)):
        folded = _fold_char(ch)
        if folded is None:
            return None
        if folded != ch:
            view = view.replace(ch, folded)
    return view


@lru_cache(maxsize=WORDS_REMEMBERED)
def _fold_char(ch: str) -> str | None:
    """One lower-case character as :func:`_folded_view` shows it: what :func:`_fold` makes of it when that is one
    character, :data:`_WIDE` for several non-ASCII ones, None for nothing or several with an ASCII one."""
    folded = _fold(ch)
    if len(folded) == 1:
        return folded
    if not folded or any(c.isascii() for c in folded):
        return None
    return _WIDE


def _sorted_stems(text: str) -> tuple[str, ...]:
    """:func:`stems` as a sorted tuple (a cache entry the garbage collector does not track)."""
    return tuple(sorted(stems(text)))


def caption_cache(settings: Settings, embedder: Embedder) -> EmbeddingCache | None:
    """The embedding cache the feature build filled (so captions it embedded are not embedded again); None when
    it cannot be opened, e.g. a read-only service host without one (the captions are then embedded anew)."""
    from audiencefit.features.embed_cache import EmbeddingCache

    try:
        return EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    except OSError as exc:
        log.warning("embedding cache unavailable for caption quotes", extra={"error": str(exc)})
        return None
