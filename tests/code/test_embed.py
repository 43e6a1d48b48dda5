"""Embedding interface, registry, content-addressed cache and embed_texts orchestration."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import audiencefit.features.embed as embed_module
from audiencefit.features.embed import Embedder, embed_texts, get_embedder, register_embedder
from audiencefit.features.embed_cache import EmbeddingCache, cache_key
from audiencefit.features.errors import InputError
from audiencefit.features.text import prepare_text
from tests.conftest import HashingEmbedder

TEXTS = [
    "Morning run by the river #5kRun 🏃",
    "My skincare routine for dry skin #skincareroutine",
    "Vegan pasta tonight! #veganrecipes",
    "Coffee and a good book ☕📚",
    "Leg day at the gym 💪 #MondayMotivation",
]


class OtherHashingEmbedder(HashingEmbedder):
    """Same vectors, different id: a cache must never hand one's vectors to the other."""

    id = "test/hashing-v1"  # sanitises to a different directory than "test-hashing/v1"


class RecordingEmbedder(HashingEmbedder):
    """Remembers the batches it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.batches.append(list(texts))
        return super().embed(texts)


class FailingAfter(HashingEmbedder):
    """Raises on the call after ``calls_ok`` calls, like a run interrupted half-way."""

    def __init__(self, calls_ok: int) -> None:
        super().__init__()
        self.calls_ok = calls_ok

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if self.calls >= self.calls_ok:
            raise KeyboardInterrupt
        return super().embed(texts)


def _cache(root: Path, embedder: Embedder) -> EmbeddingCache:
    return EmbeddingCache(root, embedder.id, embedder.dim)


def test_second_run_embeds_nothing_and_returns_identical_vectors(
    tmp_path: Path, hashing_embedder: HashingEmbedder
) -> None:
    first = embed_texts(TEXTS, hashing_embedder, _cache(tmp_path, hashing_embedder), progress=False)
    assert first.n_embedded == len(TEXTS) and first.n_cached == 0
    assert hashing_embedder.texts_embedded == len(TEXTS)

    # A fresh cache object reads the shards from disk.
    second = embed_texts(TEXTS, hashing_embedder, _cache(tmp_path, hashing_embedder), progress=False)
    assert second.n_embedded == 0 and second.n_cached == len(TEXTS)
    assert hashing_embedder.texts_embedded == len(TEXTS)  # the model was not called again
    np.testing.assert_array_equal(first.vectors, second.vectors)
    np.testing.assert_array_equal(first.valid, second.valid)


def test_only_new_texts_are_embedded(tmp_path: Path, hashing_embedder: HashingEmbedder) -> None:
    cache = _cache(tmp_path, hashing_embedder)
    embed_texts(TEXTS, hashing_embedder, cache, progress=False)
    more = [*TEXTS, "Sunset hike with the dog 🐶", "Homemade sourdough #baking"]
    result = embed_texts(more, hashing_embedder, cache, progress=False)
    assert result.n_embedded == 2 and result.n_cached == len(TEXTS)
    assert hashing_embedder.texts_embedded == len(TEXTS) + 2
    assert len(cache) == len(TEXTS) + 2


def test_another_embedder_never_reads_the_vectors(tmp_path: Path, hashing_embedder: HashingEmbedder) -> None:
    embed_texts(TEXTS, hashing_embedder, _cache(tmp_path, hashing_embedder), progress=False)
    other = OtherHashingEmbedder()
    result = embed_texts(TEXTS, other, _cache(tmp_path, other), progress=False)
    assert result.n_cached == 0 and result.n_embedded == len(TEXTS)

    # Even a cache for the other id pointed at the first one's directory finds nothing there.
    first_dir = _cache(tmp_path, hashing_embedder).directory
    intruder = EmbeddingCache(tmp_path, other.id, other.dim)
    intruder.directory = first_dir
    keys = [intruder.key(prepare_text(t)) for t in TEXTS]
    found, _ = intruder.get_many(keys)
    assert not found.any()
    assert cache_key(hashing_embedder.id, "x") != cache_key(other.id, "x")


def test_corrupt_shard_is_ignored_with_a_warning(
    tmp_path: Path, hashing_embedder: HashingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _cache(tmp_path, hashing_embedder)
    embed_texts(TEXTS[:3], hashing_embedder, cache, progress=False)
    embed_texts(TEXTS[3:], hashing_embedder, cache, progress=False)
    shards = sorted(cache.directory.glob("shard-*.arrow"))
    assert len(shards) == 2
    shards[1].write_bytes(shards[1].read_bytes()[:50])  # truncated, as after a disk error
    (cache.directory / "shard-zzzz-garbage.arrow").write_bytes(b"not arrow at all")
    (cache.directory / "shard-zzzz-garbage.parquet").write_bytes(b"not parquet at all")

    with caplog.at_level(logging.WARNING, logger="audiencefit.features.embed_cache"):
        fresh = _cache(tmp_path, hashing_embedder)
        assert len(fresh) == 3
        result = embed_texts(TEXTS, hashing_embedder, fresh, progress=False)
    assert result.n_cached == 3 and result.n_embedded == 2
    warned = [r for r in caplog.records if "unreadable embedding cache shard" in r.getMessage()]
    assert len(warned) == 3


def test_shard_of_the_wrong_width_is_ignored(
    tmp_path: Path, hashing_embedder: HashingEmbedder, caplog: pytest.LogCaptureFixture
) -> None:
    cache = _cache(tmp_path, hashing_embedder)
    embed_texts(TEXTS, hashing_embedder, cache, progress=False)
    narrower = EmbeddingCache(tmp_path, hashing_embedder.id, hashing_embedder.dim // 2)
    with caplog.at_level(logging.WARNING, logger="audiencefit.features.embed_cache"):
        assert len(narrower) == 0
    assert any("vector column" in str(getattr(r, "problem", "")) for r in caplog.records)


def test_results_do_not_depend_on_order_or_duplicates(hashing_embedder: HashingEmbedder) -> None:
    base = embed_texts(TEXTS, hashing_embedder, None, progress=False)
    order = [4, 2, 2, 0, 3, 1, 4, 0]
    shuffled = embed_texts([TEXTS[i] for i in order], HashingEmbedder(), None, batch_size=2, progress=False)
    np.testing.assert_array_equal(shuffled.vectors, base.vectors[order])
    assert shuffled.n_unique == len(TEXTS) and shuffled.n_embedded == len(TEXTS)

    # Each row is exactly the vector of its own prepared text (order restored after length sorting).
    single = HashingEmbedder()
    for i, text in enumerate(TEXTS):
        np.testing.assert_array_equal(base.vectors[i], single.embed([prepare_text(text)])[0])


def test_duplicates_are_embedded_once(hashing_embedder: HashingEmbedder) -> None:
    texts = ["Vegan pasta tonight!", "Vegan pasta tonight!", "vegan pasta tonight!", "Vegan  pasta tonight!"]
    result = embed_texts(texts, hashing_embedder, None, progress=False)
    # Whitespace collapses in preparation; case is kept (the model lower-cases anyway).
    assert hashing_embedder.texts_embedded == 2
    assert result.n_unique == 2 and result.n_embedded == 2


def test_texts_that_are_not_meaningful_get_zero_rows(hashing_embedder: HashingEmbedder) -> None:
    texts = [None, "", "😂😂", "Real words here", "a", "#1"]
    result = embed_texts(texts, hashing_embedder, None, progress=False)
    assert result.valid.tolist() == [False, False, False, True, False, False]
    assert result.vectors.dtype == np.float32 and result.vectors.shape == (6, hashing_embedder.dim)
    assert not result.vectors[~result.valid].any()
    assert np.linalg.norm(result.vectors[3]) == pytest.approx(1.0)
    assert hashing_embedder.texts_embedded == 1


def test_misses_are_batched_longest_first() -> None:
    recording = RecordingEmbedder()
    embed_texts(TEXTS, recording, None, batch_size=2, progress=False)
    assert [len(b) for b in recording.batches] == [2, 2, 1]
    lengths = [len(t) for batch in recording.batches for t in batch]
    assert lengths == sorted(lengths, reverse=True)


def test_interrupted_run_keeps_flushed_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_module, "FLUSH_EVERY", 2)
    texts = [f"caption number {word}" for word in ("one", "two", "three", "four", "five", "six", "seven")]
    failing = FailingAfter(calls_ok=3)
    with pytest.raises(KeyboardInterrupt):
        embed_texts(texts, failing, _cache(tmp_path, failing), batch_size=1, progress=False)

    resumed = HashingEmbedder()
    result = embed_texts(texts, resumed, _cache(tmp_path, resumed), batch_size=1, progress=False)
    assert result.n_cached == 2  # the first flush (2 vectors) survived; the third was not yet flushed
    assert result.n_embedded == 5


def test_shard_writes_are_atomic_and_put_many_skips_known_keys(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "test/atomic", 4)
    keys = [cache.key(f"text {i}") for i in range(5)]
    vectors = np.eye(5, 4, dtype=np.float32)
    assert cache.put_many(keys, vectors) == 5
    assert cache.put_many(keys[:3], vectors[:3]) == 0
    assert cache.put_many([keys[0], cache.key("new"), cache.key("new")], vectors[:3]) == 1
    files = sorted(p.name for p in cache.directory.iterdir())
    assert len(files) == 2 and all(f.startswith("shard-") and f.endswith(".arrow") for f in files)

    found, got = EmbeddingCache(tmp_path, "test/atomic", 4).get_many([*keys, cache.key("missing")])
    assert found.tolist() == [True] * 5 + [False]
    np.testing.assert_array_equal(got[:5], vectors)
    assert not got[5].any()
    with pytest.raises(ValueError, match="shape"):
        cache.put_many(keys[:2], vectors)


def test_keys_merged_in_shard_by_shard_equal_the_index_read_back_from_the_shards(tmp_path: Path) -> None:
    """put_many merges each new shard's keys into the sorted index; a process opening the cache sorts every shard's
    keys at once. Both must give the same index, and every vector must come back from either."""
    writer = EmbeddingCache(tmp_path, "test/merge", 3)
    rng = np.random.default_rng(1)
    texts = [f"text {i}" for i in range(400)]
    vectors = rng.normal(size=(400, 3)).astype(np.float32)
    for start, stop in ((0, 7), (7, 150), (150, 151), (151, 400)):
        batch = list(range(start, stop))[::-1] if start == 7 else list(range(start, stop))  # keys arrive unsorted
        writer.put_many([writer.key(texts[i]) for i in batch], vectors[batch])
    reader = EmbeddingCache(tmp_path, "test/merge", 3)
    assert len(reader) == 400  # loads the index from the shards
    for a, b in ((writer._keys, reader._keys), (writer._shard_of, reader._shard_of), (writer._row_of, reader._row_of)):
        np.testing.assert_array_equal(a, b)
    assert np.all(writer._keys[1:] > writer._keys[:-1]) and len(writer) == 400
    for cache in (writer, reader):
        found, got = cache.get_many([cache.key(t) for t in texts])
        assert found.all()
        np.testing.assert_array_equal(got, vectors)


def test_compact_merges_shards_and_keeps_every_vector(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "test/compact", 3)
    rng = np.random.default_rng(0)
    keys = [cache.key(f"t{i}") for i in range(30)]
    vectors = rng.normal(size=(30, 3)).astype(np.float32)
    for start in range(0, 30, 10):
        cache.put_many(keys[start : start + 10], vectors[start : start + 10])
    assert cache.compact() == 2
    assert len(list(cache.directory.glob("shard-*.arrow"))) == 1
    for reader in (cache, EmbeddingCache(tmp_path, "test/compact", 3)):
        found, got = reader.get_many(keys)
        assert found.all() and len(reader) == 30
        np.testing.assert_array_equal(got, vectors)


def test_registry_unknown_id_lists_known_ids() -> None:
    with pytest.raises(InputError, match="minilm-torch"):
        get_embedder("no-such-backend")


def test_registry_loads_each_backend_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embed_module, "_FACTORIES", dict(embed_module._FACTORIES))
    monkeypatch.setattr(embed_module, "_INSTANCES", {})
    built: list[HashingEmbedder] = []

    def factory() -> HashingEmbedder:
        built.append(HashingEmbedder())
        return built[-1]

    register_embedder("test-hashing", factory)
    assert get_embedder("test-hashing") is get_embedder("test-hashing")
    assert len(built) == 1
    assert isinstance(built[0], Embedder)


def test_cache_of_another_embedder_is_refused(tmp_path: Path, hashing_embedder: HashingEmbedder) -> None:
    with pytest.raises(ValueError, match="dimensional"):
        embed_texts(TEXTS, hashing_embedder, EmbeddingCache(tmp_path, hashing_embedder.id, 8), progress=False)
    with pytest.raises(ValueError, match="other-model"):
        embed_texts(TEXTS, hashing_embedder, EmbeddingCache(tmp_path, "other-model", 64), progress=False)


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return get_embedder("minilm-torch")


def test_real_minilm_vectors(minilm: Embedder) -> None:
    """The packaged all-MiniLM-L6-v2: shape, norm, determinism and one semantic direction."""
    texts = [
        prepare_text("Early morning 10k run along the river #marathontraining 🏃"),
        prepare_text("Interval training on the track today, legs are done #running"),
        prepare_text("My night-time skincare routine: serum, moisturiser, SPF #skincare"),
    ]
    first = minilm.embed(texts)
    assert minilm.dim == 384 and first.shape == (3, 384) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(minilm.embed(texts), first, atol=1e-6)
    run_run = float(first[0] @ first[1])
    run_skin = float(first[0] @ first[2])
    assert run_run > run_skin + 0.1


def _parquet_shard(cache: EmbeddingCache, keys: list[bytes], vectors: np.ndarray) -> None:
    """A shard as versions before the Arrow format wrote them (parquet, the same columns and metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    table = pa.Table.from_arrays(
        [
            pa.array(keys, type=pa.binary(16)),
            pa.FixedSizeListArray.from_arrays(flat, cache.dim),
        ],
        schema=pa.schema(
            [pa.field("key", pa.binary(16), nullable=False), pa.field("vector", pa.list_(pa.float32(), cache.dim))],
            metadata={
                b"audiencefit.embedder_id": cache.embedder_id.encode(),
                b"audiencefit.dim": str(cache.dim).encode(),
            },
        ),
    )
    cache.directory.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, cache.directory / "shard-00000000000000000001-legacy00.parquet")


def test_shards_of_the_parquet_format_are_still_read_and_compacted_into_the_new_one(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "test/legacy", 4)
    rng = np.random.default_rng(5)
    old_keys = [cache.key(f"old {i}") for i in range(6)]
    old = rng.normal(size=(6, 4)).astype(np.float32)
    _parquet_shard(cache, old_keys, old)
    new_keys = [cache.key(f"new {i}") for i in range(5)]
    new = rng.normal(size=(5, 4)).astype(np.float32)
    reader = EmbeddingCache(tmp_path, "test/legacy", 4)
    assert reader.put_many(new_keys + old_keys[:1], np.vstack([new, old[:1]])) == 5  # the old key is known
    for cache_now in (reader, EmbeddingCache(tmp_path, "test/legacy", 4)):
        found, got = cache_now.get_many([*old_keys, *new_keys])
        assert found.all()
        np.testing.assert_array_equal(got, np.vstack([old, new]))
    assert reader.compact() == 1
    assert [p.suffix for p in reader.directory.glob("shard-*")] == [".arrow"]
    found, got = EmbeddingCache(tmp_path, "test/legacy", 4).get_many([*old_keys, *new_keys])
    assert found.all()
    np.testing.assert_array_equal(got, np.vstack([old, new]))


def test_a_lookup_reads_only_the_rows_it_takes_from_a_mapped_shard(tmp_path: Path) -> None:
    """The vectors of an Arrow shard are a view of the mapped file, not a copy of the whole shard."""
    cache = EmbeddingCache(tmp_path, "test/mapped", 8)
    vectors = np.arange(8_000, dtype=np.float32).reshape(1_000, 8)
    keys = [cache.key(f"t{i}") for i in range(1_000)]
    cache.put_many(keys, vectors)
    [shard] = cache.directory.glob("shard-*.arrow")
    import pyarrow as pa

    allocated = pa.total_allocated_bytes()
    block = cache._read_vectors(shard)
    assert block is not None and not block.flags.owndata and block.shape == (1_000, 8)
    assert pa.total_allocated_bytes() - allocated < 1_000  # a view of the mapping: no 32 kB copy of the vectors
    found, got = EmbeddingCache(tmp_path, "test/mapped", 8).get_many([keys[999], keys[3]])
    assert found.all()
    np.testing.assert_array_equal(got, vectors[[999, 3]])
