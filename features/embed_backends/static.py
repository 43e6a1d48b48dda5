"""A static embedding model distilled from the packaged MiniLM with model2vec: a table lookup and a mean.

Each word piece has one vector (MiniLM's output for that piece alone, SIF-weighted by frequency rank); a text's
vector is the normalised sum of its pieces' vectors. No attention, so no context: "not good" is "not" + "good".
Loading and embedding need only tokenizers and numpy (vectors are a ``.npy`` read without pickle), never torch.

Speed on real captions (hundreds of characters, the same hashtags and words again and again) comes from
tokenizing each distinct *word* once: the BERT normaliser, pre-tokeniser and WordPiece all work within a
space-separated word, so a text's pieces are its words' pieces in order (then truncated as the tokenizer
would). Words are looked up in a bounded cache and only unseen ones go through the tokenizer, in one batch. The
pieces are exactly the tokenizer's (``tests/code/test_embed_backends.py`` checks it).

A text's vector is then a sum over its *words*, not its pieces: each distinct word of two or more known pieces
gets one row, the sum of its pieces' vectors, in a second bounded table; a word of one known piece points at that
piece's row, a word of none at a zero row. The sum is the same as over pieces (float rounding aside: the ids carry
:data:`EMBED_REVISION`); only a text cut at ``max_tokens`` inside a word adds that word's kept pieces one by one.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Sequence
from itertools import accumulate, chain
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix

from audiencefit.features.embed_backends.artifacts import read_manifest
from audiencefit.features.embed_backends.onnx_minilm import unit_rows
from audiencefit.features.exact_matmul import exact_matmul

logger = logging.getLogger(__name__)

VECTORS_FILE = "vectors.npy"
TOKENIZER_FILE = "tokenizer.json"
INFO_FILE = "embedder.json"
ALIGN_FILE = "align.npy"


def load_matrix(path: Path) -> npt.NDArray[np.float32]:
    """A float32 matrix from an ``.npy`` file, refusing pickled content."""
    matrix: npt.NDArray[np.float32] = np.load(path, allow_pickle=False)
    if matrix.ndim != 2 or matrix.dtype != np.float32:
        raise ValueError(f"{path}: expected a 2-d float32 matrix, got {matrix.dtype} {matrix.shape}")
    return matrix


def fit_linear_map(
    source: npt.NDArray[np.float32], target: npt.NDArray[np.float32], ridge: float
) -> npt.NDArray[np.float32]:
    """Affine map from ``source`` rows to ``target`` rows by ridge least squares; last row of the result is the bias."""
    x = np.hstack([source, np.ones((len(source), 1), dtype=source.dtype)]).astype(np.float64)
    penalty = ridge * np.eye(x.shape[1])
    penalty[-1, -1] = 0.0  # the bias is not shrunk
    return np.linalg.solve(x.T @ x + penalty, x.T @ target.astype(np.float64)).astype(np.float32)


_BLAS_LOCK = threading.Lock()
_BLAS: Any = None


def _one_blas_thread() -> Any:
    """A context that runs numpy's BLAS on one thread (threadpoolctl; the library list is read once)."""
    global _BLAS  # noqa: PLW0603
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _BLAS = ThreadpoolController()
    return _BLAS.limit(limits=1, user_api="blas")


def apply_linear_map(vectors: npt.NDArray[np.float32], affine: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """``vectors`` mapped by an affine map from :func:`fit_linear_map`, rows re-normalised.

    The product runs on one BLAS thread. A batch is a few dozen rows: OpenBLAS's thread pool gains nothing on
    that and, on a machine whose cores are busy with other work, its threads wait for each other (measured: 86x
    slower than one thread at a load of 9 on 2 cores). One thread also makes the vectors the same on any number
    of cores. The lock keeps concurrent callers from restoring each other's thread count out of order.

    The product is ``audiencefit.features.exact_matmul``'s (``m3``): a text's vector does not depend on the texts
    batched with it, so a feature build split into partitions or spread over workers embeds every text to the same
    bytes.
    """
    with _BLAS_LOCK, _one_blas_thread():
        mapped = exact_matmul(vectors, affine[:-1])
    return unit_rows((mapped + affine[-1]).astype(np.float32))


EMBED_REVISION = "w1"
"""Appended to the static backend's id: bump it whenever the static vectors' arithmetic changes (``w1``: a sum
over per-word sums instead of over pieces), so vectors computed the old way are never mixed with new ones."""

MAP_REVISION = f"m3{EMBED_REVISION}"
"""Appended to the ids of backends that use :func:`apply_linear_map` (aligned, hybrid): bump it whenever the
map's arithmetic changes (``m1``: one BLAS thread; ``m2``: the static vectors it maps changed, :data:`EMBED_REVISION`;
``m3``: an exact, batch-independent product), so vectors computed the old way are never mixed with new ones."""

_WORD_CACHE_SIZE = 1 << 18  # distinct words kept (~220 bytes each: ~58 MB at most); a fresh cache when full
_WORD_ROWS = 1 << 16  # summed rows of multi-piece words (1.5 kB each at 384 dims: ~100 MB at most, touched lazily)


class _WordRows:
    """Per-word rows of a text's sum: ``row[word]`` indexes ``table`` (the piece vectors, a zero row, then the
    summed rows of multi-piece words), ``known[word]`` is its count of known pieces.

    Replaced whole, never emptied in place, so a thread that still holds the old one reads consistent rows.
    """

    def __init__(self, vectors: npt.NDArray[np.float32], capacity: int) -> None:
        self.base = len(vectors)  # the zero row; summed rows follow it
        self.table = np.empty((self.base + 1 + capacity, vectors.shape[1]), dtype=np.float32)
        self.table[: self.base] = vectors
        self.table[self.base] = 0.0
        self.used = 0
        self.capacity = capacity
        self.row: dict[str, int] = {}
        self.known: dict[str, int] = {}


class StaticEmbedder:
    """Static word-piece vectors from an artifact built by
    :func:`~audiencefit.features.embed_backends.ensure_artifacts`."""

    def __init__(self, artifact_dir: Path) -> None:
        from tokenizers import Tokenizer

        started = time.perf_counter()
        manifest = read_manifest(artifact_dir)
        info = json.loads((artifact_dir / INFO_FILE).read_text(encoding="utf-8"))
        self._id: str = f"{manifest['id']}+{EMBED_REVISION}"
        self._vectors = load_matrix(artifact_dir / VECTORS_FILE)
        self._dim = int(self._vectors.shape[1])
        self._tokenizer: Any = Tokenizer.from_file(str(artifact_dir / TOKENIZER_FILE))
        self._tokenizer.no_padding()
        # Read no more than MiniLM reads, so long texts are compared on the same words.
        self._max_tokens = int(info["max_tokens"])
        self._tokenizer.enable_truncation(max_length=self._max_tokens)
        # The word cache tokenizes each word without truncation: a word is never cut, only the whole text.
        self._word_tokenizer: Any = Tokenizer.from_file(str(artifact_dir / TOKENIZER_FILE))
        self._word_tokenizer.no_padding()
        self._word_tokenizer.no_truncation()
        self._words: dict[str, tuple[int, ...]] = {}
        self._words_lock = threading.Lock()
        unk = self._tokenizer.token_to_id(str(info["unk_token"]))
        self._unk = -1 if unk is None else int(unk)
        # A text with no known word piece gets the [UNK] piece's vector, as MiniLM sees such a text.
        fallback = self._vectors[self._unk] if self._unk >= 0 else self._vectors.mean(axis=0)
        self._fallback = unit_rows(fallback[None, :].astype(np.float32))[0]
        self._rows = _WordRows(self._vectors, _WORD_ROWS)
        logger.info(
            "static embedder loaded",
            extra={"embedder": self._id, "seconds": round(time.perf_counter() - started, 2)},
        )

    @property
    def id(self) -> str:
        """Backend + model + build digest; the embedding cache keys on it."""
        return self._id

    @property
    def dim(self) -> int:
        """Vector dimension (384 without PCA)."""
        return self._dim

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Embed prepared texts: float32 (n, dim), unit-norm rows."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, self._dim), dtype=np.float32)
        split = [text.split(" ") for text in texts]
        ids = self._word_ids_of(split)
        rows = self._word_rows_of(split, ids)
        row_of, known_of, count_of = rows.row.__getitem__, rows.known.__getitem__, ids.__getitem__
        limit = self._max_tokens
        flat: list[int] = []
        starts: list[int] = []
        has = np.zeros(n, dtype=bool)
        for i, ws in enumerate(split):
            starts.append(len(flat))
            if sum(map(len, map(count_of, ws))) > limit:
                known = self._cut_rows(ws, ids, rows, flat)
            else:
                flat.extend(map(row_of, ws))
                known = sum(map(known_of, ws))
            has[i] = known > 0
        starts.append(len(flat))
        # The sum as a sparse product: each text's row adds its words' rows in order, only those rows are read
        # (np.add.reduceat over the gathered rows measured ~10x slower: it copies them first).
        indices = np.array(flat, dtype=np.int32)
        weights = np.ones(len(flat), dtype=np.float32)
        picks = csr_matrix((weights, indices, np.array(starts, dtype=np.int32)), shape=(n, len(rows.table)))
        out = np.asarray(picks @ rows.table, dtype=np.float32)
        out[~has] = self._fallback
        return unit_rows(out)

    def _cut_rows(self, ws: list[str], ids: dict[str, tuple[int, ...]], rows: _WordRows, flat: list[int]) -> int:
        """Rows of a text longer than ``max_tokens`` pieces: whole words while they fit, then the cut word's kept
        pieces one by one (the tokenizer cuts inside a word). Returns the count of known pieces kept."""
        left = self._max_tokens
        known = 0
        start = len(flat)
        for w in ws:
            pieces = ids[w]
            if len(pieces) <= left:
                flat.append(rows.row[w])
                known += rows.known[w]
                left -= len(pieces)
                continue
            kept = [p for p in pieces[:left] if p != self._unk]
            flat.extend(kept)
            known += len(kept)
            break
        if len(flat) == start:
            flat.append(rows.base)
        return known

    def pieces(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids of each text, exactly as ``encode_batch_fast(texts, add_special_tokens=False)`` of the
        truncating tokenizer gives them."""
        flat, counts = self._flat_pieces(texts)
        ends = list(accumulate(counts))
        return [flat[end - count : end] for end, count in zip(ends, counts, strict=True)]

    def _flat_pieces(self, texts: Sequence[str]) -> tuple[list[int], list[int]]:
        """All texts' word-piece ids end to end, and how many belong to each text.

        A space always separates two words for the BERT normaliser and pre-tokeniser, so a text's pieces are the
        pieces of its space-separated chunks in order (an empty chunk has none), cut to ``max_tokens`` as the
        tokenizer would cut them. Chunks come from the word cache; unseen ones are tokenized in one batch.
        """
        split = [text.split(" ") for text in texts]
        words = self._word_ids_of(split)
        lookup = words.__getitem__
        limit = self._max_tokens
        flat: list[int] = []
        counts: list[int] = []
        for ws in split:
            start = len(flat)
            try:
                flat.extend(chain.from_iterable(map(lookup, ws)))
            except KeyError:  # another thread replaced the cache in between: tokenize what is missing
                del flat[start:]
                flat.extend(chain.from_iterable(words[w] if w in words else self._word_ids(w) for w in ws))
            if len(flat) - start > limit:
                del flat[start + limit :]
            counts.append(len(flat) - start)
        return flat, counts

    def _word_ids_of(self, split: list[list[str]]) -> dict[str, tuple[int, ...]]:
        """The word-piece cache, holding every word of ``split`` (unseen ones tokenized in one batch)."""
        words = self._words
        unseen = list(dict.fromkeys(w for ws in split for w in ws if w not in words))
        if unseen:
            encoded = self._word_tokenizer.encode_batch_fast(unseen, add_special_tokens=False)
            with self._words_lock:
                old = self._words
                if len(old) + len(unseen) > _WORD_CACHE_SIZE:
                    # A fresh dict (threads reading the old one keep it), seeded with this batch's words.
                    self._words = {w: old[w] for ws in split for w in ws if w in old}
                words = self._words
                words.update(zip(unseen, (tuple(e.ids) for e in encoded), strict=True))
        return words

    def _word_rows_of(self, split: list[list[str]], ids: dict[str, tuple[int, ...]]) -> _WordRows:
        """The word-row table, holding every word of ``split`` (whose pieces ``ids`` holds)."""
        rows = self._rows
        unseen = [w for w in dict.fromkeys(w for ws in split for w in ws) if w not in rows.row]
        if not unseen:
            return rows
        with self._words_lock:
            if self._rows is not rows:  # another thread started a fresh table: check every word against it
                rows = self._rows
                unseen = list(dict.fromkeys(w for ws in split for w in ws))
            unseen = [w for w in unseen if w not in rows.row]
            known = [[p for p in ids[w] if p != self._unk] for w in unseen]
            multi = [i for i, pieces in enumerate(known) if len(pieces) > 1]
            if rows.used + len(multi) > rows.capacity:
                # A fresh table (threads reading the old one keep it), large enough for this batch.
                unseen = list(dict.fromkeys(w for ws in split for w in ws))
                known = [[p for p in ids[w] if p != self._unk] for w in unseen]
                multi = [i for i, pieces in enumerate(known) if len(pieces) > 1]
                rows = self._rows = _WordRows(self._vectors, max(_WORD_ROWS, len(multi)))
            first = rows.base + 1 + rows.used
            if multi:
                lengths = np.array([len(known[i]) for i in multi], dtype=np.int64)
                chained = chain.from_iterable(known[i] for i in multi)
                flat = np.fromiter(chained, dtype=np.int64, count=int(lengths.sum()))
                sums = np.add.reduceat(self._vectors[flat], np.cumsum(lengths) - lengths, axis=0)
                rows.table[first : first + len(multi)] = sums
            rows.used += len(multi)
            row_of = {i: first + k for k, i in enumerate(multi)}
            for i, w in enumerate(unseen):
                kept = known[i]
                rows.known[w] = len(kept)
                # Written only after the table rows above, so a reader never sees a row before its sum.
                rows.row[w] = row_of[i] if len(kept) > 1 else kept[0] if kept else rows.base
        return rows

    def clear_cache(self) -> None:
        """Forget the cached word pieces and word rows (benchmarks measure a cold start with it)."""
        with self._words_lock:
            self._words = {}
            self._rows = _WordRows(self._vectors, _WORD_ROWS)

    def _word_ids(self, word: str) -> tuple[int, ...]:
        return tuple(self._word_tokenizer.encode(word, add_special_tokens=False).ids)
