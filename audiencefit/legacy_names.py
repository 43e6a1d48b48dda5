"""The module names of audiencefit before issue 21, for what was stored under them.

Until then the pipeline's packages were installed as top-level ``features``, ``models``, ``training`` and
``serving``; they are ``audiencefit.features`` ... now. The one stored thing that names them is the MLflow model
wrapper of versions logged before: MLflow keeps the wrapper's source (``models/mlflow_model.py``, logged "from code")
and runs it when ``mlflow.pyfunc.load_model`` loads the version, and that source imports ``models.bundle`` and
``models.pair_features``. audiencefit itself never runs it (the service, ``score`` and ``plan`` read the bundle's files
through ``audiencefit.models.registry``, old versions included); a caller who loads such a version as a pyfunc does::

    with legacy_module_names():
        model = mlflow.pyfunc.load_model("models:/audiencefit/3")

Within the block the old names are the new modules themselves (not copies: ``models.bundle.Bundle`` is
``audiencefit.models.bundle.Bundle``); on leaving, the old names are gone again and whatever held them before (another
project's ``models``) is back.
"""

# ns-rewrite: skip (this module names the old module names on purpose)
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType

LEGACY_PACKAGES = ("features", "models", "training", "serving")


def _legacy(name: str) -> bool:
    return name.partition(".")[0] in LEGACY_PACKAGES


class _Alias(importlib.abc.Loader):
    """Loads ``name`` as the module ``audiencefit.<name>`` (imported if need be), which keeps its own spec."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set the alias's spec on it; the module keeps its own


class _LegacyFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not _legacy(fullname):
            return None
        target_name = f"audiencefit.{fullname}"
        if importlib.util.find_spec(target_name) is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(target_name))


@contextmanager
def legacy_module_names() -> Iterator[None]:
    """Within the block, ``import models.bundle`` (and the other old names) imports ``audiencefit.models.bundle``."""
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if _legacy(name)}
    finder = _LegacyFinder()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [name for name in sys.modules if _legacy(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
