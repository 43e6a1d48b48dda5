"""``audiencefit index build``, ``audiencefit search`` and ``audiencefit lookalikes``."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from audiencefit.cli._app import app, index_app
from audiencefit.cli._types import finite, whole
from audiencefit.features.errors import InputError

if TYPE_CHECKING:
    from audiencefit.models.brief import BriefReading
    from audiencefit.models.query import Filters
    from audiencefit.models.retrieval import AudienceSearch

FeaturesOpt = Annotated[Path, typer.Option("--features", help="Feature set directory (from 'features build').")]
IndexDirOpt = Annotated[Path | None, typer.Option("--index-dir", help="Index directory. Default: <features>/index.")]
KOpt = Annotated[int, typer.Option("--k", min=1, max=1000, help="How many creators to return (1–1000).")]


class SimilarityChoice(StrEnum):
    audience = "audience"
    content = "content"


# Far above any account; the bound keeps a typo from overflowing the follower columns (Int64).
MAX_FOLLOWERS = 2**62
MinFollowersOpt = Annotated[
    int,
    typer.Option("--min-followers", parser=whole(0, MAX_FOLLOWERS), help="Smallest follower count allowed."),
]
MaxFollowersOpt = Annotated[
    int, typer.Option("--max-followers", parser=whole(0, MAX_FOLLOWERS), help="Largest follower count allowed.")
]


# audiencefit.features.schemas.PLATFORMS, not imported: it pulls polars into every CLI start;
# tests/code/test_cli_flags.py checks that the two agree.
class PlatformChoice(StrEnum):
    instagram = "instagram"
    tiktok = "tiktok"
    youtube = "youtube"
    twitch = "twitch"
    x = "x"
    threads = "threads"
    pinterest = "pinterest"
    facebook = "facebook"
    snapchat = "snapchat"
    other = "other"


PlatformOpt = Annotated[list[PlatformChoice] | None, typer.Option("--platform", help="Allowed platform (repeatable).")]
CountryOpt = Annotated[
    list[str] | None, typer.Option("--country", help="Allowed creator country, ISO alpha-2 (repeatable).")
]
LanguageOpt = Annotated[
    list[str] | None, typer.Option("--language", help="Allowed creator language, ISO 639-1 (repeatable).")
]
MinQualityOpt = Annotated[
    float,
    typer.Option("--min-quality", parser=finite(min=0, max=100), help="Minimum audience quality score (0–100)."),
]
ExcludeOpt = Annotated[list[str] | None, typer.Option("--exclude", help="Creator id to leave out (repeatable).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")]


@index_app.command("build")
def build(features: FeaturesOpt, out: IndexDirOpt = None) -> None:
    """Build the FAISS audience and content indexes for a feature set (exact or approximate by size)."""
    import logging

    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import get_settings

    fs = load_feature_set(features)
    summary = build_and_save(fs, get_settings(), out)
    logging.getLogger("audiencefit.cli").info("index built", extra={"out": str(out or features / "index"), **summary})


def _searcher(features: Path, index_dir: Path | None) -> AudienceSearch:
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.models.index import default_index_dir, load_index
    from audiencefit.models.query import query_embedder
    from audiencefit.models.retrieval import AudienceSearch

    fs = load_feature_set(features)
    directory = index_dir or default_index_dir(fs)
    return AudienceSearch(
        fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), query_embedder(fs)
    )


def _filters(
    min_followers: int,
    max_followers: int,
    platform: list[PlatformChoice] | None,
    country: list[str] | None,
    language: list[str] | None,
    min_quality: float,
    exclude: list[str] | None,
) -> Filters:
    from audiencefit.models.query import Filters

    return Filters(
        min_followers=min_followers,
        max_followers=max_followers,
        platforms=tuple(p.value for p in platform or ()),
        countries=tuple(country or ()),
        languages=tuple(language or ()),
        min_audience_quality=min_quality,
        exclude=tuple(exclude or ()),
    )


def _print_rows(rows: list[dict[str, object]], as_json: bool, title: str) -> None:
    if as_json:
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in rows[0] if rows else []:
        table.add_column(str(col), overflow="fold")
    for row in rows:
        table.add_row(*(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()))
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)


def _print_reading(reading: BriefReading, as_json: bool) -> None:
    """How ``--brief`` was read: a table on stdout, or one JSON object on stderr with ``--json`` (stdout keeps the
    creators' rows only)."""
    segments = [
        {"id": s.id, "text": s.text, "weight": s.weight, "role": s.role, "source": s.source} for s in reading.segments
    ]
    if as_json:
        body = {"brief_reading": {**asdict(reading), "segments": segments}}
        sys.stderr.write(json.dumps(body, ensure_ascii=False) + "\n")
        return
    title = f"brief read as ({reading.language}; {reading.note}); product: {reading.product or '–'}"
    _print_rows(segments, False, title)


@app.command("search")
def search(
    features: FeaturesOpt,
    segment: Annotated[
        list[str] | None,
        typer.Option("--segment", help="Target audience in free text (repeatable; one per segment)."),
    ] = None,
    brief: Annotated[
        str | None,
        typer.Option(
            "--brief",
            help="A brief as a marketer writes it (instead of --segment): its audience clauses become the segments, "
            "as the API reads a description sent without segments; how it was read is printed first (on stderr "
            "with --json).",
        ),
    ] = None,
    weight: Annotated[
        list[float] | None,
        typer.Option("--weight", parser=finite(min=0), help="Weight of each --segment, in order (default 1 each)."),
    ] = None,
    target_country: Annotated[
        list[str] | None,
        typer.Option("--target-country", help="Countries the audience should be in, ISO alpha-2 (all segments)."),
    ] = None,
    k: KOpt = 20,
    min_followers: MinFollowersOpt = 1_000,
    max_followers: MaxFollowersOpt = 100_000,
    platform: PlatformOpt = None,
    country: CountryOpt = None,
    language: LanguageOpt = None,
    min_quality: MinQualityOpt = 0.0,
    exclude: ExcludeOpt = None,
    index_dir: IndexDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Find the creators whose audience best fits one or more segments (or a brief), with fit scores per segment."""
    from audiencefit.models.query import Segment

    if bool(segment) == (brief is not None):
        raise InputError("give --segment (one or more) or --brief, not both and not neither")
    countries = tuple(target_country or ())
    if brief is not None:
        if weight:
            raise InputError("--weight goes with --segment; a brief's segments are weighted as it is read")
        from audiencefit.models.brief import read_brief

        reading = read_brief(brief)
        _print_reading(reading, as_json)
        segs = [Segment(text=s.text, weight=s.weight, countries=countries, segment_id=s.id) for s in reading.segments]
    else:
        texts = segment or []
        weights = weight or [1.0] * len(texts)
        if len(weights) != len(texts):
            raise InputError(f"--weight given {len(weights)} time(s) for {len(texts)} --segment(s); give one each")
        segs = [
            Segment(text=t, weight=w, countries=countries, segment_id=f"s{i + 1}")
            for i, (t, w) in enumerate(zip(texts, weights, strict=True))
        ]
    searcher = _searcher(features, index_dir)
    flt = _filters(min_followers, max_followers, platform, country, language, min_quality, exclude)
    found = searcher.search(segs, flt, k)
    if found.empty_reason:
        sys.stderr.write(f"no results: {found.empty_reason}\n")
        raise typer.Exit(0)
    creators = searcher.fs.creators
    rows = []
    for i, r in enumerate(found.rows.tolist()):
        c = creators.row(r, named=True)
        row: dict[str, object] = {
            "rank": i + 1,
            "creator_id": c["creator_id"],
            "handle": c["handle"],
            "platform": c["platform"],
            "followers": c["followers"],
            "fit": float(found.fit[i]),
        }
        for j, seg in enumerate(found.segments):
            row[f"fit_{seg.label}"] = float(found.segment_fit[i, j])
            row[f"share_{seg.label}"] = float(found.segment_share[i, j])
        row["quality"] = float(c["audience_quality"]) if c["audience_quality"] is not None else None
        row["audience"] = c["audience_source"]
        rows.append(row)
    _print_rows(rows, as_json, "creators by audience fit")


@app.command("lookalikes")
def lookalikes(
    features: FeaturesOpt,
    creator: Annotated[str, typer.Option("--creator", help="Creator id to find lookalikes of.")],
    by: Annotated[
        SimilarityChoice,
        typer.Option("--by", help="Similar audiences (who follows) or similar content (what is posted)."),
    ] = SimilarityChoice.audience,
    k: KOpt = 20,
    min_followers: MinFollowersOpt = 0,
    max_followers: Annotated[
        int | None,
        typer.Option(
            "--max-followers", parser=whole(0, MAX_FOLLOWERS), help="Largest follower count allowed. Default: no limit."
        ),
    ] = None,
    index_dir: IndexDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Creators most similar to a given creator, by audience or by content."""
    searcher = _searcher(features, index_dir)
    upper = MAX_FOLLOWERS if max_followers is None else max_followers
    flt = _filters(min_followers, upper, None, None, None, 0.0, None)
    kind: Literal["audience", "content"] = "audience" if by is SimilarityChoice.audience else "content"
    frame = searcher.lookalikes(creator, by=kind, k=k, filters=flt)
    _print_rows(frame.to_dicts(), as_json, f"lookalikes of {creator} by {by.value}")
