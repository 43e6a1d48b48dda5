"""The streamed partition reader (``audiencefit.features.stream_input``) against ``load_dataset``: same frames, same
errors.

Chunks are forced small (a few rows, a few hundred bytes) so every table is read in many pieces and problems land
in late chunks; the reference is always ``load_dataset`` on the same directory.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from audiencefit.features.dataset import Dataset, load_dataset
from audiencefit.features.errors import InputError
from audiencefit.features.partitions import split_dataset
from audiencefit.features.stream_input import SpilledPartitions, stream_partitions
from audiencefit.features.synthetic import generate_world
from tests.data.test_contracts import MALFORMED, base_tables, write_dataset

SECRET = "test-secret-for-streaming"
STREAMED = ("creators", "posts", "followers")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("world") / "w300"
    generate_world(path, 300, 11)
    return path


def _as_format(world: Path, out: Path, fmt: str) -> Path:
    """The world's creators, posts and followers (and its export manifest) as CSV, JSON Lines or parquet."""
    out.mkdir(parents=True)
    shutil.copy(world / "export.json", out / "export.json")
    for table in STREAMED:
        frame = pl.read_parquet(world / f"{table}.parquet")
        if fmt == "parquet":
            frame.write_parquet(out / f"{table}.parquet", row_group_size=500)
        elif fmt == "csv":
            frame.write_csv(out / f"{table}.csv")
        else:
            frame.write_ndjson(out / f"{table}.jsonl")
    return out


def _reference(data_dir: Path) -> Dataset:
    return load_dataset(data_dir, secret=SECRET, tables=["followers"])


def _stream(data_dir: Path, spill: Path, partition_creators: int = 70, **chunks: int) -> SpilledPartitions:
    return stream_partitions(
        data_dir,
        spill,
        secret=SECRET,
        partition_creators=partition_creators,
        chunk_rows=chunks.get("chunk_rows", 97),
        chunk_bytes=chunks.get("chunk_bytes", 1 << 16),
    )


def _assert_same_partitions(reference: Dataset, streamed: SpilledPartitions, partition_creators: int) -> None:
    expected = split_dataset(reference, partition_creators)
    assert streamed.n_partitions == expected.n_partitions
    assert dict(streamed.row_counts) == dict(expected.row_counts)
    assert streamed.source_files == reference.source_files
    assert streamed.export == reference.export
    loaded = [streamed.load(i) for i in range(streamed.n_partitions)]
    for i, part in enumerate(loaded):
        want = expected.load(i)
        assert_frame_equal(part.creators, want.creators)
        assert_frame_equal(part.posts, want.posts)
        assert want.followers is not None and part.followers is not None
        assert_frame_equal(part.followers, want.followers)
    # Together the partitions are the whole input: creators sorted by id, every post and follower row once.
    assert_frame_equal(pl.concat([p.creators for p in loaded]), reference.creators.sort("creator_id"))
    posts = pl.concat([p.posts for p in loaded])
    assert_frame_equal(posts.sort("post_id"), reference.posts.sort("post_id"))
    followers = pl.concat([p.followers for p in loaded if p.followers is not None])
    assert reference.followers is not None
    keys = ["creator_id", "follower_id"]
    assert_frame_equal(followers.sort(keys), reference.followers.sort(keys))


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_partitions_equal_load_dataset_split_for_every_format(world: Path, tmp_path: Path, fmt: str) -> None:
    data_dir = _as_format(world, tmp_path / "in", fmt)
    reference = _reference(data_dir)
    with _stream(data_dir, tmp_path / "spill") as streamed:
        assert streamed.n_partitions == 5  # 300 creators by 70
        assert streamed.read_whole == ()
        assert streamed.chunks["posts"] >= 5 and streamed.chunks["followers"] >= 5, streamed.chunks
        _assert_same_partitions(reference, streamed, 70)
        assert streamed.warnings == reference.warnings
    assert not any((tmp_path / "spill").iterdir()), "cleanup removes every spill file"


def test_the_synthetic_world_as_written_streams_to_the_same_partitions(world: Path, tmp_path: Path) -> None:
    with _stream(world, tmp_path / "spill", partition_creators=128, chunk_rows=1000) as streamed:
        _assert_same_partitions(_reference(world), streamed, 128)


def test_csv_with_quoted_line_breaks_is_chunked_at_record_ends(tmp_path: Path) -> None:
    tables = base_tables()
    for i, post in enumerate(tables["posts"]):
        post["caption"] = f'line one "{i}"\nline two, with a comma\r\nand three 🙂 #tag'
    data_dir = write_dataset(tmp_path / "in", "csv", tables)
    reference = _reference(data_dir)
    assert reference.posts["caption"].str.contains("\n").all()
    with _stream(data_dir, tmp_path / "spill", partition_creators=1, chunk_bytes=256) as streamed:
        _assert_same_partitions(reference, streamed, 1)
        assert streamed.read_whole == ()
        assert streamed.chunks["posts"] > 1


def test_json_lines_with_different_keys_per_line_give_the_same_frames(tmp_path: Path) -> None:
    tables = base_tables()
    for post in tables["posts"][1:]:
        post.pop("caption", None)  # exporters often drop null keys
    tables["posts"][-1]["extra_field"] = 1
    data_dir = write_dataset(tmp_path / "in", "jsonl", tables)
    with _stream(data_dir, tmp_path / "spill", partition_creators=2, chunk_bytes=1) as streamed:
        _assert_same_partitions(_reference(data_dir), streamed, 2)
        assert streamed.read_whole == ()
        assert streamed.chunks["posts"] == len(tables["posts"])


def _late_chunk_problem(data_dir: Path, fmt: str, change: dict[str, object], row: int) -> None:
    """Set ``change`` (column -> value) in data row ``row`` of the posts file, in its own format."""
    path = data_dir / f"posts.{fmt}"
    if fmt == "parquet":
        frame = pl.read_parquet(path)
    elif fmt == "csv":
        frame = pl.read_csv(path, infer_schema_length=0)
    else:
        frame = pl.read_ndjson(path, infer_schema_length=None)
    for column, value in change.items():
        frame = frame.with_columns(
            pl.when(pl.int_range(pl.len()) == row - 1)
            .then(pl.lit(value, dtype=frame.schema[column]))
            .otherwise(pl.col(column))
            .alias(column)
        )
    path.unlink()
    if fmt == "parquet":
        frame.write_parquet(path, row_group_size=500)
    elif fmt == "csv":
        frame.write_csv(path)
    else:
        frame.write_ndjson(path)


def _without_clock(message: str) -> str:
    """An error message without the current time some of them state (the two reads run a moment apart)."""
    return re.sub(r"\(it is now [0-9T:Z-]+\)", "(it is now …)", message)


def _errors(data_dir: Path, spill: Path, caplog: pytest.LogCaptureFixture) -> tuple[str, str]:
    with pytest.raises(InputError) as whole:
        _reference(data_dir)
    with (
        caplog.at_level(logging.INFO, logger="audiencefit.features.stream_input"),
        pytest.raises(InputError) as streamed,
    ):
        _stream(data_dir, spill)
    assert not [r for r in caplog.records if "read whole" in r.getMessage()], "the error was found in chunks"
    assert not any(spill.iterdir()) if spill.exists() else True, "a failed stream leaves nothing in spill_dir"
    return str(whole.value), str(streamed.value)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_bad_value_in_a_late_chunk_is_reported_as_load_dataset_reports_it(
    world: Path, tmp_path: Path, fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = _as_format(world, tmp_path / "in", fmt)
    n_posts = pl.scan_parquet(world / "posts.parquet").select(pl.len()).collect().item()
    _late_chunk_problem(data_dir, fmt, {"creator_id": "ghost"}, n_posts - 3)
    whole, streamed = _errors(data_dir, tmp_path / "spill", caplog)
    assert f"row {n_posts - 3}, column 'creator_id': unknown creator_id 'ghost'" in whole
    assert streamed == whole


def test_a_duplicate_post_id_across_chunks_is_caught(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = _as_format(world, tmp_path / "in", "parquet")
    first = pl.read_parquet(data_dir / "posts.parquet")["post_id"][0]
    _late_chunk_problem(data_dir, "parquet", {"post_id": first}, first_row := 3000)
    whole, streamed = _errors(data_dir, tmp_path / "spill", caplog)
    assert f"duplicate post_id '{first}': it appears in rows 1, {first_row}" in whole
    assert streamed == whole


def test_more_bad_rows_than_the_cap_are_counted_across_chunks(
    world: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """25 bad values spread over many chunks: the first 20 rows listed, then one count, as for the whole table."""
    data_dir = _as_format(world, tmp_path / "in", "csv")
    path = data_dir / "posts.csv"
    frame = pl.read_csv(path, infer_schema_length=0)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) % 150 == 7).then(pl.lit("lots")).otherwise(pl.col("likes")).alias("likes")
    )
    frame.write_csv(path)
    whole, streamed = _errors(data_dir, tmp_path / "spill", caplog)
    assert "… and " in whole and "more rows with the same problem (not an integer)" in whole
    assert streamed == whole


def test_a_failure_leaves_the_spill_directory_as_it_was(world: Path, tmp_path: Path) -> None:
    data_dir = _as_format(world, tmp_path / "in", "jsonl")
    lines = (data_dir / "followers.jsonl").read_text().splitlines(keepends=True)
    lines[-2] = '{"creator_id": "nobody", "follower_id": "f"}\n'
    (data_dir / "followers.jsonl").write_text("".join(lines))
    spill = tmp_path / "spill"
    spill.mkdir()
    with pytest.raises(InputError, match="unknown creator_id 'nobody'"):
        _stream(data_dir, spill)
    assert spill.is_dir() and list(spill.iterdir()) == []
    with pytest.raises(InputError, match="unknown creator_id 'nobody'"):
        _stream(data_dir, tmp_path / "new-spill")
    assert not (tmp_path / "new-spill").exists(), "a spill directory this call made is removed again"


def test_a_non_empty_spill_directory_is_refused(world: Path, tmp_path: Path) -> None:
    spill = tmp_path / "spill"
    spill.mkdir()
    (spill / "keep.txt").write_text("mine")
    with pytest.raises(InputError, match="must be missing or empty"):
        _stream(world, spill)
    assert [p.name for p in spill.iterdir()] == ["keep.txt"]


@pytest.mark.parametrize(("build", "expected"), [(b, e) for _, b, e in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_every_malformed_input_gives_load_dataset_s_error(tmp_path: Path, build: object, expected: list[str]) -> None:
    """Each malformed directory of the contract tests: the streamed reader refuses (or accepts) it exactly as
    ``load_dataset(tables=["followers"])`` does, message for message, with chunks of one row or one byte."""
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    build(data_dir)  # type: ignore[operator]
    spill = tmp_path / "spill"
    try:
        reference = _reference(data_dir)
    except InputError as exc:
        with pytest.raises(InputError) as streamed:
            _stream(data_dir, spill, chunk_rows=1, chunk_bytes=1)
        assert _without_clock(str(streamed.value)) == _without_clock(str(exc))
        assert not spill.exists() or not any(spill.iterdir())
    else:
        with _stream(data_dir, spill, partition_creators=1, chunk_rows=1, chunk_bytes=1) as streamed_ok:
            _assert_same_partitions(reference, streamed_ok, 1)
