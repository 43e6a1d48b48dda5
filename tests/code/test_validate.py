"""Unit tests of the readers and of lazy validation, on hand-built frames and tiny files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from audiencefit.features.errors import InputError, Issue
from audiencefit.features.io import find_table_file, read_raw, write_parquet_atomic
from audiencefit.features.schemas import CAMPAIGNS, CREATORS, FOLLOWERS, POSTS, SEGMENTS
from audiencefit.features.validate import (
    MAX_ROWS_PER_PROBLEM,
    check_foreign_keys,
    is_warning,
    split_issues,
    validate_table,
)


def creators_raw(**overrides: list[object]) -> pl.DataFrame:
    """Three valid raw creator rows, all text, with per-column overrides."""
    columns: dict[str, list[object]] = {
        "creator_id": ["c1", "c2", "c3"],
        "handle": ["a", "b", "c"],
        "platform": ["instagram", "tiktok", "youtube"],
        "bio": ["hi", None, "yo"],
        "followers": ["1000", "2000", "3000"],
        "following": ["1", None, "3"],
        "post_count": ["10", "20", None],
        "country": ["fr", "GB", None],
        "language": ["fr", "en", None],
        "rate_per_post": ["10.5", None, "0"],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, strict=False)


def problems(issues: list[Issue]) -> list[str]:
    return [str(i) for i in issues]


def errors_of(issues: list[Issue]) -> list[str]:
    return problems(split_issues(issues)[0])


# --- validate_table: happy path and normalisation ----------------------------------------------------------------


def test_valid_text_frame_is_cast_to_the_exact_schema_and_normalised():
    raw = creators_raw(
        platform=[" Instagram", "TIKTOK ", "youtube"],
        handle=["  a ", "b", "c"],
        bio=["hi", "   ", ""],
        followers=["1000", "2e3", "3000.0"],
        language=["FR", "en", None],
    )
    frame, issues = validate_table(raw, CREATORS, "creators.csv")
    assert issues == []
    assert frame.schema == CREATORS.polars_schema
    assert frame["platform"].to_list() == ["instagram", "tiktok", "youtube"]
    assert frame["handle"].to_list() == ["a", "b", "c"]
    assert frame["bio"].to_list() == ["hi", None, None]
    assert frame["followers"].to_list() == [1000, 2000, 3000]
    assert frame["country"].to_list() == ["FR", "GB", None]
    assert frame["language"].to_list() == ["fr", "en", None]
    assert frame["rate_per_post"].to_list() == [10.5, None, 0.0]


def test_column_order_follows_the_schema_not_the_file():
    raw = creators_raw()
    shuffled = raw.select(list(reversed(raw.columns)))
    frame, issues = validate_table(shuffled, CREATORS, "creators.csv")
    assert issues == []
    assert frame.columns == CREATORS.column_names


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T12:00:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01t12:00:00z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00.250-0500", datetime(2024, 5, 1, 17, 0, 0, 250000, tzinfo=UTC)),
        ("2024-05-01 12:00:00+01", datetime(2024, 5, 1, 11, tzinfo=UTC)),
        ("2024-05-01 12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00Z", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_iso_8601_timestamps_are_read_as_utc(text, expected):
    raw = pl.DataFrame(
        {
            "post_id": ["p1"],
            "creator_id": ["c1"],
            "posted_at": [text],
            "caption": [None],
            "likes": ["1"],
            "comments": ["0"],
            "views": [None],
            "sponsored": ["FALSE"],
        },
        schema_overrides={"caption": pl.String, "views": pl.String},
    )
    frame, issues = validate_table(raw, POSTS, "posts.csv")
    assert issues == []
    assert frame["posted_at"].to_list() == [expected]


def posts_raw(**overrides: list[object]) -> pl.DataFrame:
    columns: dict[str, list[object]] = {
        "post_id": ["p1", "p2"],
        "creator_id": ["c1", "c1"],
        "posted_at": ["2024-05-01T12:00:00Z", "2024-05-02T12:00:00Z"],
        "caption": ["x", None],
        "likes": ["1", "2"],
        "comments": ["0", "0"],
        "views": [None, "5"],
        "sponsored": ["true", "0"],
    }
    columns.update(overrides)
    return pl.DataFrame(columns, strict=False)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12.5", "expected an integer, got '12.5'"),
        ("abc", "expected an integer, got 'abc'"),
        ("1,000", "expected an integer, got '1,000'"),
        ("NaN", "NaN (not a number) is not allowed"),
        ("-inf", "infinite value '-inf' is not allowed"),
        ("-3", "value -3 is below the minimum of 0"),
        ("", "missing value (the column is required)"),
        ("9223372036854775808", "9223372036854775808 is out of range for a 64-bit integer"),
    ],
)
def test_bad_integers_name_row_column_and_value(value, expected):
    frame, issues = validate_table(posts_raw(likes=["1", value]), POSTS, "posts.csv")
    assert problems(issues) == [f"posts.csv, row 2, column 'likes': {expected}"]
    assert frame["likes"].to_list() == [1, None]


def test_integers_keep_all_64_bits_and_accept_whole_floats():
    big = "9223372036854775807"
    frame, issues = validate_table(posts_raw(likes=[big, "+7"], comments=["12.0", "1e3"]), POSTS, "posts.csv")
    assert issues == []
    assert frame["likes"].to_list() == [9223372036854775807, 7]
    assert frame["comments"].to_list() == [12, 1000]


def test_booleans_and_their_errors():
    frame, issues = validate_table(posts_raw(sponsored=["TRUE", "yes"]), POSTS, "posts.csv")
    assert problems(issues) == ["posts.csv, row 2, column 'sponsored': expected true or false, got 'yes'"]
    assert frame["sponsored"].to_list() == [True, None]


def test_every_problem_is_collected_not_just_the_first():
    raw = creators_raw(
        creator_id=["c1", "c1", "x" * 129],
        platform=["instagram", "myspace", "tiktok"],
        followers=["abc", "-1", None],
    )
    _frame, issues = validate_table(raw, CREATORS, "creators.csv")
    got = errors_of(issues)
    assert got[0] == (
        "creators.csv, row 3, column 'creator_id': value is longer than 128 characters, the maximum (it has 129)"
    )
    assert "creators.csv, row 2, column 'platform': unknown value 'myspace' (allowed: instagram, " in got[1]
    assert got[2:] == [
        "creators.csv, row 1, column 'followers': expected an integer, got 'abc'",
        "creators.csv, row 3, column 'followers': missing value (the column is required)",
        "creators.csv, row 2, column 'followers': value -1 is below the minimum of 0",
        "creators.csv, row 1, column 'creator_id': duplicate creator_id 'c1': it appears in rows 1, 2; "
        "each must be unique",
    ]


def test_rows_per_problem_are_capped_with_a_count_of_the_rest():
    n = MAX_ROWS_PER_PROBLEM + 5
    raw = pl.DataFrame(
        {
            "segment_id": [f"s{i}" for i in range(n)],
            "brand_id": ["b1"] * n,
            "description": ["d"] * n,
            "countries": [None] * n,
            "weight": ["heavy"] * n,
        },
        schema_overrides={"countries": pl.String},
    )
    _frame, issues = validate_table(raw, SEGMENTS, "segments.csv")
    assert len(issues) == MAX_ROWS_PER_PROBLEM + 1
    assert issues[-1].row is None
    assert str(issues[-1]) == ("segments.csv, column 'weight': … and 5 more rows with the same problem (not a number)")


def test_missing_required_column_suggests_the_close_name_and_absent_optional_is_a_warning():
    raw = creators_raw().rename({"followers": "follower_count"}).drop("bio")
    frame, issues = validate_table(raw, CREATORS, "creators.csv")
    errors, warnings = split_issues(issues)
    assert problems(errors) == [
        "creators.csv, column 'followers': required column is missing (found: creator_id, handle, platform, "
        "follower_count, following, post_count, country, language, rate_per_post; did you mean 'follower_count'?)"
    ]
    assert [w.column for w in warnings] == ["bio", None]
    assert all(is_warning(w) for w in warnings)
    assert "ignored 1 unknown column(s): 'follower_count'" in warnings[1].problem
    assert frame.schema == CREATORS.polars_schema
    assert frame["bio"].to_list() == [None, None, None]


def test_composite_primary_key_duplicates_name_both_values_and_rows():
    raw = pl.DataFrame({"creator_id": ["c1", "c1", "c2", "c1"], "follower_id": ["f1", "f2", "f1", "f1"]})
    _frame, issues = validate_table(raw, FOLLOWERS, "followers.csv")
    errors, _ = split_issues(issues)
    assert problems(errors) == [
        "followers.csv, row 1, column 'creator_id, follower_id': duplicate (creator_id, follower_id) ('c1', 'f1'): "
        "it appears in rows 1, 4; each must be unique"
    ]


# --- typed (parquet) input ----------------------------------------------------------------------------------------


def test_typed_columns_are_converted_losslessly():
    raw = pl.DataFrame(
        {
            "post_id": pl.Series([1, 2], dtype=pl.Int32),
            "creator_id": ["c1", "c1"],
            "posted_at": pl.Series([datetime(2024, 5, 1, 14), datetime(2024, 5, 2)]).dt.replace_time_zone(
                "Europe/Paris"
            ),
            "caption": [None, None],
            "likes": pl.Series([12.0, 12.5]),
            "comments": pl.Series([3, 4], dtype=pl.UInt8),
            "views": pl.Series([None, None], dtype=pl.Float32),
            "sponsored": [True, False],
        },
        schema_overrides={"caption": pl.String},
    )
    frame, issues = validate_table(raw, POSTS, "posts.parquet")
    assert problems(issues) == ["posts.parquet, row 2, column 'likes': expected an integer, got '12.5'"]
    assert frame.schema == POSTS.polars_schema
    assert frame["post_id"].to_list() == ["1", "2"]
    assert frame["posted_at"].to_list() == [datetime(2024, 5, 1, 12, tzinfo=UTC), datetime(2024, 5, 1, 22, tzinfo=UTC)]
    assert frame["likes"].to_list() == [12, None]
    assert frame["comments"].to_list() == [3, 4]


def test_naive_typed_timestamps_are_utc_and_dates_accept_midnight_only():
    base = {
        "campaign_id": ["k1", "k2"],
        "brand_id": ["b1", "b1"],
        "segment_id": ["s1", "s1"],
        "creator_id": ["c1", "c1"],
        "cost": [1.0, 2.0],
    }
    as_dates, issues = validate_table(
        pl.DataFrame({**base, "start_date": [date(2025, 3, 1), date(2025, 3, 2)]}), CAMPAIGNS, "c.parquet"
    )
    assert errors_of(issues) == []
    assert as_dates["start_date"].to_list() == [date(2025, 3, 1), date(2025, 3, 2)]
    timestamps = pl.Series([datetime(2025, 3, 1), datetime(2025, 3, 2, 9, 30)])
    frame, issues = validate_table(pl.DataFrame({**base, "start_date": timestamps}), CAMPAIGNS, "c.parquet")
    assert errors_of(issues) == [
        "c.parquet, row 2, column 'start_date': expected a date (YYYY-MM-DD), got a timestamp with a time of day "
        "'2025-03-02 09:30:00 UTC'"
    ]
    assert frame["start_date"].to_list() == [date(2025, 3, 1), None]


def test_nested_parquet_column_is_one_clear_issue():
    raw = creators_raw().with_columns(pl.Series("followers", [[1], [2], [3]]))
    _frame, issues = validate_table(raw, CREATORS, "creators.parquet")
    assert problems(issues) == [
        "creators.parquet, column 'followers': column has type List(Int64) in the file; expected integer"
    ]


# --- foreign keys -------------------------------------------------------------------------------------------------


def test_foreign_keys_name_file_row_column_value_and_the_referenced_file():
    creators, _ = validate_table(creators_raw(), CREATORS, "creators.csv")
    posts, _ = validate_table(posts_raw(creator_id=["c2", "ghost"]), POSTS, "posts.jsonl")
    issues = check_foreign_keys(
        {"creators": creators, "posts": posts}, {"creators": "creators.csv", "posts": "posts.jsonl"}
    )
    assert problems(issues) == [
        "posts.jsonl, row 2, column 'creator_id': unknown creator_id 'ghost' (no such creator_id in creators.csv)"
    ]


def test_foreign_keys_against_an_unusable_referenced_column_are_skipped():
    creators, _ = validate_table(creators_raw().drop("creator_id"), CREATORS, "creators.csv")
    posts, _ = validate_table(posts_raw(), POSTS, "posts.csv")
    assert check_foreign_keys({"creators": creators, "posts": posts}, {}) == []


# --- readers ------------------------------------------------------------------------------------------------------


def test_find_table_file(tmp_path: Path):
    assert find_table_file(tmp_path, "creators") is None
    (tmp_path / "creators.CSV").write_text("creator_id\n", encoding="utf-8")
    (tmp_path / "creators_old.csv").write_text("x\n", encoding="utf-8")
    assert find_table_file(tmp_path, "creators") == tmp_path / "creators.CSV"
    (tmp_path / "creators.parquet").write_bytes(b"PAR1")
    with pytest.raises(InputError) as excinfo:
        find_table_file(tmp_path, "creators")
    assert "two files for table 'creators': creators.parquet and creators.CSV" in str(excinfo.value)


def test_csv_reads_text_with_bom_quotes_multiline_and_header_only(tmp_path: Path):
    path = tmp_path / "brands.csv"
    path.write_bytes(b'\xef\xbb\xbfbrand_id,name\r\nb1,"Crumb, ""&"" Co"\r\n7,"two\r\nlines"\r\n')
    frame = read_raw(path, CREATORS)
    assert frame.columns == ["brand_id", "name"]
    assert frame.rows() == [("b1", 'Crumb, "&" Co'), ("7", "two\r\nlines")]
    assert frame.schema == pl.Schema({"brand_id": pl.String, "name": pl.String})
    path.write_text("brand_id,name\n", encoding="utf-8")
    assert read_raw(path, CREATORS).shape == (0, 2)


def test_csv_bare_quote_inside_a_value_is_accepted(tmp_path: Path):
    path = tmp_path / "x.csv"
    path.write_text('id,bio\n1,5" screen\n2,ok\n', encoding="utf-8")
    assert read_raw(path, CREATORS).rows() == [("1", '5" screen'), ("2", "ok")]


def test_json_lines_missing_keys_are_null(tmp_path: Path):
    path = tmp_path / "x.ndjson"
    path.write_text('{"a": 1}\n{"b": "x", "a": 2}\n', encoding="utf-8")
    assert read_raw(path, POSTS).to_dict(as_series=False) == {"a": ["1", "2"], "b": [None, "x"]}


def test_json_lines_with_mixed_and_nested_values_are_read_as_text(tmp_path: Path):
    path = tmp_path / "posts.jsonl"
    path.write_text(
        '{"a": 1, "b": "x"}\n\n{"a": 1.5, "b": true, "c": null}\n{"a": "abc", "b": {"k": [1]}}\n', encoding="utf-8"
    )
    frame = read_raw(path, POSTS)
    assert frame.to_dict(as_series=False) == {
        "a": ["1", "1.5", "abc"],
        "b": ["x", "true", '{"k": [1]}'],
        "c": [None, None, None],
    }


def test_json_array_is_accepted_in_a_json_file(tmp_path: Path):
    path = tmp_path / "posts.json"
    path.write_text('[{"a": 1}, {"a": 2, "b": "x"}]', encoding="utf-8")
    assert read_raw(path, POSTS).to_dict(as_series=False) == {"a": ["1", "2"], "b": [None, "x"]}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.csv", b"", "file is empty (0 bytes)"),
        ("x.csv", "id,bio\n1,caf\xe9\n".encode("latin-1"), "not valid UTF-8: byte 0xe9 at offset 12 (line 2)"),
        ("x.csv", "id\n1\n".encode("utf-16"), "the file is UTF-16 text; re-export it as UTF-8"),
        ("x.csv", b"PAR1\x00\x00", "the file is a parquet file; rename it to .parquet"),
        ("x.csv", b'{"id": 1}\n', "expected CSV but line 1 looks like JSON"),
        ("x.csv", b"id,id\n1,2\n", "header names column 'id' more than once"),
        ("x.csv", b"id;bio\n1;a\n", "the header is one single column separated by ';'; CSV must be comma-separated"),
        ("x.csv", b'id,bio\n1,"ok"\n2,"open\n3,x\n', "line 3: malformed CSV"),
        ("x.csv", b"id,bio\n1,a\n2,b,c\n3\n", "line 3: expected 2 fields (as in the header), found 3"),
        ("x.jsonl", b"id,bio\n1,a\n", "not JSON Lines: the first line starts with 'id,bio'"),
        ("x.jsonl", b'{"id": 1}\n[1, 2]\n{"id": \n', "line 2: expected a JSON object, got list"),
        ("x.parquet", b"id,bio\n1,a\n", "not a parquet file (no PAR1 magic bytes); it looks like text (CSV?)"),
        ("x.parquet", b"PK\x03\x04rest", "not a parquet file (no PAR1 magic bytes); it looks like a zip archive"),
        ("x.parquet", b"PAR1garbagePAR1", "could not read parquet file"),
        ("x.xlsx", b"PK\x03\x04", "unsupported file extension '.xlsx'"),
    ],
)
def test_unreadable_files_are_input_errors_naming_the_file(tmp_path: Path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        read_raw(path, CREATORS)
    message = "\n".join(str(i) for i in excinfo.value.issues)
    assert message.startswith(f"{name}: ")
    assert expected in message


def test_a_row_longer_than_the_csv_readers_block_is_read(tmp_path: Path):
    path = tmp_path / "posts.csv"
    path.write_text("post_id,caption\np1," + "x" * 3_000_000 + "\np2,ok\n", encoding="utf-8")
    frame = read_raw(path, POSTS)
    assert frame["caption"].str.len_chars().to_list() == [3_000_000, 2]


def test_classic_mac_line_endings_are_read(tmp_path: Path):
    path = tmp_path / "posts.csv"
    path.write_bytes(b"post_id,caption\rp1,a\rp2,b\r")
    assert read_raw(path, POSTS).rows() == [("p1", "a"), ("p2", "b")]


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("x.csv", "id\n1\n".encode("utf-32"), "the file is UTF-32 text; re-export it as UTF-8"),
        ("x.csv", b"id,bio\n" + b"1,ok\n" * 300_000 + b"2,a\x00b\n", "NUL byte (0x00) at offset 1500010 (line 300002)"),
        ("x.json", b"[" * 5000 + b"]" * 5000, "line 1: JSON nested more than 100 levels deep"),
        ("x.jsonl", b'{"id": 1}\n{"id": 2}\n{"id": ' + b"[" * 5000 + b"]" * 5000 + b"}\n", "line 3: JSON nested"),
        ("x.csv", b"id," + b"h" * 2_000_000 + b"\n1,2\n", "line 1: the header line is longer than 1,048,576 bytes"),
    ],
)
def test_more_unreadable_files_are_input_errors_naming_file_and_line(tmp_path: Path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError) as excinfo:
        read_raw(path, CREATORS)
    assert expected in "\n".join(str(i) for i in excinfo.value.issues)


def test_json_integers_of_any_length_reach_the_validation_as_text(tmp_path: Path):
    path = tmp_path / "x.json"
    path.write_text('[{"likes": ' + "7" * 5000 + "}]", encoding="utf-8")
    assert read_raw(path, POSTS)["likes"].to_list() == ["7" * 5000]


def test_a_parquet_column_of_an_unexpected_type_is_one_issue_not_a_crash():
    raw = posts_raw(likes=[timedelta(1), timedelta(2)])
    _frame, issues = validate_table(raw, POSTS, "posts.parquet")
    assert problems(issues) == [
        "posts.parquet, column 'likes': column has type Duration(time_unit='us') in the file; expected integer"
    ]


def test_several_malformed_lines_are_all_reported(tmp_path: Path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 1}\n{"id": \n{"id": 3}\n{oops}\n', encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        read_raw(path, CREATORS)
    lines = [i.problem for i in excinfo.value.issues]
    assert [line.split(":")[0] for line in lines] == ["line 2", "line 4"]


def test_missing_file_is_an_input_error(tmp_path: Path):
    with pytest.raises(InputError, match="file not found"):
        read_raw(tmp_path / "creators.csv", CREATORS)


def test_parquet_keeps_its_types(tmp_path: Path):
    path = tmp_path / "x.parquet"
    pl.DataFrame({"n": pl.Series([1, 2], dtype=pl.Int16), "s": ["a", None]}).write_parquet(path)
    assert read_raw(path, CREATORS).schema == pl.Schema({"n": pl.Int16, "s": pl.String})


def test_write_parquet_atomic_replaces_the_file_and_leaves_no_temp(tmp_path: Path):
    path = tmp_path / "out" / "t.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), path)
    write_parquet_atomic(pl.DataFrame({"a": [2, 3]}), path)
    assert pl.read_parquet(path)["a"].to_list() == [2, 3]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]


def test_write_parquet_atomic_keeps_the_old_file_when_writing_fails(tmp_path: Path, monkeypatch):
    path = tmp_path / "t.parquet"
    write_parquet_atomic(pl.DataFrame({"a": [1]}), path)

    def broken(self: pl.DataFrame, file: object, *args: object, **kwargs: object) -> None:
        assert not isinstance(file, (str, Path)) or Path(file) != path
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", broken)
    with pytest.raises(OSError, match="disk full"):
        write_parquet_atomic(pl.DataFrame({"a": [9]}), path)
    monkeypatch.undo()
    assert pl.read_parquet(path)["a"].to_list() == [1]
    assert [p.name for p in tmp_path.iterdir()] == ["t.parquet"]
