"""Which model serves: MLflow registry aliases resolved to a verified bundle directory on local disk.

Serving calls :func:`resolve_bundle` with ``models:/audiencefit@champion``; the bundle of the model version the
alias points to is downloaded once, and its verified files are copied into
``<data_dir>/registry-cache/<name>-v<version>`` (a temporary directory inside the cache, then a rename, so a
half-finished copy is never used) and read from there afterwards. MLflow stays the source of truth: moving the
alias changes what the next resolve returns. This module must not import ``training``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from audiencefit.features.errors import InputError
from audiencefit.features.io import staging_dir
from audiencefit.features.stored_paths import contained_path
from audiencefit.logs import redact_url
from audiencefit.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

log = logging.getLogger(__name__)

MODEL_NAME = "audiencefit"
CHAMPION = "champion"
CHALLENGER = "challenger"
CACHE_DIRNAME = "registry-cache"
ARTIFACTS_DIRNAME = "mlartifacts"  # where a local store keeps artifacts (audiencefit.training.tracking.artifact_root)
BUNDLE_ARTIFACT = "bundle"  # key of the bundle in the pyfunc model's artifacts

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")
CONNECT_SECONDS = 10.0  # how long the first connection to a tracking server may take before it counts as down
_NOT_FOUND = "RESOURCE_DOES_NOT_EXIST"  # the MLflow error code of a missing model, version or alias
_CREDENTIALS = (
    "set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (basic auth) or MLFLOW_TRACKING_TOKEN (bearer) "
    "for the server"
)


@dataclass(frozen=True)
class ModelRef:
    """A registered model version: name, version, the run that logged it and its aliases."""

    name: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]


def client(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking store (which is also the registry); a tracking server is
    checked to accept connections first (:func:`check_reachable`)."""
    from mlflow import MlflowClient

    check_reachable(settings.tracking_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


@functools.cache
def check_reachable(tracking_uri: str) -> None:
    """``InputError`` when the tracking URI is an ``http(s)://`` server that refuses or never answers a connection
    (once per URI and process; other stores are not network services of their own).

    MLflow's own client retries a refused connection with backoff for minutes before it gives up, and then the
    failure reads like a missing model; this says at once which server is down.
    """
    parsed = urlparse(tracking_uri)
    if parsed.scheme not in ("http", "https"):
        return
    shown = redact_url(tracking_uri)
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        raise InputError(f"MLflow tracking URI {shown}: not a valid port") from None
    if not parsed.hostname:
        raise InputError(f"MLflow tracking URI {shown}: no host")
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise InputError(
            f"the MLflow tracking server {shown} is not reachable ({reason}); check MLFLOW_TRACKING_URI "
            "(or AUDIENCEFIT_MLFLOW_TRACKING_URI) and that the server runs"
        ) from None


def registry_error(exc: MlflowException, settings: Settings, what: str) -> InputError:
    """An MLflow failure other than "does not exist" as an ``InputError`` naming the store and what was asked (a
    refused login says which variables carry credentials)."""
    code = str(getattr(exc, "error_code", "") or "")
    status = getattr(exc, "get_http_status_code", lambda: None)()
    message = str(getattr(exc, "message", exc)).splitlines()[0][:300] if str(exc) else type(exc).__name__
    hint = ""
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED") or status in (401, 403):
        hint = f"; {_CREDENTIALS}"
    return InputError(f"MLflow at {redact_url(settings.tracking_uri)}: {what} failed: {redact_url(message)}{hint}")


def _missing(exc: MlflowException) -> bool:
    return str(getattr(exc, "error_code", "")) == _NOT_FOUND


def parse_model_uri(model_uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` or ``models:/name/3`` → (name, alias, version)."""
    match = _URI.match(model_uri.strip())
    if not match:
        raise InputError(f"model URI {model_uri!r}: expected 'models:/<name>@<alias>' or 'models:/<name>/<version>'")
    return match["name"], match["alias"], match["version"]


def _ref(mv: Any) -> ModelRef:
    return ModelRef(
        name=str(mv.name),
        version=str(mv.version),
        run_id=mv.run_id,
        aliases=tuple(getattr(mv, "aliases", ()) or ()),
        tags=dict(getattr(mv, "tags", {}) or {}),
    )


def _known(c: MlflowClient, name: str, settings: Settings) -> dict[str, str]:
    """Alias → version of a registered model; ``InputError`` naming the registered models if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = c.get_registered_model(name)
    except MlflowException as exc:
        if not _missing(exc):
            raise registry_error(exc, settings, f"reading registered model {name!r}") from None
        names = sorted(m.name for m in c.search_registered_models())
        raise InputError(
            f"no registered model {name!r} in the MLflow registry; registered: {names or 'none'} "
            "(run 'audiencefit train' to register one)"
        ) from exc
    return {str(k): str(v) for k, v in (model.aliases or {}).items()}


def get_version(model_uri: str, *, settings: Settings) -> ModelRef:
    """The registered model version a ``models:/`` URI names; ``InputError`` for an unknown model/alias/version."""
    from mlflow.exceptions import MlflowException

    name, alias, version = parse_model_uri(model_uri)
    c = client(settings)
    aliases = _known(c, name, settings)
    if alias is not None:
        if alias not in aliases:
            raise InputError(
                f"model {name!r} has no alias {alias!r}; aliases: "
                + (", ".join(f"{a}→v{v}" for a, v in sorted(aliases.items())) or "none")
            )
        version = aliases[alias]
    try:
        return _ref(c.get_model_version(name, str(version)))
    except MlflowException as exc:
        if not _missing(exc):
            raise registry_error(exc, settings, f"reading {name!r} v{version}") from None
        raise InputError(f"model {name!r} has no version {version}") from exc


def current_version(alias: str = CHAMPION, *, settings: Settings, name: str = MODEL_NAME) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist yet."""
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        model = c.get_registered_model(name)
    except MlflowException as exc:
        if _missing(exc):
            return None
        raise registry_error(exc, settings, f"reading registered model {name!r}") from None
    version = (model.aliases or {}).get(alias)
    return str(version) if version is not None else None


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir / CACHE_DIRNAME


def _bundle_path_in_model(model_dir: Path) -> Path:
    """Where the pyfunc model keeps its bundle artifact (read from its MLmodel file, which the registry's content
    decides: the path must stay inside the downloaded model's directory, symlinks resolved)."""
    from mlflow.models import Model

    try:
        flavors = Model.load(str(model_dir)).flavors
    except Exception as exc:  # a missing or malformed MLmodel: MLflow raises several kinds
        raise InputError(f"{model_dir}: the logged model has no readable MLmodel ({type(exc).__name__})") from None
    flavor = flavors.get("python_function", {}) if isinstance(flavors, dict) else {}
    artifacts = flavor.get("artifacts", {}) if isinstance(flavor, dict) else {}
    entry = artifacts.get(BUNDLE_ARTIFACT, {}) if isinstance(artifacts, dict) else {}
    rel = entry.get("path") if isinstance(entry, dict) else None
    where = f"{model_dir / 'MLmodel'}, field 'flavors.python_function.artifacts.{BUNDLE_ARTIFACT}.path'"
    if not rel:
        raise InputError(f"{where}: missing (the logged model has no {BUNDLE_ARTIFACT!r} artifact)")
    return contained_path(model_dir, rel, where=where)


def _local_source(location: str, settings: Settings) -> None:
    """Refuse a version whose storage location (stored in the registry) is a local path outside the local store's
    artifact directory, ``<data_dir>/mlartifacts`` (where ``audiencefit train`` logs): the registry must not be
    able to make the service copy an arbitrary directory of this machine. Remote locations (an MLflow server's
    ``mlflow-artifacts:``, cloud storage) are the server's to control."""
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return
    raw = url2pathname(parsed.path) if parsed.scheme == "file" else location
    root = (settings.data_dir / ARTIFACTS_DIRNAME).resolve()
    if "\x00" in raw or not Path(os.path.abspath(raw)).resolve().is_relative_to(root):
        raise InputError(
            f"the registered version's storage location is not under the local artifact store {root}; refused"
        )


def _cache_target(settings: Settings, ref: ModelRef) -> Path:
    """``<cache>/<name>-v<version>-<run id>``; names, versions and run ids that could not be one plain directory
    name are refused (they come from the registry).

    The run id is part of the name because version numbers restart in every tracking store: a data directory used
    with two stores (a simulation's, a fresh ``mlflow.db``, a server) must not serve one store's v1 for another's.
    """
    if not _SAFE_NAME.match(ref.name) or not ref.version.isdigit() or ref.name in (".", ".."):
        raise InputError(f"registered model {ref.name[:80]!r} v{ref.version[:20]!r}: not a name the cache can hold")
    run = ref.run_id or "norun"
    if not _RUN_ID.match(run):
        raise InputError(f"registered model {ref.name[:80]!r} v{ref.version}: run id {run[:40]!r} is not a plain id")
    root = cache_dir(settings)
    target = root / f"{ref.name}-v{ref.version}-{run}"
    if target.is_symlink():
        raise InputError(f"{target}: the registry cache holds a symlink here, not a directory; remove it")
    return target


def resolve_bundle(model_uri: str = f"models:/{MODEL_NAME}@{CHAMPION}", *, settings: Settings) -> Path:
    """Local directory of the bundle of the model version ``model_uri`` names (downloaded once, then cached).

    The downloaded artifact is never moved: the bundle's ``bundle.json`` and the files it lists are copied into the
    cache after each is checked to lie inside the download and to match its sha256
    (``audiencefit.models.bundle.copy_bundle``), so stored content cannot make this move, read or delete anything
    outside the download and the cache. ``audiencefit.models.bundle.load_bundle`` verifies the cached copy again when it
    loads.
    """
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from audiencefit.models.bundle import copy_bundle

    ref = get_version(model_uri, settings=settings)
    target = _cache_target(settings, ref)
    if (target / "bundle.json").is_file():
        return target
    tmp = staging_dir(target)  # also removes what killed downloads left here
    try:
        # The version's storage location, not a models:/ URI: those resolve through MLflow's global registry URI.
        location = client(settings).get_model_version_download_uri(ref.name, ref.version)
        _local_source(str(location), settings)
        try:
            local = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=location, dst_path=str(tmp / "model"), tracking_uri=settings.tracking_uri
                )
            )
        except MlflowException as exc:
            raise registry_error(exc, settings, f"downloading {ref.name!r} v{ref.version}") from None
        copy_bundle(_bundle_path_in_model(local), tmp / "bundle")
        try:
            os.replace(tmp / "bundle", target)  # both inside the cache: our own copy into its final name
        except OSError:
            # Another process finished the same download first; its copy is as good as ours.
            if not (target / "bundle.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("model bundle downloaded", extra={"model": ref.name, "version": ref.version, "path": str(target)})
    return target
