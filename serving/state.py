"""What the service holds in memory: the feature set, its indexes and embedder (loaded once), and the model
bundle behind a holder that can swap it while requests are served.

A request reads ``ModelHolder.current`` once and uses that object to the end, so a reload in the middle of a
request never mixes two models. A reload loads and verifies the new bundle beside the old one and then replaces
one reference (an atomic assignment in CPython); reloads are serialised by a lock, readers never take it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from audiencefit.settings import Settings
from features.errors import AudiencefitError
from features.featureset import FeatureSet
from models.bundle import Bundle, load_bundle
from models.drift import Reliability, check_features
from models.retrieval import AudienceSearch
from serving.captions import CaptionStore

if TYPE_CHECKING:
    from models.reclog import RecommendationLog, Shown

log = logging.getLogger(__name__)

BundleSource = Path | str  # a bundle directory, or a registry URI such as models:/audiencefit@champion


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ServingModel:
    """A verified bundle that is compatible with the loaded feature set."""

    bundle: Bundle
    source: str
    loaded_at: str
    # How far the served creators lie from the ones the bundle was trained among (models.drift): computed here, once
    # per bundle and feature set, and read by every response.
    reliability: Reliability


class ReloadRefusedError(AudiencefitError):
    """A reload source the service may not load (a bundle path outside the reload roots): nothing was read."""


def reload_roots(settings: Settings, start_source: BundleSource | None) -> tuple[Path, ...]:
    """The directories ``POST /admin/reload`` may load a bundle path from, resolved.

    ``settings.reload_roots`` when set (``AUDIENCEFIT_RELOAD_ROOTS``; empty: no path at all); otherwise
    ``<data_dir>/bundles`` (where ``audiencefit train`` writes), ``<data_dir>/registry-cache`` and the directory
    holding the bundle the service was started with (so its sibling bundles can be loaded).
    """
    if settings.reload_roots is not None:
        roots = list(settings.reload_roots)
    else:
        from models.registry import CACHE_DIRNAME

        roots = [settings.data_dir / "bundles", settings.data_dir / CACHE_DIRNAME]
        if isinstance(start_source, Path):
            roots.append(start_source.absolute().parent)
    return tuple(dict.fromkeys(Path(os.path.abspath(r)).resolve() for r in roots))


def check_reload_path(path: Path, roots: tuple[Path, ...]) -> Path:
    """``path`` resolved, if it is absolute and lies (lexically and after resolving symlinks) under one of
    ``roots``; otherwise :class:`ReloadRefusedError`, whose message is the same whether the path exists or not."""
    refused = ReloadRefusedError(
        "bundle_path must be an absolute path of a directory under a reload root (setting AUDIENCEFIT_RELOAD_ROOTS)"
        + ("" if roots else "; none is configured, so bundles can only be reloaded from the registry")
    )
    text = str(path)
    if not path.is_absolute() or "\x00" in text:
        raise refused
    lexical = Path(os.path.normpath(text))
    if not any(lexical.is_relative_to(root) for root in roots):
        raise refused  # judged on the text alone: the file system is not consulted for paths outside the roots
    resolved = lexical.resolve()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise refused
    return resolved


def resolve_source(source: BundleSource, settings: Settings) -> Path:
    """The local bundle directory for a source: a path as is, a ``models:/`` URI through the registry (any other
    text is refused by the registry's URI parser, never taken as a path)."""
    if isinstance(source, Path):
        return source
    try:
        from models.registry import resolve_bundle
    except ImportError as exc:
        raise AudiencefitError(f"cannot resolve {source!r}: the model registry is not available ({exc})") from exc
    return Path(resolve_bundle(source, settings=settings))


def load_serving_model(source: BundleSource, fs: FeatureSet, settings: Settings) -> ServingModel:
    """Resolve, load (checksums verified) and check a bundle against the feature set; raises on any problem."""
    path = resolve_source(source, settings)
    bundle = load_bundle(path)
    bundle.check_compatible(fs)
    compile_trees(bundle, settings)
    # A registry URI is shown with the version it resolved to (the cached directory is named <model>-v<version>).
    shown = f"{source} ({path.name})" if isinstance(source, str) and source.startswith("models:/") else str(source)
    reliability = check_features(bundle.feature_summary, fs)
    log_reliability(reliability, bundle, fs)
    return ServingModel(bundle=bundle, source=shown, loaded_at=_now(), reliability=reliability)


def log_reliability(reliability: Reliability, bundle: Bundle, fs: FeatureSet) -> None:
    """One structured line on the forecasts' reliability over this feature set: a warning when it is low."""
    extra = {
        "forecast_reliability": reliability.level,
        "bundle_id": bundle.bundle_id,
        "feature_set_id": fs.feature_set_id,
        "shifted_inputs": [f"{i.feature} (PSI {i.psi:.2f})" for i in sorted(reliability.shifted, key=lambda i: -i.psi)],
        "creators_out_of_range": len(reliability.out_of_range_rows()),
        "reasons": list(reliability.reasons),
    }
    if reliability.level == "low":
        log.warning("forecasts are less reliable on these creators than on the model's training creators", extra=extra)
    elif reliability.level == "unknown":
        log.info("forecast reliability unknown: the bundle stores no training summary", extra=extra)
    else:
        log.info("forecast reliability checked: the served creators look like the training ones", extra=extra)


def compile_trees(bundle: Bundle, settings: Settings) -> bool:
    """Compile the bundle's tree models to native code (``models.forest``) when ``settings.compiled_trees`` asks
    for it; True when they are.

    Compiled trees are an optimisation that gives LightGBM's numbers bit for bit, so when compiling fails (a
    platform LLVM cannot target, an unwritable cache) the bundle keeps LightGBM's own predictor and says so in the
    log: slower, never different.
    """
    if not settings.compiled_trees:
        return False
    try:
        bundle.models.compile(settings.forest_cache_dir)
    except Exception as exc:
        for model in bundle.models.regressors().values():
            model.compiled_ = None
        log.warning(
            "compiled tree models unavailable; predicting with LightGBM (the same numbers, slower)",
            extra={"bundle_id": bundle.bundle_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        return False
    return True


class ModelHolder:
    """The serving bundle, swapped atomically by :meth:`reload`; failures leave the old bundle serving."""

    def __init__(
        self,
        loader: Callable[[BundleSource], ServingModel],
        default_source: BundleSource,
        roots: tuple[Path, ...] | None = None,
    ) -> None:
        self._loader = loader
        self.default_source = default_source
        self.roots = roots  # where a bundle path other than the default may come from (None: anywhere)
        self.current: ServingModel | None = None
        self.last_error: str | None = None
        self.last_reload_at: str | None = None
        self._lock = threading.Lock()

    def reload(self, source: BundleSource | None = None) -> tuple[ServingModel | None, ServingModel]:
        """Load ``source`` (default: the configured one) and swap it in: (previous, new). Raises on failure,
        recording the error for /readyz; the previous bundle keeps serving. A bundle path other than the
        configured one must lie under ``roots`` (:class:`ReloadRefusedError` otherwise, before anything is read): the
        route and the worker processes that follow a published reload check it alike."""
        with self._lock:
            previous = self.current
            chosen = source if source is not None else self.default_source
            if isinstance(chosen, Path) and chosen != self.default_source and self.roots is not None:
                try:
                    chosen = check_reload_path(chosen, self.roots)
                except ReloadRefusedError:  # a refused request, not a failed load: last_error stays as it was
                    log.warning(
                        "model reload refused: bundle path outside the reload roots", extra={"source": str(chosen)}
                    )
                    raise
            self.last_reload_at = _now()
            try:
                new = self._loader(chosen)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "model reload failed; the previous bundle keeps serving",
                    extra={
                        "source": str(source or self.default_source),
                        "error": self.last_error,
                        "serving": previous.bundle.bundle_id if previous else None,
                    },
                )
                raise
            self.current = new  # the swap: one reference assignment
            self.last_error = None
            log.info(
                "model bundle loaded",
                extra={
                    "bundle_id": new.bundle.bundle_id,
                    "source": new.source,
                    "previous": previous.bundle.bundle_id if previous else None,
                },
            )
            return previous, new


class RecommendationLogError(AudiencefitError):
    """The recommendation log cannot be opened (a bad URL, a database that cannot be reached or written): the
    service does not start (exit 2, like a bad setting)."""

    exit_code = 2


def open_recommendation_log(settings: Settings) -> RecommendationLog | None:
    """The recommendation log of this process (each worker opens its own writer), or None when disabled.

    The default SQLite file's directory (``data_dir``) is created; the URL is never shown with its password.
    """
    if not settings.recommendation_log_enabled:
        return None
    from models.reclog import RecommendationLog, display_url

    url = settings.recommendation_log_target
    try:
        if settings.recommendation_log_url is None:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        reclog = RecommendationLog(url, queue_size=settings.recommendation_log_queue)
    except Exception as exc:
        text = str(exc).splitlines()[0] if str(exc) else ""
        raise RecommendationLogError(
            f"the recommendation log cannot be opened at {display_url(url)} (setting AUDIENCEFIT_RECOMMENDATION_LOG_URL"
            f", or AUDIENCEFIT_RECOMMENDATION_LOG_ENABLED=false): {type(exc).__name__}: {text[:300]}"
        ) from None
    log.info(
        "recommendation log open",
        extra={"backend": reclog.backend, "queue": settings.recommendation_log_queue},
    )
    return reclog


@dataclass
class AppState:
    """Everything heavy, loaded once in the app's lifespan."""

    settings: Settings
    fs: FeatureSet
    search: AudienceSearch
    models: ModelHolder
    captions: CaptionStore | None
    reclog: RecommendationLog | None = None  # what the service showed (None: logging disabled)

    def log_shown(self, build: Callable[[], Shown]) -> None:
        """Build the record of an answer and hand it to the recommendation log: never blocks, never raises (a full
        queue drops it; a record that cannot be built is logged and counted as failed, the answer still goes)."""
        if self.reclog is None:
            return
        try:
            record = build()
        except Exception:
            self.reclog.count_failure()
            log.exception("could not build the recommendation log record; the answer is sent without it")
            return
        self.reclog.submit(record)
