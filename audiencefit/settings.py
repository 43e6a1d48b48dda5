"""The one typed settings object, read from the environment (prefix ``AUDIENCEFIT_``).

Every package reads configuration through :func:`get_settings`; nothing else looks at ``os.environ`` for
audiencefit's own options. Unsafe values are refused outside development.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEV_FOLLOWER_SECRET = "audiencefit-development-only-secret"


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
    mlflow_tracking_uri: str | None = Field(
        None,
        description="MLflow tracking URI. The standard MLFLOW_TRACKING_URI wins; default: SQLite under data_dir.",
    )
    follower_id_secret: SecretStr = Field(
        SecretStr(DEV_FOLLOWER_SECRET),
        description="Key of the keyed hash (HMAC-SHA256) that pseudonymises follower ids at ingestion.",
    )
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated API keys accepted on /v1 routes (header X-API-Key)."
    )
    admin_api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated admin keys accepted on /admin routes."
    )
    embedder: str = Field(
        "minilm-aligned",
        description=(
            "Embedding backend id: minilm-aligned (default: stored texts static + aligned to MiniLM, queries ONNX "
            "MiniLM fp32), minilm-onnx-int8, minilm-onnx-fp32, minilm-hybrid, minilm-static, minilm-torch."
        ),
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
    seed: int = Field(7, description="Seed for every random choice the pipeline makes.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_format: Literal["json", "console"] = Field("console", description="'json' for one JSON object per line.")

    # -- H5: rate limits (serving.ratelimit; what one key can cost: docs/architecture.md)
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

    @field_validator("api_keys", "admin_api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> list[str]:
        return _split_csv(value)

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.environment == "production":
            if self.follower_id_secret.get_secret_value() == DEV_FOLLOWER_SECRET:
                raise ValueError("AUDIENCEFIT_FOLLOWER_ID_SECRET must be set in production")
            if len(self.follower_id_secret.get_secret_value()) < 16:
                raise ValueError("AUDIENCEFIT_FOLLOWER_ID_SECRET must have at least 16 characters")
        return self

    # Derived locations: one place says where each artifact lives.
    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def forest_cache_dir(self) -> Path:
        return self.forest_cache if self.forest_cache is not None else self.cache_dir / "forests"

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
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{(self.data_dir / 'mlflow.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
