"""HTTP request and response models. Requests forbid unknown fields and cap every list and text, so a request's
cost is bounded before any work starts; violations are 422 responses.

Request fields are strict: a JSON value must already have the field's type (``true`` is not the integer 1, ``"20"``
is not a number, ``2.5`` is not an integer; ``2.0`` is, as JSON Schema says), numbers must be finite (``NaN``,
``Infinity`` and ``1e309``, which Python's JSON parser reads as infinity, are refused) and text must be valid Unicode
(no lone surrogate such as ``"\\ud800"``). Each violation is a 422 naming the field (``audiencefit.serving.errors``
keeps the 422 body valid JSON)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from audiencefit.models.explore import MAX_SHARE as MAX_EXPLORATION_SHARE
from audiencefit.models.planner import MAX_CREATORS as PLAN_MAX_CREATORS

MAX_K = 200
MAX_SEGMENTS = 10
MAX_SCORE_IDS = 500
MAX_TEXT = 2_000
MAX_EXCLUDE = 1_000
MAX_BRAND_TERMS = 50
ID_MAX = 128
MAX_BUDGET = 1e9  # the most a plan or a recommendation's budget may say (currency units)
CODE_MAX = 32  # a country, language or platform code
MAX_FOLLOWERS = 10**12
BRAND_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"  # the batch jobs' brand id charset, up to 128 characters
MAX_SEED = 2**63 - 1

Objective = Literal["conversions", "engagement", "fit"]
# What a recommendation's creators are ranked by, per objective (``audiencefit.models.scoring.rank``; each creator's
# ``ranking_value``).
RANKED_BY: dict[str, str] = {
    "conversions": "conversions.expected: expected conversions from one sponsored post",
    "engagement": "engagement_rate.expected × followers: expected engagements (likes + comments) on one post",
    "fit": "fit: combined audience fit over the segments",
}


def _valid_unicode(value: str) -> str:
    """Refuse text that is not valid Unicode: a lone surrogate (``"\\ud800"`` in JSON) cannot be encoded as UTF-8,
    so it could be neither embedded, logged nor echoed in a response."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"text is not valid Unicode: a lone surrogate at character {exc.start}") from None
    return value


def _check_text(value: object) -> None:
    if isinstance(value, str):
        _valid_unicode(value)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_text(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key)
            _check_text(item)


Text = Annotated[str, AfterValidator(_valid_unicode)]
"""Any request text: valid Unicode (lengths are set per field)."""
Code = Annotated[Text, StringConstraints(max_length=CODE_MAX)]
CreatorIdIn = Annotated[Text, StringConstraints(min_length=1, max_length=ID_MAX)]


class StrictModel(BaseModel):
    """Unknown fields are an error (a typo in a filter must not be silently ignored); JSON types must match the
    field's exactly (strict: no ``true`` as 1, no ``"3"`` as 3, no ``2.5`` as an integer); numbers must be finite."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    @field_validator("*", mode="before")
    @classmethod
    def _whole_numbers(cls, value: object, info: ValidationInfo) -> object:
        """A number with no fraction (``20.0``) is an integer, as JSON Schema (and so the OpenAPI schema) says;
        anything else goes to the strict check (``true``, ``"20"``, ``2.5``, ``NaN`` are refused)."""
        if isinstance(value, float) and value.is_integer() and info.field_name is not None:
            field = cls.model_fields.get(info.field_name)
            if field is not None and field.annotation in (int, int | None):
                return int(value)
        return value

    @field_validator("*", mode="after")
    @classmethod
    def _all_text_valid(cls, value: object) -> object:
        """Every text in every field is valid Unicode, including fields not typed ``Text`` (which name the item)."""
        _check_text(value)
        return value


class SegmentIn(StrictModel):
    """A target audience in free text, with an optional weight and target countries."""

    text: Text = Field(max_length=MAX_TEXT, description="Who the audience is, in free text.")
    weight: float = Field(1.0, ge=1e-6, le=1_000, description="Relative importance among the segments.")
    countries: list[Code] = Field(default_factory=list, max_length=250, description="ISO 3166-1 alpha-2 codes.")
    id: Text | None = Field(None, min_length=1, max_length=64, description="Optional label used in the response.")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("segment text is empty")
        return value


class FiltersIn(StrictModel):
    """Which creators may be recommended; applied inside the search."""

    min_followers: int = Field(
        1_000, ge=0, le=MAX_FOLLOWERS, description="Fewest followers a creator may have (inclusive)."
    )
    max_followers: int = Field(
        100_000,
        ge=0,
        le=MAX_FOLLOWERS,
        description="Most followers a creator may have (inclusive); the default keeps to micro-influencers.",
    )
    platforms: list[Code] = Field(
        default_factory=list,
        max_length=20,
        description="Platforms a creator may be on (e.g. 'instagram', 'tiktok'); empty: any.",
    )
    countries: list[Code] = Field(
        default_factory=list,
        max_length=250,
        description="ISO 3166-1 alpha-2 codes of the creator's own country; empty: any.",
    )
    languages: list[Code] = Field(
        default_factory=list, max_length=100, description="ISO 639-1 codes of the creator's language; empty: any."
    )
    min_audience_quality: float = Field(
        0.0, ge=0, le=100, description="Lowest audience quality a creator may have, on its 0–100 scale (0: no minimum)."
    )
    exclude: list[CreatorIdIn] = Field(
        default_factory=list, max_length=MAX_EXCLUDE, description="Creator ids to leave out."
    )


class BrandIn(StrictModel):
    """What the brand says about itself: a description, target segments, handles and hashtags."""

    description: Text | None = Field(
        None,
        max_length=MAX_TEXT,
        description="The brand and what it sells. Sent without segments, it is read as a brief: the audience it names "
        "becomes the segments (the answer's brief_reading shows how it was read).",
    )
    segments: list[SegmentIn] = Field(
        default_factory=list,
        max_length=MAX_SEGMENTS,
        description="Target audiences in free text (up to 10); without them the description is read as a brief.",
    )
    brand_handles: list[Text] = Field(
        default_factory=list,
        max_length=MAX_BRAND_TERMS,
        description="The brand's handles (e.g. '@acme'): creators who used them count brand mentions.",
    )
    branded_hashtags: list[Text] = Field(
        default_factory=list,
        max_length=MAX_BRAND_TERMS,
        description="The brand's hashtags (e.g. '#acmefit'): creators who used them count brand mentions.",
    )

    @model_validator(mode="after")
    def _needs_a_target(self) -> BrandIn:
        if not self.segments and not (self.description and self.description.strip()):
            raise ValueError("give a brand description or at least one segment")
        for term in (*self.brand_handles, *self.branded_hashtags):
            if not 1 <= len(term.strip().lstrip("@#")) <= ID_MAX:
                raise ValueError(f"brand handle or hashtag {term[:40]!r} is empty or longer than {ID_MAX} characters")
        return self


class ExplorationIn(StrictModel):
    """A share of the answer given to creators the model is unsure about (``audiencefit.models.explore``): with ``k``
    results, ``round(share·k)`` slots are Thompson-sampled from the candidates not ranked into the others, using the
    forecast's own uncertainty. Each creator's ``propensity`` says how likely it was to be shown."""

    share: float = Field(
        ge=0, le=MAX_EXPLORATION_SHARE, description="Share of the results that are exploratory (0 = none)."
    )
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="Seed of the draws; default: derived from the request's content."
    )


BrandIdIn = Annotated[str, StringConstraints(pattern=BRAND_ID_PATTERN)]


class RecommendationRequest(BrandIn):
    """Find the creators whose audience best fits the brand, ranked by the objective."""

    brand_id: BrandIdIn | None = Field(
        None, description="Your own reference for the brand (letters, digits, '_', '.', '-'; up to 128), logged."
    )
    exploration: ExplorationIn | None = Field(None, description="Exploratory picks (default: none).")

    k: int = Field(20, ge=1, le=MAX_K, description="How many creators to return.")
    filters: FiltersIn = Field(
        default_factory=FiltersIn,
        description=(
            "Which creators may be recommended (default: 1,000–100,000 followers, any platform, country, language)."
        ),
    )
    objective: Objective = Field(
        "conversions",
        description=(
            "What to rank by: 'conversions' (expected conversions of one sponsored post), 'engagement' (expected "
            "engagements: engagement rate × followers) or 'fit' (audience fit alone)."
        ),
    )
    budget: float | None = Field(
        None, gt=0, le=MAX_BUDGET, description="Leave out creators whose expected price exceeds this, in USD."
    )
    require_mention: bool = Field(False, description="Keep only creators who mentioned a brand handle or hashtag.")

    @model_validator(mode="after")
    def _mention_needs_terms(self) -> RecommendationRequest:
        if self.require_mention and not (self.brand_handles or self.branded_hashtags):
            raise ValueError("require_mention needs brand_handles or branded_hashtags")
        if self.exploration is not None and self.exploration.share > 0 and self.objective == "fit":
            raise ValueError(
                "exploration samples the forecast's uncertainty: objective 'fit' has none "
                "(use 'conversions' or 'engagement', or exploration share 0)"
            )
        return self


class ScoreRequest(BrandIn):
    """Predictions for given creators (in the order given)."""

    creator_ids: list[CreatorIdIn] = Field(
        min_length=1,
        max_length=MAX_SCORE_IDS,
        description="The creators to score, in the order the answer keeps (up to 500; an unknown id is a 404).",
    )


class Band(BaseModel):
    """A prediction with its 10th–90th percentile band."""

    expected: float = Field(description="The expected value (the forecast's mean).")
    p10: float = Field(description="10th percentile of the forecast: 9 in 10 outcomes are expected above it.")
    p90: float = Field(description="90th percentile of the forecast: 9 in 10 outcomes are expected below it.")


class SegmentFit(BaseModel):
    segment: str = Field(description="The segment's label (its id, or its text when sent without an id).")
    fit: float = Field(description="Fit of the creator's real audience to the segment (cosine, authenticity-weighted).")
    audience_share: float = Field(description="Estimated share of the audience that belongs to the segment.")
    # forecast reliability (#18 §4): what the fit and share above were measured from
    audience_source: str | None = Field(
        None,
        description="What the fit and share were estimated from: 'followers' (a follower sample), 'content' (the "
        "creator's own posts and bio: no follower data) or 'none'.",
    )


class Topic(BaseModel):
    """An audience interest cluster, named by its most typical terms."""

    cluster_id: int = Field(
        description="The interest cluster's number in this feature set (not stable across feature sets)."
    )
    terms: list[str] = Field(description="The cluster's most typical words, most typical first.")
    audience_share: float = Field(description="Share of the creator's audience in this cluster.")
    relevance: float | None = Field(None, description="How much the cluster belongs to the matched segment (0–1).")


class Explanation(BaseModel):
    matched_segment: str = Field(description="The segment the creator's predictions were made for (its best one).")
    reasons: list[str] = Field(
        description="Why the creator is here, in sentences; every number in them is one of the creator's fields."
    )
    topics: list[Topic] = Field(description="The audience interest clusters behind the match, most relevant first.")
    captions: list[str] = Field(
        description="Recent captions of the creator that echo the matched segment (cut to about 120 characters)."
    )


# forecast reliability (#18 §4) -------------------------------------------------------------------------------


class ForecastReliability(BaseModel):
    """Whether the forecasts can be trusted here (``audiencefit.models.drift``): "ok" when the creators served look like
    the ones the model was trained among, "low" when they differ beyond the documented threshold (or, for one creator,
    when its inputs lie outside the training range), "unknown" for a model trained before this was recorded."""

    level: Literal["ok", "low", "unknown"] = Field(
        description=(
            "'ok': the creators served look like the training creators; 'low': they differ (see reasons); "
            "'unknown': the model did not record its training inputs."
        )
    )
    reasons: list[str] = Field(description="What differs, in words (empty when nothing does).")


class InputShiftOut(BaseModel):
    """One monitored input of the drift check."""

    feature: str = Field(description="The model input checked (a creator statistic's column name).")
    psi: float = Field(description="Population stability index, training creators → served creators.")
    threshold: float = Field(description="The PSI at which this input counts as shifted.")
    shifted: bool = Field(description="psi is at or above threshold: this input counts as shifted.")
    served: str = Field(
        description="The input's distribution among the served creators, in words (median and range, or top "
        "categories)."
    )
    training: str = Field(description="The same among the training creators.")


class ForecastReliabilityReport(ForecastReliability):
    """The whole drift check of the serving model over the served feature set."""

    statistic: str = Field(description="How the shift of each input is measured.")
    threshold: str = Field(description="When an input counts as shifted.")
    creators_served: int = Field(description="Creators in the served feature set.")
    creators_trained: int = Field(description="Creators the model was trained on.")
    creators_out_of_range: int = Field(description="Served creators with an input outside the range seen in training.")
    inputs: list[InputShiftOut] = Field(description="Every monitored input, most shifted first.")


class CreatorScore(BaseModel):
    """One creator with its predictions and the reasons behind them."""

    rank: int = Field(description="Position in this answer, from 1 (for /v1/score: the position in the request).")
    creator_id: str = Field(description="The creator's id in the feature set.")
    handle: str | None = Field(description="The creator's handle on its platform (null when the export has none).")
    platform: str | None = Field(description="The platform the creator posts on (e.g. 'instagram').")
    followers: int | None = Field(description="Follower count at the feature set's cut-off (null when unknown).")
    country: str | None = Field(description="The creator's own country, ISO 3166-1 alpha-2 (null when unknown).")
    language: str | None = Field(description="The creator's main language, ISO 639-1 (null when unknown).")
    fit: float = Field(
        description=(
            "Combined audience fit over the segments: the segment-weighted mean of each segment's fit (see "
            "segments), each weighted by the audience's share in the segment's countries when it names some. A "
            "cosine scale in [-1, 1]: higher fits better, 0 or below means the audience is unlike the segment; "
            "comparable within one feature set and embedder only."
        ),
    )
    segments: list[SegmentFit] = Field(
        description="The creator's fit to each segment of the request, in request order."
    )
    matched_segment: str = Field(
        description="The segment this creator fits best by expected conversions; its predictions are for it."
    )
    engagement_rate: Band = Field(
        description=(
            "Expected engagement rate of one sponsored post for the matched segment's brief: (likes + comments) /"
            " followers, a fraction (0.02 = 2 %)."
        )
    )
    conversions: Band = Field(
        description="Expected conversions (purchases attributed to the post) of one sponsored post."
    )
    price: Band = Field(
        description=(
            "Expected price of one sponsored post, in USD (the currency of the creators' rates in the feature "
            "set); a quoted rate when the creator has one (then p10 = p90 = the quote)."
        )
    )
    price_source: str = Field(
        description="'quoted': the creator's own rate per post; 'model': predicted from similar creators."
    )
    cost_per_conversion: float | None = Field(
        description=(
            "price.expected / conversions.expected, in USD (the currency of the creators' rates in the feature "
            "set) per conversion."
        )
    )
    audience_quality: float | None = Field(
        description=(
            "How real and engaged the audience looks, 0–100 (100: no sign of fake followers or bought "
            "engagement); null when it could not be estimated."
        )
    )
    audience_source: str | None = Field(
        description=(
            "What the audience fit was estimated from: 'followers' (a follower sample), 'content' (the creator's "
            "own posts and bio) or 'none'."
        )
    )
    brand_mentions: int = Field(
        description="Posts before the cut-off that used one of the brand's handles or hashtags."
    )
    mentions_brand: bool = Field(description="brand_mentions > 0.")
    explanation: Explanation = Field(
        description="Why this creator, in words, with the interests and captions behind it."
    )
    # forecast reliability (#18 §4)
    quality_source: str | None = Field(
        None,
        description="What audience_quality was computed from: 'followers+engagement', 'followers', or "
        "'engagement' (engagement only: no follower sample).",
    )
    forecast_reliability: ForecastReliability | None = Field(
        None, description="Present when this creator's inputs lie outside the range the model was trained on."
    )


class RecommendedCreator(CreatorScore):
    """A creator of a recommendation, with how it came to be shown."""

    propensity: float = Field(
        description="Probability this creator had of being shown for this request: 1 for those ranked in, "
        "the share of the Thompson draws that picked it for exploratory ones."
    )
    explored: bool = Field(description="Shown by exploration (an exploratory slot), not by rank.")
    ranking_value: float = Field(
        description="The value the list is ranked by (the response's ranked_by, highest first): expected "
        "conversions, expected engagements per post, or fit, by the objective. Exploratory creators hold slots "
        "of their own and may rank below creators with a lower value."
    )


class Versions(BaseModel):
    bundle_id: str = Field(description="The model bundle that answered (content hash).")
    model_source: str = Field(
        description="Where the bundle came from: a registry URI with its version, or a directory."
    )
    feature_set_id: str = Field(description="The feature set that answered (content hash).")
    feature_version: str = Field(description="The feature schema version the bundle was trained on.")
    embedder_id: str = Field(description="The text embedder of the feature set and of the request's segments.")


class BriefSegmentOut(BaseModel):
    """One segment read from a description sent without segments."""

    id: str = Field(description="Its label in this response (the creators' segments and matched_segment).")
    text: str = Field(
        description="The words of the brief it was read from ('audience N in English': the English words for the "
        "people a clause in another language names)."
    )
    weight: float = Field(description="Its weight among the segments.")
    role: Literal["audience", "product", "brief"] = Field(
        description="'audience': who the brand wants to reach (drives the fit); 'product': what it sells (a "
        "low-weight segment); 'brief': no audience clause was found, the whole description is the segment."
    )
    source: str = Field(description="How it was found: a label ('Target:'), a phrase ('wants to reach'), …")


class BriefReading(BaseModel):
    """How a description without segments was read (audiencefit.models.brief); send segments to read it differently."""

    segments: list[BriefSegmentOut] = Field(
        description="The segments read from the description, as if they had been sent."
    )
    product: str = Field(description="What the brand is and sells (also the brand vector the forecasts read).")
    language: str = Field(description="The language guessed (en, es, de, fr, pt, it; 'und' for none of them).")
    fallback: bool = Field(description="No audience clause found: the whole description is the one segment.")
    note: str = Field(description="How to change the reading, in words.")


class RecommendationResponse(BaseModel):
    recommendation_id: str = Field(
        description="Id of this answer (what was shown is logged under it); give it back with the campaigns that "
        "follow (campaigns.recommendation_id)."
    )
    objective: Objective = Field(description="The objective the creators are ranked by (as requested).")
    ranked_by: str = Field(
        description="What the creators are ranked by, highest first (each creator's ranking_value): "
        + "; ".join(f"objective '{k}': {v}" for k, v in RANKED_BY.items())
        + "."
    )
    count: int = Field(description="Number of creators returned (at most k).")
    creators: list[RecommendedCreator] = Field(
        description="The creators, best first by ranked_by (exploratory ones in their drawn slots)."
    )
    empty_reason: str | None = Field(None, description="Why no creator is returned (null when some are).")
    versions: Versions = Field(description="The model, feature set and embedder that answered.")
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability = Field(
        description="Whether the forecasts of the creators returned can be trusted."
    )
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class ScoreResponse(BaseModel):
    count: int = Field(description="Number of creators scored (as many as asked).")
    creators: list[CreatorScore] = Field(description="The creators scored, in the order asked.")
    versions: Versions = Field(description="The model, feature set and embedder that answered.")
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability = Field(
        description="Whether the forecasts of the creators scored can be trusted."
    )
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class GeoShare(BaseModel):
    value: str = Field(description="The country, ISO 3166-1 alpha-2.")
    share: float = Field(description="Estimated share of the real audience in it (0–1).")


class CreatorProfile(BaseModel):
    """A creator's profile, statistics, audience quality and main audience interests."""

    creator_id: str = Field(description="The creator's id in the feature set.")
    handle: str | None = Field(description="The creator's handle on its platform (null when the export has none).")
    platform: str | None = Field(description="The platform the creator posts on.")
    followers: int | None = Field(description="Follower count at the feature set's cut-off (null when unknown).")
    following: int | None = Field(description="Accounts the creator follows (null when unknown).")
    country: str | None = Field(description="The creator's own country, ISO 3166-1 alpha-2 (null when unknown).")
    language: str | None = Field(description="The creator's main language, ISO 639-1 (null when unknown).")
    follower_tier: str | None = Field(
        description="'sub-1k' < 1k ≤ 'nano' < 10k ≤ 'micro' < 100k ≤ 'mid' < 500k ≤ 'macro' < 1M ≤ 'mega'."
    )
    rate_per_post: float | None = Field(
        description=(
            "The creator's quoted price of one sponsored post, in USD (the currency of the creators' rates in the"
            " feature set) (null without a quote)."
        )
    )
    statistics: dict[str, float | int | str | None] = Field(
        description=(
            "Activity and engagement statistics of recent posts (docs/data-contracts.md): e.g. er_median ((likes "
            "+ comments) / followers per post, a fraction), posts_per_week, days_since_last_post; null when not "
            "computable."
        )
    )
    audience_quality: float | None = Field(
        description="How real and engaged the audience looks, 0–100; null when it could not be estimated."
    )
    quality_source: str | None = Field(
        description="What audience_quality was computed from: 'followers+engagement', 'followers' or 'engagement'."
    )
    audience_source: str | None = Field(
        description="What the audience representation was estimated from: 'followers', 'content' or 'none'."
    )
    audience_topics: list[Topic] = Field(description="The audience's main interest clusters, largest share first.")
    audience_countries: list[GeoShare] = Field(
        description="The audience's main countries (up to 5), largest share first."
    )
    feature_set_id: str = Field(description="The feature set that answered (content hash).")


class Lookalike(BaseModel):
    creator_id: str = Field(description="The similar creator's id.")
    handle: str | None = Field(description="Its handle (null when the export has none).")
    platform: str | None = Field(description="Its platform.")
    followers: int | None = Field(description="Its follower count (null when unknown).")
    similarity: float = Field(
        description=(
            "Cosine similarity of the two creators' audience (or content) vectors, in [-1, 1]; the list is ranked"
            " by it, highest first."
        )
    )


class LookalikesResponse(BaseModel):
    creator_id: str = Field(description="The creator asked about.")
    by: Literal["audience", "content"] = Field(
        description="What similarity was measured on: 'audience' (who follows them) or 'content' (what they post)."
    )
    count: int = Field(description="Number of creators returned.")
    creators: list[Lookalike] = Field(
        description="The most similar creators, by similarity, highest first (the creator itself left out)."
    )


class ModelInfo(BaseModel):
    """What is serving: the bundle, where it came from, and what it was trained and evaluated on."""

    bundle_id: str = Field(description="The model bundle serving (content hash).")
    model_source: str = Field(description="Where it came from: a registry URI with its version, or a directory.")
    loaded_at: str = Field(description="When it was loaded (UTC, ISO 8601).")
    created_at: str | None = Field(description="When it was trained (UTC, ISO 8601; null when not recorded).")
    feature_set_id: str = Field(description="The feature set serving (content hash).")
    feature_set_loaded_at: str | None = Field(
        None, description="When the feature set serving was loaded (start-up or POST /admin/reload; UTC, ISO 8601)."
    )
    feature_version: str = Field(description="The feature schema version the bundle was trained on.")
    embedder_id: str = Field(description="The text embedder the bundle was trained with.")
    training: dict[str, object] = Field(
        description="The training run's parameters and data (as recorded in the bundle)."
    )
    evaluation: list[dict[str, object]] = Field(
        description="The bundle's evaluation on held-out data: one object per metric and split."
    )
    beats_baselines: dict[str, bool] = Field(
        description="Whether the model beat each baseline it was compared with (metric → true/false)."
    )
    recommendation_log: dict[str, object] | None = Field(
        None,
        description="This process's recommendation log: backend and records written, dropped (queue full), failed "
        "(database error) and queued; null when logging is disabled. Never the URL.",
    )
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliabilityReport = Field(
        description="The drift check of the serving model over the served creators."
    )


class Health(BaseModel):
    status: str = Field(description="'ok': the process answers.")


class Readiness(BaseModel):
    """What a probe needs, and nothing an admin sent: no reload input, error text or path (``/readyz`` needs no
    key; the reason for a failed reload is in the 409 answer to ``/admin/reload`` and in the log)."""

    ready: bool = Field(description="Features, indexes and a model are loaded (the status is 503 otherwise).")
    features: bool = Field(description="A feature set is loaded.")
    index: bool = Field(description="Its audience index holds every creator.")
    model: bool = Field(description="A model bundle is loaded.")
    bundle_id: str | None = Field(description="The bundle serving (null without one).")
    feature_set_id: str | None = Field(description="The feature set serving (null without one).")
    last_reload_failed: bool = Field(description="The last reload attempt failed (the previous bundle serves).")
    last_reload_at: str | None = Field(description="When the last reload was attempted (UTC, ISO 8601).")
    worker_pid: int = Field(description="The process that answered (each worker of `serve --workers` has its own).")
    workers_ready: int | None = Field(
        None, description="`serve --workers N` while starting or replacing a worker: how many of the N are ready."
    )
    workers: int | None = Field(None, description="`serve --workers N` while a worker is missing: N.")
    # forecast reliability (#18 §4)
    forecast_reliability: Literal["ok", "low", "unknown"] | None = Field(
        None,
        description="Whether the serving model's forecasts can be trusted on the served creators (reasons: "
        "GET /v1/model); null without a model.",
    )


RELOAD_SOURCES = (
    "at most one bundle source ('bundle_path', 'model_uri' or 'source': \"configured\") and at most one feature "
    "set ('feature_set_path' or 'feature_set': \"configured\"), at least one of them"
)


class ReloadRequest(StrictModel):
    """What to load: a bundle (a bundle directory, a registry URI, or ``{"source": "configured"}`` for the source
    the service was started with), a feature set (a directory, or a directory holding a ``CURRENT`` pointer, or
    ``{"feature_set": "configured"}``), or one of each. No default: an empty body is refused."""

    bundle_path: str | None = Field(
        None,
        min_length=1,
        max_length=4_096,
        description="Absolute path of a bundle directory under a reload root (setting AUDIENCEFIT_RELOAD_ROOTS).",
    )
    model_uri: str | None = Field(
        None,
        min_length=1,
        max_length=512,
        pattern=r"^models:/[^/@]+(@[\w-]+|/\d+)$",
        description="A registered model version: models:/<name>@<alias> or models:/<name>/<version>.",
    )
    source: Literal["configured"] | None = Field(
        None, description='"configured": reload the source the service was started with (its --bundle or --model-uri).'
    )
    feature_set_path: str | None = Field(
        None,
        min_length=1,
        max_length=4_096,
        description="Absolute path of a feature set directory (with its index/), or of a directory whose CURRENT "
        "file names one of its subdirectories, under a feature-set reload root (setting "
        "AUDIENCEFIT_FEATURE_RELOAD_ROOTS). Without a bundle source the serving bundle is kept and checked "
        "against it.",
    )
    feature_set: Literal["configured"] | None = Field(
        None,
        description='"configured": load the feature set the service was started with (its --features) again; '
        "a CURRENT pointer there is read again, so this follows a newly published set.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> ReloadRequest:
        bundles = [name for name in ("bundle_path", "model_uri", "source") if getattr(self, name) is not None]
        features = [name for name in ("feature_set_path", "feature_set") if getattr(self, name) is not None]
        if len(bundles) > 1 or len(features) > 1 or not (bundles or features):
            shown = ", ".join(bundles + features) or "none"
            raise ValueError(f"give {RELOAD_SOURCES} (got {shown})")
        return self

    @property
    def has_bundle(self) -> bool:
        return self.bundle_path is not None or self.model_uri is not None or self.source is not None


class ReloadResponse(BaseModel):
    ok: bool = Field(description="The new bundle and/or feature set serve now.")
    serving_bundle_id: str | None = Field(description="The bundle serving after the request.")
    previous_bundle_id: str | None = Field(description="The bundle that served before it.")
    serving_feature_set_id: str | None = Field(None, description="The feature set serving after the request.")
    previous_feature_set_id: str | None = Field(None, description="The feature set that served before it.")
    error: str | None = Field(None, description="Why the reload failed (null when it did not).")


# ------------------------------------------------------------------------------------------- campaign plans

MAX_PLAN_CREATORS = PLAN_MAX_CREATORS

PlanObjective = Literal["conversions", "reach"]


class PlanRequest(BrandIn):
    """The best set of creators for a budget, aware of audience overlap."""

    brand_id: BrandIdIn | None = Field(
        None, description="Your own reference for the brand (letters, digits, '_', '.', '-'; up to 128), logged."
    )
    exploration: ExplorationIn | None = Field(
        None, description="Plans take share 0 only (their propensities are not known yet): any other is a 422."
    )

    budget: float = Field(
        gt=0,
        le=MAX_BUDGET,
        description="Total spend available, in USD (the sum of the creators' expected prices may not exceed it).",
    )
    objective: PlanObjective = Field("conversions", description="Maximise expected conversions or unique reach.")
    min_creators: int = Field(1, ge=1, le=MAX_PLAN_CREATORS, description="Fewest creators the plan may hold.")
    max_creators: int | None = Field(
        None,
        ge=1,
        le=MAX_PLAN_CREATORS,
        description="Most creators the plan may hold (default: as many as the budget buys, up to 50).",
    )
    min_segment_reach: dict[Annotated[Text, StringConstraints(max_length=64)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        max_length=MAX_SEGMENTS,
        description="Segment id → unique in-segment people the plan must reach (a constraint met first).",
    )
    filters: FiltersIn = Field(
        default_factory=FiltersIn, description="Which creators may be in the plan (as for recommendations)."
    )

    @model_validator(mode="after")
    def _no_plan_exploration(self) -> PlanRequest:
        if self.exploration is not None and self.exploration.share > 0:
            raise ValueError(
                "exploration: plans take share 0 only (a plan is chosen as a set under a budget, and the probability "
                "of each creator being in a Thompson-sampled set is not computed); explore with /v1/recommendations"
            )
        return self


class PlannedCreator(BaseModel):
    creator_id: str = Field(description="The creator's id in the feature set.")
    handle: str | None = Field(description="Its handle (null when the export has none).")
    platform: str | None = Field(description="Its platform.")
    followers: int | None = Field(description="Its follower count (null when unknown).")
    price: Band = Field(description=("Expected price of one sponsored post, in USD (the data contracts' currency)."))
    conversions: float = Field(description="Expected conversions of this creator alone.")
    engagements: float = Field(description="Expected engagements (likes + comments) of its post.")
    marginal_conversions: float = Field(description="Conversions the plan loses without this creator.")
    marginal_reach: float = Field(description="Unique in-segment people the plan loses without this creator.")
    gain_per_cost: float = Field(
        description="What the plan lists its creators by, highest first: the gain (expected conversions, unique "
        "people reached, or in-segment people while a segment's minimum reach was unmet) per unit of expected price "
        "(USD) when this creator was picked."
    )
    propensity: float = Field(
        description="Probability this creator had of being in the plan: 1 (plans are chosen deterministically)."
    )
    explored: bool = Field(description="Picked by exploration: never for plans.")
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability | None = Field(
        None, description="Present when this creator's inputs lie outside the range the model was trained on."
    )


class PlanResponse(BaseModel):
    recommendation_id: str = Field(description="Id of this answer (what was shown is logged under it).")
    objective: PlanObjective = Field(description="What the plan maximises (as requested).")
    count: int = Field(description="Number of creators in the plan.")
    creators: list[PlannedCreator] = Field(description="The creators of the plan, by gain_per_cost, highest first.")
    total_cost: Band = Field(
        description=("The plan's total price, in USD (the data contracts' currency) (sum of the creators' prices).")
    )
    budget: float = Field(description="The budget asked for, in USD (the data contracts' currency).")
    conversions: Band = Field(
        description="The plan's expected conversions, counting a person reached by two creators once."
    )
    conversions_without_overlap: float = Field(description="The sum of the creators' conversions alone.")
    engagements: Band = Field(description="The plan's expected engagements (likes + comments) over all its posts.")
    unique_reach: float = Field(description="Expected unique real people in the creators' audiences.")
    segment_reach: dict[str, float] = Field(description="Expected unique people reached in each segment.")
    candidates: int = Field(description="Creators the plan was chosen among (the best-fitting eligible ones).")
    versions: Versions = Field(description="The model, feature set and embedder that answered.")
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability = Field(
        description="Whether the forecasts of the creators in the plan can be trusted."
    )
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class OverlapResponse(BaseModel):
    """Estimated audience overlap of two creators and the evidence behind it."""

    creator_a: str = Field(description="The first creator's id.")
    creator_b: str = Field(description="The second creator's id.")
    real_audience_a: float = Field(description="Expected real (not fake) followers of the first creator, in people.")
    real_audience_b: float = Field(description="Expected real followers of the second creator, in people.")
    shared_audience: float = Field(description="Expected real people following both.")
    from_representation: float = Field(description="The estimate from audience interests and countries alone.")
    shared_sample_keys: int = Field(description="Followers seen in both creators' follower samples.")
    sample_size_a: int = Field(description="Followers in the first creator's follower sample.")
    sample_size_b: int = Field(description="Followers in the second creator's follower sample.")
    jaccard: float = Field(description="shared_audience / the people following either (0–1).")
    share_of_a: float = Field(description="shared_audience / real_audience_a (0–1).")
    share_of_b: float = Field(description="shared_audience / real_audience_b (0–1).")


# ------------------------------------------------------------------------------------------- errors (RFC 9457)


class ProblemDetails(BaseModel):
    """Every error answer (``application/problem+json``, RFC 9457; ``audiencefit.serving.problems``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(
        description="A URI naming the kind of problem, urn:audiencefit:problem:<kind> (the kinds are listed in "
        "docs/api.md); stable, for a client to switch on.",
        examples=["urn:audiencefit:problem:unknown-creator"],
    )
    title: str = Field(description="The kind of problem in words (the same for every problem of this type).")
    status: int = Field(description="The HTTP status code of the answer, repeated.", ge=400, le=599)
    detail: str = Field(description="What went wrong with this request, in words.")
    instance: str | None = Field(None, description="The request path the problem occurred on.")
    unknown_ids: list[str] | None = Field(
        None, description="404 unknown-creator: every creator id of the request that the feature set does not hold."
    )
    retry_after: int | None = Field(None, description="429: seconds to wait before retrying (as Retry-After).")


class ValidationErrorItem(BaseModel):
    """One refused value of a 422."""

    type: str = Field(description="The kind of error (e.g. 'missing', 'less_than_equal', 'json_invalid').")
    loc: list[str | int] = Field(
        description="Where the value is: 'body', 'query', 'path' or 'header', then the field names and list indexes "
        "down to it (e.g. ['body', 'segments', 0, 'text'])."
    )
    msg: str = Field(description="What is wrong with it, in words.")
    input: object | None = Field(
        None, description="The refused value, when it is small enough to echo (JSON-safe: NaN as the text 'NaN')."
    )
    ctx: dict[str, object] | None = Field(None, description="The rule it broke (e.g. {'le': 200}), when it has one.")


class ValidationProblem(ProblemDetails):
    """A 422: the request is invalid; ``errors`` lists every refused value (up to 50)."""

    errors: list[ValidationErrorItem] = Field(description="Every refused value, with where it is and why.")


class ReloadProblem(ProblemDetails):
    """A 409 from ``POST /admin/reload``: nothing was swapped in; the previous bundle and feature set keep serving.
    Carries the fields of the reload answer (``ok`` false) beside the problem's."""

    ok: bool = Field(description="Always false here.")
    serving_bundle_id: str | None = Field(description="The bundle still serving (unchanged).")
    previous_bundle_id: str | None = Field(description="The same bundle: nothing was swapped.")
    serving_feature_set_id: str | None = Field(None, description="The feature set still serving (unchanged).")
    previous_feature_set_id: str | None = Field(None, description="The same feature set: nothing was swapped.")
    error: str | None = Field(None, description="Why the reload failed (as detail).")
