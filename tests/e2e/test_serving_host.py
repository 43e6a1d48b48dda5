"""A serving host needs none of the packages that only building and training use (issue 21's serve install).

Every test server (tests/e2e/serve_process.py) runs with those packages made uninstallable, so each e2e test of
the service also checks that it starts and answers without them. Here: that the guard is real, and that the
serving code imports without them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.serve_process import TRAINING_ONLY, serve_env


@pytest.mark.parametrize("package", ["torch", "sentence_transformers", "ray", "onnx"])
def test_the_guard_of_test_servers_refuses_training_only_packages(tmp_path: Path, package: str) -> None:
    assert package in TRAINING_ONLY
    proc = subprocess.run(
        [sys.executable, "-c", f"import {package}"],
        env=serve_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 0
    assert f"{package}: not on a serving host" in proc.stderr


def test_the_serving_code_and_cli_import_without_them(tmp_path: Path) -> None:
    code = (
        "import audiencefit.cli, audiencefit.serving.app, audiencefit.serving.workers, audiencefit.serving.batch; "
        "import audiencefit.serving.pipeline, audiencefit.models.registry; "
        "import onnxruntime, faiss, lightgbm, mlflow; print('ok')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], env=serve_env(tmp_path), capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_the_ray_engine_without_ray_says_which_extra_brings_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    from audiencefit.features.engine_ray import require_ray
    from audiencefit.features.errors import InputError

    real_import = builtins.__import__

    def without_ray(name: str, *args: object, **kwargs: object) -> object:
        if name == "ray" or name.startswith("ray."):
            raise ModuleNotFoundError("No module named 'ray'", name="ray")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without_ray)
    with pytest.raises(InputError, match=r"the 'ray' extra: pip install 'audiencefit\[ray\]'"):
        require_ray()
