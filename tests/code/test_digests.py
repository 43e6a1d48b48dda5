"""Per-creator digests: what changes them, what does not, and how changed creators are found."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from audiencefit.features.dataset import Dataset, load_dataset
from audiencefit.features.digests import DIGEST_SCHEMA, changed_creators, creator_digests
from audiencefit.features.partitions import split_dataset


@pytest.fixture(scope="module")
def dataset(small_world) -> Dataset:
    return load_dataset(small_world, secret="s", tables=("creators", "posts", "followers"))


def _with(d: Dataset, **frames: pl.DataFrame) -> Dataset:
    return Dataset(
        creators=frames.get("creators", d.creators),
        posts=frames.get("posts", d.posts),
        followers=frames.get("followers", d.followers),
    )


def test_digests_do_not_depend_on_partitions_or_row_order(dataset):
    whole = creator_digests(dataset)
    assert dict(whole.schema) == DIGEST_SCHEMA
    assert whole.height == dataset.creators.height and whole["digest"].n_unique() == whole.height
    parts = split_dataset(dataset, 37)
    pieced = pl.concat([creator_digests(parts.load(i)) for i in range(parts.n_partitions)])
    assert pieced.sort("creator_id").equals(whole.sort("creator_id"))
    followers = dataset.followers.sample(fraction=1.0, shuffle=True, seed=4)
    shuffled = _with(
        dataset,
        posts=dataset.posts.sample(fraction=1.0, shuffle=True, seed=3),
        followers=followers.select(list(reversed(followers.columns))),
    )
    assert creator_digests(shuffled).sort("creator_id").equals(whole.sort("creator_id"))


@pytest.mark.parametrize(
    ("table", "column"),
    [("posts", "likes"), ("posts", "caption"), ("followers", "bio"), ("creators", "followers"), ("creators", "bio")],
)
def test_one_changed_value_changes_exactly_its_creator(dataset, table, column):
    frame: pl.DataFrame = getattr(dataset, table)
    row = frame.height // 2
    owner = frame["creator_id"][row]
    col = frame[column]
    new_value = (col[row] or 0) + 1 if col.dtype.is_integer() else f"{col[row] or ''} edited"
    changed = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == row).then(pl.lit(new_value)).otherwise(pl.col(column)).alias(column)
    )
    before = creator_digests(dataset)
    after = creator_digests(_with(dataset, **{table: changed}))
    stale, removed = changed_creators(before, after, old_cutoff=None, same_scheme=True)
    assert stale.to_list() == [owner] and removed.len() == 0


def test_new_removed_late_and_foreign_scheme(dataset):
    before = creator_digests(dataset)
    gone = dataset.creators["creator_id"][0]
    kept = dataset.creators.filter(pl.col("creator_id") != gone)
    after = creator_digests(
        _with(
            dataset,
            creators=kept,
            posts=dataset.posts.filter(pl.col("creator_id") != gone),
            followers=dataset.followers.filter(pl.col("creator_id") != gone),
        )
    )
    stale, removed = changed_creators(before, after, old_cutoff=None, same_scheme=True)
    assert removed.to_list() == [gone] and stale.len() == 0
    # A creator whose newest row is at or after the previous cut-off was cut short: recompute it.
    newest = after["max_seen_at"].max()
    stale, _ = changed_creators(before, after, old_cutoff=newest, same_scheme=True)
    assert stale.to_list() == after.filter(pl.col("max_seen_at") >= newest)["creator_id"].sort().to_list()
    assert stale.len() >= 1
    stale, _ = changed_creators(before, after, old_cutoff=datetime(2100, 1, 1, tzinfo=UTC), same_scheme=True)
    assert stale.len() == 0
    stale, _ = changed_creators(before, after, old_cutoff=None, same_scheme=False)
    assert stale.len() == after.height
