"""Hot swap: requests keep succeeding while bundles are reloaded, and a corrupted bundle never serves."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

from tests.e2e.conftest import ADMIN_KEY, make_client

BODY = {"segments": [{"text": "fitness fans who lift weights and run"}], "k": 5}


def _bundle_id(path: Path) -> str:
    return str(json.loads((path / "bundle.json").read_text())["bundle_id"])


def _corrupt_copy(bundle: Path, out: Path) -> Path:
    """A copy of ``bundle`` with one byte flipped in a model file (its checksum no longer matches); ``out`` must
    lie under a reload root (the directory of the bundles the tests start with is one)."""
    shutil.copytree(bundle, out)
    model_file = sorted((out / "models").glob("*.txt"))[0]
    data = bytearray(model_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    model_file.write_bytes(bytes(data))
    return out


class Driver(threading.Thread):
    """Sends requests until stopped; records every failure and which bundle answered."""

    def __init__(self, client) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.stop = threading.Event()
        self.count = 0
        self.failures: list[str] = []
        self.seen: set[str] = set()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                resp = self.client.post("/v1/recommendations", json=BODY)
                if resp.status_code != 200 or not resp.json()["creators"]:
                    self.failures.append(f"{resp.status_code}: {resp.text[:200]}")
                else:
                    self.seen.add(resp.json()["versions"]["bundle_id"])
            except Exception as exc:  # a transport error is a failed request too
                self.failures.append(repr(exc))
            self.count += 1

    def wait_for(self, more: int, timeout: float = 30.0) -> None:
        target, deadline = self.count + more, time.monotonic() + timeout
        while self.count < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count >= target, "the request driver stalled"


def test_reloads_under_load(api_settings, small_features: Path, bundles, tmp_path: Path):
    first, second = bundles
    corrupted = _corrupt_copy(second, first.parent / f"corrupted-{tmp_path.name}")
    admin = {"X-API-Key": ADMIN_KEY}
    for client in make_client(api_settings, small_features, first):
        assert client.get("/v1/model").json()["bundle_id"] == _bundle_id(first)
        driver = Driver(client)
        driver.start()
        try:
            driver.wait_for(3)
            # 1. A good bundle: swapped in.
            resp = client.post("/admin/reload", json={"bundle_path": str(second)}, headers=admin)
            assert resp.status_code == 200, resp.text
            fs_id = client.get("/readyz").json()["feature_set_id"]
            assert resp.json() == {
                "ok": True,
                "serving_bundle_id": _bundle_id(second),
                "previous_bundle_id": _bundle_id(first),
                "serving_feature_set_id": fs_id,
                "previous_feature_set_id": fs_id,
                "error": None,
            }
            assert client.get("/v1/model").json()["bundle_id"] == _bundle_id(second)
            driver.wait_for(3)

            # 2. A corrupted bundle: refused, reported, and the previous one keeps serving.
            resp = client.post("/admin/reload", json={"bundle_path": str(corrupted)}, headers=admin)
            assert resp.status_code == 409
            assert resp.json()["ok"] is False and resp.json()["serving_bundle_id"] == _bundle_id(second)
            assert "checksum mismatch" in resp.json()["error"]
            ready = client.get("/readyz")
            assert ready.status_code == 200  # still ready: a good model serves
            assert ready.json()["last_reload_failed"] is True and "checksum" not in ready.text  # no error text
            assert ready.json()["bundle_id"] == _bundle_id(second)
            assert client.get("/v1/model").json()["bundle_id"] == _bundle_id(second)
            driver.wait_for(3)

            # 3. Back to the configured source (said explicitly): swapped in, error cleared.
            resp = client.post("/admin/reload", json={"source": "configured"}, headers=admin)
            assert resp.status_code == 200, resp.text
            assert resp.json()["serving_bundle_id"] == _bundle_id(first)
            assert client.get("/v1/model").json()["bundle_id"] == _bundle_id(first)
            assert client.get("/readyz").json()["last_reload_failed"] is False
            driver.wait_for(3)
        finally:
            driver.stop.set()
            driver.join(timeout=30)
        assert not driver.is_alive()
        assert driver.failures == []
        assert driver.count >= 12
        assert driver.seen <= {_bundle_id(first), _bundle_id(second)}
        assert _bundle_id(second) in driver.seen
        metrics = client.get("/metrics").text
        assert 'audiencefit_model_reloads_total{outcome="ok"} 2' in metrics
        assert 'audiencefit_model_reloads_total{outcome="failed"} 1' in metrics
        assert f'audiencefit_model_info{{bundle_id="{_bundle_id(first)}"' in metrics


def test_incompatible_bundle_is_refused(api_settings, small_features: Path, bundles, tmp_path: Path):
    """A bundle trained on another embedding space fails the compatibility check and does not serve."""
    first, _ = bundles
    other = first.parent / f"other-embedder-{tmp_path.name}"
    shutil.copytree(first, other)
    meta = json.loads((other / "bundle.json").read_text())
    meta["embedder_id"] = "another-embedder/v9"
    del meta["bundle_id"]  # a stated id would no longer match the content (see test_bundle_integrity)
    (other / "bundle.json").write_text(json.dumps(meta))
    for client in make_client(api_settings, small_features, first):
        resp = client.post("/admin/reload", json={"bundle_path": str(other)}, headers={"X-API-Key": ADMIN_KEY})
        assert resp.status_code == 409
        assert "embedded with" in resp.json()["error"]
        assert client.get("/v1/model").json()["bundle_id"] == _bundle_id(first)
        both = {"bundle_path": "a", "model_uri": "b"}
        bad = client.post("/admin/reload", json=both, headers={"X-API-Key": ADMIN_KEY})
        assert bad.status_code == 422
