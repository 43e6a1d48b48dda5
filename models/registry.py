"""Which model serves: MLflow registry aliases resolved to a verified bundle directory on local disk.

Serving calls :func:`resolve_bundle` with ``models:/audiencefit@champion``; the bundle of the model version the
alias points to is downloaded once into ``<data_dir>/registry-cache/<name>-v<version>`` (temporary directory, then
rename, so a half-finished download is never used) and read from there afterwards. MLflow stays the source of
truth: moving the alias changes what the next resolve returns. This module must not import ``training``.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audiencefit.settings import Settings
from features.errors import InputError
from features.io import staging_dir

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

MODEL_NAME = "audiencefit"
CHAMPION = "champion"
CHALLENGER = "challenger"
CACHE_DIRNAME = "registry-cache"
BUNDLE_ARTIFACT = "bundle"  # key of the bundle in the pyfunc model's artifacts

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[\w-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A registered model version: name, version, the run that logged it and its aliases."""

    name: str
    version: str
    run_id: str | None
    aliases: tuple[str, ...]
    tags: dict[str, str]


def client(settings: Settings) -> MlflowClient:
    """An MLflow client on the configured tracking store (which is also the registry)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


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


def _known(c: MlflowClient, name: str) -> dict[str, str]:
    """Alias → version of a registered model; ``InputError`` naming the registered models if it does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        model = c.get_registered_model(name)
    except MlflowException as exc:
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
    aliases = _known(c, name)
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
        raise InputError(f"model {name!r} has no version {version}") from exc


def current_version(alias: str = CHAMPION, *, settings: Settings, name: str = MODEL_NAME) -> str | None:
    """The version an alias points to, or None when the alias (or the model) does not exist yet."""
    from mlflow.exceptions import MlflowException

    c = client(settings)
    try:
        model = c.get_registered_model(name)
    except MlflowException:
        return None
    version = (model.aliases or {}).get(alias)
    return str(version) if version is not None else None


def cache_dir(settings: Settings) -> Path:
    return settings.data_dir / CACHE_DIRNAME


def _bundle_path_in_model(model_dir: Path) -> Path:
    """Where the pyfunc model keeps its bundle artifact (read from its MLmodel file)."""
    from mlflow.models import Model

    flavor = Model.load(str(model_dir)).flavors.get("python_function", {})
    rel = flavor.get("artifacts", {}).get(BUNDLE_ARTIFACT, {}).get("path")
    if not rel:
        raise InputError(f"{model_dir}: logged model has no {BUNDLE_ARTIFACT!r} artifact")
    return model_dir / str(rel)


def resolve_bundle(model_uri: str = f"models:/{MODEL_NAME}@{CHAMPION}", *, settings: Settings) -> Path:
    """Local directory of the bundle of the model version ``model_uri`` names (downloaded once, then cached).

    The directory is not verified here; ``models.bundle.load_bundle`` checks every checksum when it loads.
    """
    import mlflow.artifacts

    ref = get_version(model_uri, settings=settings)
    target = cache_dir(settings) / f"{ref.name}-v{ref.version}"
    if (target / "bundle.json").is_file():
        return target
    tmp = staging_dir(target)  # also removes what killed downloads left here
    try:
        # The version's storage location, not a models:/ URI: those resolve through MLflow's global registry URI.
        location = client(settings).get_model_version_download_uri(ref.name, ref.version)
        local = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=location, dst_path=str(tmp / "model"), tracking_uri=settings.tracking_uri
            )
        )
        bundle = _bundle_path_in_model(local)
        os.replace(bundle, tmp / "bundle")
        try:
            os.replace(tmp / "bundle", target)
        except OSError:
            # Another process finished the same download first; its copy is as good as ours.
            if not (target / "bundle.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("model bundle downloaded", extra={"model": ref.name, "version": ref.version, "path": str(target)})
    return target
