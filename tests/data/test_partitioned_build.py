"""The partitioned feature build: the files do not depend on the partition count, and equal the in-memory
``compute_features``; the k-means sample does not depend on the partitioning either."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from audiencefit.features.build import build_feature_set, compute_features
from audiencefit.features.cluster_sample import (
    BasisCandidates,
    choose_sample,
    merge_candidates,
    partition_candidates,
    sample_size,
)
from audiencefit.features.dataset import load_dataset
from audiencefit.features.embed_cache import EmbeddingCache
from audiencefit.features.featureset import FOLLOWER_KEYS, load_feature_set
from audiencefit.features.partitions import split_dataset
from audiencefit.settings import Settings
from tests.conftest import SMALL_WORLD_CREATORS as WORLD_CREATORS
from tests.conftest import HashingEmbedder


@pytest.fixture()
def world(small_world: Path) -> Path:
    return small_world


def _settings(root: Path, **update: object) -> Settings:
    return Settings(data_dir=root / "data").model_copy(update=update)


def _build(data: Path, out: Path, partition_creators: int, **update: object) -> dict[str, Any]:
    # A fresh data directory (embedding cache) per build: nothing is shared but the input.
    return build_feature_set(
        data,
        out,
        settings=_settings(out.parent / f"{out.name}-data", **update),
        embedder=HashingEmbedder(),
        partition_creators=partition_creators,
        progress=False,
    )


def _assert_same_files(manifests: list[dict[str, Any]]) -> None:
    first = manifests[0]
    for other in manifests[1:]:
        assert other["files"] == first["files"]  # every file's sha256
        assert other["feature_set_id"] == first["feature_set_id"]


def test_one_three_and_seven_partitions_write_identical_files(world, tmp_path):
    # The last size leaves a partition of one creator (polars computes some one-row frames differently).
    sizes = [-(-WORLD_CREATORS // n) for n in (1, 3, 7)] + [WORLD_CREATORS - 1]
    manifests = [_build(world, tmp_path / f"fs{size}", size) for size in sizes]
    assert [m["partitions"]["count"] for m in manifests] == [1, 3, 7, 2]
    assert manifests[3]["partitions"]["creators"] == [WORLD_CREATORS - 1, 1]
    assert sum(manifests[2]["partitions"]["creators"]) == WORLD_CREATORS
    _assert_same_files(manifests)
    assert f"{FOLLOWER_KEYS}.parquet" in manifests[0]["files"]
    fs = load_feature_set(tmp_path / f"fs{sizes[2]}")
    assert fs.creators.height == WORLD_CREATORS
    assert fs.creators["creator_id"].is_sorted()
    assert manifests[2]["row_counts"]["terms"] == fs.terms.height > 0
    assert fs.terms.select("creator_id", "kind", "term").equals(
        fs.terms.select("creator_id", "kind", "term").sort("creator_id", "kind", "term")
    )
    # Sizes count every assigned follower vector, not only the k-means sample's.
    assert int(fs.clusters["size"].sum()) >= manifests[0]["audience_cluster_sample"]["rows"] > 0
    assert manifests[0]["audience_cluster_sample"]["basis"] == "followers"


def _drop_rows_of(src: Path, dst: Path, creators: list[str], tables: tuple[str, ...]) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("truth"))
    for name in tables:
        frame = pl.read_parquet(dst / f"{name}.parquet")
        frame.filter(~pl.col("creator_id").is_in(creators)).write_parquet(dst / f"{name}.parquet")
    return dst


def test_partitions_whose_creators_have_no_posts_or_no_followers(world, tmp_path):
    ids = pl.read_parquet(world / "creators.parquet")["creator_id"].sort().to_list()
    # Creators 100–139 (partitions 5 and 6 of 20 creators each) lose their followers, 60–99 their posts too.
    data = _drop_rows_of(world, tmp_path / "w1", ids[100:140], ("followers",))
    data2 = _drop_rows_of(data, tmp_path / "w2", ids[60:100], ("posts", "followers"))
    manifests = [_build(data2, tmp_path / f"fs{p}", p) for p in (WORLD_CREATORS, 20)]
    _assert_same_files(manifests)
    fs = load_feature_set(tmp_path / "fs20")
    silent = fs.creators.filter(pl.col("creator_id").is_in(ids[60:100]))
    assert (silent["audience_source"] != "followers").all() and (silent["follower_sample_size"] == 0).all()
    assert silent["n_posts"].fill_null(0).max() == 0
    keys = fs.follower_keys
    assert keys is not None and not keys["creator_id"].is_in(ids[60:140]).any()


def test_a_posts_only_export_is_partition_independent_and_clusters_captions(world, tmp_path):
    data = tmp_path / "posts-only"
    data.mkdir()
    for name in ("creators", "posts"):
        shutil.copy(world / f"{name}.parquet", data / f"{name}.parquet")
    manifests = [_build(data, tmp_path / f"fs{p}", p) for p in (WORLD_CREATORS, 37)]
    _assert_same_files(manifests)
    assert manifests[0]["audience_cluster_sample"]["basis"] == "captions"
    assert f"{FOLLOWER_KEYS}.parquet" not in manifests[0]["files"]
    fs = load_feature_set(tmp_path / "fs37")
    assert fs.follower_keys is None
    assert set(fs.creators["audience_source"].unique()) <= {"content", "none"}


def test_compute_features_equals_the_partitioned_build(world, tmp_path):
    _build(world, tmp_path / "fs", 41)
    fs = load_feature_set(tmp_path / "fs")
    settings = _settings(tmp_path / "mem")
    dataset = load_dataset(world, secret=settings.follower_id_secret.get_secret_value())
    embedder = HashingEmbedder()
    cache = EmbeddingCache(settings.embedding_cache_dir, embedder.id, embedder.dim)
    mem = compute_features(dataset, as_of=None, embedder=embedder, cache=cache, settings=settings, progress=False)
    for name in ("creators", "terms", "audience_geo", "clusters", "follower_keys", "recent_captions"):
        assert getattr(mem, name).equals(getattr(fs, name)), name
    for name in ("bio", "content", "audience", "audience_dist", "centroids"):
        assert np.array_equal(getattr(mem, name), getattr(fs, name)), name


def _candidates(world: Path, settings: Settings, partition_creators: int) -> BasisCandidates:
    dataset = load_dataset(world, secret=settings.follower_id_secret.get_secret_value())
    source = split_dataset(dataset, partition_creators)
    k, m = settings.audience_clusters, sample_size(settings.audience_clusters)
    merged = BasisCandidates.empty()
    for i in range(source.n_partitions):
        found = partition_candidates(
            source.load(i),
            as_of=dataset.export.instant if dataset.export else None,
            settings=settings,
            need_captions=merged.followers_eligible < k,
        )
        merged = merge_candidates(merged, found, m)
    return merged


@pytest.mark.parametrize("k", [2, 24])
def test_the_kmeans_sample_does_not_depend_on_partitioning_and_is_at_most_k_256(world, tmp_path, k):
    settings = _settings(tmp_path, audience_clusters=k)
    samples = [choose_sample(_candidates(world, settings, p), k) for p in (WORLD_CREATORS, 50, 7)]
    assert all(s.basis == "followers" for s in samples)
    assert samples[0].texts == samples[1].texts == samples[2].texts
    assert 0 < len(samples[0].texts) <= k * 256
    if k == 2:  # ~3,000 eligible followers: the cap binds, and the sample is the bottom-512 by key
        assert len(samples[0].texts) == 512


def test_the_caption_sample_does_not_depend_on_partitioning(world, tmp_path):
    data = tmp_path / "posts-only"
    data.mkdir()
    for name in ("creators", "posts"):
        shutil.copy(world / f"{name}.parquet", data / f"{name}.parquet")
    settings = _settings(tmp_path, audience_clusters=2)
    merged = [_candidates(data, settings, p) for p in (WORLD_CREATORS, 13)]
    assert merged[0].captions.equals(merged[1].captions)
    assert merged[0].captions.height == 512 and merged[0].captions["key"].is_sorted()
    assert choose_sample(merged[0], 2).basis == "captions"


def test_the_partition_size_is_validated_by_the_setting_and_the_builder(world, tmp_path, monkeypatch):
    from pydantic import ValidationError

    from audiencefit.features.errors import InputError
    from audiencefit.settings import get_settings

    monkeypatch.setenv("AUDIENCEFIT_FEATURE_PARTITION_CREATORS", "0")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="feature_partition_creators"):
        Settings()
    monkeypatch.delenv("AUDIENCEFIT_FEATURE_PARTITION_CREATORS")
    get_settings.cache_clear()
    with pytest.raises(InputError, match="--partition-creators 0"):
        _build(world, tmp_path / "fs", 0)
    assert not (tmp_path / "fs").exists()


def test_the_parquet_writer_bytes_do_not_depend_on_how_rows_arrive(tmp_path):
    from audiencefit.features.featureset_writer import ParquetTableWriter

    schema = {"creator_id": pl.String, "rank": pl.Int32, "caption": pl.String}
    frame = pl.DataFrame(
        {"creator_id": [f"c{i:03d}" for i in range(53)], "rank": list(range(53)), "caption": ["x"] * 53}
    )
    digests = []
    for n, sizes in enumerate(([53], [1, 52], [7] * 7 + [4], [0, 20, 0, 33])):
        writer = ParquetTableWriter(tmp_path / f"t{n}.parquet", schema, row_group_rows=10)
        start = 0
        for size in sizes:
            writer.write(frame.slice(start, size))
            start += size
        writer.close()
        digests.append((tmp_path / f"t{n}.parquet").read_bytes())
        assert pl.read_parquet(tmp_path / f"t{n}.parquet").equals(frame.cast(schema))  # type: ignore[arg-type]
    assert len(set(digests)) == 1
    import pyarrow.parquet as pq

    assert [pq.ParquetFile(tmp_path / "t0.parquet").metadata.row_group(i).num_rows for i in range(6)] == [10] * 5 + [3]


def test_the_memmapped_matrices_have_the_bytes_np_save_writes(tmp_path):
    matrix = np.arange(12, dtype=np.float32).reshape(4, 3)
    np.save(tmp_path / "saved.npy", matrix)
    mapped = np.lib.format.open_memmap(tmp_path / "mapped.npy", mode="w+", dtype=np.float32, shape=(4, 3))
    mapped[:2], mapped[2:] = matrix[:2], matrix[2:]
    mapped.flush()
    del mapped
    assert (tmp_path / "saved.npy").read_bytes() == (tmp_path / "mapped.npy").read_bytes()
