"""features update: recomputing only changed creators gives the files of a full build (clusters kept)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from audiencefit.features.build import build_feature_set, update_feature_set
from audiencefit.features.errors import InputError
from audiencefit.features.export import EXPORT_MANIFEST
from audiencefit.features.featureset import load_feature_set

TABLES = ("creators", "posts", "followers")


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in TABLES:
        shutil.copy(src / f"{name}.parquet", dst / f"{name}.parquet")
    if (src / EXPORT_MANIFEST).is_file():
        shutil.copy(src / EXPORT_MANIFEST, dst / EXPORT_MANIFEST)
    return dst


def _next_day(src: Path, dst: Path, *, shift_export: bool) -> dict[str, list[str]]:
    """The next day's export: one creator gone, one new, changed counts, a new post, a new follower."""
    day = _copy(src, dst)
    creators = pl.read_parquet(day / "creators.parquet")
    posts = pl.read_parquet(day / "posts.parquet")
    followers = pl.read_parquet(day / "followers.parquet")
    ids = creators["creator_id"].sort().to_list()
    gone, liked, posting, followed, edited = ids[3], ids[10], ids[20], ids[30], ids[40]
    new_row = creators.filter(pl.col("creator_id") == ids[50]).with_columns(
        creator_id=pl.lit("zz-new-creator"), handle=pl.lit("newcomer")
    )
    creators = pl.concat([creators.filter(pl.col("creator_id") != gone), new_row]).with_columns(
        bio=pl.when(pl.col("creator_id") == edited).then(pl.lit("Trail runner and mountain cook")).otherwise("bio")
    )
    posts = posts.filter(pl.col("creator_id") != gone).with_columns(
        likes=pl.when(pl.col("creator_id") == liked).then(pl.col("likes") + 7).otherwise("likes")
    )
    extra = (
        posts.filter(pl.col("creator_id") == posting)
        .head(1)
        .with_columns(post_id=pl.lit("zz-new-post"), posted_at=pl.col("posted_at") - timedelta(hours=1))
    )
    newcomer_posts = posts.filter(pl.col("creator_id") == ids[50]).with_columns(
        creator_id=pl.lit("zz-new-creator"), post_id=pl.col("post_id") + "-n"
    )
    posts = pl.concat([posts, extra, newcomer_posts])
    donor = followers.filter(pl.col("creator_id") != followed)["creator_id"][0]
    more = followers.filter(pl.col("creator_id") == donor).head(2).with_columns(creator_id=pl.lit(followed))
    followers = pl.concat([followers.filter(pl.col("creator_id") != gone), more])
    creators.write_parquet(day / "creators.parquet")
    posts.write_parquet(day / "posts.parquet")
    followers.write_parquet(day / "followers.parquet")
    if shift_export:
        manifest = json.loads((day / EXPORT_MANIFEST).read_text())
        instant = manifest["exported_at"]
        manifest["exported_at"] = instant.replace(instant[:10], _plus_days(instant[:10], 1))
        (day / EXPORT_MANIFEST).write_text(json.dumps(manifest))
    return {"gone": [gone], "changed": [liked, posting, followed, edited], "new": ["zz-new-creator"]}


def _plus_days(date: str, days: int) -> str:
    from datetime import date as d

    return (d.fromisoformat(date) + timedelta(days=days)).isoformat()


@pytest.mark.parametrize(("shift_export", "parts"), [(False, 10_000), (True, 97)])
def test_update_equals_full_build_with_the_same_clusters(
    small_world, tmp_path, isolated_settings, hashing_embedder, shift_export, parts
):
    base = tmp_path / "base"
    build_feature_set(small_world, base, settings=isolated_settings, embedder=hashing_embedder, progress=False)
    day = _next_day(small_world, tmp_path / "day2", shift_export=shift_export)
    result = update_feature_set(
        base,
        tmp_path / "day2",
        tmp_path / "upd",
        settings=isolated_settings,
        embedder=hashing_embedder,
        partition_creators=parts,
        progress=False,
    )
    updated = result.manifest
    assert sorted(result.recomputed.to_list()) == sorted(
        [*day["changed"], *day["new"]] if not shift_export else result.recomputed.to_list()
    )
    assert result.removed.to_list() == day["gone"]
    full = build_feature_set(
        tmp_path / "day2",
        tmp_path / "full",
        settings=isolated_settings,
        embedder=hashing_embedder,
        clusters_from=base,
        progress=False,
    )
    assert updated["files"] == full["files"]
    assert updated["feature_set_id"] == full["feature_set_id"]
    summary = updated["update"]
    assert summary["removed"] == 1 and summary["added"] == 1
    n = full["row_counts"]["creators"]
    # Only the changed and new creators (plus any with rows at the old cut-off) were recomputed.
    assert summary["recomputed"] >= len(day["changed"]) + 1
    assert summary["recomputed"] + summary["carried"] == n
    if not shift_export:
        assert summary["recomputed"] == len(day["changed"]) + 1
    fs = load_feature_set(tmp_path / "upd")
    assert "zz-new-creator" in fs.creators["creator_id"].to_list()
    assert day["gone"][0] not in fs.creators["creator_id"].to_list()


def test_an_update_without_changes_recomputes_nothing(small_world, tmp_path, isolated_settings, hashing_embedder):
    base = tmp_path / "base"
    first = build_feature_set(small_world, base, settings=isolated_settings, embedder=hashing_embedder, progress=False)
    again = update_feature_set(
        base, small_world, tmp_path / "upd", settings=isolated_settings, embedder=hashing_embedder, progress=False
    ).manifest
    assert again["update"]["recomputed"] == 0
    # The clusters were fitted in the base build and kept: every data file is the same.
    assert {k: v for k, v in again["files"].items()} == first["files"]


def test_update_refuses_changed_settings_and_same_out(small_world, tmp_path, isolated_settings, hashing_embedder):
    base = tmp_path / "base"
    build_feature_set(small_world, base, settings=isolated_settings, embedder=hashing_embedder, progress=False)
    other = isolated_settings.model_copy(update={"recent_posts": isolated_settings.recent_posts + 1})
    with pytest.raises(InputError, match="recent_posts"):
        update_feature_set(base, small_world, tmp_path / "upd", settings=other, embedder=hashing_embedder)
    with pytest.raises(InputError, match="same directory"):
        update_feature_set(base, small_world, base, settings=isolated_settings, embedder=hashing_embedder)
    assert not (tmp_path / "upd").exists()


def test_the_cli_updates_features_and_their_indexes(small_world, tmp_path, isolated_settings, monkeypatch):
    from typer.testing import CliRunner

    from audiencefit.cli import app
    from audiencefit.models.index import load_index
    from audiencefit.settings import get_settings

    monkeypatch.setenv("AUDIENCEFIT_EMBEDDER", "test-hashing")
    get_settings.cache_clear()
    base = tmp_path / "base"
    runner = CliRunner()
    built = runner.invoke(app, ["features", "build", "--data", str(small_world), "--out", str(base), "--no-progress"])
    assert built.exit_code == 0, built.output
    assert runner.invoke(app, ["index", "build", "--features", str(base)]).exit_code == 0
    day = _next_day(small_world, tmp_path / "day2", shift_export=False)
    out = tmp_path / "upd"
    updated = runner.invoke(
        app, ["features", "update", "--base", str(base), "--data", str(tmp_path / "day2"), "--out", str(out)]
    )
    assert updated.exit_code == 0, updated.output
    fs = load_feature_set(out)
    for kind in ("audience", "content"):
        index = load_index(fs, kind, out / "index")  # refuses an index of another feature set
        assert index.n == fs.creators.height
    ids = fs.creators["creator_id"].to_list()
    assert day["new"][0] in ids and day["gone"][0] not in ids
    # --base is never touched.
    assert load_feature_set(base).creators.height == pl.read_parquet(small_world / "creators.parquet").height


def test_update_state_from_the_planned_digests_equals_hashing_again(small_world: Path) -> None:
    """``features update`` hands the digests it planned with to the update state instead of hashing every row
    again; the state is the same, and digests of other creators are refused."""
    import numpy as np

    from audiencefit.features.dataset import load_dataset
    from audiencefit.features.digests import creator_digests, update_state

    part = load_dataset(small_world, secret="test-secret", tables=["followers"])
    counts = np.arange(part.creators.height * 3, dtype=np.int32).reshape(-1, 3)
    planned = creator_digests(part)
    assert update_state(part, counts, planned).equals(update_state(part, counts))
    with pytest.raises(ValueError, match="digests of"):
        update_state(part, counts, planned.head(3))
