"""The serving install (issue 21): the wheel alone, no extras, in a clean venv, serving what the full install built.

The wheel is built from this checkout, installed with the project's constraints into a new venv (no torch, Ray,
sentence-transformers, onnx or notebook stack comes with it), and that venv's ``audiencefit serve`` answers a
recommendation on the feature set and bundle the full install (this test session) produced. The venv sees nothing
of the checkout: its processes load the tests' embedding backend from tests/hashing_embedder.py by path. About a
minute, most of it pip installing the dependencies (from pip's cache after ``make test``'s own install).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.conftest import API_KEY, UNLIMITED_ENV, make_client
from tests.e2e.serve_process import ROOT, TRAINING_ONLY, free_port

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


def test_the_wheel_alone_in_a_clean_venv_serves_what_the_full_install_built(
    small_features: Path, bundles: tuple[Path, Path], api_settings: Any, tmp_path: Path
) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("AUDIENCEFIT_")}
    run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w",
         str(tmp_path / "wheel"), str(ROOT)], env=clean, cwd=tmp_path)  # fmt: skip
    [wheel] = (tmp_path / "wheel").glob("audiencefit-*.whl")
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], env=clean, cwd=tmp_path)
    python = venv / "bin" / "python"
    run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        env=clean,
        cwd=tmp_path,
    )

    probe = "import importlib.util, json, sys; print(json.dumps({m: importlib.util.find_spec(m) is not None for m in sys.argv[1:]}))"  # noqa: E501
    found = json.loads(
        run([str(python), "-c", probe, *TRAINING_ONLY, "audiencefit", "serving"], env=clean, cwd=tmp_path)
    )
    # None of the extras' packages came with it (matplotlib does, with mlflow; serving still never imports it).
    assert [m for m in TRAINING_ONLY if found[m] and m != "matplotlib"] == []
    assert found["audiencefit"] and found["serving"]
    where = run([str(python), "-c", "import serving; print(serving.__file__)"], env=clean, cwd=tmp_path)
    assert str(venv) in where  # the installed package, not the checkout

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
