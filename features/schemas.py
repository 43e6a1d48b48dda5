"""Data contracts: the explicit schema of every raw input table.

Each table is a tuple of :class:`Column` specs. Validation (``audiencefit.features.validate``), the readers
(``audiencefit.features.io``), the synthetic world (``audiencefit.features.synthetic``) and ``docs/data-contracts.md``
all derive from these definitions, so there is exactly one statement of what a valid input looks like.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

# Closed vocabularies. Values are compared after lower-casing and stripping.
PLATFORMS = ("instagram", "tiktok", "youtube", "twitch", "x", "threads", "pinterest", "facebook", "snapchat", "other")
AGE_BANDS = ("13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+")
GENDERS = ("female", "male", "nonbinary", "unknown")

UTC_DATETIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Column:
    """One column of a table contract."""

    name: str
    dtype: pl.DataType
    description: str
    nullable: bool = False
    unit: str = ""
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None  # characters, for strings
    allowed: tuple[str, ...] | None = None  # closed vocabulary, for strings
    unique: bool = False


@dataclass(frozen=True)
class ForeignKey:
    """``column`` of this table must appear in ``ref_table.ref_column``."""

    column: str
    ref_table: str
    ref_column: str


@dataclass(frozen=True)
class TableSchema:
    name: str
    description: str
    columns: tuple[Column, ...]
    required: bool
    primary_key: tuple[str, ...] = ()
    foreign_keys: tuple[ForeignKey, ...] = field(default_factory=tuple)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(f"table {self.name!r} has no column {name!r}")

    @property
    def polars_schema(self) -> pl.Schema:
        return pl.Schema({c.name: c.dtype for c in self.columns})


ID_MAX = 128
TEXT_MAX = 5000
RECOMMENDATION_ID_MAX = 64  # the recommendation log's key (audiencefit.models.reclog) is at most this long

CREATORS = TableSchema(
    name="creators",
    description="One row per creator account (a creator on two platforms is two rows).",
    required=True,
    primary_key=("creator_id",),
    columns=(
        Column("creator_id", pl.String(), "Stable id of the creator account.", max_length=ID_MAX, unique=True),
        Column("handle", pl.String(), "Public handle, without '@'.", max_length=ID_MAX),
        Column("platform", pl.String(), "Platform of the account (lower case).", allowed=PLATFORMS),
        Column("bio", pl.String(), "Profile bio as published; may be missing.", nullable=True, max_length=TEXT_MAX),
        Column("followers", pl.Int64(), "Follower count when exported.", unit="accounts", min_value=0),
        Column("following", pl.Int64(), "Accounts this creator follows.", nullable=True, unit="accounts", min_value=0),
        Column("post_count", pl.Int64(), "Lifetime posts on the profile.", nullable=True, unit="posts", min_value=0),
        Column("country", pl.String(), "Creator's country, ISO 3166-1 alpha-2.", nullable=True, max_length=2),
        Column("language", pl.String(), "Main language, ISO 639-1.", nullable=True, max_length=3),
        Column(
            "rate_per_post",
            pl.Float64(),
            "Quoted price for one sponsored post, if known.",
            nullable=True,
            unit="USD",
            min_value=0,
        ),
    ),
)

POSTS = TableSchema(
    name="posts",
    description="One row per published post (or video).",
    required=True,
    primary_key=("post_id",),
    foreign_keys=(ForeignKey("creator_id", "creators", "creator_id"),),
    columns=(
        Column("post_id", pl.String(), "Stable id of the post.", max_length=ID_MAX, unique=True),
        Column("creator_id", pl.String(), "Author; must exist in creators.", max_length=ID_MAX),
        Column("posted_at", UTC_DATETIME, "Publication instant (ISO 8601; naive values are read as UTC).", unit="UTC"),
        Column(
            "caption", pl.String(), "Caption text with hashtags, mentions, emoji.", nullable=True, max_length=TEXT_MAX
        ),
        Column("likes", pl.Int64(), "Likes when exported.", unit="likes", min_value=0),
        Column("comments", pl.Int64(), "Comments when exported.", unit="comments", min_value=0),
        Column("views", pl.Int64(), "Views or plays, where the platform reports them.", nullable=True, min_value=0),
        Column("sponsored", pl.Boolean(), "True when the post is a paid partnership."),
    ),
)

FOLLOWERS = TableSchema(
    name="followers",
    description=(
        "A sample of each creator's audience. Optional: creators without a sample get an audience inferred "
        "from their content. follower_id is replaced by a keyed hash at ingestion."
    ),
    required=False,
    primary_key=("creator_id", "follower_id"),
    foreign_keys=(ForeignKey("creator_id", "creators", "creator_id"),),
    columns=(
        Column("creator_id", pl.String(), "The creator followed; must exist in creators.", max_length=ID_MAX),
        Column("follower_id", pl.String(), "Follower handle or id (pseudonymised at ingestion).", max_length=ID_MAX),
        Column("bio", pl.String(), "The follower's own profile bio.", nullable=True, max_length=TEXT_MAX),
        Column("followers", pl.Int64(), "The follower's own follower count.", nullable=True, min_value=0),
        Column("following", pl.Int64(), "Accounts the follower follows.", nullable=True, min_value=0),
        Column("post_count", pl.Int64(), "The follower's own post count.", nullable=True, min_value=0),
        Column("country", pl.String(), "Follower country, ISO 3166-1 alpha-2.", nullable=True, max_length=2),
        Column("age_band", pl.String(), "Age band.", nullable=True, allowed=AGE_BANDS),
        Column("gender", pl.String(), "Declared or inferred gender.", nullable=True, allowed=GENDERS),
        Column(
            "observed_at",
            UTC_DATETIME,
            "When the follower was seen following; null means before any cut-off.",
            nullable=True,
            unit="UTC",
        ),
    ),
)

BRANDS = TableSchema(
    name="brands",
    description="Brands (advertisers).",
    required=False,
    primary_key=("brand_id",),
    columns=(
        Column("brand_id", pl.String(), "Stable id of the brand.", max_length=ID_MAX, unique=True),
        Column("name", pl.String(), "Brand name.", max_length=256),
        Column("description", pl.String(), "What the brand sells, in free text.", nullable=True, max_length=TEXT_MAX),
        Column(
            "handles", pl.String(), "Brand's own handles, space-separated, without '@'.", nullable=True, max_length=1000
        ),
        Column(
            "hashtags", pl.String(), "Branded hashtags, space-separated, without '#'.", nullable=True, max_length=1000
        ),
    ),
)

SEGMENTS = TableSchema(
    name="segments",
    description="A brand's target audience segments, each described in free text.",
    required=False,
    primary_key=("segment_id",),
    foreign_keys=(ForeignKey("brand_id", "brands", "brand_id"),),
    columns=(
        Column("segment_id", pl.String(), "Stable id of the segment.", max_length=ID_MAX, unique=True),
        Column("brand_id", pl.String(), "Owning brand; must exist in brands.", max_length=ID_MAX),
        Column("description", pl.String(), "Who the target audience is, in free text.", max_length=TEXT_MAX),
        Column(
            "countries",
            pl.String(),
            "Target countries, space-separated ISO 3166-1 alpha-2; null means anywhere.",
            nullable=True,
            max_length=1000,
        ),
        Column("weight", pl.Float64(), "Relative importance of the segment within its brand.", min_value=0),
    ),
)

CAMPAIGNS = TableSchema(
    name="campaigns",
    description="Past campaign outcomes, one row per creator contracted for a brand segment: the training labels.",
    required=False,
    primary_key=("campaign_id",),
    foreign_keys=(
        ForeignKey("brand_id", "brands", "brand_id"),
        ForeignKey("segment_id", "segments", "segment_id"),
        ForeignKey("creator_id", "creators", "creator_id"),
    ),
    columns=(
        Column(
            "campaign_id",
            pl.String(),
            "Stable id of this creator's part of a campaign.",
            max_length=ID_MAX,
            unique=True,
        ),
        Column("brand_id", pl.String(), "Brand that ran it.", max_length=ID_MAX),
        Column("segment_id", pl.String(), "Segment it targeted.", max_length=ID_MAX),
        Column("creator_id", pl.String(), "Creator contracted.", max_length=ID_MAX),
        Column(
            "start_date", pl.Date(), "First day of the campaign (features are taken as of 00:00 UTC).", unit="UTC date"
        ),
        Column("cost", pl.Float64(), "Amount paid to the creator.", unit="USD", min_value=0),
        Column("impressions", pl.Int64(), "Impressions of the sponsored content.", nullable=True, min_value=0),
        Column("reach", pl.Int64(), "Unique accounts reached.", nullable=True, min_value=0),
        Column("likes", pl.Int64(), "Likes on the sponsored content.", nullable=True, min_value=0),
        Column("comments", pl.Int64(), "Comments on the sponsored content.", nullable=True, min_value=0),
        Column("clicks", pl.Int64(), "Link clicks (UTM-tagged).", nullable=True, min_value=0),
        Column(
            "conversions", pl.Int64(), "Purchases attributed via discount code or UTM link.", nullable=True, min_value=0
        ),
        Column("revenue", pl.Float64(), "Revenue of those conversions.", nullable=True, unit="USD", min_value=0),
        Column(
            "recommendation_id",
            pl.String(),
            "Id of the audiencefit recommendation or plan this creator was contracted from, as the service "
            "returned it; empty when the creator was not picked from one. Training joins it to the recommendation "
            "log to correct for how the creator came to be shown (docs/evaluation.md).",
            nullable=True,
            max_length=RECOMMENDATION_ID_MAX,
        ),
    ),
)

TABLES: dict[str, TableSchema] = {t.name: t for t in (CREATORS, POSTS, FOLLOWERS, BRANDS, SEGMENTS, CAMPAIGNS)}
# Order in which tables must be validated so foreign keys can be checked.
TABLE_ORDER = ("creators", "posts", "followers", "brands", "segments", "campaigns")
