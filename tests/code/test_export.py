"""The export instant of a data directory and the plausible-timestamp window it implies
(audiencefit.features.export)."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from audiencefit.features.errors import InputError
from audiencefit.features.export import (
    EARLIEST_PLAUSIBLE,
    ExportInstant,
    read_export_manifest,
    resolve_export_instant,
)
from audiencefit.features.schemas import CAMPAIGNS, POSTS
from audiencefit.features.validate import validate_table

EXPORT = ExportInstant(datetime(2026, 6, 30, tzinfo=UTC), "export.json")


def test_stated_instant_wins_then_manifest_then_file_time(tmp_path: Path):
    table = tmp_path / "posts.csv"
    table.write_text("post_id\n", encoding="utf-8")
    stamp = datetime(2025, 5, 1, 12, tzinfo=UTC).timestamp()
    os.utime(table, (stamp, stamp))
    assert resolve_export_instant(tmp_path, None, [table]) == ExportInstant(
        datetime(2025, 5, 1, 12, tzinfo=UTC), "the modification time of posts.csv"
    )
    (tmp_path / "export.json").write_text('{"exported_at": "2025-04-01T08:00:00+02:00"}', encoding="utf-8")
    assert resolve_export_instant(tmp_path, None, [table]) == ExportInstant(
        datetime(2025, 4, 1, 6, tzinfo=UTC), "export.json"
    )
    stated = datetime(2025, 3, 1)  # naive: UTC
    assert resolve_export_instant(tmp_path, stated, [table]).instant == datetime(2025, 3, 1, tzinfo=UTC)


def test_a_file_time_in_the_future_is_capped_at_now(tmp_path: Path):
    table = tmp_path / "posts.csv"
    table.write_text("post_id\n", encoding="utf-8")
    future = (datetime.now(UTC) + timedelta(days=400)).timestamp()
    os.utime(table, (future, future))
    resolved = resolve_export_instant(tmp_path, None, [table])
    assert resolved.source == "the current time"
    assert resolved.instant <= datetime.now(UTC)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[" * 30_000 + "]" * 30_000, "malformed JSON (nested too deeply"),
        ("{", "line 1: malformed JSON"),
        ('{"exported": "2025-01-01"}', 'expected a JSON object such as {"exported_at"'),
        ('{"exported_at": 20250101}', 'expected a JSON object such as {"exported_at"'),
        ('{"exported_at": "2003-12-31"}', "is before 2004-01-01"),
        ('{"exported_at": "9999-12-31T00:00:00Z"}', "is in the future"),
        ("x" * 100_000, "an export manifest is a small JSON object"),
    ],
)
def test_a_malformed_manifest_is_an_input_error_naming_the_file(tmp_path: Path, content: str, expected: str):
    (tmp_path / "export.json").write_text(content, encoding="utf-8")
    with pytest.raises(InputError) as excinfo:
        read_export_manifest(tmp_path)
    assert str(excinfo.value.issues[0]).startswith("export.json: ")
    assert expected in str(excinfo.value)


def test_stated_instants_outside_the_plausible_range_are_refused(tmp_path: Path):
    with pytest.raises(InputError, match="--export-time 9999-12-31T00:00:00Z is in the future"):
        resolve_export_instant(tmp_path, datetime(9999, 12, 31, tzinfo=UTC), [])
    with pytest.raises(InputError, match="before 2004-01-01"):
        resolve_export_instant(tmp_path, datetime(1999, 1, 1, tzinfo=UTC), [])


def test_every_timestamp_and_date_column_is_checked_against_the_window():
    window = EXPORT.window
    assert window.earliest == EARLIEST_PLAUSIBLE and window.latest == datetime(2026, 7, 1, tzinfo=UTC)
    posts = pl.DataFrame(
        {
            "post_id": ["p1", "p2", "p3", "p4"],
            "creator_id": ["c1"] * 4,
            "posted_at": ["2026-07-01T00:00:00Z", "2026-07-01T00:00:01Z", "2003-12-31T23:59:59Z", "2004-01-01"],
            "likes": ["1"] * 4,
            "comments": ["0"] * 4,
            "sponsored": ["false"] * 4,
        }
    )
    frame, issues = validate_table(posts, POSTS, "posts.csv", window=window)
    errors = [str(i) for i in issues if not i.problem.startswith("warning")]
    assert errors == [
        "posts.csv, row 3, column 'posted_at': timestamp 2003-12-31T23:59:59Z is before 2004-01-01, earlier than "
        "any platform existed",
        "posts.csv, row 2, column 'posted_at': timestamp 2026-07-01T00:00:01Z is after the export instant "
        "2026-06-30T00:00:00Z (from export.json; one day of tolerance)",
    ]
    assert frame["posted_at"].null_count() == 2

    campaigns = pl.DataFrame({"start_date": [date(2026, 7, 1), date(2026, 7, 2), date(1999, 1, 1)]})
    _frame, issues = validate_table(campaigns, CAMPAIGNS, "campaigns.parquet", window=window)
    errors = [str(i) for i in issues if i.column == "start_date"]
    assert errors == [
        "campaigns.parquet, row 3, column 'start_date': date 1999-01-01 is before 2004-01-01, earlier than any "
        "platform existed",
        "campaigns.parquet, row 2, column 'start_date': date 2026-07-02 is after the export instant "
        "2026-06-30T00:00:00Z (from export.json; one day of tolerance)",
    ]
