"""The FastAPI application factory. Nothing heavy happens at import: the feature set, its indexes, the query
embedder, recent captions and the model bundle are loaded once in the lifespan and injected into routes."""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute

from audiencefit.features.embed import Embedder
from audiencefit.features.errors import AudiencefitError, InputError
from audiencefit.serving.errors import MAX_MESSAGE, http_problem, safe_text, validation_error, validation_problem
from audiencefit.serving.gate import RequestGate
from audiencefit.serving.limits import DEFAULT_MAX_BODY, BodySizeLimitMiddleware
from audiencefit.serving.metrics import Metrics, MetricsMiddleware
from audiencefit.serving.openapi import add_docs, error_responses, openapi_generator
from audiencefit.serving.problems import problem, problem_response
from audiencefit.serving.ratelimit import RateLimitMiddleware, RateLimits
from audiencefit.serving.routes import admin, creators, health, plans, recommend
from audiencefit.serving.state import (
    BundleSource,
    ServedFeatures,
    ServingHolder,
    ServingModel,
    feature_reload_roots,
    load_serving_model,
    reload_roots,
    resolve_pointer,
    utc_now,
)
from audiencefit.serving.workers import WorkerSync
from audiencefit.settings import Settings

if TYPE_CHECKING:
    from audiencefit.features.featureset import FeatureSet
    from audiencefit.models.reclog import RecommendationLog

log = logging.getLogger(__name__)

ROUTERS = (recommend.router, plans.router, creators.router, health.router, health.model_router, admin.router)
API_DESCRIPTION = """Recommends micro-influencers to a brand by how well their real audience fits the brand's target
segments, with forecasts of engagement, conversions and price.

Send the key in `X-API-Key` (an admin key for `/admin`). Every error is a problem details object (RFC 9457,
`application/problem+json`): `type`, `title`, `status`, `detail`, `instance`, and for a 422 an `errors` list naming
each refused value's location. Money is in USD, the currency of the data contracts' rates, costs and revenue
(docs/data-contracts.md). `fit` is a cosine similarity between the creator's real audience and the brand's
segments, weighted by how much of the audience is real: at most 1, higher fits better (docs/api.md)."""
DEFAULT_THREADS = 4  # thread pool size for sync routes: CPU-bound work on 2 cores gains nothing from more


@dataclass(frozen=True)
class ServeConfig:
    """Where the service loads from and how it runs."""

    features_dir: Path
    bundle_source: BundleSource
    index_dir: Path | None = None
    data_dir: Path | None = None
    embedder: Embedder | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY
    threads: int = DEFAULT_THREADS
    # shared with the other worker processes (audiencefit.serving.workers); None: one process
    control_dir: Path | None = None


def load_state(settings: Settings, config: ServeConfig) -> ServingHolder:
    """Load everything heavy. Features, indexes and embedder must load; a bad bundle leaves the service up but not
    ready (``/readyz`` says why) so that ``/admin/reload`` can fix it."""
    from audiencefit.serving.state import open_recommendation_log

    reclog = open_recommendation_log(settings)  # first: a bad log URL fails the start before anything loads
    try:
        return _load(settings, config, reclog)
    except BaseException:
        if reclog is not None:
            reclog.close()
        raise


def features_loader(settings: Settings, config: ServeConfig) -> Callable[[Path, ServedFeatures | None], ServedFeatures]:
    """How the service loads a feature set with its indexes, query embedder and captions (at start-up and on
    ``/admin/reload``).

    The configured feature set uses ``config.index_dir`` (default: its own ``index/``) and the captions of
    ``config.data_dir`` when given; any other feature set its own ``index/`` and the captions it stores. The query
    embedder of the serving set is kept when the new set was embedded with the same one.
    """
    from audiencefit.features.embed import for_queries
    from audiencefit.features.featureset import RECENT_CAPTIONS, load_feature_set
    from audiencefit.models.index import default_index_dir, load_index
    from audiencefit.models.query import query_embedder
    from audiencefit.models.retrieval import AudienceSearch
    from audiencefit.serving.captions import CaptionStore, caption_cache

    configured = resolve_pointer(config.features_dir).resolve()

    def load(path: Path, serving: ServedFeatures | None) -> ServedFeatures:
        # Memory-mapped matrices and tables: the workers share one copy in the page cache instead of each holding
        # its own (at 1M creators the four matrices are ~4.7 GB, the tables and quotable captions ~6 GB); rows are
        # read when a request uses them. The captions table is read by the caption store (mapped, derived).
        tables = settings.table_cache_dir
        fs = load_feature_set(
            path, mmap=True, table_cache=tables, skip=frozenset({RECENT_CAPTIONS}) if tables else frozenset()
        )
        is_configured = path.resolve() == configured
        directory = config.index_dir if is_configured and config.index_dir is not None else default_index_dir(fs)
        if serving is not None and serving.search.embedder.id == fs.embedder_id:
            embedder = serving.search.embedder
        elif config.embedder is not None and config.embedder.id == fs.embedder_id:
            embedder = config.embedder
        else:
            embedder = query_embedder(fs)
        # An asymmetric embedder loads its query model on first use: load it now, not in the first request.
        for_queries(embedder).embed(["warm up"])
        if is_configured and config.data_dir is not None:
            captions: CaptionStore | None = CaptionStore.from_data_dir(
                config.data_dir,
                settings.follower_id_secret.get_secret_value(),
                embedder=embedder,
                cache=caption_cache(settings, embedder),
            )
        else:
            captions = CaptionStore.from_feature_set(fs, embedder, caption_cache(settings, embedder), tables)
        # The store holds the quotable captions now; the table they came from is not kept twice (GBs at 1M).
        fs = dataclasses.replace(fs, recent_captions=None)
        search = AudienceSearch(
            fs, load_index(fs, "audience", directory), load_index(fs, "content", directory), embedder
        )
        if captions is not None:
            log.info(
                "captions loaded",
                extra={
                    "creators": len(captions),
                    "embedded": captions.embedded,
                    "from": str(config.data_dir if is_configured and config.data_dir else fs.path),
                },
            )
        log.info(
            "feature set loaded",
            extra={"feature_set_id": fs.feature_set_id, "creators": fs.creators.height, "path": str(path)},
        )
        return ServedFeatures(fs=fs, search=search, captions=captions, path=path, loaded_at=utc_now())

    return load


def _load(settings: Settings, config: ServeConfig, reclog: RecommendationLog | None) -> ServingHolder:
    from audiencefit.serving.pipeline import warm_up

    def load_model(source: BundleSource, fs: FeatureSet) -> ServingModel:
        return load_serving_model(source, fs, settings)

    holder = ServingHolder(
        settings,
        features_loader(settings, config),
        load_model,
        config.bundle_source,
        config.features_dir,
        roots=reload_roots(settings, config.bundle_source),
        feature_roots=feature_reload_roots(settings, config.features_dir),
        reclog=reclog,
        warm=warm_up,  # each new state answers one brief before it serves (its answer is not logged)
    )
    state = holder.start()
    log.info(
        "service state loaded",
        extra={
            "feature_set_id": state.fs.feature_set_id,
            "creators": state.fs.creators.height,
            "bundle_id": state.model.bundle.bundle_id if state.model else None,
        },
    )
    return holder


def freeze_loaded_objects() -> None:
    """Keep what start-up loaded out of the cyclic garbage collector's full collections (``gc.freeze``).

    The loaded state holds a few hundred thousand container objects (creator ids, caption lists, per-view lookups)
    that live as long as the process. A full collection walks every one of them: measured on the 100k world, 121 ms
    for 254k objects, once every ~2,000 requests per process, and the requests queued behind such a pause set the
    p99. Frozen objects are still freed by reference counting; only cycles among them would never be collected, and
    nothing loaded at start-up is dropped before the process ends.
    """
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    log.info(
        "start-up objects frozen for the garbage collector",
        extra={"objects": gc.get_freeze_count(), "seconds": round(time.perf_counter() - started, 3)},
    )


def create_app(
    settings: Settings,
    *,
    features_dir: Path,
    bundle_source: BundleSource,
    index_dir: Path | None = None,
    data_dir: Path | None = None,
    embedder: Embedder | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    threads: int = DEFAULT_THREADS,
    control_dir: Path | None = None,
    compute_inline: bool = False,
    exit_on_load_error: bool = False,
) -> FastAPI:
    """The audiencefit API. ``bundle_source`` is a bundle directory or a registry URI (models:/name@alias);
    ``control_dir`` makes the app one of several worker processes (``audiencefit.serving.workers``); ``compute_inline``
    runs the recommendation routes' work on the event loop, for a worker that is given one request at a time
    (``audiencefit.serving.deps.get_compute``); ``exit_on_load_error`` ends the process when the state cannot load (bad
    input: a directory that is not a feature set, unreadable raw data): one log line naming what is wrong and the
    error's exit code (2), instead of the traceback the ASGI server would print for a failed start."""
    config = ServeConfig(
        features_dir, bundle_source, index_dir, data_dir, embedder, max_body_bytes, threads, control_dir
    )
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = config.threads
        try:
            holder = await anyio.to_thread.run_sync(load_state, settings, config)
        except AudiencefitError as exc:
            if not exit_on_load_error:
                raise
            log.error("the service cannot start", extra={"error": str(exc)})
            logging.shutdown()  # flush: os._exit skips it
            os._exit(exc.exit_code)
        freeze_loaded_objects()
        _show_serving(holder, metrics)  # not a local here: this frame lives as long as the app, and would keep
        # the start-up state (and its feature set) alive after a reload replaced it
        if holder.reclog is not None:
            metrics.set_log_counts(holder.reclog.counts)
        sync = WorkerSync(config.control_dir, metrics) if config.control_dir is not None else None
        if sync is not None:
            await anyio.to_thread.run_sync(sync.start, holder)
        app.state.serving = holder
        app.state.sync = sync
        try:
            yield
        finally:
            app.state.serving = None
            if holder.reclog is not None:  # write what is queued (before the last metrics snapshot)
                await anyio.to_thread.run_sync(holder.reclog.close)
            if sync is not None:
                await anyio.to_thread.run_sync(sync.stop)

    app = _bare_app(lifespan)
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.serving = None
    app.state.sync = None
    app.state.compute_inline = compute_inline
    app.add_exception_handler(RequestValidationError, validation_error)  # 422 bodies stay valid JSON
    app.add_exception_handler(StarletteHTTPException, http_problem)  # every error answer is a problem
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(Exception, _internal_error)
    # Last added is outermost: metrics see every response, including the rate limiter's 429, the gate's
    # 401/403/404/405 and the 408/413 of the body reader. The limiter counts and the gate answers before any body is
    # read, the body reader before any route runs.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=config.max_body_bytes, timeout_s=settings.http_body_timeout_s)
    app.add_middleware(RequestGate, settings=settings, routes=lambda: api_routes(app))
    rate_limits = RateLimits.from_settings(settings)
    # Not in a worker: its front counts the rate limits, once for all workers (audiencefit.serving.ratelimit).
    if rate_limits is not None and config.control_dir is None:
        app.add_middleware(RateLimitMiddleware, limits=rate_limits)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _show_serving(holder: ServingHolder, metrics: Metrics) -> None:
    """Put the ids of what serves into the metrics."""
    state = holder.state
    if state is not None and state.model is not None:
        metrics.set_model(state.model.bundle.bundle_id, state.model.source, state.fs.feature_set_id)


def _bare_app(lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None) -> FastAPI:
    """The FastAPI app with every route and nothing loaded or wired (``create_app`` adds the rest)."""
    app = FastAPI(
        title="audiencefit",
        version="1",
        summary="Micro-influencer recommendations by audience fit, with engagement and conversion predictions.",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        responses=error_responses(429, 500),
        docs_url=None,  # FastAPI's pages load their assets from a CDN: served from the package instead (add_docs)
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,  # no OAuth: one keyless route fewer
    )
    for router in ROUTERS:
        app.include_router(router)
    add_docs(app)
    app.openapi = openapi_generator(app)  # type: ignore[method-assign]
    return app


def api_routes(app: FastAPI | None = None) -> list[BaseRoute]:
    """Every route the app answers, flat, with its path pattern and methods (for ``audiencefit.serving.gate``):
    FastAPI's own (the OpenAPI schema and docs) and the routers'. Without ``app``: as a worker's app has them (the
    front)."""
    own = [route for route in (app or _bare_app()).routes if hasattr(route, "path_regex")]
    return own + [route for router in ROUTERS for route in router.routes]


async def _input_error(request: Request, exc: Exception) -> Response:
    """A request the domain code refuses (e.g. a segment with no words): a 422 problem with the reason, listed in
    ``errors`` like FastAPI's own validation errors, so that the one declared 422 schema holds for every 422."""
    where = "body" if request.method in ("POST", "PUT", "PATCH") else "query"
    return validation_problem(
        request, [{"type": "value_error", "loc": [where], "msg": safe_text(str(exc), MAX_MESSAGE)}]
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: logged with its traceback, answered without one."""
    log.error("unhandled error", exc_info=exc, extra={"path": request.url.path, "method": request.method})
    return problem_response(problem(500, "internal server error", instance=request.url.path))
