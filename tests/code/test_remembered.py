"""The request path's memo (``audiencefit.models.remembered.Remembered``) and the query vectors kept with it."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from audiencefit.models.query import QueryVectors
from audiencefit.models.remembered import Remembered
from tests.hashing_embedder import HashingEmbedder


def test_least_recently_used_goes_first() -> None:
    memo: Remembered[str, tuple[str, ...]] = Remembered(2)
    made: list[str] = []

    def make(key: str) -> tuple[str, ...]:
        made.append(key)
        return (key,)

    assert memo.get("a", lambda: make("a")) == ("a",)
    assert memo.get("b", lambda: make("b")) == ("b",)
    assert memo.get("a", lambda: make("a")) == ("a",)  # a is now the most recent
    memo.get("c", lambda: make("c"))  # b goes
    assert "a" in memo and "c" in memo and "b" not in memo and len(memo) == 2
    assert made == ["a", "b", "c"]


def test_arrays_are_kept_read_only() -> None:
    memo: Remembered[int, np.ndarray] = Remembered(4)
    kept = memo.get(1, lambda: np.arange(3.0))
    with pytest.raises(ValueError, match="read-only"):
        kept[0] = 9.0
    assert memo.get(1, lambda: np.zeros(3)).tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("capacity", [0, -1])
def test_a_capacity_below_one_is_refused(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity"):
        Remembered(capacity)


def test_threads_making_the_same_value_agree_and_the_store_stays_bounded() -> None:
    memo: Remembered[int, tuple[int, ...]] = Remembered(8)
    seen: list[tuple[int, ...]] = []
    lock = threading.Lock()

    def work(offset: int) -> None:
        for i in range(200):
            value = memo.get((i + offset) % 32, lambda i=i: ((i + offset) % 32,))
            with lock:
                seen.append(value)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 800 and all(len(v) == 1 for v in seen)
    assert len(memo) == 8


def test_query_vectors_embed_a_text_once_and_give_the_same_vector_again() -> None:
    embedder = HashingEmbedder()
    vectors = QueryVectors(capacity=2)
    first = vectors.get(["runners in Paris", "  ", "skin care"], embedder)
    assert embedder.texts_embedded == 2  # the blank text is not embedded: a zero row
    assert not first[1].any() and first[0].any() and first[2].any()
    again = vectors.get(["skin care", "runners in Paris"], embedder)
    assert embedder.texts_embedded == 2
    np.testing.assert_array_equal(again, first[[2, 0]])
    vectors.get(["a third text"], embedder)  # capacity 2: the least recently used ("skin care") goes
    vectors.get(["runners in Paris"], embedder)
    assert embedder.texts_embedded == 3
    vectors.get(["skin care"], embedder)
    assert embedder.texts_embedded == 4 and len(vectors) == 2
    again[0, 0] = 5.0  # the caller's array is its own: the kept vector is unchanged
    np.testing.assert_array_equal(vectors.get(["skin care"], embedder)[0], first[2])
