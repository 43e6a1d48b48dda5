"""A public real creator dataset as audiencefit input: YouTube trending videos, channel = creator.

Source: "Trending YouTube Video Statistics" (Kaggle ``datasnaek/youtube-new``; check its licence there, it is
not redistributed here): one CSV per country, ``<CC>videos.csv``, one row per video per day it trended, with the
uploader's ``category_id``, and ``<CC>_category_id.json`` naming the categories (the YouTube Data API's
``videoCategories`` list). The evaluation in docs/evaluation.md used the 3,000-row excerpts of ``USvideos.csv``
and ``FRvideos.csv`` committed in github.com/karanmurthy7/youtube-tag-recommender, ``data/`` at commit
28f497ae1c39461d733f98c0693affddbbaa1392 (with ``US_category_id.json`` and ``FR_category_id.json``); the full
Kaggle files load the same way. The data is never committed here: download it into a directory of your own and
run::

    python -m audiencefit.training.real_data --src DIR --out OUT [--countries US FR]

``OUT`` then holds ``creators.parquet`` and ``posts.parquet`` (the contract of docs/data-contracts.md, no
followers table: ``audiencefit validate OUT`` and ``audiencefit features build --data OUT`` accept it),
``export.json`` and ``truth/categories.parquet`` (``creator_id``, ``category``, ``videos``, ``share``,
``primary``): what only an evaluation reads, as a synthetic world's ``truth/``.

Why this set: the category is chosen by the uploader from YouTube's fixed list, not derived from the text that
audiencefit embeds, so it is an honest truth for "which creators does a category brief find". The text is what
real exports hold: titles and descriptions of ~750 characters on average, with links, emoji, hashtags and line
breaks, in English (US) and French (FR). What it lacks, and how it is filled:

- no channel bio: ``bio`` is null (as on the issue's real sample);
- no subscriber count: ``followers`` is the median view count of the channel's videos in the file, a stated
  proxy (the evaluation does not filter on it);
- no sponsorship flag: ``sponsored`` is false; no creator country or language: null (trending in a country says
  where viewers are, not where the channel is).

A caption is the video's title, a blank line, then its description (the file escapes line breaks as ``\\n``;
they are restored), cut to the contract's 5,000 characters. A video that trended on several days (or in several
countries) is one post with its highest counts. A channel's truth rows are the categories of its videos with
their share; ``primary`` marks the most frequent (ties: the lower category id).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl

from audiencefit.features.errors import InputError
from audiencefit.features.io import replace_dir, staging_dir

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = (
    "video_id",
    "trending_date",
    "title",
    "channel_title",
    "category_id",
    "publish_time",
    "views",
    "likes",
    "comment_count",
    "description",
)
"""Columns a ``<CC>videos.csv`` must have (the Kaggle layout since its second version)."""

MAX_CAPTION = 5000
TRUTH_FILE = Path("truth") / "categories.parquet"

TRUTH_SCHEMA = {
    "creator_id": pl.String,
    "category": pl.String,
    "videos": pl.UInt32,
    "share": pl.Float64,
    "primary": pl.Boolean,
}
"""``truth/categories.parquet``: one row per creator and category it posted in."""


@dataclass(frozen=True)
class RealExport:
    """The contract tables of a real export, its export instant and the category truth (never read by features)."""

    creators: pl.DataFrame
    posts: pl.DataFrame
    truth: pl.DataFrame
    exported_at: datetime


def creator_id_of(channel: str) -> str:
    """Stable creator id of a channel title (the source has no channel id)."""
    return "yt-" + hashlib.sha256(channel.encode()).hexdigest()[:16]


def read_categories(path: Path) -> dict[str, str]:
    """Category id → title from a YouTube ``videoCategories`` JSON response."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        items = data["items"]
        out = {str(item["id"]): str(item["snippet"]["title"]) for item in items}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a YouTube category list (items[].id, items[].snippet.title): {exc}") from exc
    if not out:
        raise InputError(f"{path}: the category list is empty")
    return out


def read_videos(path: Path) -> pl.DataFrame:
    """A ``<CC>videos.csv`` as text columns, refusing a file without the required columns."""
    try:
        frame = pl.read_csv(path, infer_schema=False, encoding="utf8")
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"{path}: cannot be read as a UTF-8 CSV: {exc}") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (has: {', '.join(frame.columns)})")
    return frame.select(REQUIRED_COLUMNS)


def parse_videos(raw: pl.DataFrame, country: str, categories: dict[str, str], source: str) -> pl.DataFrame:
    """Typed rows of one country's file; any unparseable value is an error naming its row and column."""
    typed = raw.with_row_index("row", offset=1).select(
        "row",
        "video_id",
        "title",
        "channel_title",
        "category_id",
        "description",
        pl.col("publish_time")
        .str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", strict=False)
        .alias("posted_at"),
        pl.col("trending_date").str.to_date("%y.%d.%m", strict=False).alias("trending"),
        *[pl.col(c).cast(pl.Int64, strict=False).alias(c) for c in ("views", "likes", "comment_count")],
        pl.lit(country).alias("country"),
    )
    problems: list[str] = []
    for column, source_col in (
        ("posted_at", "publish_time"),
        ("trending", "trending_date"),
        ("views", "views"),
        ("likes", "likes"),
        ("comment_count", "comment_count"),
    ):
        bad = typed.filter(pl.col(column).is_null() | (pl.col(column).cast(pl.Int64, strict=False) < 0))
        for row, value in zip(bad["row"].head(5), raw[source_col].gather(bad["row"].head(5) - 1), strict=True):
            problems.append(f"{source}, row {row}, column '{source_col}': cannot read {value!r}")
    for column in ("video_id", "channel_title", "category_id"):
        bad = typed.filter(pl.col(column).is_null() | (pl.col(column).str.strip_chars() == ""))
        problems += [f"{source}, row {r}, column '{column}': empty" for r in bad["row"].head(5)]
    unknown = typed.filter(~pl.col("category_id").is_in(list(categories)))["category_id"].unique().sort()
    if unknown.len():
        problems.append(f"{source}: category_id value(s) not in the category list: {', '.join(unknown.to_list())}")
    if problems:
        raise InputError("invalid YouTube trending file:\n  " + "\n  ".join(problems))
    return typed.with_columns(pl.col("category_id").replace_strict(categories).alias("category")).drop("row")


def _caption(title: pl.Expr, description: pl.Expr) -> pl.Expr:
    text = pl.concat_str(
        [title.fill_null(""), description.fill_null("").str.replace_all("\\n", "\n", literal=True)],
        separator="\n\n",
    ).str.strip_chars()
    return pl.when(text.str.len_chars() > 0).then(text.str.slice(0, MAX_CAPTION)).otherwise(None)


def to_contract(videos: pl.DataFrame) -> RealExport:
    """Creators, posts and category truth from typed video rows of one or more countries (a pure transform)."""
    if videos.is_empty():
        raise InputError("no video rows to convert")
    videos = videos.with_columns(
        pl.col("channel_title").str.strip_chars(),
        pl.col("channel_title").str.strip_chars().map_elements(creator_id_of, return_dtype=pl.String).alias("cid"),
    )
    # One post per video: the highest counts it reached on any trending day in any country.
    posts = (
        videos.sort("video_id", "views", "trending", "country", descending=[False, True, True, False])
        .group_by("video_id", maintain_order=True)
        .agg(
            pl.col("cid").first().alias("creator_id"),
            pl.col("posted_at").first(),
            _caption(pl.col("title"), pl.col("description")).first().alias("caption"),
            pl.col("likes").max(),
            pl.col("comment_count").max().alias("comments"),
            pl.col("views").max(),
            pl.col("category").first(),
            pl.col("category_id").first(),
        )
        .sort("video_id")
    )
    creators = (
        videos.group_by("cid")
        .agg(pl.col("channel_title").first().alias("handle"))
        .join(
            posts.group_by("creator_id").agg(pl.col("views").median().round().cast(pl.Int64).alias("followers")),
            left_on="cid",
            right_on="creator_id",
        )
        .select(
            pl.col("cid").alias("creator_id"),
            pl.col("handle").str.slice(0, 128),
            pl.lit("youtube").alias("platform"),
            pl.lit(None, pl.String).alias("bio"),
            "followers",
            pl.lit(None, pl.Int64).alias("following"),
            pl.lit(None, pl.Int64).alias("post_count"),
            pl.lit(None, pl.String).alias("country"),
            pl.lit(None, pl.String).alias("language"),
            pl.lit(None, pl.Float64).alias("rate_per_post"),
        )
        .sort("creator_id")
    )
    counts = posts.group_by("creator_id", "category", "category_id").agg(pl.len().cast(pl.UInt32).alias("videos"))
    truth = (
        counts.with_columns((pl.col("videos") / pl.col("videos").sum().over("creator_id")).alias("share"))
        .sort(
            "creator_id",
            "videos",
            pl.col("category_id").cast(pl.Int64, strict=False),
            descending=[False, True, False],
        )
        .with_columns((pl.int_range(pl.len()).over("creator_id") == 0).alias("primary"))
        .select(list(TRUTH_SCHEMA))
        .cast(TRUTH_SCHEMA)  # type: ignore[arg-type]
    )
    posts_out = posts.select(
        pl.col("video_id").alias("post_id"),
        "creator_id",
        "posted_at",
        "caption",
        "likes",
        "comments",
        "views",
        pl.lit(False).alias("sponsored"),
    )
    last = videos["trending"].max()
    if not isinstance(last, date):
        raise InputError("no trending date in the video rows")
    exported_at = datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)
    return RealExport(creators, posts_out, truth, exported_at)


def load_youtube_trending(src: Path, countries: list[str]) -> RealExport:
    """Read ``<CC>videos.csv`` and ``<CC>_category_id.json`` of each country under ``src`` and convert them."""
    if not src.is_dir():
        raise InputError(f"--src {src}: not a directory")
    paths = {cc: (src / f"{cc}videos.csv", src / f"{cc}_category_id.json") for cc in countries}
    for cc, pair in paths.items():
        missing = [p.name for p in pair if not p.is_file()]
        if missing:
            raise InputError(f"--src {src}: no {' or '.join(missing)} for country {cc}")
    # Category ids are global on YouTube; the country lists differ only in which ids they include (FR lacks 29),
    # so every list in the directory is read, the requested countries' last (their titles win).
    categories: dict[str, str] = {}
    requested = {cat_path for _, cat_path in paths.values()}
    for cat_path in [*sorted(set(src.glob("*_category_id.json")) - requested), *sorted(requested)]:
        categories |= read_categories(cat_path)
    frames = []
    for cc, (csv_path, _) in paths.items():
        frames.append(parse_videos(read_videos(csv_path), cc, categories, csv_path.name))
        logger.info("read trending file", extra={"file": str(csv_path), "rows": frames[-1].height})
    return to_contract(pl.concat(frames))


def write_export(export: RealExport, out: Path) -> None:
    """Write the tables, ``export.json`` and the truth into ``out`` in one step (all or nothing)."""
    tmp = staging_dir(out)
    try:
        export.creators.write_parquet(tmp / "creators.parquet")
        export.posts.write_parquet(tmp / "posts.parquet")
        stamp = export.exported_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        (tmp / "export.json").write_text(json.dumps({"exported_at": stamp}) + "\n", encoding="utf-8")
        (tmp / TRUTH_FILE).parent.mkdir()
        export.truth.write_parquet(tmp / TRUTH_FILE)
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_truth(path: Path) -> pl.DataFrame:
    """A category truth parquet (``creator_id``, ``category``; further columns kept), checked."""
    try:
        truth = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise InputError(f"truth {path}: cannot be read as parquet: {exc}") from exc
    missing = [c for c in ("creator_id", "category") if c not in truth.columns]
    if missing:
        raise InputError(f"truth {path}: missing column(s) {', '.join(missing)} (has: {', '.join(truth.columns)})")
    if truth["creator_id"].null_count() or truth["category"].null_count():
        raise InputError(f"truth {path}: creator_id and category must never be empty")
    return truth


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Convert YouTube trending exports (<CC>videos.csv + <CC>_category_id.json) into audiencefit "
        "input tables (creators, posts) and a category truth (truth/categories.parquet)."
    )
    parser.add_argument("--src", type=Path, required=True, help="Directory holding the downloaded source files.")
    parser.add_argument("--out", type=Path, required=True, help="Directory to write (replaced as a whole).")
    parser.add_argument(
        "--countries", nargs="+", default=["US", "FR"], help="Country codes of the files to read (default: US FR)."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        export = load_youtube_trending(args.src, [c.upper() for c in args.countries])
        write_export(export, args.out)
    except InputError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    primary = export.truth.filter(pl.col("primary"))
    sys.stdout.write(
        f"creators\t{export.creators.height}\nposts\t{export.posts.height}\n"
        f"categories\t{primary['category'].n_unique()}\nexported_at\t{export.exported_at.isoformat()}\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
