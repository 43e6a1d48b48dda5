"""Creator partitions: the unit the out-of-core feature build works on.

A partition is a contiguous range of ``creator_id`` values (in the ``creators`` table's sort order, i.e. polars'
string order) with every post and follower row of those creators. Partitions are numbered in creator-id order, so
concatenating per-partition outputs in partition order gives the same rows, in the same order, as one build over all
creators. Where the partitions come from is the input's business: :func:`split_dataset` cuts an in-memory
:class:`~audiencefit.features.dataset.Dataset` (tests, small worlds); a streamed reader spills them to disk and loads
one at a time, so memory grows with the partition, not with the creator count.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import polars as pl

from audiencefit.features.dataset import Dataset
from audiencefit.features.export import ExportInstant


class PartitionSource(Protocol):
    """What a partitioned build reads: validated, pseudonymised partitions, one at a time.

    ``load(i)`` returns a :class:`Dataset` whose ``creators`` holds partition ``i``'s creators sorted by
    ``creator_id`` and whose ``posts`` / ``followers`` hold exactly their rows, in the input's row order, with the
    contract dtypes (the same frames :func:`audiencefit.features.dataset.load_dataset` would give, filtered to those
    creators). Every partition's ``export`` and ``source_files`` are the whole input's.
    """

    @property
    def n_partitions(self) -> int: ...

    @property
    def export(self) -> ExportInstant | None: ...

    @property
    def source_files(self) -> Mapping[str, Path]: ...

    @property
    def row_counts(self) -> Mapping[str, int]:
        """Rows of each loaded table over all partitions (``creators``, ``posts``, ``followers``)."""
        ...

    def load(self, i: int) -> Dataset: ...


def creator_ranges(creator_ids: pl.Series, partition_creators: int) -> list[tuple[int, int]]:
    """Row ranges ``[lo, hi)`` of the sorted ids, ``partition_creators`` per range (the last may be shorter)."""
    if partition_creators < 1:
        raise ValueError(f"partition_creators must be at least 1, got {partition_creators}")
    n = creator_ids.len()
    return [(lo, min(lo + partition_creators, n)) for lo in range(0, n, partition_creators)] or [(0, 0)]


class InMemoryPartitions:
    """A loaded :class:`Dataset` cut into creator ranges (implements :class:`PartitionSource`)."""

    def __init__(self, dataset: Dataset, partition_creators: int) -> None:
        self.dataset = dataset
        self._creators = dataset.creators.sort("creator_id")
        self._ranges = creator_ranges(self._creators["creator_id"], partition_creators)

    @property
    def n_partitions(self) -> int:
        return len(self._ranges)

    @property
    def export(self) -> ExportInstant | None:
        return self.dataset.export

    @property
    def source_files(self) -> Mapping[str, Path]:
        return self.dataset.source_files

    @property
    def row_counts(self) -> Mapping[str, int]:
        d = self.dataset
        return {
            "creators": d.creators.height,
            "posts": d.posts.height,
            "followers": d.followers.height if d.followers is not None else 0,
        }

    def load(self, i: int) -> Dataset:
        lo, hi = self._ranges[i]
        return restrict(self.dataset, self._creators["creator_id"].slice(lo, hi - lo))


def restrict(dataset: Dataset, ids: pl.Series) -> Dataset:
    """``dataset`` cut to the creators ``ids``: those creators sorted by ``creator_id``, their posts and followers in
    input order; ``export``, ``source_files`` and warnings are the whole input's."""
    mine = pl.col("creator_id").is_in(ids.implode())
    return Dataset(
        creators=dataset.creators.filter(mine).sort("creator_id"),
        posts=dataset.posts.filter(mine),
        followers=dataset.followers.filter(mine) if dataset.followers is not None else None,
        source_files=dict(dataset.source_files),
        warnings=dataset.warnings,
        export=dataset.export,
    )


def split_dataset(dataset: Dataset, partition_creators: int) -> InMemoryPartitions:
    """``dataset`` as a :class:`PartitionSource` of ``partition_creators`` creators per partition."""
    return InMemoryPartitions(dataset, partition_creators)
