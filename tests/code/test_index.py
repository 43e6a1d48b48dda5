"""Approximate indexes against exact search, filters inside the search, narrow filters, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from audiencefit.features.errors import InputError
from audiencefit.models.index import VectorIndex, build_faiss
from audiencefit.settings import Settings


def topic_mixture_vectors(n: int, dim: int = 384, topics: int = 30, seed: int = 0) -> np.ndarray:
    """Unit vectors shaped like audience representations: sparse mixtures of topic directions plus noise.

    Database and queries must come from one call (one set of topics): queries unrelated to the data would measure
    an out-of-distribution case that segment queries, embedded by the same model, never are.
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(topics, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = rng.dirichlet(np.full(topics, 0.15), size=n) @ centres + 0.5 * rng.normal(size=(n, dim)) / np.sqrt(dim)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def exact_top(vectors: np.ndarray, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = queries @ vectors.T
    if allowed is not None:
        scores[:, ~allowed] = -np.inf
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


_BUILT: dict[tuple[int, str], VectorIndex] = {}


def make_index(vectors: np.ndarray, **overrides) -> VectorIndex:
    """Build (once per module for the same data and settings) an approximate index over ``vectors``."""
    key = (id(vectors), repr(sorted(overrides.items())))
    if key not in _BUILT:
        index, index_type, params = build_faiss(vectors, Settings(index_exact_max=0, **overrides))
        _BUILT[key] = VectorIndex("audience", index, vectors, "fs-test", index_type, params)
    return _BUILT[key]


def mean_recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found.tolist(), truth.tolist(), strict=True)]))


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    both = topic_mixture_vectors(20_040)
    return both[:20_000], both[20_000:]


@pytest.mark.parametrize(
    ("index_type", "encoding"), [("ivf", "int8"), ("ivf", "sq8"), ("ivf", "flat"), ("hnsw", "flat")]
)
def test_approximate_index_recall_at_100_against_exact(data, index_type, encoding):
    vectors, queries = data
    idx = make_index(vectors, index_type=index_type, ivf_encoding=encoding)
    assert idx.index_type == index_type
    _, rows = idx.search(queries, 100)
    assert mean_recall(rows, exact_top(vectors, queries, 100)) >= 0.98


@pytest.mark.parametrize("encoding", ["int8", "sq8"])
def test_encoded_index_returns_exact_scores_in_exact_order(data, encoding):
    vectors, queries = data
    idx = make_index(vectors, index_type="ivf", ivf_encoding=encoding)
    assert idx.params["encoding"] == encoding
    approx, rows_approx = idx.search(queries, 100, exact_scores=False)
    scores, rows = idx.search(queries, 100)
    exact = np.einsum("qkd,qd->qk", vectors[rows], queries)
    np.testing.assert_array_equal(scores, exact.astype(np.float32))
    assert np.all(np.diff(scores, axis=1) <= 0)
    assert not np.array_equal(approx, scores)
    # With exact scores the index fetches more rows and keeps the best: never fewer of the true top 100.
    truth = exact_top(vectors, queries, 100)
    assert mean_recall(rows, truth) >= mean_recall(rows_approx, truth)


@pytest.mark.parametrize("index_type", ["ivf", "hnsw"])
def test_filter_is_applied_inside_the_search(data, index_type, monkeypatch):
    vectors, queries = data
    idx = make_index(vectors, index_type=index_type)
    rng = np.random.default_rng(3)
    allowed = rng.random(len(vectors)) < 0.6  # wide filter: answered by FAISS with an IDSelector
    monkeypatch.setattr("audiencefit.models.index.EXACT_SUBSET_MAX", 1_000)
    _, rows = idx.search(queries, 100, allowed)
    assert rows.shape == (len(queries), 100)
    assert allowed[rows].all()
    assert mean_recall(rows, exact_top(vectors, queries, 100, allowed)) >= 0.98


def test_narrow_filter_still_returns_a_full_exact_list(data):
    vectors, queries = data
    idx = make_index(vectors, index_type="ivf", ivf_nprobe=1)  # one list: a post-filter would come back short
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[np.random.default_rng(4).choice(len(vectors), 300, replace=False)] = True
    _, rows = idx.search(queries, 100, allowed)
    assert rows.shape == (len(queries), 100)
    assert (rows >= 0).all() and allowed[rows].all()
    np.testing.assert_array_equal(rows, exact_top(vectors, queries, 100, allowed))


def test_fewer_allowed_than_k_returns_all_of_them(data):
    vectors, queries = data
    idx = make_index(vectors)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[[5, 17, 99]] = True
    scores, rows = idx.search(queries[:2], 50, allowed)
    assert rows.shape == (2, 3)
    assert set(rows[0].tolist()) == {5, 17, 99}
    assert np.all(np.diff(scores[0]) <= 0)


def test_nothing_allowed_returns_empty(data):
    vectors, queries = data
    idx = make_index(vectors)
    _, rows = idx.search(queries[:2], 10, np.zeros(len(vectors), dtype=bool))
    assert rows.shape == (2, 0)


def test_exact_index_below_threshold_and_deterministic_builds(data):
    vectors, queries = data
    flat, kind, _ = build_faiss(vectors[:500], Settings(index_exact_max=1_000))
    assert flat.ntotal == 500
    assert kind == "flat"
    a = make_index(vectors, index_type="ivf").search(queries, 20)[1]
    fresh, _, params = build_faiss(vectors, Settings(index_exact_max=0, index_type="ivf"))
    b = VectorIndex("audience", fresh, vectors, "fs-test", "ivf", params).search(queries, 20)[1]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("allowed_share", [0.02, 0.6])
def test_exact_subset_equals_a_stable_full_sort_including_ties(allowed_share):
    from audiencefit.models.index import _exact_subset

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(2_000, 16)).astype(np.float32)
    vectors[100:110] = vectors[7]  # exact ties: the lower row must come first
    queries = np.vstack([vectors[7], rng.normal(size=(3, 16)).astype(np.float32)])
    rows = np.flatnonzero(rng.random(2_000) < allowed_share)
    rows = np.union1d(rows, np.r_[7, 100:110])
    scores, found = _exact_subset(vectors, queries, 25, rows)
    full = queries @ vectors[rows].T
    expected = rows[np.argsort(-full, axis=1, kind="stable")[:, :25]]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(full, np.argsort(-full, axis=1, kind="stable")[:, :25], 1))


def test_int8_index_scans_the_float_index_lists_and_approximates_the_inner_product(data):
    vectors, queries = data
    idx = make_index(vectors, index_type="ivf", ivf_encoding="int8")
    flat = make_index(vectors, index_type="ivf", ivf_encoding="flat")
    # The same k-means lists as the float index: with every list visited, only the codes' rounding differs.
    import faiss

    a, b = faiss.extract_index_ivf(idx.index), faiss.extract_index_ivf(flat.index)
    assert [a.invlists.list_size(i) for i in range(a.nlist)] == [b.invlists.list_size(i) for i in range(b.nlist)]
    approx, rows = idx.search(queries, 100, exact_scores=False)
    exact = np.einsum("qkd,qd->qk", vectors[rows], queries)
    assert np.abs(approx - exact).max() < 0.02  # back on the inner product's scale
    assert np.all(np.diff(approx, axis=1) <= 1e-6)


def test_int8_index_survives_a_save_and_load(tmp_path, data, monkeypatch):
    from dataclasses import replace
    from types import SimpleNamespace

    from audiencefit.models.index import load_index, save_index

    vectors, queries = data
    idx = make_index(vectors, index_type="ivf", ivf_encoding="int8")
    save_index(idx, tmp_path)
    assert '"encoding": "int8"' in (tmp_path / "audience.json").read_text(encoding="utf-8")
    view = SimpleNamespace(feature_set_id="fs-test", creators=SimpleNamespace(height=len(vectors)), path=tmp_path)
    monkeypatch.setattr("audiencefit.models.index.index_vectors", lambda fs, kind: vectors)
    loaded = load_index(view, "audience", tmp_path)  # type: ignore[arg-type]
    np.testing.assert_array_equal(loaded.search(queries, 50)[1], idx.search(queries, 50)[1])
    with pytest.raises(InputError, match="int8 index: its offsets and scales must be 384 finite numbers"):
        replace(loaded, params={**loaded.params, "int8_scale": [1.0, 2.0]})
    manifest = json.loads((tmp_path / "audience.json").read_text(encoding="utf-8"))
    manifest["params"]["int8_scale"][3] = 0.0
    (tmp_path / "audience.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(InputError, match=r"audience\.json: int8 index: .*; rebuild the index"):
        load_index(view, "audience", tmp_path)  # type: ignore[arg-type]


@pytest.mark.parametrize("encoding", ["int8", "sq8", "flat"])
def test_an_ivf_build_trains_and_assigns_with_one_faiss_thread(data, encoding, monkeypatch):
    """BLAS products (k-means, list assignment) change in their last bits with the thread count, enough to move
    centroids (measured on the 100k world's audience vectors: 6e-4 between 1 and 2 threads), so the lists are built
    with one thread whatever the machine, and the caller's setting is restored."""
    import faiss

    vectors, _ = data
    seen: list[tuple[str, int]] = []

    def spy(cls: type, name: str) -> None:
        original = getattr(cls, name)

        def recorded(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            seen.append((f"{cls.__name__}.{name}", faiss.omp_get_max_threads()))
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, name, recorded)

    for cls in (faiss.IndexIVFFlat, faiss.IndexIVFScalarQuantizer, faiss.IndexFlatIP):
        for name in ("train", "add", "search"):
            spy(cls, name)
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(2)
    try:
        build_faiss(vectors[:5_000], Settings(index_exact_max=0, ivf_encoding=encoding))
        assert faiss.omp_get_max_threads() == 2
    finally:
        faiss.omp_set_num_threads(before)
    assert any(name.endswith(".train") for name, _ in seen)
    assert {threads for _, threads in seen} == {1}, seen


def test_each_query_is_answered_as_if_alone_when_others_come_back_short(data, monkeypatch):
    """A narrow filter leaves some queries short (scored exactly over the allowed rows) and not others: each
    query's rows are those it gets on its own, whichever queries share its call (the API remembers segments)."""
    import audiencefit.models.index as index_module

    vectors, queries = data
    idx = make_index(vectors, index_type="ivf", ivf_nprobe=1)
    allowed = np.zeros(len(vectors), dtype=bool)
    allowed[np.random.default_rng(5).choice(len(vectors), 2_000, replace=False)] = True
    monkeypatch.setattr("audiencefit.models.index.EXACT_SUBSET_MAX", 100)
    exact_queries: list[int] = []
    real = index_module._exact_subset

    def counted(vecs, qs, k, rows):
        exact_queries.append(len(qs))
        return real(vecs, qs, k, rows)

    monkeypatch.setattr(index_module, "_exact_subset", counted)
    _, together = idx.search(queries, 10, allowed, exact_scores=False)
    assert 0 < exact_queries[0] < len(queries)  # a mix: some short, some answered by the index
    alone = np.vstack([idx.search(q[None, :], 10, allowed, exact_scores=False)[1] for q in queries])
    np.testing.assert_array_equal(together, alone)
    assert allowed[together].all()
