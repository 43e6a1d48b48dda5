"""The pipeline's packages are imported as ``audiencefit.<name>`` only (issue 21).

features/, models/, training/ and serving/ stay at the repository root and are linked into the package
(``audiencefit/features -> ../features``); installed, they exist only under ``audiencefit``. A bare ``import models``
would work in the checkout and fail (or import another project's ``models``) on an install, and a module imported
under two names is two modules (two registries, two settings caches). So no Python file of the repository imports
them bare, and no string names one of their modules bare (a logger, ``monkeypatch.setattr("models.x.y", ...)``, a
``python -m training.x`` command).
"""

# ns-rewrite: skip (the examples below name the packages bare on purpose)
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINKED = ("features", "models", "training", "serving")
SKIPPED_DIRS = {".git", ".venv", "build", "dist", "audiencefit-data", "__pycache__", ".mypy_cache", ".ruff_cache"}
# A string that is a dotted module path (optionally ``module:attribute``, as uvicorn and entry points write them).
MODULE_PATH = re.compile(rf"({'|'.join(LINKED)})\.([A-Za-z_]\w*)(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*)?")


def python_files(root: Path) -> list[Path]:
    """The repository's Python files, each once: the links audiencefit/<name> are not followed."""
    out = []
    for here, dirs, files in os.walk(root):  # followlinks=False: audiencefit/features is the same as features/
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not d.endswith(".egg-info"))
        out += [Path(here) / f for f in sorted(files) if f.endswith(".py")]
    return out


def _is_module(root: Path, package: str, name: str) -> bool:
    return (root / package / f"{name}.py").is_file() or (root / package / name / "__init__.py").is_file()


def bare_names(source: str, root: Path = ROOT) -> list[str]:
    """``line: what`` for each import of a linked package under its bare name, and each string constant that is a
    module path of one (``"serving.state"``, ``"serving.app:app"``)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"{node.lineno}: import {a.name}" for a in node.names if a.name.split(".")[0] in LINKED]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] in LINKED:
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            m = MODULE_PATH.fullmatch(node.value.strip())
            if m and _is_module(root, m.group(1), m.group(2)):
                found.append(f"{node.lineno}: string {node.value.strip()!r}")
    return sorted(found, key=lambda hit: int(hit.split(":")[0]))


def test_no_python_file_names_a_linked_package_bare() -> None:
    files = python_files(ROOT)
    assert len(files) > 200  # the walk found the repository (tests, benchmarks, notebooks and the packages)
    assert ROOT / "features" / "build.py" in files and ROOT / "tests" / "conftest.py" in files
    assert not [f for f in files if f.relative_to(ROOT).parts[:2] in {("audiencefit", p) for p in LINKED}]
    bad = [f"{f.relative_to(ROOT)}:{hit}" for f in files for hit in bare_names(f.read_text(encoding="utf-8"))]
    assert bad == [], "import these as audiencefit.<name> (see docs/scaling.md, 'Import names'):\n" + "\n".join(bad)


def test_the_check_finds_every_spelling() -> None:
    source = """
import features.text
import numpy, models.bundle as mb
from serving import app
from training.train import train_models
def f():
    from models.registry import resolve_bundle
    monkeypatch.setattr("models.index.EXACT_SUBSET_MAX", 1)
    logging.getLogger("serving.state")
    run(["python", "-m", "training.plan_eval"])
    uvicorn.run("serving.app:app")
"""
    assert [hit.split(":", 1)[1].strip() for hit in bare_names(source)] == [
        "import features.text",
        "import models.bundle",
        "from serving import",
        "from training.train import",
        "from models.registry import",
        "string 'models.index.EXACT_SUBSET_MAX'",
        "string 'serving.state'",
        "string 'training.plan_eval'",
        "string 'serving.app:app'",
    ]


def test_what_is_not_a_module_path_passes() -> None:
    source = """
import audiencefit.features.text
from audiencefit.models.bundle import load_bundle
from benchmarks import features
files["models.json"] = meta["training"]
uri = "models:/audiencefit@champion"
where = data_dir / "models"
x = bundle.models.predict(features.height)
key = "training.query_embedder_id"
"""
    assert bare_names(source) == []


def test_the_packages_are_linked_into_audiencefit() -> None:
    for package in LINKED:
        link = ROOT / "audiencefit" / package
        assert link.is_symlink(), f"{link}: expected a symlink to ../{package}"
        assert os.readlink(link) == f"../{package}"  # relative: the checkout can move
        assert link.resolve() == (ROOT / package).resolve()
