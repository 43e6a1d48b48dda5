"""The serving install (issue 21): the wheel alone, no extras, in a clean venv, serving what the full install built.

The wheel is built from a copy of this checkout's package files (so no earlier build left in the checkout can add to
it), installed with the project's constraints into a new venv (no torch, Ray, sentence-transformers, onnx or notebook
stack comes with it), and that venv's ``audiencefit serve`` answers a recommendation on the feature set and bundle the
full install (this test session) produced. The wheel installs one package, ``audiencefit``: the pipeline's packages
are ``audiencefit.features`` ... there, and ``import models`` fails (issue 21). The venv sees nothing
of the checkout: its processes load the tests' embedding backend from tests/hashing_embedder.py by path. About a
minute, most of it pip installing the dependencies (from pip's cache after ``make test``'s own install).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import API_KEY, UNLIMITED_ENV, make_client
from tests.e2e.serve_process import ROOT, TRAINING_ONLY, free_port

LINKED = ("features", "models", "training", "serving")  # folders at the root, linked into audiencefit/
INSTALL_SECONDS = 900
READY_SECONDS = 180
# Loaded by every process of the serving venv: the tests' embedding backend, from its file (not from the checkout,
# whose packages must not shadow the installed ones).
SITECUSTOMIZE = f"""
import importlib.util
spec = importlib.util.spec_from_file_location("hashing_embedder", {str(ROOT / "tests" / "hashing_embedder.py")!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.register()
"""


def run(cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float = INSTALL_SECONDS) -> str:
    """``cmd``'s stdout; run in ``cwd``, away from the checkout (``python -c`` puts its working directory first on
    the import path)."""
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
    assert done.returncode == 0, f"{cmd[:4]} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-4000:]}"
    return done.stdout


def package_copy(dst: Path) -> Path:
    """What the wheel is built from, copied to ``dst``: pyproject, README and the packages, the links
    audiencefit/<name> -> ../<name> kept as links."""
    dst.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, dst / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("audiencefit", *LINKED):
        shutil.copytree(ROOT / name, dst / name, symlinks=True, ignore=skip)
    return dst


def wheel_top_level(wheel: Path) -> set[str]:
    """The first path component of every file in the wheel, its .dist-info directory left out."""
    with zipfile.ZipFile(wheel) as z:
        return {n.split("/")[0] for n in z.namelist() if not n.split("/")[0].endswith(".dist-info")}


def test_the_wheel_alone_in_a_clean_venv_serves_what_the_full_install_built(
    small_features: Path, bundles: tuple[Path, Path], api_settings: Any, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AUDIENCEFIT_")}
    source = package_copy(tmp_path / "src")
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "wheel"), str(source)], env=clean, cwd=tmp_path)  # fmt: skip
    [wheel] = (tmp_path / "wheel").glob("audiencefit-*.whl")
    # One top-level package; the linked folders' files are in it as files, package data and markers included.
    assert wheel_top_level(wheel) == {"audiencefit"}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        [top_level] = [n for n in names if n.endswith(".dist-info/top_level.txt")]
        assert z.read(top_level).decode().split() == ["audiencefit"]
    for package in LINKED:
        assert {f"audiencefit/{package}/__init__.py", f"audiencefit/{package}/py.typed"} <= names
    assert {"audiencefit/features/embed_backends/static.py", "audiencefit/training/data/briefs.jsonl"} <= names
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], env=clean, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        env=clean,
        cwd=tmp_path,
    )

    probe = "import importlib.util, json, sys; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"  # noqa: E501
    namespaced = [f"audiencefit.{p}" for p in LINKED]
    found = json.loads(
        run([str(python), "-c", probe, *TRAINING_ONLY, "audiencefit", *namespaced, *LINKED], env=clean, cwd=tmp_path)
    )
    # None of the extras' packages came with it (matplotlib does, with mlflow; serving still never imports it).
    assert [m for m in TRAINING_ONLY if found[m] and m != "matplotlib"] == []
    assert found["audiencefit"] and all(found[m] for m in namespaced)
    # No bare ``features``, ``models``, ``training`` or ``serving`` to clash with another project's.
    assert [m for m in LINKED if found[m]] == []
    for package in LINKED:
        cmd = [str(python), "-c", f"import {package}"]
        bare = subprocess.run(cmd, check=False, env=clean, cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert bare.returncode != 0 and f"No module named '{package}'" in bare.stderr, bare.stderr
    where = run([str(python), "-c", "import audiencefit.serving.app as m; print(m.__file__)"], env=clean, cwd=tmp_path)
    assert str(venv) in where and where.strip().endswith("/audiencefit/serving/app.py")  # installed, not the checkout

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**clean, "PYTHONPATH": str(site), "AUDIENCEFIT_API_KEYS": API_KEY, "AUDIENCEFIT_LOG_LEVEL": "WARNING",
           "AUDIENCEFIT_DATA_DIR": str(tmp_path / "data"), **UNLIMITED_ENV}  # fmt: skip
    port = free_port()
    cmd = [str(venv / "bin" / "audiencefit"), "serve", "--workers", "1", "--features", str(small_features),
           "--bundle", str(bundles[0]), "--port", str(port)]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(cmd, env=env, stdout=sink, stderr=subprocess.STDOUT, cwd=tmp_path)
        try:
            deadline = time.monotonic() + READY_SECONDS
            while True:
                assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{log.read_text()[-4000:]}"
                assert time.monotonic() < deadline, f"not ready in {READY_SECONDS} s:\n{log.read_text()[-4000:]}"
                try:
                    if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            body = {"segments": [{"text": "home cooks who love baking and recipes"}], "k": 5}
            resp = httpx.post(f"{base}/v1/recommendations", json=body, headers={"X-API-Key": API_KEY}, timeout=30)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert resp.status_code == 200, resp.text
    answer = resp.json()
    assert answer["count"] == 5
    # The same creators, in the same order, with the same forecasts as the full install's app.
    clients = make_client(api_settings, small_features, bundles[0])
    full_resp = next(clients).post("/v1/recommendations", json=body)
    clients.close()
    assert full_resp.status_code == 200, full_resp.text
    full = full_resp.json()
    assert [(c["creator_id"], c["conversions"]) for c in answer["creators"]] == [
        (c["creator_id"], c["conversions"]) for c in full["creators"]
    ]
