"""Feature-set tables memory-mapped from Arrow copies (``audiencefit.features.mapped_tables``): the same frames as
read into memory; a damaged copy is converted again, never mapped; a copy is made only from a file whose checksum
matched; workers starting together convert once; no writable cache means a read into memory."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from audiencefit.features import mapped_tables
from audiencefit.features.errors import InputError
from audiencefit.features.featureset import RECENT_CAPTIONS, load_feature_set
from audiencefit.features.io import sha256_file
from audiencefit.features.mapped_tables import cache_key, mapped_table
from audiencefit.serving.captions import CaptionStore


@pytest.fixture()
def copy(small_features: Path, tmp_path: Path) -> Path:
    out = tmp_path / "fs"
    shutil.copytree(small_features, out)
    return out


def _terms(fs: Path) -> tuple[Path, str]:
    path = fs / "terms.parquet"
    return path, sha256_file(path)


def _arrow_files(cache: Path) -> list[Path]:
    return sorted(cache.glob("*.arrow"))


def test_mapped_frame_equals_the_parquet_and_is_mapped_not_copied(small_features: Path, tmp_path: Path) -> None:
    source, digest = _terms(small_features)
    cache = tmp_path / "tables"
    first = mapped_table(source, digest, cache)
    again = mapped_table(source, digest, cache)
    expected = pl.read_parquet(source)
    assert first.equals(expected) and again.equals(expected)
    assert first.schema == expected.schema
    [arrow] = _arrow_files(cache)
    assert arrow.name.startswith(cache_key(digest))
    # Mapped: the file's pages back the column, nothing was converted (a string column read from arrow without
    # polars' view layout would have been rebuilt in memory).
    table = pa.ipc.open_file(pa.memory_map(str(arrow), "r")).read_all()
    assert str(table.schema.field("term").type) == "string_view"
    assert table.num_rows == expected.height and table.column("term").num_chunks == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda arrow, side: arrow.write_bytes(arrow.read_bytes()[: arrow.stat().st_size // 2]),  # truncated
        lambda arrow, side: arrow.write_bytes(arrow.read_bytes()[:-9] + b"xxxxxxxxx"),  # altered
        lambda arrow, side: side.write_text("{not json", encoding="utf-8"),
        lambda arrow, side: side.write_text("[1, 2]", encoding="utf-8"),
        lambda arrow, side: side.unlink(),
        lambda arrow, side: arrow.unlink(),
    ],
    ids=["truncated", "altered", "sidecar-unparsable", "sidecar-not-object", "sidecar-gone", "file-gone"],
)
def test_a_damaged_copy_is_converted_again_never_mapped(small_features: Path, tmp_path: Path, damage) -> None:
    source, digest = _terms(small_features)
    cache = tmp_path / "tables"
    mapped_table(source, digest, cache)
    [arrow] = _arrow_files(cache)
    damage(arrow, arrow.with_suffix(".json"))
    assert mapped_table(source, digest, cache).equals(pl.read_parquet(source))
    meta = json.loads(arrow.with_suffix(".json").read_text(encoding="utf-8"))
    assert meta["sha256"] == sha256_file(arrow)


@pytest.mark.parametrize(
    "wrong",
    [
        lambda meta: {"rows": meta["rows"] + 1},
        lambda meta: {"rows": float("nan")},
        lambda meta: {"rows": float("inf")},
        lambda meta: {"columns": "creator_id"},
        lambda meta: {"columns": meta["columns"][::-1]},
    ],
    ids=["rows-off-by-one", "rows-nan", "rows-inf", "columns-a-string", "columns-reordered"],
)
def test_a_copy_whose_rows_or_columns_differ_from_its_sidecar_is_not_mapped(
    small_features: Path, tmp_path: Path, wrong
) -> None:
    """A whole, checksummed file of another table under this name (a consistent but wrong sidecar) is refused."""
    source, digest = _terms(small_features)
    cache = tmp_path / "tables"
    mapped_table(source, digest, cache)
    [arrow] = _arrow_files(cache)
    side = arrow.with_suffix(".json")
    meta = json.loads(side.read_text(encoding="utf-8"))
    side.write_text(json.dumps(meta | wrong(meta)), encoding="utf-8")
    assert mapped_table(source, digest, cache).equals(pl.read_parquet(source))
    assert json.loads(side.read_text(encoding="utf-8"))["rows"] == meta["rows"]


def test_derived_tables_are_named_by_their_derivation(small_features: Path, tmp_path: Path) -> None:
    source, digest = _terms(small_features)
    cache = tmp_path / "tables"

    def hashtags(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("kind") == "hashtag").select("creator_id", "term")

    derived = mapped_table(source, digest, cache, derive=hashtags, derivation="hashtags")
    assert derived.equals(hashtags(pl.read_parquet(source)))
    assert mapped_table(source, digest, cache).equals(pl.read_parquet(source))  # the plain table: its own file
    assert len(_arrow_files(cache)) == 2
    with pytest.raises(ValueError, match="derivation tag"):
        mapped_table(source, digest, cache, derive=hashtags)
    with pytest.raises(ValueError, match="letters, digits"):
        mapped_table(source, digest, cache, derive=hashtags, derivation="../x")
    with pytest.raises(ValueError, match="sha256"):
        mapped_table(source, "../../etc", cache)


def test_workers_starting_together_convert_once(
    small_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, digest = _terms(small_features)
    cache = tmp_path / "tables"
    conversions: list[str] = []
    convert = mapped_tables._convert

    def counted(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        conversions.append(threading.current_thread().name)
        convert(*args, **kwargs)

    monkeypatch.setattr(mapped_tables, "_convert", counted)
    results: list[pl.DataFrame] = []
    threads = [threading.Thread(target=lambda: results.append(mapped_table(source, digest, cache))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(conversions) == 1
    assert len(results) == 4 and all(r.equals(pl.read_parquet(source)) for r in results)
    assert not list(cache.glob(".*.tmp"))  # nothing half-written left


def test_no_writable_cache_reads_into_memory(small_features: Path, tmp_path: Path) -> None:
    source, digest = _terms(small_features)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory", encoding="utf-8")
    assert mapped_table(source, digest, blocked / "tables").equals(pl.read_parquet(source))


def test_load_feature_set_with_a_table_cache_gives_the_same_feature_set(small_features: Path, tmp_path: Path) -> None:
    cache = tmp_path / "tables"
    plain = load_feature_set(small_features)
    mapped = load_feature_set(small_features, mmap=True, table_cache=cache)
    for name in ("creators", "terms", "audience_geo", "clusters", "follower_keys"):
        assert getattr(mapped, name).equals(getattr(plain, name)), name
    assert mapped.feature_set_id == plain.feature_set_id
    assert len(_arrow_files(cache)) == 4  # creators, terms, audience_geo, follower_keys


def test_no_copy_is_made_of_a_table_whose_checksum_does_not_match(copy: Path, tmp_path: Path) -> None:
    """A changed parquet that still reads must not be converted under the name of the content it should hold."""
    terms = copy / "terms.parquet"
    frame = pl.read_parquet(terms)
    frame.with_columns(pl.col("count") + 1).write_parquet(terms)
    cache = tmp_path / "tables"
    with pytest.raises(InputError, match=r"terms\.parquet: checksum mismatch"):
        load_feature_set(copy, mmap=True, table_cache=cache)
    assert not _arrow_files(cache)


def test_quotes_from_mapped_captions_equal_quotes_from_memory(small_features: Path, tmp_path: Path) -> None:
    full = load_feature_set(small_features)
    lean = load_feature_set(small_features, mmap=True, table_cache=tmp_path / "t", skip=frozenset({RECENT_CAPTIONS}))
    assert lean.recent_captions is None
    in_memory = CaptionStore.from_feature_set(full)
    mapped = CaptionStore.from_feature_set(lean, table_cache=tmp_path / "t")
    assert in_memory is not None and mapped is not None
    assert len(mapped) == len(in_memory) > 0
    ids = full.creators["creator_id"].to_list()[:40]
    for segment in ("fitness and running", "vegan recipes", "travel photography"):
        for creator_id in ids:
            assert mapped.best(creator_id, segment) == in_memory.best(creator_id, segment)


def test_copies_unused_for_a_day_are_removed_when_a_new_one_is_made(small_features: Path, tmp_path: Path) -> None:
    cache = tmp_path / "tables"
    terms, terms_sha = _terms(small_features)
    geo = small_features / "audience_geo.parquet"
    mapped_table(terms, terms_sha, cache)
    [old] = _arrow_files(cache)
    sidecar = old.with_suffix(".json")
    day_ago = time.time() - mapped_tables.RETENTION_S - 60
    os.utime(sidecar, (day_ago, day_ago))
    mapped = mapped_table(terms, terms_sha, cache)  # a mapping marks the copy as used again
    assert sidecar.stat().st_mtime > day_ago + 60
    os.utime(sidecar, (day_ago, day_ago))
    mapped_table(geo, sha256_file(geo), cache)  # a new copy: the unused one goes
    assert [p.name for p in _arrow_files(cache)] == [f"{cache_key(sha256_file(geo))}.arrow"]
    assert not old.exists() and not sidecar.exists() and not old.with_suffix(".lock").exists()
    assert mapped.equals(pl.read_parquet(terms))  # a frame mapped before stays readable: the mapping outlives the name
    assert mapped_tables.prune(cache, now=time.time()) == []  # the fresh copy is kept


def test_a_copy_that_cannot_be_written_falls_back_to_memory(
    small_features: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, digest = _terms(small_features)

    def full_disk(*args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mapped_tables, "_convert", full_disk)
    assert mapped_table(source, digest, tmp_path / "tables").equals(pl.read_parquet(source))
    assert not _arrow_files(tmp_path / "tables")
