"""features build: completeness, cache reuse, point-in-time cut, atomic write, posts-only exports."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import audiencefit.features.build as build_mod
from audiencefit.features.build import build_feature_set
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import FEATURE_VERSION, load_feature_set

AS_OF = datetime(2026, 3, 1, tzinfo=UTC)


def _copy_world(src: Path, dst: Path, tables: tuple[str, ...] = ("creators", "posts", "followers")) -> Path:
    dst.mkdir(parents=True)
    for name in tables:
        shutil.copy(src / f"{name}.parquet", dst / f"{name}.parquet")
    return dst


def test_build_writes_a_complete_loadable_feature_set(small_world, tmp_path, isolated_settings, hashing_embedder):
    out = tmp_path / "fs"
    manifest = build_feature_set(small_world, out, settings=isolated_settings, embedder=hashing_embedder)
    fs = load_feature_set(out)
    n = pl.read_parquet(small_world / "creators.parquet").height
    assert fs.creators.height == n == manifest["row_counts"]["creators"]
    assert fs.version == FEATURE_VERSION
    assert fs.embedder_id == hashing_embedder.id
    for name in ("bio", "content", "audience"):
        matrix = getattr(fs, name)
        assert matrix.shape == (n, hashing_embedder.dim) and matrix.dtype == np.float32
    norms = np.linalg.norm(fs.audience, axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    # Audience distributions sum to one for every creator with an audience.
    sums = fs.audience_dist.sum(axis=1)
    assert np.allclose(sums[norms > 0], 1.0, atol=1e-4)
    assert set(fs.creators["audience_source"].unique()) <= {"followers", "content", "none"}
    assert (fs.creators["audience_source"] == "followers").sum() > n // 2
    assert {"er_median", "posts_per_week", "audience_quality", "follower_tier"} <= set(fs.creators.columns)
    assert fs.clusters.height == fs.centroids.shape[0]
    # No raw follower id appears anywhere in the feature set.
    raw_ids = set(pl.read_parquet(small_world / "followers.parquet")["follower_id"].head(50).to_list())
    blob = b"".join(p.read_bytes() for p in out.rglob("*.parquet"))
    assert not any(rid.encode() in blob for rid in raw_ids if len(rid) > 6)


def test_second_run_embeds_nothing_and_is_identical(small_world, tmp_path, isolated_settings, hashing_embedder):
    first = build_feature_set(small_world, tmp_path / "a", settings=isolated_settings, embedder=hashing_embedder)
    assert sum(v for k, v in first["embedding"].items() if k.endswith("_embedded")) > 0
    embedded_before = hashing_embedder.texts_embedded
    second = build_feature_set(small_world, tmp_path / "b", settings=isolated_settings, embedder=hashing_embedder)
    assert hashing_embedder.texts_embedded == embedded_before
    assert all(v == 0 for k, v in second["embedding"].items() if k.endswith("_embedded"))
    a, b = load_feature_set(tmp_path / "a"), load_feature_set(tmp_path / "b")
    assert a.creators.equals(b.creators)
    assert np.array_equal(a.audience, b.audience) and np.array_equal(a.audience_dist, b.audience_dist)
    assert first["feature_set_id"] == second["feature_set_id"]


def test_posts_after_the_cut_off_change_nothing(small_world, tmp_path, isolated_settings, hashing_embedder):
    base = _copy_world(small_world, tmp_path / "raw")
    build_feature_set(base, tmp_path / "before", as_of=AS_OF, settings=isolated_settings, embedder=hashing_embedder)

    posts = pl.read_parquet(base / "posts.parquet")
    later = posts.head(300).with_columns(
        pl.concat_str(pl.lit("late-"), pl.col("post_id")).alias("post_id"),
        pl.lit(AS_OF + timedelta(days=3)).cast(posts.schema["posted_at"]).alias("posted_at"),
        (pl.col("likes") * 50).alias("likes"),
        pl.lit("a brand new caption about something else entirely #newtopic").alias("caption"),
    )
    pl.concat([posts, later]).write_parquet(base / "posts.parquet")
    followers = pl.read_parquet(base / "followers.parquet")
    late_followers = followers.head(200).with_columns(
        pl.concat_str(pl.lit("late-"), pl.col("follower_id")).alias("follower_id"),
        pl.lit(AS_OF + timedelta(days=1)).cast(followers.schema["observed_at"]).alias("observed_at"),
        pl.lit("crypto trader dm for promo").alias("bio"),
    )
    pl.concat([followers, late_followers]).write_parquet(base / "followers.parquet")
    build_feature_set(base, tmp_path / "after", as_of=AS_OF, settings=isolated_settings, embedder=hashing_embedder)

    before, after = load_feature_set(tmp_path / "before"), load_feature_set(tmp_path / "after")
    assert before.creators.equals(after.creators)
    assert before.terms.equals(after.terms)
    for name in ("bio", "content", "audience", "audience_dist", "centroids"):
        assert np.array_equal(getattr(before, name), getattr(after, name)), name
    # ...while a build without the cut-off does see them.
    build_feature_set(base, tmp_path / "now", settings=isolated_settings, embedder=hashing_embedder)
    assert not load_feature_set(tmp_path / "now").creators.equals(after.creators)


def test_a_crash_while_writing_leaves_no_partial_feature_set(
    small_world, tmp_path, isolated_settings, hashing_embedder, monkeypatch
):
    out = tmp_path / "fs"
    build_feature_set(small_world, out, settings=isolated_settings, embedder=hashing_embedder)
    before = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    real_write = build_mod._write_manifest

    def crash_midway(target, manifest):  # every feature file is written by now
        real_write(target, manifest)
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(build_mod, "_write_manifest", crash_midway)
    with pytest.raises(OSError, match="simulated"):
        build_feature_set(small_world, out, settings=isolated_settings, embedder=hashing_embedder)
    after = {p.name: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before  # the previous feature set still stands, untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left behind


def test_bad_input_fails_before_anything_is_written(small_world, tmp_path, isolated_settings, hashing_embedder):
    raw = _copy_world(small_world, tmp_path / "raw")
    posts = pl.read_parquet(raw / "posts.parquet")
    posts.with_columns(
        pl.when(pl.int_range(pl.len()) == 3).then(-5).otherwise(pl.col("likes")).alias("likes")
    ).write_parquet(raw / "posts.parquet")
    out = tmp_path / "fs"
    with pytest.raises(InputError) as err:
        build_feature_set(raw, out, settings=isolated_settings, embedder=hashing_embedder)
    assert "posts" in str(err.value) and "likes" in str(err.value)
    assert not out.exists()
    assert hashing_embedder.calls == 0


def test_posts_only_export_gets_a_full_feature_set(small_world, tmp_path, isolated_settings, hashing_embedder):
    raw = _copy_world(small_world, tmp_path / "raw", tables=("creators", "posts"))
    creators = pl.read_parquet(raw / "creators.parquet").with_columns(bio=pl.lit(None, dtype=pl.String))
    creators.write_parquet(raw / "creators.parquet")  # missing bios too, as in many real exports
    build_feature_set(raw, tmp_path / "fs", settings=isolated_settings, embedder=hashing_embedder)
    fs = load_feature_set(tmp_path / "fs")
    assert set(fs.creators["audience_source"].unique()) <= {"content", "none"}
    assert (fs.creators["audience_source"] == "content").mean() > 0.9
    assert fs.creators["audience_quality"].null_count() == 0
    assert set(fs.creators["quality_source"].unique()) == {"engagement"}


def test_damaged_feature_set_is_refused(small_world, tmp_path, isolated_settings, hashing_embedder):
    out = tmp_path / "fs"
    build_feature_set(small_world, out, settings=isolated_settings, embedder=hashing_embedder)
    vec = out / "vectors" / "audience.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum mismatch"):
        load_feature_set(out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["feature_version"] = "0"
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="feature version"):
        load_feature_set(out)


# --- the export instant (issue #17, item 8) --------------------------------------------------------------------


def test_statistics_are_taken_as_of_the_stated_export_instant(
    small_world, tmp_path, isolated_settings, hashing_embedder
):
    manifest = build_feature_set(small_world, tmp_path / "fs", settings=isolated_settings, embedder=hashing_embedder)
    assert manifest["export_instant"] == "2026-06-30T00:00:00+00:00"  # the synthetic world states it
    assert manifest["export_instant_source"] == "export.json"
    assert manifest["as_of"] is None and manifest["stats_as_of"] == manifest["export_instant"]
    creators = load_feature_set(tmp_path / "fs").creators.filter(pl.col("last_post_at").is_not_null())
    export = datetime(2026, 6, 30, tzinfo=UTC)
    expected = [(export - t).total_seconds() / 86_400 for t in creators["last_post_at"].to_list()]
    assert creators["days_since_last_post"].to_list() == pytest.approx(expected)

    raw = _copy_world(small_world, tmp_path / "raw")  # no export.json: a stated --export-time
    stated = datetime(2026, 7, 10, tzinfo=UTC)
    manifest = build_feature_set(
        raw, tmp_path / "fs2", export_time=stated, settings=isolated_settings, embedder=hashing_embedder
    )
    assert manifest["export_instant_source"] == "--export-time"
    again = load_feature_set(tmp_path / "fs2").creators.filter(pl.col("last_post_at").is_not_null())
    assert again["days_since_last_post"].to_list() == pytest.approx([d + 10 for d in expected])


def test_posts_dated_9999_are_refused_not_turned_into_millions_of_inactive_days(
    small_world, tmp_path, isolated_settings, hashing_embedder
):
    raw = _copy_world(small_world, tmp_path / "raw")
    posts = pl.read_parquet(raw / "posts.parquet")
    future = posts.head(5).with_columns(
        pl.concat_str(pl.lit("future-"), pl.col("post_id")).alias("post_id"),
        pl.lit(datetime(9999, 12, 31, tzinfo=UTC)).cast(posts.schema["posted_at"]).alias("posted_at"),
    )
    pl.concat([posts, future]).write_parquet(raw / "posts.parquet")
    out = tmp_path / "fs"
    with pytest.raises(InputError) as err:
        build_feature_set(raw, out, settings=isolated_settings, embedder=hashing_embedder)
    message = str(err.value)
    assert (
        f"posts.parquet, row {posts.height + 1}, column 'posted_at': timestamp 9999-12-31T00:00:00Z is after" in message
    )
    assert message.count("9999-12-31") == 5
    assert not out.exists()


# --- per-creator bounds (issue #17, item 10) -------------------------------------------------------------------


def test_followers_beyond_the_cap_are_sampled_deterministically(
    small_world, tmp_path, isolated_settings, hashing_embedder
):
    capped = isolated_settings.model_copy(update={"max_followers_per_creator": 4})
    first = build_feature_set(small_world, tmp_path / "a", settings=capped, embedder=hashing_embedder)
    second = build_feature_set(small_world, tmp_path / "b", settings=capped, embedder=hashing_embedder)
    a, b = load_feature_set(tmp_path / "a"), load_feature_set(tmp_path / "b")
    raw = pl.read_parquet(small_world / "followers.parquet")
    assert raw.group_by("creator_id").len()["len"].max() > 4  # the world has creators above the cap
    assert a.creators["follower_sample_size"].max() == 4
    assert a.creators["audience_sample_size"].max() <= 4
    keys = a.follower_keys
    assert keys is not None and keys.group_by("creator_id").len()["len"].max() == 4

    assert a.creators.equals(b.creators) and np.array_equal(a.audience, b.audience)  # same input, same features
    assert first["feature_set_id"] == second["feature_set_id"]
    assert first["settings"]["max_followers_per_creator"] == 4

    uncapped = build_feature_set(small_world, tmp_path / "c", settings=isolated_settings, embedder=hashing_embedder)
    assert uncapped["feature_set_id"] != first["feature_set_id"]  # the cap is part of the feature set's identity
    assert load_feature_set(tmp_path / "c").creators["follower_sample_size"].max() > 4


def test_a_cut_off_after_the_export_instant_is_refused(small_world, tmp_path, isolated_settings, hashing_embedder):
    with pytest.raises(InputError, match="--as-of 9999-12-31T00:00:00Z: outside 2004-01-01 … the export instant"):
        build_feature_set(
            small_world,
            tmp_path / "fs",
            as_of=datetime(9999, 12, 31, tzinfo=UTC),
            settings=isolated_settings,
            embedder=hashing_embedder,
        )
    assert not (tmp_path / "fs").exists()
