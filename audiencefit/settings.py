"""The one typed settings object, read from the environment (prefix ``AUDIENCEFIT_``).

Every package reads configuration through :func:`get_settings`; nothing else looks at ``os.environ`` for
audiencefit's own options. Unsafe values are refused outside development.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from audiencefit.features.errors import AudiencefitError

DEV_FOLLOWER_SECRET = "audiencefit-development-only-secret"
MIN_SECRET_CHARS = 16  # production: the follower-id secret and every API key
MIN_DISTINCT_CHARS = 8  # production: "aaaaaaaaaaaaaaaa" has the length of a secret, not its strength
ENV_PREFIX = "AUDIENCEFIT_"


class SettingsError(AudiencefitError):
    """A setting is missing, malformed or unsafe. The message names each setting (``AUDIENCEFIT_X``) and what is
    wrong with it, never the value: settings hold secrets (pydantic's own message shows every input value)."""

    exit_code = 2


def _split_csv(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)):
        return [str(part).strip() for part in value if str(part).strip()]
    raise ValueError("expected a comma-separated string or a list of strings")


class Settings(BaseSettings):
    """audiencefit configuration. Each field maps to ``AUDIENCEFIT_<FIELD>`` in the environment."""

    model_config = SettingsConfigDict(env_prefix="AUDIENCEFIT_", extra="ignore", frozen=True)

    environment: Literal["development", "production"] = Field(
        "development", description="'production' refuses development defaults such as the built-in secret."
    )
    data_dir: Path = Field(
        Path("audiencefit-data"),
        description="Root for data and artifacts: demo world, feature sets, embedding cache, MLflow store.",
    )
    mlflow_tracking_uri: SecretStr | None = Field(
        None,
        description="MLflow tracking URI. The standard MLFLOW_TRACKING_URI wins; default: SQLite under data_dir. "
        "Held as a secret (a URI can carry a password): never shown in a repr, a dump or an error.",
    )
    follower_id_secret: SecretStr = Field(
        SecretStr(DEV_FOLLOWER_SECRET),
        description="Key of the keyed hash (HMAC-SHA256) that pseudonymises follower ids at ingestion. Production "
        f"refuses the built-in development value (also padded or inside a longer value), fewer than {MIN_SECRET_CHARS} "
        f"characters (whitespace not counted), fewer than {MIN_DISTINCT_CHARS} distinct characters, and leading or "
        "trailing whitespace.",
    )
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated API keys accepted on /v1 routes (header X-API-Key); in production each has at "
        f"least {MIN_SECRET_CHARS} characters. Held as secrets: never shown in a repr, a dump, a log or an error.",
    )
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated admin keys accepted on /admin routes (same rules as api_keys; in production "
        "none may also be a /v1 key).",
    )
    embedder: str = Field(
        "minilm-aligned",
        description=(
            "Embedding backend id: minilm-aligned (default: stored texts static + aligned to MiniLM, queries ONNX "
            "MiniLM, see query_model), minilm-onnx-int8, minilm-onnx-fp32, minilm-hybrid, minilm-static, "
            "minilm-torch."
        ),
    )
    query_model: Literal["int8", "fp32"] = Field(
        "int8",
        description="The ONNX MiniLM that embeds query texts (segment and brand descriptions) for minilm-aligned: "
        "'int8' (default: weights quantised per channel, 2.2× less CPU per text, retrieval within a point of fp32 "
        "on synthetic and real text) or 'fp32'. Stored texts and feature sets do not depend on it; a query vector "
        "does, so training and serving should use the same one (docs/evaluation.md, issue 22).",
    )
    query_threads: int = Field(
        1,
        ge=1,
        le=256,
        description="onnxruntime threads of the transformer that embeds query texts for minilm-aligned (one segment "
        "or brand text at a time, during a request). Default 1: on one short text a second thread saves little "
        "wall time and costs CPU the concurrent requests need (measured on 2 cores: 2.61 ms of CPU per novel brief "
        "text on one thread, 3.46 on two; docs/benchmarks.md, issue 22).",
    )
    embed_batch_size: int = Field(64, ge=1, le=4096, description="Texts per embedding batch.")
    embed_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="onnxruntime threads per transformer embedder; default: the cores this process may use. "
        "'audiencefit serve' with several workers sets 1 (a worker per core already: a second thread per worker "
        "costs ~10% more CPU per query text, measured 7.4 vs 6.7 ms).",
    )
    recent_posts: int = Field(30, ge=1, le=1000, description="Posts per creator used for recent statistics.")
    feature_partition_creators: int = Field(
        50_000,
        ge=1,
        description="Creators the feature build computes at once ('features build --partition-creators'): memory "
        "grows with it, not with the creator count; the feature set is byte-identical whatever it is.",
    )
    audience_clusters: int = Field(24, ge=2, le=512, description="k of the k-means over follower vectors.")
    audience_prior_strength: float = Field(
        10.0,
        ge=0,
        description="How many follower profiles the creator's content counts as in its audience estimate.",
    )
    training_snapshot_days: int = Field(
        14, ge=1, le=365, description="Training features are taken from snapshots this many days apart."
    )
    index_exact_max: int = Field(
        50_000,
        ge=0,
        description="Up to this many creators the audience index is exact (IndexFlatIP); IVF above "
        "(at 100k: recall@100 0.997 in 1.9 ms vs 6.9 ms exact, docs/benchmarks.md).",
    )
    index_type: Literal["ivf", "hnsw"] = Field("ivf", description="Approximate index above index_exact_max.")
    ivf_nlist: int | None = Field(None, ge=1, description="IVF lists; default about sqrt(creators).")
    ivf_nprobe: int | None = Field(
        None,
        ge=1,
        description="IVF lists visited per query; default 108 for int8 lists, 96 for sq8 and flat (int8 at 108 has at "
        "least sq8's top-k overlap with exact search at 96 on the 100k world, docs/benchmarks.md).",
    )
    ivf_encoding: Literal["int8", "sq8", "flat"] = Field(
        "int8",
        description="How IVF lists store vectors: int8 = one integer byte per dimension, scanned with an integer "
        "query (fastest; the rows found are re-scored exactly), sq8 = FAISS's 8-bit scalar quantizer (decoded to "
        "floats while scanning), flat = float32.",
    )
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW graph degree.")
    hnsw_ef_construction: int = Field(120, ge=8, description="HNSW build-time beam width.")
    hnsw_ef_search: int = Field(256, ge=8, description="HNSW query-time beam width.")
    compiled_trees: bool = Field(
        True,
        description="Serve and batch-score with the tree models compiled to native code (lleaves; the same numbers "
        "as LightGBM, bit for bit, several times faster); false = LightGBM's own predictor.",
    )
    forest_cache: Path | None = Field(
        None, description="Where compiled tree models are kept (default: <data_dir>/cache/forests)."
    )
    table_cache: Literal[""] | Path | None = Field(
        None,
        description="Where the service keeps memory-mapped Arrow copies of the feature-set tables, shared by its "
        "workers (default: <data_dir>/cache/tables). Set but empty: read the tables into each worker's memory.",
    )
    seed: int = Field(7, description="Seed for every random choice the pipeline makes.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "console"] = Field("console", description="'json' for one JSON object per line.")

    # -- H2: where stored models may be loaded from
    reload_roots: Annotated[list[Path] | None, NoDecode] = Field(
        None,
        description="Comma-separated directories POST /admin/reload may load a bundle path from (the path, symlinks "
        "resolved, must lie under one; others are refused with 403). Unset: <data_dir>/bundles, "
        "<data_dir>/registry-cache and the directory holding the bundle the service started with. Set but empty: "
        "no bundle paths, only registry URIs and the configured source.",
    )

    feature_reload_roots: Annotated[list[Path] | None, NoDecode] = Field(
        None,
        description="Comma-separated directories POST /admin/reload may load a feature set (or a directory with a "
        "CURRENT pointer file) from; others are refused with 403. Unset: <data_dir>/features and the directory "
        "holding the feature set the service started with (its siblings). Set but empty: only the configured one.",
    )

    @field_validator("reload_roots", "feature_reload_roots", mode="before")
    @classmethod
    def _parse_roots(cls, value: object) -> list[str] | None:
        return None if value is None else _split_csv(value)

    # -- H4: per-creator bounds of the feature build
    max_followers_per_creator: int = Field(
        5_000,
        ge=1,
        description="Followers per creator the feature build uses (quality, audience vector, geography, overlap); "
        "beyond it a deterministic sample is taken: the followers with the smallest pseudonyms (a keyed hash, so a "
        "uniform sample, the same in every build). One creator with 1M followers otherwise took 5.2 GB.",
    )
    max_posts_per_creator: int = Field(
        10_000,
        ge=1,
        description="Newest posts per creator whose captions give the hashtag and mention counts (terms); "
        "statistics already use the last recent_posts posts and captions the last 12.",
    )
    # -- H1: HTTP transport limits (audiencefit serve: the front or the single process)
    http_header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Seconds a client has to send a request's line and headers, counted from the connection's "
        "opening or the request's first byte; slower clients get 408 and the connection is closed.",
    )
    http_body_timeout_s: float = Field(
        20.0,
        gt=0,
        le=3600,
        description="Seconds a client has to send a whole request body once its headers are in; slower clients "
        "get 408 and the connection is closed (the request is never computed).",
    )
    http_max_header_bytes: int = Field(
        16_384,
        ge=1_024,
        le=1 << 20,
        description="Largest request line plus headers, in bytes; larger ones get 431 and the connection is closed.",
    )
    http_max_connections: int = Field(
        1_024,
        ge=1,
        le=100_000,
        description="Concurrent connections (and requests) one server process takes; a request over it gets 503.",
    )
    # -- H5: rate limits (audiencefit.serving.ratelimit; what one key can cost: docs/architecture.md)
    rate_limit_enabled: bool = Field(
        True, description="Limit requests per API key (and per client address without a valid key): 429 past it."
    )
    rate_limit_per_second: float = Field(
        10.0, gt=0, le=100_000, description="Requests per second one API key may send, sustained (every route)."
    )
    rate_limit_burst: int = Field(
        20,
        ge=1,
        le=100_000,
        description="Requests one API key may send at once; the window is burst / rate seconds (rounded up).",
    )
    rate_limit_plans_per_second: float = Field(
        1.0, gt=0, le=100_000, description="POST /v1/plans per second per API key, sustained (plans cost the most)."
    )
    rate_limit_plans_burst: int = Field(3, ge=1, le=100_000, description="POST /v1/plans one API key may send at once.")
    rate_limit_address_per_second: float = Field(
        10.0,
        gt=0,
        le=100_000,
        description="Requests per second from one client address without a valid API key (health checks, metrics, "
        "refused keys), sustained.",
    )
    rate_limit_address_burst: int = Field(
        20, ge=1, le=100_000, description="Requests one client address without a valid API key may send at once."
    )
    # -- #18 H4: how the conversion model is built (training; a bundle records its own structure)
    conversion_structure: Literal["direct", "funnel"] = Field(
        "direct",
        description="How 'audiencefit train' builds expected conversions: 'direct' = one Poisson model of "
        "conversions over the estimated audience in the segment; 'funnel' = reach × click rate × conversion rate, "
        "each stage learned from the campaigns' own reach, clicks and conversions (docs/evaluation.md). Serving "
        "follows whatever the loaded bundle was trained with.",
    )

    # -- #18 H1: the error on the population the service ranks (audiencefit.training.served_eval)
    served_eval_candidates: int = Field(
        300,
        ge=0,
        le=10_000,
        description="Training on a synthetic world also scores the top this-many candidates per brand and compares "
        "them with the truth (served_* metrics); 0 turns it off.",
    )

    # --- #18 closing the loop, training side: how far
    # inverse-propensity weights may go (docs/evaluation.md, "Learning from our own recommendations").
    ipw_max_weight: float = Field(
        20.0,
        ge=1.0,
        le=1000.0,
        description="Largest inverse-propensity weight a campaign from a recommendation gets in training (1/p is "
        "clipped here before the weights are normalised): bounds how much one outcome can count.",
    )
    recommended_weight_share: float = Field(
        0.0,
        ge=0.0,
        le=0.9,
        description="Least share of the total training weight the campaigns from our own recommendations hold "
        "together (scaled up, never down; their mix stays the propensities'); 0 = off: they weigh as many rows "
        "as they are. They are the only campaigns drawn from the population the model serves.",
    )

    # -- H2 (#18): the recommendation log (models/reclog.py): what the service showed, for training to learn from
    recommendation_log_enabled: bool = Field(
        True,
        description="Log every recommendation and plan served (ids, creators, ranks, scores, propensities, model "
        "version) to the recommendation log; off: answers still carry ids, nothing is written.",
    )
    recommendation_log_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy database URL of the recommendation log (e.g. postgresql+psycopg://user:pw@host/db); "
        "default: SQLite at <data_dir>/recommendations.db (WAL: several worker processes append). Held as a secret "
        "(it may carry a password): never shown in a repr, a dump, a log line or an error.",
    )
    recommendation_log_queue: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Records waiting to be written, per serving process; when full, new ones are dropped and "
        "counted (a request never waits for the log).",
    )

    @field_validator("recommendation_log_url")
    @classmethod
    def _check_log_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        import sqlalchemy as sa

        try:
            sa.make_url(value.get_secret_value().strip()).get_dialect()
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ImportError, ValueError) as exc:
            # Never the value (it may hold a password), nor SQLAlchemy's message (it quotes the value).
            raise ValueError(
                f"not a usable SQLAlchemy database URL ({type(exc).__name__}); expected e.g. "
                "sqlite:////abs/path/recommendations.db or postgresql+psycopg://user:password@host/db"
            ) from None
        return SecretStr(value.get_secret_value().strip())

    @property
    def recommendation_log_target(self) -> str:
        """The recommendation log's URL in force: the setting, else SQLite under data_dir."""
        if self.recommendation_log_url is not None:
            return self.recommendation_log_url.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'recommendations.db').resolve()}"

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> list[str]:
        if isinstance(value, (list, tuple)):
            value = [v.get_secret_value() if isinstance(v, SecretStr) else v for v in value]
        return _split_csv(value)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            problems = _secret_problems(self.follower_id_secret.get_secret_value(), default=DEV_FOLLOWER_SECRET)
            for field in ("api_keys", "admin_api_keys"):
                keys: list[SecretStr] = getattr(self, field)
                problems += [
                    f"{ENV_PREFIX}{field.upper()}: key {n} of {len(keys)} {problem}"
                    for n, key in enumerate(keys, start=1)
                    for problem in _key_problems(key.get_secret_value())
                ]
            if {k.get_secret_value() for k in self.api_keys} & {k.get_secret_value() for k in self.admin_api_keys}:
                problems.append(
                    f"{ENV_PREFIX}ADMIN_API_KEYS: a key is also in {ENV_PREFIX}API_KEYS; admin keys must be their own"
                )
            if problems:
                raise ValueError("unsafe in production: " + "; ".join(problems))
        return self

    def api_key_values(self) -> list[str]:
        """The /v1 API keys in clear, for the key check only."""
        return [key.get_secret_value() for key in self.api_keys]

    def admin_key_values(self) -> list[str]:
        """The /admin keys in clear, for the key check only."""
        return [key.get_secret_value() for key in self.admin_api_keys]

    # Derived locations: one place says where each artifact lives.
    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def forest_cache_dir(self) -> Path:
        return self.forest_cache if self.forest_cache is not None else self.cache_dir / "forests"

    @property
    def table_cache_dir(self) -> Path | None:
        """None when the table cache is switched off (``AUDIENCEFIT_TABLE_CACHE`` set but empty)."""
        if self.table_cache is None:
            return self.cache_dir / "tables"
        return None if self.table_cache == "" else self.table_cache

    @property
    def embedding_cache_dir(self) -> Path:
        return self.cache_dir / "embeddings"

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    @property
    def features_dir(self) -> Path:
        return self.data_dir / "features"

    @property
    def tracking_uri(self) -> str:
        """The MLflow tracking URI in force: MLFLOW_TRACKING_URI, then this setting, then SQLite under data_dir."""
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if env_uri:
            return env_uri
        if self.mlflow_tracking_uri is not None and self.mlflow_tracking_uri.get_secret_value():
            return self.mlflow_tracking_uri.get_secret_value()
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"


def _secret_problems(value: str, *, default: str) -> list[str]:
    """What makes ``value`` unfit as the production follower-id secret (never the value itself)."""
    name = f"{ENV_PREFIX}FOLLOWER_ID_SECRET"
    stripped = value.strip()
    if not stripped:
        return [f"{name} is empty or only whitespace; set a random secret of at least {MIN_SECRET_CHARS} characters"]
    if default.lower() in value.lower():
        return [f"{name} is (or contains) the built-in development secret; set your own random secret"]
    problems = []
    if stripped != value:
        problems.append(f"{name} has leading or trailing whitespace (a quoting mistake?)")
    if len("".join(stripped.split())) < MIN_SECRET_CHARS:
        problems.append(f"{name} must have at least {MIN_SECRET_CHARS} characters, whitespace not counted")
    elif len(set(stripped)) < MIN_DISTINCT_CHARS:
        problems.append(f"{name} must have at least {MIN_DISTINCT_CHARS} distinct characters")
    return problems


def _key_problems(key: str) -> list[str]:
    problems = []
    if len(key) < MIN_SECRET_CHARS:
        problems.append(f"is shorter than {MIN_SECRET_CHARS} characters")
    elif len(set(key)) < MIN_DISTINCT_CHARS:
        problems.append(f"has fewer than {MIN_DISTINCT_CHARS} distinct characters")
    if any(ch.isspace() or not ch.isprintable() for ch in key):
        problems.append("contains whitespace or control characters (it could not be sent in an HTTP header)")
    if DEV_FOLLOWER_SECRET in key.lower():
        problems.append("contains the built-in development secret")
    return problems


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: the environment variable and what is wrong, never the input value."""
    lines = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        loc = [str(part) for part in error.get("loc", ())]
        message = str(error.get("msg", "invalid value"))
        message = message.removeprefix("Value error, ")
        if loc:
            lines.append(f"{ENV_PREFIX}{loc[0].upper()}: {message}")
        else:
            lines.append(message)
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings(**overrides: object) -> Settings:
    """``Settings(**overrides)`` (the environment fills the rest); a bad value raises :class:`SettingsError`,
    whose message names the setting and never shows a value."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    except SourceError as exc:  # a value pydantic-settings could not even decode (it names the field, not the value)
        raise SettingsError(f"invalid settings: {exc}") from None


def locate_data_dir(data_dir: Path, start: Path | None = None) -> Path:
    """``data_dir`` as an absolute path, found from any working directory (a notebook's kernel starts in
    ``notebooks/``, a script anywhere): an absolute path as it is; a relative one (the default ``audiencefit-data``,
    or ``AUDIENCEFIT_DATA_DIR=audiencefit-data`` as the Makefile exports it) in ``start`` (default: the working
    directory) or the nearest parent where that directory exists, else in the checkout this package runs from
    (the directory holding its ``pyproject.toml``, where ``make`` creates it), else in ``start``."""
    if data_dir.is_absolute():
        return data_dir
    here = (start or Path.cwd()).resolve()
    for parent in (here, *here.parents):
        if (parent / data_dir).is_dir():
            return parent / data_dir
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / data_dir
    return here / data_dir


def located_settings(start: Path | None = None) -> Settings:
    """:func:`get_settings` with ``data_dir`` made absolute by :func:`locate_data_dir`: what a notebook or a script
    run from another directory uses, so the demo world, feature sets and MLflow store are the project's."""
    settings = get_settings()
    return settings.model_copy(update={"data_dir": locate_data_dir(settings.data_dir, start)})


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment; bad values raise :class:`SettingsError`."""
    return load_settings()
