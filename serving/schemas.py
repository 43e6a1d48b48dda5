"""HTTP request and response models. Requests forbid unknown fields and cap every list and text, so a request's
cost is bounded before any work starts; violations are 422 responses.

Request fields are strict: a JSON value must already have the field's type (``true`` is not the integer 1, ``"20"``
is not a number, ``2.5`` is not an integer; ``2.0`` is, as JSON Schema says), numbers must be finite (``NaN``,
``Infinity`` and ``1e309``, which Python's JSON parser reads as infinity, are refused) and text must be valid Unicode
(no lone surrogate such as ``"\\ud800"``). Each violation is a 422 naming the field (``serving.errors`` keeps the
422 body valid JSON)."""

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

from models.explore import MAX_SHARE as MAX_EXPLORATION_SHARE
from models.planner import MAX_CREATORS as PLAN_MAX_CREATORS

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

    min_followers: int = Field(1_000, ge=0, le=MAX_FOLLOWERS)
    max_followers: int = Field(100_000, ge=0, le=MAX_FOLLOWERS)
    platforms: list[Code] = Field(default_factory=list, max_length=20)
    countries: list[Code] = Field(default_factory=list, max_length=250)
    languages: list[Code] = Field(default_factory=list, max_length=100)
    min_audience_quality: float = Field(0.0, ge=0, le=100)
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
    segments: list[SegmentIn] = Field(default_factory=list, max_length=MAX_SEGMENTS)
    brand_handles: list[Text] = Field(default_factory=list, max_length=MAX_BRAND_TERMS)
    branded_hashtags: list[Text] = Field(default_factory=list, max_length=MAX_BRAND_TERMS)

    @model_validator(mode="after")
    def _needs_a_target(self) -> BrandIn:
        if not self.segments and not (self.description and self.description.strip()):
            raise ValueError("give a brand description or at least one segment")
        for term in (*self.brand_handles, *self.branded_hashtags):
            if not 1 <= len(term.strip().lstrip("@#")) <= ID_MAX:
                raise ValueError(f"brand handle or hashtag {term[:40]!r} is empty or longer than {ID_MAX} characters")
        return self


class ExplorationIn(StrictModel):
    """A share of the answer given to creators the model is unsure about (``models.explore``): with ``k`` results,
    ``round(share·k)`` slots are Thompson-sampled from the candidates not ranked into the others, using the
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
    filters: FiltersIn = Field(default_factory=FiltersIn)
    objective: Objective = "conversions"
    budget: float | None = Field(
        None, gt=0, le=MAX_BUDGET, description="Leave out creators whose expected price exceeds this."
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

    creator_ids: list[CreatorIdIn] = Field(min_length=1, max_length=MAX_SCORE_IDS)


class Band(BaseModel):
    """A prediction with its 10th–90th percentile band."""

    expected: float
    p10: float
    p90: float


class SegmentFit(BaseModel):
    segment: str
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

    cluster_id: int
    terms: list[str]
    audience_share: float = Field(description="Share of the creator's audience in this cluster.")
    relevance: float | None = Field(None, description="How much the cluster belongs to the matched segment (0–1).")


class Explanation(BaseModel):
    matched_segment: str
    reasons: list[str]
    topics: list[Topic]
    captions: list[str]


# forecast reliability (#18 §4) -------------------------------------------------------------------------------


class ForecastReliability(BaseModel):
    """Whether the forecasts can be trusted here (``models.drift``): "ok" when the creators served look like the
    ones the model was trained among, "low" when they differ beyond the documented threshold (or, for one creator,
    when its inputs lie outside the training range), "unknown" for a model trained before this was recorded."""

    level: Literal["ok", "low", "unknown"]
    reasons: list[str] = Field(description="What differs, in words (empty when nothing does).")


class InputShiftOut(BaseModel):
    """One monitored input of the drift check."""

    feature: str
    psi: float = Field(description="Population stability index, training creators → served creators.")
    threshold: float = Field(description="The PSI at which this input counts as shifted.")
    shifted: bool
    served: str
    training: str


class ForecastReliabilityReport(ForecastReliability):
    """The whole drift check of the serving model over the served feature set."""

    statistic: str
    threshold: str
    creators_served: int
    creators_trained: int
    creators_out_of_range: int
    inputs: list[InputShiftOut]


class CreatorScore(BaseModel):
    """One creator with its predictions and the reasons behind them."""

    rank: int
    creator_id: str
    handle: str | None
    platform: str | None
    followers: int | None
    country: str | None
    language: str | None
    fit: float = Field(description="Combined audience fit over the segments.")
    segments: list[SegmentFit]
    matched_segment: str
    engagement_rate: Band
    conversions: Band
    price: Band
    price_source: str
    cost_per_conversion: float | None
    audience_quality: float | None
    audience_source: str | None
    brand_mentions: int
    mentions_brand: bool
    explanation: Explanation
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


class Versions(BaseModel):
    bundle_id: str
    model_source: str
    feature_set_id: str
    feature_version: str
    embedder_id: str


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
    """How a description without segments was read (models.brief); send segments to read it differently."""

    segments: list[BriefSegmentOut]
    product: str = Field(description="What the brand is and sells (also the brand vector the forecasts read).")
    language: str = Field(description="The language guessed (en, es, de, fr, pt, it; 'und' for none of them).")
    fallback: bool = Field(description="No audience clause found: the whole description is the one segment.")
    note: str


class RecommendationResponse(BaseModel):
    recommendation_id: str = Field(
        description="Id of this answer (what was shown is logged under it); give it back with the campaigns that "
        "follow (campaigns.recommendation_id)."
    )
    objective: Objective
    count: int
    creators: list[RecommendedCreator]
    empty_reason: str | None = None
    versions: Versions
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class ScoreResponse(BaseModel):
    count: int
    creators: list[CreatorScore]
    versions: Versions
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class GeoShare(BaseModel):
    value: str
    share: float


class CreatorProfile(BaseModel):
    """A creator's profile, statistics, audience quality and main audience interests."""

    creator_id: str
    handle: str | None
    platform: str | None
    followers: int | None
    following: int | None
    country: str | None
    language: str | None
    follower_tier: str | None
    rate_per_post: float | None
    statistics: dict[str, float | int | str | None]
    audience_quality: float | None
    quality_source: str | None
    audience_source: str | None
    audience_topics: list[Topic]
    audience_countries: list[GeoShare]
    feature_set_id: str


class Lookalike(BaseModel):
    creator_id: str
    handle: str | None
    platform: str | None
    followers: int | None
    similarity: float


class LookalikesResponse(BaseModel):
    creator_id: str
    by: Literal["audience", "content"]
    count: int
    creators: list[Lookalike]


class ModelInfo(BaseModel):
    """What is serving: the bundle, where it came from, and what it was trained and evaluated on."""

    bundle_id: str
    model_source: str
    loaded_at: str
    created_at: str | None
    feature_set_id: str
    feature_set_loaded_at: str | None = Field(
        None, description="When the feature set serving was loaded (start-up or POST /admin/reload; UTC, ISO 8601)."
    )
    feature_version: str
    embedder_id: str
    training: dict[str, object]
    evaluation: list[dict[str, object]]
    beats_baselines: dict[str, bool]
    recommendation_log: dict[str, object] | None = Field(
        None,
        description="This process's recommendation log: backend and records written, dropped (queue full), failed "
        "(database error) and queued; null when logging is disabled. Never the URL.",
    )
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliabilityReport


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    """What a probe needs, and nothing an admin sent: no reload input, error text or path (``/readyz`` needs no
    key; the reason for a failed reload is in the 409 answer to ``/admin/reload`` and in the log)."""

    ready: bool
    features: bool
    index: bool
    model: bool
    bundle_id: str | None
    feature_set_id: str | None
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
    ok: bool
    serving_bundle_id: str | None
    previous_bundle_id: str | None
    serving_feature_set_id: str | None = None
    previous_feature_set_id: str | None = None
    error: str | None = None


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

    budget: float = Field(gt=0, le=MAX_BUDGET, description="Total spend available (sum of expected prices).")
    objective: PlanObjective = Field("conversions", description="Maximise expected conversions or unique reach.")
    min_creators: int = Field(1, ge=1, le=MAX_PLAN_CREATORS)
    max_creators: int | None = Field(None, ge=1, le=MAX_PLAN_CREATORS)
    min_segment_reach: dict[Annotated[Text, StringConstraints(max_length=64)], Annotated[float, Field(ge=0)]] = Field(
        default_factory=dict,
        max_length=MAX_SEGMENTS,
        description="Segment id → unique in-segment people the plan must reach (a constraint met first).",
    )
    filters: FiltersIn = Field(default_factory=FiltersIn)

    @model_validator(mode="after")
    def _no_plan_exploration(self) -> PlanRequest:
        if self.exploration is not None and self.exploration.share > 0:
            raise ValueError(
                "exploration: plans take share 0 only (a plan is chosen as a set under a budget, and the probability "
                "of each creator being in a Thompson-sampled set is not computed); explore with /v1/recommendations"
            )
        return self


class PlannedCreator(BaseModel):
    creator_id: str
    handle: str | None
    platform: str | None
    followers: int | None
    price: Band
    conversions: float = Field(description="Expected conversions of this creator alone.")
    engagements: float = Field(description="Expected engagements (likes + comments) of its post.")
    marginal_conversions: float = Field(description="Conversions the plan loses without this creator.")
    marginal_reach: float = Field(description="Unique in-segment people the plan loses without this creator.")
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
    objective: PlanObjective
    count: int
    creators: list[PlannedCreator]
    total_cost: Band
    budget: float
    conversions: Band
    conversions_without_overlap: float = Field(description="The sum of the creators' conversions alone.")
    engagements: Band
    unique_reach: float = Field(description="Expected unique real people in the creators' audiences.")
    segment_reach: dict[str, float] = Field(description="Expected unique people reached in each segment.")
    candidates: int
    versions: Versions
    # forecast reliability (#18 §4)
    forecast_reliability: ForecastReliability
    brief_reading: BriefReading | None = Field(
        None, description="How the description was read when no segments were sent (null with segments)."
    )


class OverlapResponse(BaseModel):
    """Estimated audience overlap of two creators and the evidence behind it."""

    creator_a: str
    creator_b: str
    real_audience_a: float
    real_audience_b: float
    shared_audience: float = Field(description="Expected real people following both.")
    from_representation: float = Field(description="The estimate from audience interests and countries alone.")
    shared_sample_keys: int = Field(description="Followers seen in both creators' follower samples.")
    sample_size_a: int
    sample_size_b: int
    jaccard: float
    share_of_a: float
    share_of_b: float
