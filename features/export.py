"""The export instant of a data directory, and the window of plausible timestamps it implies.

Statistics that depend on "now" (``days_since_last_post``) are taken as of the instant the data was exported, never
as of the newest timestamp found in the data: one post dated 9999-12-31 would otherwise make every other creator
look inactive for millions of days. The instant is, in this order:

1. stated on the command line (``--export-time``), or passed as ``export_time`` to the loading functions;
2. stated in the data directory, in ``export.json``: ``{"exported_at": "2026-06-30T00:00:00Z"}``;
3. otherwise the newest modification time of the table files read (capped at the current time): a file cannot
   hold a post published after it was written, so this is a safe upper bound of the true export instant.

Every timestamp and date in the tables must then fall inside :class:`TimeWindow`: not before
``EARLIEST_PLAUSIBLE`` (2004-01-01: no platform of the vocabulary existed earlier) and not after the export
instant plus ``EXPORT_TOLERANCE`` (one day: local times mistaken for UTC, clock skew between systems).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from audiencefit.features.errors import InputError, Issue

EARLIEST_PLAUSIBLE = datetime(2004, 1, 1, tzinfo=UTC)
EXPORT_TOLERANCE = timedelta(days=1)
EXPORT_MANIFEST = "export.json"
EXPORT_KEY = "exported_at"
_MANIFEST_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class ExportInstant:
    """When the data was exported, and where that was read from (for messages and the feature set manifest)."""

    instant: datetime
    source: str

    @property
    def window(self) -> TimeWindow:
        return TimeWindow(
            earliest=EARLIEST_PLAUSIBLE,
            latest=self.instant + EXPORT_TOLERANCE,
            export=self,
        )


@dataclass(frozen=True)
class TimeWindow:
    """Instants a timestamp in the input may take: ``earliest <= t <= latest`` (both in UTC)."""

    earliest: datetime
    latest: datetime
    export: ExportInstant

    @property
    def earliest_date(self) -> date:
        return self.earliest.date()

    @property
    def latest_date(self) -> date:
        return self.latest.date()

    def after_text(self) -> str:
        """Why a value is too late, for messages."""
        return (
            f"after the export instant {format_instant(self.export.instant)} (from {self.export.source}; "
            f"{_tolerance_text()} of tolerance)"
        )

    def before_text(self) -> str:
        """Why a value is too early, for messages."""
        return f"before {self.earliest_date.isoformat()}, earlier than any platform existed"


def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with a 'Z', to the second."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tolerance_text() -> str:
    hours = int(EXPORT_TOLERANCE.total_seconds() // 3600)
    return "one day" if hours == 24 else f"{hours} hours"


def parse_instant(value: str, what: str) -> datetime:
    """An ISO 8601 date or instant from ``what`` (a flag or a file); naive values are UTC. InputError otherwise."""
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"{what} {value!r}: not an ISO 8601 date or timestamp (e.g. 2026-03-01T00:00:00Z)") from exc
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_export_instant(instant: datetime, what: str, *, now: datetime | None = None) -> datetime:
    """``instant`` in UTC if it is a plausible export instant (not before 2004, not in the future); else InputError."""
    instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant.astimezone(UTC)
    current = now or datetime.now(UTC)
    if instant < EARLIEST_PLAUSIBLE:
        earliest = EARLIEST_PLAUSIBLE.date()
        raise InputError(f"{what} {format_instant(instant)} is before {earliest}: not a plausible export instant")
    if instant > current + EXPORT_TOLERANCE:
        raise InputError(f"{what} {format_instant(instant)} is in the future (it is now {format_instant(current)})")
    return instant


def read_export_manifest(data_dir: Path) -> datetime | None:
    """The ``exported_at`` stated in ``data_dir/export.json``, or None without that file. InputError if malformed."""
    path = data_dir / EXPORT_MANIFEST
    if not path.is_file():
        return None

    def fail(problem: str) -> InputError:
        return InputError([Issue(table="-", file=EXPORT_MANIFEST, problem=problem)])

    try:
        size = path.stat().st_size
        if size > _MANIFEST_MAX_BYTES:
            raise fail(f"{size:,} bytes; an export manifest is a small JSON object (at most {_MANIFEST_MAX_BYTES:,})")
        data = path.read_bytes()
    except OSError as exc:
        raise fail(f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        record = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise fail(f"not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise fail(f"line {exc.lineno}: malformed JSON ({exc.msg}, column {exc.colno})") from exc
    except (RecursionError, ValueError) as exc:
        raise fail("malformed JSON (nested too deeply or a number too long)") from exc
    if not isinstance(record, dict) or not isinstance(record.get(EXPORT_KEY), str):
        raise fail(f'expected a JSON object such as {{"{EXPORT_KEY}": "2026-06-30T00:00:00Z"}}')
    try:
        return check_export_instant(parse_instant(record[EXPORT_KEY], EXPORT_KEY), EXPORT_KEY)
    except InputError as exc:
        raise fail(str(exc)) from exc


def resolve_export_instant(data_dir: Path, stated: datetime | None, table_files: Iterable[Path]) -> ExportInstant:
    """The export instant of ``data_dir``: ``stated``, else ``export.json``, else the newest file modification time
    of ``table_files`` (capped at now). InputError for an implausible stated instant or a malformed manifest."""
    if stated is not None:
        return ExportInstant(check_export_instant(stated, "--export-time"), "--export-time")
    from_manifest = read_export_manifest(data_dir)
    if from_manifest is not None:
        return ExportInstant(from_manifest, EXPORT_MANIFEST)
    now = datetime.now(UTC)
    newest: tuple[datetime, str] | None = None
    for path in table_files:
        try:
            modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            continue
        if newest is None or modified > newest[0]:
            newest = (modified, path.name)
    if newest is None or newest[0] > now:
        return ExportInstant(now.replace(microsecond=0), "the current time")
    # Whole seconds: the instant is shown in messages and the manifest, sub-second precision would only be noise.
    return ExportInstant(newest[0].replace(microsecond=0), f"the modification time of {newest[1]}")


def write_export_manifest(data_dir: Path, instant: datetime) -> Path:
    """Write ``export.json`` stating ``instant`` (used by the synthetic world, which has a fixed export instant)."""
    path = data_dir / EXPORT_MANIFEST
    path.write_text(json.dumps({EXPORT_KEY: format_instant(instant)}, indent=2) + "\n", encoding="utf-8")
    return path
