"""Data contracts end to end: malformed input directories are refused with precise messages, valid ones load.

Each malformed case writes a small, hand-built dataset to a temp dir (CSV, JSON Lines or parquet), breaks one thing
(or several), and checks through ``audiencefit validate`` (exit code 2) and ``load_dataset`` (InputError) that the
message names the file, row, column and problem, and that nothing was written to the directory.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import audiencefit.cli  # noqa: F401  (registers the commands)
from audiencefit.cli._app import app
from audiencefit.features.contracts_doc import REGENERATE_COMMAND, render_contracts_markdown
from audiencefit.features.dataset import load_dataset, validate_dir
from audiencefit.features.errors import InputError
from audiencefit.features.pseudonymise import pseudonymise_ids
from audiencefit.features.schemas import TABLE_ORDER, TABLES

SECRET = "test-secret-for-contracts"
REPO_ROOT = Path(__file__).resolve().parents[2]

Rows = list[dict[str, Any]]


def base_tables() -> dict[str, Rows]:
    """A small valid world, a few rows per table, with the messiness real exports have (case, zones, blanks)."""
    return {
        "creators": [
            {
                "creator_id": "c1",
                "handle": "alice_runs",
                "platform": "instagram",
                "bio": "Trail running, Alps",
                "followers": 12000,
                "following": 300,
                "post_count": 410,
                "country": "fr",
                "language": "fr",
                "rate_per_post": 150.0,
            },
            {
                "creator_id": "c2",
                "handle": "bob.bakes",
                "platform": " TikTok ",
                "bio": None,
                "followers": 54000,
                "following": None,
                "post_count": 220,
                "country": "GB",
                "language": "EN",
                "rate_per_post": None,
            },
            {
                "creator_id": "c3",
                "handle": "cara_codes",
                "platform": "youtube",
                "bio": 'Python tutorials, with commas, "quotes"\nand a second line',
                "followers": 8000,
                "following": 120,
                "post_count": 95,
                "country": None,
                "language": "en",
                "rate_per_post": 80.5,
            },
        ],
        "posts": [
            {
                "post_id": "p1",
                "creator_id": "c1",
                "posted_at": "2025-01-05T10:00:00Z",
                "caption": "Morning run #trail",
                "likes": 500,
                "comments": 20,
                "views": None,
                "sponsored": False,
            },
            {
                "post_id": "p2",
                "creator_id": "c1",
                "posted_at": "2025-01-07 18:30:00+01:00",
                "caption": "New shoes from @peakgear #ad",
                "likes": 800,
                "comments": 45,
                "views": None,
                "sponsored": True,
            },
            {
                "post_id": "p3",
                "creator_id": "c2",
                "posted_at": "2025-02-01T12:00:00",
                "caption": "Sourdough 🍞",
                "likes": 3000,
                "comments": 150,
                "views": 40000,
                "sponsored": False,
            },
            {
                "post_id": "p4",
                "creator_id": "c3",
                "posted_at": "2025-02-03",
                "caption": None,
                "likes": 200,
                "comments": 12,
                "views": 9000,
                "sponsored": False,
            },
        ],
        "followers": [
            {
                "creator_id": "c1",
                "follower_id": "anna_k",
                "bio": "runner",
                "followers": 150,
                "following": 300,
                "post_count": 20,
                "country": "FR",
                "age_band": "25-34",
                "gender": "female",
                "observed_at": "2024-12-01T00:00:00Z",
            },
            {
                "creator_id": "c1",
                "follower_id": "ben_t",
                "bio": None,
                "followers": None,
                "following": None,
                "post_count": None,
                "country": None,
                "age_band": None,
                "gender": "Male",
                "observed_at": None,
            },
            {
                "creator_id": "c2",
                "follower_id": "anna_k",
                "bio": "runner",
                "followers": 150,
                "following": 300,
                "post_count": 20,
                "country": "fr",
                "age_band": "25-34",
                "gender": "female",
                "observed_at": "2025-01-10T08:00:00+02:00",
            },
            {
                "creator_id": "c3",
                "follower_id": "carl_dev",
                "bio": "backend dev",
                "followers": 900,
                "following": 80,
                "post_count": 5,
                "country": "DE",
                "age_band": "35-44",
                "gender": "unknown",
                "observed_at": None,
            },
        ],
        "brands": [
            {
                "brand_id": "b1",
                "name": "Peak Gear",
                "description": "Trail running shoes",
                "handles": "peakgear",
                "hashtags": "peakgear trailready",
            },
            {"brand_id": "b2", "name": "Crumb & Co", "description": None, "handles": None, "hashtags": None},
        ],
        "segments": [
            {
                "segment_id": "s1",
                "brand_id": "b1",
                "description": "Trail runners in the Alps",
                "countries": "fr ch it",
                "weight": 1.0,
            },
            {"segment_id": "s2", "brand_id": "b2", "description": "Home bakers", "countries": None, "weight": 0.5},
        ],
        "campaigns": [
            {
                "campaign_id": "k1",
                "brand_id": "b1",
                "segment_id": "s1",
                "creator_id": "c1",
                "start_date": "2025-03-01",
                "cost": 150.0,
                "impressions": 20000,
                "reach": 15000,
                "likes": 800,
                "comments": 40,
                "clicks": 300,
                "conversions": 12,
                "revenue": 960.0,
            },
            {
                "campaign_id": "k2",
                "brand_id": "b2",
                "segment_id": "s2",
                "creator_id": "c2",
                "start_date": "2025-03-10",
                "cost": 400.0,
                "impressions": None,
                "reach": None,
                "likes": None,
                "comments": None,
                "clicks": None,
                "conversions": 3,
                "revenue": 75.5,
            },
        ],
    }


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def write_table(data_dir: Path, table: str, rows: Rows, fmt: str) -> Path:
    """Write ``rows`` as ``<table>.<fmt>``: CSV cells as text, JSON with native types, parquet with inferred types."""
    path = data_dir / f"{table}.{fmt}"
    columns = list(dict.fromkeys(k for row in rows for k in row)) if rows else TABLES[table].column_names
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_csv_cell(row.get(c)) for c in columns] for row in rows])
        path.write_text(buffer.getvalue(), encoding="utf-8", newline="")
    elif fmt in ("jsonl", "ndjson", "json"):
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    elif fmt == "parquet":
        pl.DataFrame(rows, infer_schema_length=None).write_parquet(path)
    else:
        raise ValueError(fmt)
    return path


def write_dataset(
    data_dir: Path, fmt: str = "csv", tables: dict[str, Rows] | None = None, formats: dict[str, str] | None = None
) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    for table, rows in (tables if tables is not None else base_tables()).items():
        write_table(data_dir, table, rows, (formats or {}).get(table, fmt))
    return data_dir


def snapshot(data_dir: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(data_dir)): (p.stat().st_size, p.stat().st_mtime_ns) for p in data_dir.rglob("*")}


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


# --- malformed inputs ---------------------------------------------------------------------------------------------


def _mutated(table: str, row: int, **changes: Any) -> dict[str, Rows]:
    tables = base_tables()
    tables[table][row - 1].update(changes)
    return tables


def case_missing_column(d: Path) -> None:
    tables = base_tables()
    for row in tables["creators"]:
        row["follower_count"] = row.pop("followers")
    write_dataset(d, "csv", tables)


def case_wrong_type(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 2, followers="abc"))


def case_negative_count(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("posts", 1, likes=-5))


def case_duplicate_ids(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 3, creator_id="c1"))


def case_post_of_unknown_creator(d: Path) -> None:
    write_dataset(d, "parquet", _mutated("posts", 3, creator_id="ghost"))


def case_empty_file(d: Path) -> None:
    write_dataset(d, "csv")
    (d / "creators.csv").write_bytes(b"")


def case_bad_encoding(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 2, bio="Pâtisserie et café"))
    path = d / "creators.csv"
    path.write_bytes(path.read_text(encoding="utf-8").encode("latin-1"))


def case_nan_csv(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 1, followers="NaN"))


def case_nan_parquet(d: Path) -> None:
    write_dataset(d, "parquet", _mutated("segments", 2, weight=float("nan")))


def case_infinite_rate(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 3, rate_per_post="inf"))


def case_unparsable_date(d: Path) -> None:
    write_dataset(d, "csv", _mutated("posts", 2, posted_at="yesterday"))


def case_unparsable_start_date(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("campaigns", 1, start_date="01/03/2025"))


def case_oversized_field(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("creators", 1, bio="x" * 5001))


def case_deeply_nested_json(d: Path) -> None:
    write_dataset(d, "csv")
    (d / "creators.csv").unlink()
    depth = 200_000
    (d / "creators.json").write_text("[" * depth + "]" * depth, encoding="utf-8")


def case_deeply_nested_json_line(d: Path) -> None:
    write_dataset(d, "csv", formats={"posts": "jsonl"})
    with (d / "posts.jsonl").open("a", encoding="utf-8") as fh:
        fh.write('{"caption": ' + "[" * 200_000 + "]" * 200_000 + "}\n")


def case_ten_megabyte_caption(d: Path) -> None:
    write_dataset(d, "csv", _mutated("posts", 3, caption="y" * 10_000_000))


def case_nul_byte_past_the_first_mib(d: Path) -> None:
    tables = base_tables()
    template = tables["posts"][0]
    tables["posts"] += [{**template, "post_id": f"x{i}", "caption": "z" * 100} for i in range(12_000)]
    tables["posts"][-1]["caption"] = "before\x00after"
    write_dataset(d, "csv", tables)


def case_nul_character_in_json_text(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("creators", 2, bio="a\x00b"))


def case_integer_with_5000_digits(d: Path) -> None:
    write_dataset(d, "csv", formats={"posts": "jsonl"})
    text = (d / "posts.jsonl").read_text(encoding="utf-8")
    (d / "posts.jsonl").write_text(text.replace('"likes": 500', '"likes": ' + "9" * 5000, 1), encoding="utf-8")


def case_header_name_over_128_kib(d: Path) -> None:
    write_dataset(d, "csv")
    text = (d / "brands.csv").read_text(encoding="utf-8")
    (d / "brands.csv").write_text(text.replace("hashtags", "h" * 200_000, 1), encoding="utf-8")


def case_truncated_parquet(d: Path) -> None:
    write_dataset(d, "parquet")
    data = (d / "posts.parquet").read_bytes()
    (d / "posts.parquet").write_bytes(data[: len(data) // 2])


def case_post_dated_9999(d: Path) -> None:
    write_dataset(d, "csv", _mutated("posts", 2, posted_at="9999-12-31"))


def case_post_dated_before_the_platforms(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("posts", 1, posted_at="1970-01-01T00:00:00Z"))


def case_follower_observed_after_the_stated_export(d: Path) -> None:
    write_dataset(d, "parquet", _mutated("followers", 2, observed_at="2025-07-02T00:00:00Z"))
    (d / "export.json").write_text('{"exported_at": "2025-06-30T00:00:00Z"}', encoding="utf-8")


def case_campaign_starting_after_the_export(d: Path) -> None:
    write_dataset(d, "csv", _mutated("campaigns", 1, start_date="9999-12-31"))


def case_malformed_export_manifest(d: Path) -> None:
    write_dataset(d, "csv")
    (d / "export.json").write_text('{"exported_at": "yesterday"}', encoding="utf-8")


def case_export_manifest_in_the_future(d: Path) -> None:
    write_dataset(d, "csv")
    (d / "export.json").write_text('{"exported_at": "9999-12-31"}', encoding="utf-8")


def case_unknown_platform(d: Path) -> None:
    write_dataset(d, "parquet", _mutated("creators", 2, platform="MySpace"))


def case_unknown_gender(d: Path) -> None:
    write_dataset(d, "parquet", _mutated("followers", 4, gender="robot"))


def case_null_in_required_column(d: Path) -> None:
    write_dataset(d, "csv", _mutated("creators", 2, handle="  "))


def case_not_a_boolean(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("posts", 4, sponsored="maybe"))


def case_missing_required_table(d: Path) -> None:
    tables = base_tables()
    del tables["posts"]
    write_dataset(d, "csv", tables)


def case_duplicate_table_files(d: Path) -> None:
    write_dataset(d, "csv")
    write_table(d, "creators", base_tables()["creators"], "jsonl")


def case_float_in_integer_column(d: Path) -> None:
    write_dataset(d, "csv", _mutated("posts", 1, likes="12.5"))


def case_followers_of_unknown_creator(d: Path) -> None:
    write_dataset(d, "jsonl", _mutated("followers", 2, creator_id="ghost"))


def case_segment_of_unknown_brand(d: Path) -> None:
    write_dataset(d, "csv", _mutated("segments", 2, brand_id="b9"))


def case_segments_without_brands(d: Path) -> None:
    tables = base_tables()
    del tables["brands"]
    del tables["campaigns"]
    write_dataset(d, "csv", tables)


def case_campaign_brand_disagrees_with_segment(d: Path) -> None:
    write_dataset(d, "csv", _mutated("campaigns", 2, brand_id="b1"))


def case_malformed_json_line(d: Path) -> None:
    write_dataset(d, "jsonl")
    path = d / "posts.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1][:-10]  # cut the object short
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def case_ragged_csv_row(d: Path) -> None:
    write_dataset(d, "csv")
    path = d / "posts.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0]  # data row 2 loses its last field
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def case_csv_named_parquet(d: Path) -> None:
    write_dataset(d, "parquet")
    (d / "creators.parquet").unlink()
    write_table(d, "creators", base_tables()["creators"], "csv").rename(d / "creators.parquet")


def case_several_problems(d: Path) -> None:
    tables = base_tables()
    tables["creators"][0]["followers"] = "-1"
    tables["creators"][1]["platform"] = "myspace"
    tables["posts"][2]["posted_at"] = "not a date"
    tables["posts"][3]["creator_id"] = "ghost"
    tables["campaigns"][0]["cost"] = "free"
    write_dataset(d, "csv", tables)


MALFORMED: list[tuple[str, Callable[[Path], None], list[str]]] = [
    (
        "missing_column",
        case_missing_column,
        ["creators.csv, column 'followers': required column is missing", "follower_count"],
    ),
    ("wrong_type", case_wrong_type, ["creators.csv, row 2, column 'followers': expected an integer, got 'abc'"]),
    ("negative_count", case_negative_count, ["posts.jsonl, row 1, column 'likes': value -5 is below the minimum of 0"]),
    (
        "duplicate_ids",
        case_duplicate_ids,
        ["creators.csv, row 1, column 'creator_id': duplicate creator_id 'c1': it appears in rows 1, 3"],
    ),
    (
        "post_of_unknown_creator",
        case_post_of_unknown_creator,
        [
            "posts.parquet, row 3, column 'creator_id': unknown creator_id 'ghost'",
            "(no such creator_id in creators.parquet)",
        ],
    ),
    ("empty_file", case_empty_file, ["creators.csv: file is empty (0 bytes)"]),
    ("bad_encoding", case_bad_encoding, ["creators.csv: not valid UTF-8: byte 0xe2 at offset", "(line 3)"]),
    ("nan_csv", case_nan_csv, ["creators.csv, row 1, column 'followers': NaN (not a number) is not allowed"]),
    ("nan_parquet", case_nan_parquet, ["segments.parquet, row 2, column 'weight': NaN (not a number) is not allowed"]),
    (
        "infinite_rate",
        case_infinite_rate,
        ["creators.csv, row 3, column 'rate_per_post': infinite value 'inf' is not allowed"],
    ),
    (
        "unparsable_date",
        case_unparsable_date,
        ["posts.csv, row 2, column 'posted_at': expected an ISO 8601 timestamp", "got 'yesterday'"],
    ),
    (
        "unparsable_start_date",
        case_unparsable_start_date,
        ["campaigns.jsonl, row 1, column 'start_date': expected a date YYYY-MM-DD, got '01/03/2025'"],
    ),
    (
        "oversized_field",
        case_oversized_field,
        ["creators.jsonl, row 1, column 'bio': value is longer than 5,000 characters, the maximum (it has 5,001)"],
    ),
    (
        "post_dated_9999",
        case_post_dated_9999,
        ["posts.csv, row 2, column 'posted_at': timestamp 9999-12-31T00:00:00Z is after the export instant"],
    ),
    (
        "post_dated_before_the_platforms",
        case_post_dated_before_the_platforms,
        ["posts.jsonl, row 1, column 'posted_at': timestamp 1970-01-01T00:00:00Z is before 2004-01-01"],
    ),
    (
        "follower_observed_after_the_stated_export",
        case_follower_observed_after_the_stated_export,
        [
            "followers.parquet, row 2, column 'observed_at': timestamp 2025-07-02T00:00:00Z is after the export "
            "instant 2025-06-30T00:00:00Z (from export.json; one day of tolerance)"
        ],
    ),
    (
        "campaign_starting_after_the_export",
        case_campaign_starting_after_the_export,
        ["campaigns.csv, row 1, column 'start_date': date 9999-12-31 is after the export instant"],
    ),
    (
        "malformed_export_manifest",
        case_malformed_export_manifest,
        ["export.json: exported_at 'yesterday': not an ISO 8601 date or timestamp"],
    ),
    (
        "export_manifest_in_the_future",
        case_export_manifest_in_the_future,
        ["export.json: exported_at 9999-12-31T00:00:00Z is in the future"],
    ),
    (
        "deeply_nested_json",
        case_deeply_nested_json,
        ["creators.json: line 1: JSON nested more than 100 levels deep"],
    ),
    (
        "deeply_nested_json_line",
        case_deeply_nested_json_line,
        ["posts.jsonl: line 5: JSON nested more than 100 levels deep"],
    ),
    (
        "ten_megabyte_caption",
        case_ten_megabyte_caption,
        ["posts.csv, row 3, column 'caption': value is longer than 5,000 characters, the maximum (it has 10,000,000)"],
    ),
    (
        "nul_byte_past_the_first_mib",
        case_nul_byte_past_the_first_mib,
        ["posts.csv: contains a NUL byte", "(line 12005)"],
    ),
    (
        "nul_character_in_json_text",
        case_nul_character_in_json_text,
        ["creators.jsonl, row 2, column 'bio': contains a NUL character (0x00) at character 2"],
    ),
    (
        "integer_with_5000_digits",
        case_integer_with_5000_digits,
        ["posts.jsonl, row 1, column 'likes':", "is out of range for a 64-bit integer"],
    ),
    (
        "truncated_parquet",
        case_truncated_parquet,
        ["posts.parquet: truncated or damaged parquet file"],
    ),
    (
        "unknown_platform",
        case_unknown_platform,
        ["creators.parquet, row 2, column 'platform': unknown value 'myspace' (allowed: instagram, tiktok"],
    ),
    ("unknown_gender", case_unknown_gender, ["followers.parquet, row 4, column 'gender': unknown value 'robot'"]),
    (
        "null_in_required_column",
        case_null_in_required_column,
        ["creators.csv, row 2, column 'handle': missing value (the column is required)"],
    ),
    (
        "not_a_boolean",
        case_not_a_boolean,
        ["posts.jsonl, row 4, column 'sponsored': expected true or false, got 'maybe'"],
    ),
    ("missing_required_table", case_missing_required_table, ["posts: required table 'posts' is missing", "posts.csv"]),
    (
        "duplicate_table_files",
        case_duplicate_table_files,
        ["two files for table 'creators': creators.csv and creators.jsonl"],
    ),
    (
        "float_in_integer_column",
        case_float_in_integer_column,
        ["posts.csv, row 1, column 'likes': expected an integer, got '12.5'"],
    ),
    (
        "followers_of_unknown_creator",
        case_followers_of_unknown_creator,
        ["followers.jsonl, row 2, column 'creator_id': unknown creator_id 'ghost'"],
    ),
    (
        "segment_of_unknown_brand",
        case_segment_of_unknown_brand,
        ["segments.csv, row 2, column 'brand_id': unknown brand_id 'b9' (no such brand_id in brands.csv)"],
    ),
    (
        "segments_without_brands",
        case_segments_without_brands,
        ["brands: table 'brands' is needed by segments.csv (segments.brand_id refers to brands.brand_id)"],
    ),
    (
        "campaign_brand_disagrees_with_segment",
        case_campaign_brand_disagrees_with_segment,
        ["campaigns.csv, row 2, column 'brand_id': brand_id is 'b1' but segment_id 's2' belongs to brand_id 'b2'"],
    ),
    ("malformed_json_line", case_malformed_json_line, ["posts.jsonl: line 2: malformed JSON"]),
    ("ragged_csv_row", case_ragged_csv_row, ["posts.csv: line 3: expected 8 fields (as in the header), found 7"]),
    (
        "csv_named_parquet",
        case_csv_named_parquet,
        ["creators.parquet: not a parquet file (no PAR1 magic bytes); it looks like text (CSV?)"],
    ),
    (
        "several_problems",
        case_several_problems,
        [
            "creators.csv, row 1, column 'followers': value -1 is below the minimum of 0",
            "creators.csv, row 2, column 'platform': unknown value 'myspace'",
            "posts.csv, row 3, column 'posted_at': expected an ISO 8601 timestamp",
            "posts.csv, row 4, column 'creator_id': unknown creator_id 'ghost'",
            "campaigns.csv, row 1, column 'cost': expected a number, got 'free'",
        ],
    ),
]


@pytest.mark.parametrize(("build", "expected"), [(b, e) for _, b, e in MALFORMED], ids=[n for n, _, _ in MALFORMED])
def test_malformed_input_is_refused_with_every_problem_named(tmp_path, build, expected):
    data_dir = tmp_path / "in"
    data_dir.mkdir()
    build(data_dir)
    before = snapshot(data_dir)

    result = run_cli("validate", str(data_dir))
    assert result.exit_code == 2, result.output
    for fragment in expected:
        assert fragment in result.output
    assert "INVALID" in result.output

    with pytest.raises(InputError) as excinfo:
        load_dataset(data_dir, secret=SECRET)
    assert excinfo.value.exit_code == 2
    message = str(excinfo.value)
    for fragment in expected:
        assert fragment in message

    assert snapshot(data_dir) == before, "validation must never write to the input directory"


@pytest.mark.parametrize(
    "build", [case_deeply_nested_json, case_ten_megabyte_caption, case_nul_byte_past_the_first_mib]
)
def test_features_build_reports_malformed_files_like_validate(tmp_path, monkeypatch, capsys, build):
    """Both commands read through the same reader: the same listed problem, exit code 2, no traceback."""
    from audiencefit.cli import main

    data_dir = tmp_path / "in"
    data_dir.mkdir()
    build(data_dir)
    validated = run_cli("validate", str(data_dir))
    problem = next(line.strip() for line in validated.output.splitlines() if line.startswith("  "))
    monkeypatch.setattr(
        "sys.argv", ["audiencefit", "features", "build", "--data", str(data_dir), "--out", str(tmp_path / "fs")]
    )
    with pytest.raises(SystemExit) as excinfo:
        main()
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert problem in err
    assert "Traceback" not in err
    assert not (tmp_path / "fs").exists()


def test_the_export_instant_is_stated_by_flag_or_manifest_and_shown(tmp_path):
    data_dir = write_dataset(tmp_path / "in", "csv")
    result = run_cli("validate", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "Export instant:" in result.output and "(from the modification time of" in result.output

    (data_dir / "export.json").write_text('{"exported_at": "2025-03-15T00:00:00Z"}', encoding="utf-8")
    result = run_cli("validate", str(data_dir))
    assert result.exit_code == 0, result.output  # the manifest is not reported as an unknown table
    assert "Export instant: 2025-03-15T00:00:00Z (from export.json)" in result.output
    assert "file ignored" not in result.output

    # The flag wins over the manifest; posts of 2025-02 are after a stated export of 2025-01-07.
    result = run_cli("validate", str(data_dir), "--export-time", "2025-01-07")
    assert result.exit_code == 2, result.output
    assert "Export instant: 2025-01-07T00:00:00Z (from --export-time)" in result.output
    assert "posts.csv, row 3, column 'posted_at': timestamp 2025-02-01T12:00:00Z is after the export" in result.output
    assert "posts.csv, row 2, column 'posted_at'" not in result.output  # 2025-01-07 17:30Z: within one day


def test_a_header_name_over_128_kib_is_read_and_shown_shortened(tmp_path):
    case_header_name_over_128_kib(tmp_path)
    result = run_cli("validate", str(tmp_path))
    assert result.exit_code == 0, result.output[-2000:]
    assert "brands.csv, column 'hashtags': warning: optional column is absent" in result.output
    assert len(result.output) < 20_000  # the 200,000-character name is shortened, not printed


def test_several_problems_are_reported_together_not_just_the_first(tmp_path):
    case_several_problems(tmp_path)
    report = validate_dir(tmp_path)
    assert not report.ok
    invalid = {t.table for t in report.tables if not t.ok}
    assert invalid == {"creators", "posts", "campaigns"}
    assert len(report.errors) == 5


# --- valid inputs -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet", "ndjson", "json"])
def test_valid_dataset_passes_and_loads_with_exact_schemas(tmp_path, fmt):
    data_dir = write_dataset(tmp_path / "in", fmt)
    before = snapshot(data_dir)

    result = run_cli("validate", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "VALID: 6 table(s)" in result.output

    dataset = load_dataset(data_dir, secret=SECRET)
    for table in TABLE_ORDER:
        frame = dataset.table(table)
        assert frame is not None
        assert frame.schema == TABLES[table].polars_schema, table
        assert frame.height == len(base_tables()[table])
    assert dataset.source_files["creators"] == data_dir / f"creators.{fmt}"
    assert snapshot(data_dir) == before


def test_valid_dataset_is_normalised(tmp_path):
    dataset = load_dataset(write_dataset(tmp_path, "csv"), secret=SECRET)
    creators = dataset.creators
    assert creators["platform"].to_list() == ["instagram", "tiktok", "youtube"]
    assert creators["country"].to_list() == ["FR", "GB", None]
    assert creators["language"].to_list() == ["fr", "en", "en"]
    assert creators["bio"][2] == 'Python tutorials, with commas, "quotes"\nand a second line'
    posted = dataset.posts["posted_at"].dt.strftime("%Y-%m-%dT%H:%M:%S").to_list()
    assert posted == ["2025-01-05T10:00:00", "2025-01-07T17:30:00", "2025-02-01T12:00:00", "2025-02-03T00:00:00"]
    assert dataset.posts["sponsored"].to_list() == [False, True, False, False]
    assert dataset.followers is not None
    assert dataset.followers["gender"].to_list() == ["female", "male", "female", "unknown"]
    assert dataset.segments is not None
    assert dataset.segments["countries"].to_list() == ["FR CH IT", None]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_campaigns_validate_with_and_without_recommendation_id(tmp_path, fmt):
    # Without the column (every export before #18): valid, read as all-empty, one warning naming it.
    assert "recommendation_id" not in base_tables()["campaigns"][0]
    without = write_dataset(tmp_path / "without", fmt)
    assert run_cli("validate", str(without)).exit_code == 0
    report = validate_dir(without)
    assert report.ok
    warned = [w for w in report.all_warnings if w.column == "recommendation_id"]
    assert len(warned) == 1 and "optional column is absent" in str(warned[0])
    campaigns = load_dataset(without, secret=SECRET).campaigns
    assert campaigns is not None and campaigns["recommendation_id"].to_list() == [None, None]

    # With it: one row from a recommendation, one not (blank); no warning about the column.
    tables = base_tables()
    tables["campaigns"][0]["recommendation_id"] = " rec-0001 "
    tables["campaigns"][1]["recommendation_id"] = None
    with_id = write_dataset(tmp_path / "with", fmt, tables)
    report = validate_dir(with_id)
    assert report.ok, report.errors
    assert not [w for w in report.all_warnings if w.column == "recommendation_id"]
    campaigns = load_dataset(with_id, secret=SECRET).campaigns
    assert campaigns is not None and campaigns["recommendation_id"].to_list() == ["rec-0001", None]

    # Longer than the log's key: an error naming the column.
    tables["campaigns"][0]["recommendation_id"] = "r" * 65
    report = validate_dir(write_dataset(tmp_path / "long", fmt, tables))
    assert not report.ok
    assert any(e.column == "recommendation_id" and "longer than 64" in str(e) for e in report.errors)


def test_mixed_formats_and_optional_tables_absent(tmp_path):
    tables = base_tables()
    for optional in ("followers", "brands", "segments", "campaigns"):
        del tables[optional]
    data_dir = write_dataset(tmp_path, "csv", tables, formats={"posts": "parquet"})
    dataset = load_dataset(data_dir, secret=SECRET)
    assert dataset.followers is None and dataset.campaigns is None
    assert dataset.posts.height == 4
    assert run_cli("validate", str(data_dir)).exit_code == 0


def test_header_only_table_is_a_valid_empty_table(tmp_path):
    tables = base_tables()
    tables["followers"] = []
    data_dir = write_dataset(tmp_path, "csv", tables)
    dataset = load_dataset(data_dir, secret=SECRET)
    assert dataset.followers is not None
    assert dataset.followers.height == 0
    assert dataset.followers.schema == TABLES["followers"].polars_schema


def test_extra_columns_are_warnings_not_errors(tmp_path):
    tables = base_tables()
    for row in tables["creators"]:
        row["engagement_rate_export"] = "0.1"
    data_dir = write_dataset(tmp_path, "csv", tables)
    result = run_cli("validate", str(data_dir))
    assert result.exit_code == 0, result.output
    assert "warning: ignored 1 unknown column(s): 'engagement_rate_export'" in result.output
    dataset = load_dataset(data_dir, secret=SECRET)
    assert "engagement_rate_export" not in dataset.creators.columns


def test_raw_follower_ids_never_leave_load_dataset(tmp_path):
    data_dir = write_dataset(tmp_path, "jsonl")
    dataset = load_dataset(data_dir, secret=SECRET)
    assert dataset.followers is not None
    ids = dataset.followers["follower_id"].to_list()
    raw = {row["follower_id"] for row in base_tables()["followers"]}
    assert raw.isdisjoint(ids)
    assert all(len(i) == 32 for i in ids)
    assert ids[0] == ids[2]  # the same follower of two creators keeps one pseudonym
    expected = pseudonymise_ids(pl.Series(["anna_k"]), SECRET)[0]
    assert ids[0] == expected
    other = load_dataset(data_dir, secret="another-secret-entirely")
    assert other.followers is not None
    assert other.followers["follower_id"][0] != ids[0]


def test_max_issues_limits_printed_problems(tmp_path):
    tables = base_tables()
    for row in tables["posts"]:
        row["likes"] = "many"
    data_dir = write_dataset(tmp_path, "csv", tables)
    result = run_cli("validate", str(data_dir), "--max-issues", "2")
    assert result.exit_code == 2
    assert "… and 2 more (use --max-issues 0 to see all)" in result.output
    assert "row 3, column 'likes'" not in result.output


def test_missing_directory_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="data directory not found"):
        validate_dir(tmp_path / "nope")


# --- the contracts doc --------------------------------------------------------------------------------------------


def test_committed_contracts_doc_matches_the_schemas():
    committed = (REPO_ROOT / "docs" / "data-contracts.md").read_text(encoding="utf-8")
    assert committed == render_contracts_markdown(), (
        f"docs/data-contracts.md is out of date with features/schemas.py; regenerate it with: {REGENERATE_COMMAND}"
    )


def test_contracts_doc_covers_every_column():
    text = render_contracts_markdown()
    for schema in TABLES.values():
        assert f"## `{schema.name}`" in text
        for column in schema.columns:
            assert f"| `{column.name}` |" in text
