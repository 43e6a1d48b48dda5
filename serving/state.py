"""What the service holds in memory and how it is replaced while requests are served.

An :class:`AppState` is one consistent view: a feature set with its indexes, query embedder and captions
(:class:`ServedFeatures`), and the model bundle checked against that feature set. :class:`ServingHolder` keeps the
one serving and replaces it on ``POST /admin/reload``: it loads and verifies the new feature set and/or bundle
beside the old ones, checks them against each other, and then replaces one reference (an atomic assignment in
CPython). A request reads the reference once and uses that view to the end, so a reload in the middle of a request
never mixes two feature sets, or a feature set and a model that were not checked together. Reloads are serialised
by a lock; readers never take it.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from audiencefit.features.errors import AudiencefitError
from audiencefit.features.featureset import FeatureSet
from audiencefit.models.bundle import Bundle, load_bundle
from audiencefit.models.drift import Reliability, check_features
from audiencefit.models.retrieval import AudienceSearch
from audiencefit.serving.captions import CaptionStore
from audiencefit.settings import Settings

if TYPE_CHECKING:
    from audiencefit.models.reclog import RecommendationLog, Shown

log = logging.getLogger(__name__)

BundleSource = Path | str  # a bundle directory, or a registry URI such as models:/audiencefit@champion


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ServingModel:
    """A verified bundle that is compatible with the loaded feature set."""

    bundle: Bundle
    source: str
    loaded_at: str
    # How far the served creators lie from the ones the bundle was trained among (audiencefit.models.drift): computed
    # here, once per bundle and feature set, and read by every response.
    reliability: Reliability


class ReloadRefusedError(AudiencefitError):
    """A reload source the service may not load (a bundle or feature set path outside the reload roots): nothing
    was read."""


POINTER_FILE = "CURRENT"
REFREEZE_TIMEOUT_S = 120.0  # the longest a request may still hold an old feature set before it is frozen anyway
MAX_POINTER_BYTES = 1_024


def reload_roots(settings: Settings, start_source: BundleSource | None) -> tuple[Path, ...]:
    """The directories ``POST /admin/reload`` may load a bundle path from, resolved.

    ``settings.reload_roots`` when set (``AUDIENCEFIT_RELOAD_ROOTS``; empty: no path at all); otherwise
    ``<data_dir>/bundles`` (where ``audiencefit train`` writes), ``<data_dir>/registry-cache`` and the directory
    holding the bundle the service was started with (so its sibling bundles can be loaded).
    """
    if settings.reload_roots is not None:
        roots = list(settings.reload_roots)
    else:
        from audiencefit.models.registry import CACHE_DIRNAME

        roots = [settings.data_dir / "bundles", settings.data_dir / CACHE_DIRNAME]
        if isinstance(start_source, Path):
            roots.append(start_source.absolute().parent)
    return tuple(dict.fromkeys(Path(os.path.abspath(r)).resolve() for r in roots))


def feature_reload_roots(settings: Settings, start_features: Path) -> tuple[Path, ...]:
    """The directories ``POST /admin/reload`` may load a feature set (or a ``CURRENT`` pointer) from, resolved.

    ``settings.feature_reload_roots`` when set (``AUDIENCEFIT_FEATURE_RELOAD_ROOTS``; empty: only the configured
    feature set); otherwise ``<data_dir>/features`` and the directory holding the feature set the service was
    started with, so that a new feature set published beside it (``/srv/features/2026-12-04`` next to
    ``/srv/features/2026-12-03``) can be loaded.
    """
    if settings.feature_reload_roots is not None:
        roots = list(settings.feature_reload_roots)
    else:
        roots = [settings.data_dir / "features", start_features.absolute().parent]
    return tuple(dict.fromkeys(Path(os.path.abspath(r)).resolve() for r in roots))


def check_reload_path(path: Path, roots: tuple[Path, ...], what: str = "bundle_path") -> Path:
    """``path`` resolved, if it is absolute and lies (lexically and after resolving symlinks) under one of
    ``roots``; otherwise :class:`ReloadRefusedError`, whose message is the same whether the path exists or not."""
    bundles = what == "bundle_path"
    setting = "AUDIENCEFIT_RELOAD_ROOTS" if bundles else "AUDIENCEFIT_FEATURE_RELOAD_ROOTS"
    fallback = "bundles can only be reloaded from the registry" if bundles else "only the configured one can be loaded"
    refused = ReloadRefusedError(
        f"{what} must be an absolute path of a directory under a reload root (setting {setting})"
        + ("" if roots else f"; none is configured, so {fallback}")
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


def resolve_pointer(path: Path) -> Path:
    """The feature set directory ``path`` stands for: ``path`` itself, or, when it holds a ``CURRENT`` file (a
    pointer), the directory that file names.

    The pointer holds one name, a directory directly inside ``path`` (``2026-12-04``, not a path elsewhere), and is
    written by whoever publishes a feature set: the new set first, then the pointer replaced atomically (write a
    temporary file beside it, then rename). A pointer that is empty, too long, names a path or a directory that
    is not there is refused with the pointer's path in the message."""
    pointer = path / POINTER_FILE
    if not pointer.is_file():
        return path
    try:
        with pointer.open("rb") as fh:
            raw = fh.read(MAX_POINTER_BYTES + 1)
        name = raw.decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise AudiencefitError(f"{pointer}: unreadable feature set pointer ({type(exc).__name__})") from None
    if len(raw) > MAX_POINTER_BYTES or not name or "\n" in name:
        raise AudiencefitError(f"{pointer}: a feature set pointer holds one directory name on one line")
    if name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise AudiencefitError(f"{pointer}: names {name[:80]!r}; it must name a directory inside {path}")
    target = (path / name).resolve()
    if not target.is_relative_to(path.resolve()) or not target.is_dir():
        raise AudiencefitError(f"{pointer}: names {name[:80]!r}, which is not a directory inside {path}")
    return target


def resolve_source(source: BundleSource, settings: Settings) -> Path:
    """The local bundle directory for a source: a path as is, a ``models:/`` URI through the registry (any other
    text is refused by the registry's URI parser, never taken as a path)."""
    if isinstance(source, Path):
        return source
    try:
        from audiencefit.models.registry import resolve_bundle
    except ImportError as exc:
        raise AudiencefitError(f"cannot resolve {source!r}: the model registry is not available ({exc})") from exc
    return Path(resolve_bundle(source, settings=settings))


def load_serving_model(source: BundleSource, fs: FeatureSet, settings: Settings) -> ServingModel:
    """Resolve, load (checksums verified) and check a bundle against the feature set; raises on any problem."""
    path = resolve_source(source, settings)
    bundle = load_bundle(path)
    bundle.check_compatible(fs)
    warn_on_another_query_model(bundle, fs)
    compile_trees(bundle, settings)
    # A registry URI is shown with the version it resolved to (the cached directory is named <model>-v<version>).
    shown = f"{source} ({path.name})" if isinstance(source, str) and source.startswith("models:/") else str(source)
    reliability = check_features(bundle.feature_summary, fs)
    log_reliability(reliability, bundle, fs)
    return ServingModel(bundle=bundle, source=shown, loaded_at=utc_now(), reliability=reliability)


def warn_on_another_query_model(bundle: Bundle, fs: FeatureSet) -> None:
    """A warning when the bundle's brand descriptions were embedded by another query transformer than the one
    that will embed them now (the ``query_model`` setting differs from training's): forecasts still work, but the
    brand-description features move a little (mean cosine 0.992 between int8 and fp32)."""
    from audiencefit.features.embed import for_queries
    from audiencefit.models.query import query_embedder

    trained = bundle.meta.get("training", {}).get("query_embedder_id")
    if not trained:
        return  # a bundle from before the query model was recorded
    served = for_queries(query_embedder(fs)).id
    if served != trained:
        log.warning(
            "the model was trained with another query model than the one serving: set query_model as in training",
            extra={"bundle": bundle.bundle_id, "trained_query_embedder": trained, "serving_query_embedder": served},
        )


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
    """Compile the bundle's tree models to native code (``audiencefit.models.forest``) when ``settings.compiled_trees``
    asks for it; True when they are.

    Compiled trees are an optimisation that gives LightGBM's numbers bit for bit, so when compiling fails (a
    platform LLVM cannot target, an unwritable cache) or lleaves/llvmlite are not installed or do not import (the
    ``compiled-trees`` extra left out where its llvmlite pin conflicts, e.g. with numba: docs/scaling.md), the
    bundle keeps LightGBM's own predictor and says so in the log: slower, never different.
    """
    if not settings.compiled_trees:
        return False
    try:
        bundle.models.compile(settings.forest_cache_dir)
    except Exception as exc:
        for model in bundle.models.regressors().values():
            model.compiled_ = None
        missing = isinstance(exc, ImportError)  # PackageNotFoundError included
        log.warning(
            "compiled tree models unavailable; predicting with LightGBM (the same numbers, slower)"
            + (
                ": lleaves/llvmlite not importable (install audiencefit[compiled-trees], or set "
                "AUDIENCEFIT_COMPILED_TREES=false to stop trying)"
                if missing
                else ""
            ),
            extra={"bundle_id": bundle.bundle_id, "error": f"{type(exc).__name__}: {exc}"},
        )
        return False
    return True


@dataclass(frozen=True)
class ServedFeatures:
    """One feature set with what is loaded from it: its indexes (in ``search``), the query embedder and the
    captions quoted from. Replaced whole on a feature-set reload, never changed in place."""

    fs: FeatureSet
    search: AudienceSearch
    captions: CaptionStore | None
    path: Path  # the feature set directory it was loaded from (a pointer resolved)
    loaded_at: str


@dataclass(frozen=True)
class AppState:
    """One consistent view of what serves: a feature set, its indexes and captions, and the model checked against
    it. A request takes one (``audiencefit.serving.deps.get_state``) at its start and uses only that one; a reload
    builds a new view beside it and swaps the reference, so no request ever sees a feature set with another set's index
    or a model that was not checked against it."""

    settings: Settings
    features: ServedFeatures
    model: ServingModel | None
    reclog: RecommendationLog | None = None  # what the service showed (None: logging disabled)
    bundle_source: BundleSource | None = None  # where ``model`` was loaded from (a path checked, or a URI)

    @property
    def fs(self) -> FeatureSet:
        return self.features.fs

    @property
    def search(self) -> AudienceSearch:
        return self.features.search

    @property
    def captions(self) -> CaptionStore | None:
        return self.features.captions

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


FeaturesLoader = Callable[[Path, ServedFeatures | None], ServedFeatures]
ModelLoader = Callable[[BundleSource, FeatureSet], ServingModel]


class ServingHolder:
    """The serving :class:`AppState`, replaced whole by :meth:`reload`; a failure leaves the old one serving.

    A reload loads and verifies what it was asked for beside what serves (two feature sets are resident for the
    time of a feature-set reload), checks the model against the feature set it will serve with, and then assigns
    one reference. Reloads are serialised by a lock; readers never take it.
    """

    def __init__(
        self,
        settings: Settings,
        load_features: FeaturesLoader,
        load_model: ModelLoader,
        default_source: BundleSource,
        default_features: Path,
        roots: tuple[Path, ...] | None = None,
        feature_roots: tuple[Path, ...] | None = None,
        reclog: RecommendationLog | None = None,
        warm: Callable[[AppState], None] | None = None,
    ) -> None:
        self.settings = settings
        self._warm = warm  # answers one brief on a new state before it serves (never raises)
        self._load_features = load_features
        self._load_model = load_model
        self.default_source = default_source
        self.default_features = default_features
        self.roots = roots  # where a bundle path other than the default may come from (None: anywhere)
        self.feature_roots = feature_roots  # where a feature set other than the default may come from
        self.reclog = reclog
        self.state: AppState | None = None
        self.last_error: str | None = None
        self.last_reload_at: str | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> ServingModel | None:
        """The model serving right now (None before one loaded)."""
        state = self.state
        return state.model if state is not None else None

    def start(self) -> AppState:
        """Load the configured feature set (which must load: raises otherwise) and then the configured bundle (a
        failure is recorded for /readyz and leaves the service up without a model, so that a reload can fix it)."""
        features = self._load_features(resolve_pointer(self.default_features), None)
        self.state = AppState(self.settings, features, None, self.reclog)
        with contextlib.suppress(Exception):  # recorded in last_error and logged; /readyz reports it
            self.reload()
        return self.state

    def reload(
        self, source: BundleSource | None = None, features: Path | None = None, *, keep_bundle: bool = False
    ) -> Reloaded:
        """Load what is asked (a bundle ``source``, default the configured one, or with ``keep_bundle`` the serving
        bundle; a feature set directory or pointer ``features``, default the serving set) and swap it in. Raises on
        failure, recording the error for /readyz; the previous state keeps serving.

        A bundle path other than the configured one must lie under ``roots`` and a feature set other than the
        configured one under ``feature_roots`` (:class:`ReloadRefusedError` otherwise, before anything is read):
        the route and the worker processes that follow a published reload check them alike."""
        with self._lock:
            previous = self.state
            chosen = source if source is not None else self.default_source
            try:
                custom = not keep_bundle and isinstance(chosen, Path) and chosen != self.default_source
                if custom and isinstance(chosen, Path) and self.roots is not None:
                    chosen = check_reload_path(chosen, self.roots)
                if features is not None and not self._configured(features) and self.feature_roots is not None:
                    features = check_reload_path(features, self.feature_roots, what="feature_set_path")
            except ReloadRefusedError:  # a refused request, not a failed load: last_error stays as it was
                log.warning(
                    "reload refused: path outside the reload roots",
                    extra={"source": str(chosen), "features": str(features) if features else None},
                )
                raise
            self.last_reload_at = utc_now()
            try:
                new = self._build(previous, chosen, features, keep_bundle)
            except Exception as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error(
                    "reload failed; the previous state keeps serving",
                    extra={
                        "source": None if keep_bundle else str(chosen),
                        "features": str(features) if features else None,
                        "error": self.last_error,
                        "serving": _ids(previous),
                    },
                )
                raise
            if self._warm is not None and new.model is not None:
                # What the first request on a new state would build (per-view arrays, the default filters' mask),
                # built before it serves: no request pays for it after a swap.
                self._warm(new)
            self.state = new  # the swap: one reference assignment
            self.last_error = None
            before = _ids(previous)
            log.info("serving state loaded", extra={"serving": _ids(new), "previous": before})
            if previous is not None and previous.features is not new.features:
                _refreeze_when_gone(weakref.ref(previous.features))
            return Reloaded(before["bundle_id"], before["feature_set_id"], new)

    def _configured(self, features: Path) -> bool:
        """The configured feature set, or, when it is a ``CURRENT`` pointer directory, a set directly inside it
        (what another worker published after resolving the pointer): loaded without a roots check."""
        if features == self.default_features:
            return True
        pointer_dir = self.default_features
        return (pointer_dir / POINTER_FILE).is_file() and features.parent == pointer_dir.resolve()

    def _build(
        self, previous: AppState | None, source: BundleSource, features: Path | None, keep_bundle: bool
    ) -> AppState:
        if previous is None:
            raise AudiencefitError("the service has no feature set loaded")
        served = previous.features
        if features is not None:
            served = self._load_features(resolve_pointer(features), previous.features)
        if not keep_bundle:
            return AppState(self.settings, served, self._load_model(source, served.fs), self.reclog, source)
        model = previous.model
        if model is not None and served is not previous.features:
            # The serving bundle with the new feature set: the start-up checks again, and its forecasts'
            # reliability (which depends on the served creators) computed anew.
            model.bundle.check_compatible(served.fs)
            reliability = check_features(model.bundle.feature_summary, served.fs)
            log_reliability(reliability, model.bundle, served.fs)
            model = replace(model, reliability=reliability)
        return AppState(self.settings, served, model, self.reclog, previous.bundle_source)


@dataclass(frozen=True)
class Reloaded:
    """The outcome of a reload: the ids that served before it and the state serving now."""

    previous_bundle_id: str | None
    previous_feature_set_id: str | None
    state: AppState


def _refreeze_when_gone(old: weakref.ref[ServedFeatures], timeout_s: float = REFREEZE_TIMEOUT_S) -> None:
    """After a feature set swap, when start-up froze its objects for the garbage collector
    (``audiencefit.serving.app.freeze_loaded_objects``): once nothing refers to the old feature set any more (the
    requests that started on it have ended), unfreeze, collect and freeze again, in a background thread. The old set's
    reference cycles (caches bound to its objects) are then collected instead of staying frozen for ever, and the new
    set's objects are frozen so that later full collections do not walk them. Freezing while a request still held the
    old set would keep it frozen, and resident, for the life of the process."""
    if not gc.get_freeze_count():
        return

    def settle() -> None:
        deadline = time.monotonic() + timeout_s
        while old() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        _release_free_memory()
        log.info(
            "objects frozen again for the garbage collector after a feature set swap",
            extra={
                "objects": gc.get_freeze_count(),
                "seconds": round(time.perf_counter() - started, 3),
                "old_set_still_referenced": old() is not None,
            },
        )

    threading.Thread(target=settle, name="refreeze-after-swap", daemon=True).start()


def _release_free_memory() -> None:
    """Hand the heap pages freed with the old feature set back to the system (glibc's ``malloc_trim``): without it
    the process keeps them, and its resident size grows with every swap though nothing is leaked. Elsewhere (or
    without glibc) nothing happens."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        return


def _ids(state: AppState | None) -> dict[str, str | None]:
    """The ids of what a state serves, for logs."""
    if state is None:
        return {"feature_set_id": None, "bundle_id": None}
    return {
        "feature_set_id": state.fs.feature_set_id,
        "bundle_id": state.model.bundle.bundle_id if state.model is not None else None,
    }


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
    from audiencefit.models.reclog import RecommendationLog, display_url

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
