"""Run the analysts' notebooks as Jupyter runs them: the jupytext .py read as a notebook, executed cell by cell
by nbclient on an ipykernel kernel (its own process, started in the working directory given)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

CHECKOUT = Path(__file__).resolve().parents[1]
NOTEBOOKS = CHECKOUT / "notebooks"
KERNEL = "audiencefit-test"
# The test's stand-in embedder (tests.conftest.HashingEmbedder, backend "test-hashing") registered in the kernel:
# the small worlds' feature sets were built with it.
HASHING_SETUP = "import tests.conftest  # registers the test-hashing embedding backend"


def kernel_env(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ipykernel kernel spec for this interpreter under ``root`` (found through JUPYTER_PATH), and the
    checkout first on the kernel's path, so the kernel imports this checkout's code from any directory."""
    spec = root / "kernels" / KERNEL
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "audiencefit (tests)", "language": "python"}), encoding="utf-8"
    )
    monkeypatch.setenv("JUPYTER_PATH", str(root))
    monkeypatch.setenv("PYTHONPATH", str(CHECKOUT))
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own: inline


def run_notebook(name: str, cwd: Path, *, setup: str = HASHING_SETUP, timeout: int = 300) -> Any:
    """Execute ``notebooks/<name>`` through a kernel started in ``cwd``; the executed notebook (nbformat). A cell
    that raises fails the run (``nbclient.exceptions.CellExecutionError``, naming the cell and the error)."""
    import jupytext
    import nbformat
    from nbclient import NotebookClient

    notebook = jupytext.read(NOTEBOOKS / name)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(setup))
    client = NotebookClient(notebook, timeout=timeout, kernel_name=KERNEL, resources={"metadata": {"path": str(cwd)}})
    client.execute()
    return notebook


def outputs(notebook: Any, mime: str) -> list[Any]:
    """Every output of ``mime`` (``image/png``, ``text/html``, ``text/plain`` or ``stream`` for printed text)."""
    found = []
    for cell in notebook.cells:
        for out in cell.get("outputs", []):
            if mime == "stream" and out.get("output_type") == "stream":
                found.append(out["text"])
            elif mime in out.get("data", {}):
                found.append(out["data"][mime])
    return found
