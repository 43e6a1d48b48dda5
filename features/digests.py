"""Per-creator digests of the raw rows: what ``features update`` compares to find the creators that changed.

A creator's digest covers its profile row, every one of its post rows and every one of its follower rows (all
columns, as validated and pseudonymised), so a new post, a changed like count, a new follower or an edited bio
changes it. Rows are combined as a multiset (their 64-bit hashes summed modulo 2**64): the features of a creator
do not depend on the order its rows arrive in, and neither does its digest. ``max_seen_at`` is the newest post or
follower timestamp of the creator: rows dated after a feature set's cut-off were left out of it, so a later cut-off
must recompute that creator even when its rows did not change.

The row hash is polars' ``hash_rows`` with fixed seeds, which is stable for one polars version but not promised
across versions; :data:`DIGEST_SCHEME` names the version, and digests of another scheme are never compared (every
creator counts as changed).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from audiencefit.features.dataset import Dataset
from audiencefit.features.featureset import UPDATE_STATE_SCHEMA
from audiencefit.features.schemas import UTC_DATETIME

DIGEST_SCHEME = f"polars-{pl.__version__}-hash_rows-sum-v1"
DIGESTS = "creator_digests"
DIGEST_SCHEMA = {"creator_id": pl.String, "digest": pl.UInt64, "max_seen_at": UTC_DATETIME}
_SEED = 20261204
_TABLE_SALT = {"creators": 0x9E3779B97F4A7C15, "posts": 0xC2B2AE3D27D4EB4F, "followers": 0x165667B19E3779F9}


def _row_sums(frame: pl.DataFrame, table: str, row_of: pl.DataFrame, n: int) -> np.ndarray:
    """Per creator (rows of ``row_of``), the sum modulo 2**64 of the hashes of its rows of ``table``."""
    sums = np.zeros(n, dtype=np.uint64)
    if frame.height == 0:
        return sums
    ordered = frame.select(sorted(frame.columns))  # the column order of a file is not part of a creator's data
    hashes = ordered.hash_rows(seed=_SEED).to_numpy().astype(np.uint64) ^ np.uint64(_TABLE_SALT[table])
    rows = frame.select("creator_id").join(row_of, on="creator_id", how="left", maintain_order="left")["row"]
    if rows.null_count():
        raise ValueError(f"{table}: rows of creators that are not in the creators table")
    np.add.at(sums, rows.to_numpy(), hashes)  # uint64 addition wraps: a sum modulo 2**64
    return sums


def creator_digests(part: Dataset) -> pl.DataFrame:
    """creator_id, digest, max_seen_at for every creator of ``part`` (in ``part.creators``' order)."""
    creators = part.creators
    n = creators.height
    row_of = pl.DataFrame({"creator_id": creators["creator_id"], "row": np.arange(n, dtype=np.int64)})
    digest = _row_sums(creators, "creators", row_of, n)
    digest += _row_sums(part.posts, "posts", row_of, n)
    seen = [part.posts.select("creator_id", pl.col("posted_at").alias("t"))]
    if part.followers is not None:
        digest += _row_sums(part.followers, "followers", row_of, n)
        seen.append(part.followers.select("creator_id", pl.col("observed_at").alias("t")))
    newest = pl.concat(seen).group_by("creator_id").agg(max_seen_at=pl.col("t").max())
    return (
        pl.DataFrame({"creator_id": creators["creator_id"], "digest": pl.Series(digest, dtype=pl.UInt64)})
        .join(newest, on="creator_id", how="left", maintain_order="left")
        .cast(DIGEST_SCHEMA)  # type: ignore[arg-type]
    )


def changed_creators(
    old: pl.DataFrame, new: pl.DataFrame, *, old_cutoff: object | None, same_scheme: bool
) -> tuple[pl.Series, pl.Series]:
    """(creator ids to recompute, creator ids removed) between two digest tables.

    To recompute: creators that are new, whose digest differs, or whose newest row is at or after ``old_cutoff``
    (the previous build left such rows out). With ``same_scheme`` False every creator of ``new`` is recomputed.
    """
    removed = old.join(new, on="creator_id", how="anti")["creator_id"].sort()
    if not same_scheme:
        return new["creator_id"].sort(), removed
    joined = new.join(old, on="creator_id", how="left", suffix="_old")
    stale = pl.col("digest_old").is_null() | (pl.col("digest") != pl.col("digest_old"))
    if old_cutoff is not None:
        stale = stale | (pl.col("max_seen_at").is_not_null() & (pl.col("max_seen_at") >= pl.lit(old_cutoff)))
    return joined.filter(stale)["creator_id"].sort(), removed


def update_state(part: Dataset, basis_counts: np.ndarray, digests: pl.DataFrame | None = None) -> pl.DataFrame:
    """The ``update_state`` rows of a partition's creators (sorted by id): digests plus each creator's basis rows per
    audience cluster (``basis_counts``, (n, k), rows in the same order). ``digests``: :func:`creator_digests` of
    ``part`` when the caller has them already (``features update`` computed them to plan)."""
    digests = (creator_digests(part) if digests is None else digests).sort("creator_id")
    if digests.height != part.creators.height:
        raise ValueError(f"digests of {digests.height} creators for a partition of {part.creators.height}")
    if basis_counts.shape[0] != digests.height:
        raise ValueError(f"{basis_counts.shape[0]} rows of cluster counts for {digests.height} creators")
    counts = pl.Series("basis_counts", basis_counts.astype(np.int32).tolist(), dtype=pl.List(pl.Int32))
    return digests.with_columns(counts).cast(UPDATE_STATE_SCHEMA)  # type: ignore[arg-type]
