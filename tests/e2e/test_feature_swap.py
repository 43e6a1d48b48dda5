"""Feature-set hot swap (#20 §3): ``POST /admin/reload`` replaces the feature set, its indexes and captions with the
model as one state, under load, with no failed request and no answer mixing two feature sets."""

from __future__ import annotations

import gc
import json
import os
import shutil
import threading
import time
import weakref
from pathlib import Path

import pytest

from tests.conftest import SMALL_WORLD_CREATORS, HashingEmbedder
from tests.e2e.conftest import ADMIN_KEY, make_client
from tests.processes import until

ADMIN = {"X-API-Key": ADMIN_KEY}
BODY = {"segments": [{"text": "fitness fans who lift weights and run"}], "k": 8}


@pytest.fixture(scope="module")
def feature_sets(small_features: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two feature sets of two different worlds (the same embedder, so one bundle serves both) side by side in one
    directory (``sets/a``, ``sets/b``), as a publisher lays them out; and a corrupted copy of ``b`` beside them."""
    from audiencefit.features.build import build_feature_set
    from audiencefit.features.featureset import load_feature_set
    from audiencefit.features.synthetic import generate_world
    from audiencefit.models.index import build_and_save
    from audiencefit.settings import Settings

    root = tmp_path_factory.mktemp("swap")
    world = root / "world-b"
    generate_world(world, n_creators=SMALL_WORLD_CREATORS + 40, seed=23, followers_per_creator=10)
    settings = Settings(data_dir=root / "data")
    sets = root / "sets"
    build_feature_set(world, sets / "b", settings=settings, embedder=HashingEmbedder())
    build_and_save(load_feature_set(sets / "b"), settings)
    shutil.copytree(small_features, sets / "a")
    corrupted = sets / "corrupted"
    shutil.copytree(sets / "b", corrupted)
    target = sorted(p for p in corrupted.glob("*.parquet"))[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    no_index = sets / "no-index"
    shutil.copytree(sets / "b", no_index)
    shutil.rmtree(no_index / "index")
    return {"sets": sets, "a": sets / "a", "b": sets / "b", "corrupted": corrupted, "no_index": no_index}


def _creators(path: Path) -> tuple[str, dict[str, tuple[str | None, int | None]]]:
    """A feature set's id and, per creator, (handle, followers): what an answer must agree with."""
    from audiencefit.features.featureset import load_feature_set

    fs = load_feature_set(path)
    frame = fs.creators.select("creator_id", "handle", "followers")
    rows = {cid: (handle, followers) for cid, handle, followers in frame.iter_rows()}
    return fs.feature_set_id, rows


class Driver(threading.Thread):
    """Sends recommendations until stopped; every answer must be a 200 whose creators all belong, with their
    handle and follower count, to the feature set that the answer says produced it."""

    def __init__(self, client, sets: dict[str, dict[str, tuple[str | None, int | None]]]) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.sets = sets
        self.stop = threading.Event()
        self.count = 0
        self.failures: list[str] = []
        self.seen: dict[str, int] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.check(self.client.post("/v1/recommendations", json=BODY))
            except Exception as exc:  # a transport error is a failed request too
                self.failures.append(repr(exc))
            self.count += 1

    def check(self, resp) -> None:
        if resp.status_code != 200 or not resp.json()["creators"]:
            self.failures.append(f"{resp.status_code}: {resp.text[:200]}")
            return
        body = resp.json()
        fs_id = body["versions"]["feature_set_id"]
        rows = self.sets.get(fs_id)
        if rows is None:
            self.failures.append(f"answered by an unknown feature set {fs_id}")
            return
        self.seen[fs_id] = self.seen.get(fs_id, 0) + 1
        for c in body["creators"]:
            if rows.get(c["creator_id"]) != (c["handle"], c["followers"]):
                self.failures.append(f"{c['creator_id']} ({c['handle']}, {c['followers']}) is not in {fs_id}")

    def wait_for(self, more: int, timeout: float = 60.0) -> None:
        target, deadline = self.count + more, time.monotonic() + timeout
        while self.count < target and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self.count >= target, "the request driver stalled"


@pytest.fixture()
def swap_settings(api_settings, tmp_path: Path):
    """The API tests' settings with a data directory (and so a recommendation log) of this test's own: the many
    answers sent here do not end up in the log the other API tests read."""
    return api_settings.model_copy(update={"data_dir": tmp_path / "data"})


def _reload(client, body: dict[str, str]):
    return client.post("/admin/reload", json=body, headers=ADMIN)


def test_feature_sets_swap_under_load(swap_settings, feature_sets: dict[str, Path], bundles):
    a_id, a_rows = _creators(feature_sets["a"])
    b_id, b_rows = _creators(feature_sets["b"])
    assert a_id != b_id and a_rows != b_rows
    bundle_id = json.loads((bundles[0] / "bundle.json").read_text())["bundle_id"]
    for client in make_client(swap_settings, feature_sets["a"], bundles[0]):
        assert client.get("/readyz").json()["feature_set_id"] == a_id
        drivers = [Driver(client, {a_id: a_rows, b_id: b_rows}) for _ in range(3)]
        for d in drivers:
            d.start()
        try:
            for d in drivers:
                d.wait_for(2)
            for _ in range(3):  # back and forth, three times
                resp = _reload(client, {"feature_set_path": str(feature_sets["b"])})
                assert resp.status_code == 200, resp.text
                assert resp.json() == {
                    "ok": True,
                    "serving_bundle_id": bundle_id,  # the serving bundle, checked against the new set
                    "previous_bundle_id": bundle_id,
                    "serving_feature_set_id": b_id,
                    "previous_feature_set_id": a_id,
                    "error": None,
                }
                for d in drivers:
                    d.wait_for(2)
                assert client.get("/v1/model").json()["feature_set_id"] == b_id
                resp = _reload(client, {"feature_set": "configured"})
                assert resp.status_code == 200, resp.text
                assert resp.json()["serving_feature_set_id"] == a_id
                for d in drivers:
                    d.wait_for(2)

            # A corrupted feature set, one without its index, a pointer to nothing: 409, the old set serves on.
            (feature_sets["sets"] / "pointer-to-nothing").mkdir()
            (feature_sets["sets"] / "pointer-to-nothing" / "CURRENT").write_text("gone\n")
            for bad, says in (
                (feature_sets["corrupted"], "checksum"),
                (feature_sets["no_index"], "no audience index"),
                (feature_sets["sets"] / "pointer-to-nothing", "CURRENT"),
            ):
                resp = _reload(client, {"feature_set_path": str(bad)})
                assert resp.status_code == 409, resp.text
                assert resp.json()["ok"] is False and says in resp.json()["error"]
                assert resp.json()["serving_feature_set_id"] == a_id
                ready = client.get("/readyz")
                assert ready.status_code == 200 and ready.json()["feature_set_id"] == a_id
                assert ready.json()["last_reload_failed"] is True
                for d in drivers:
                    d.wait_for(2)
            # Outside the feature-set reload roots: 403 before anything is read.
            resp = _reload(client, {"feature_set_path": "/etc"})
            assert resp.status_code == 403 and "feature_set_path" in resp.json()["detail"]
        finally:
            for d in drivers:
                d.stop.set()
            for d in drivers:
                d.join(timeout=60)
        assert all(not d.is_alive() for d in drivers)
        assert [f for d in drivers for f in d.failures] == []
        seen = {fs_id for d in drivers for fs_id in d.seen}
        assert seen == {a_id, b_id}
        assert sum(d.count for d in drivers) >= 3 * 2 * 10
        metrics = client.get("/metrics").text
        assert 'audiencefit_model_reloads_total{outcome="ok"} 6' in metrics
        assert 'audiencefit_model_reloads_total{outcome="failed"} 3' in metrics
        assert f'feature_set_id="{a_id}"' in metrics


def test_a_pointer_and_a_bundle_with_a_feature_set(swap_settings, feature_sets: dict[str, Path], bundles, tmp_path):
    """``CURRENT`` names the set to serve (replaced atomically by the publisher); a bundle and a feature set given
    together are swapped in together; ``/v1/creators`` answers from the set serving."""
    b_id, b_rows = _creators(feature_sets["b"])
    a_id, _ = _creators(feature_sets["a"])
    second = json.loads((bundles[1] / "bundle.json").read_text())["bundle_id"]
    only_b = next(cid for cid in b_rows if cid not in _creators(feature_sets["a"])[1])
    published = feature_sets["sets"]
    tmp = published / f".CURRENT.tmp-{os.getpid()}"
    tmp.write_text("b\n")
    os.replace(tmp, published / "CURRENT")
    try:
        for client in make_client(swap_settings, feature_sets["a"], bundles[0]):
            assert client.get(f"/v1/creators/{only_b}").status_code == 404
            started_with = weakref.ref(client.app.state.serving.state.features)
            resp = _reload(client, {"feature_set_path": str(published), "bundle_path": str(bundles[1])})
            assert resp.status_code == 200, resp.text
            # The replaced feature set is freed (nothing keeps it: not the app's lifespan, not the garbage
            # collector's frozen generation), so a daily swap does not add a feature set's memory each day.
            assert until(lambda ref=started_with: gc.collect() >= 0 and ref() is None, 10.0, interval=0.1)
            assert resp.json()["serving_feature_set_id"] == b_id and resp.json()["serving_bundle_id"] == second
            info = client.get("/v1/model").json()
            assert info["feature_set_id"] == b_id and info["bundle_id"] == second
            profile = client.get(f"/v1/creators/{only_b}")
            assert profile.status_code == 200 and profile.json()["feature_set_id"] == b_id
            # A pointer naming a path, not a directory inside its own: refused (409), nothing changes.
            (published / "CURRENT").write_text("../sets/a\n")
            resp = _reload(client, {"feature_set_path": str(published)})
            assert resp.status_code == 409 and "CURRENT" in resp.json()["error"]
            assert client.get("/readyz").json()["feature_set_id"] == b_id
            # Two feature sets, or two bundle sources, in one body: 422.
            both = {"feature_set_path": str(feature_sets["a"]), "feature_set": "configured"}
            assert _reload(client, both).status_code == 422
            resp = _reload(client, {"feature_set": "configured", "source": "configured"})
            assert resp.status_code == 200 and resp.json()["serving_feature_set_id"] == a_id
    finally:
        (published / "CURRENT").unlink(missing_ok=True)


def test_the_other_worker_follows_a_feature_set_reload(tmp_path: Path, feature_sets: dict[str, Path], bundles):
    """``serve --workers 2``: a feature set loaded by the worker asked is loaded by the other within a second, with
    the bundle each serves kept; a corrupted set reaches none."""
    import httpx

    from tests.e2e.serve_process import running_serve, serve_env

    a_id, _ = _creators(feature_sets["a"])
    b_id, _ = _creators(feature_sets["b"])
    bundle_id = json.loads((bundles[0] / "bundle.json").read_text())["bundle_id"]

    def serving(base: str) -> set[tuple[str, str]]:
        answers = [httpx.get(f"{base}/readyz", timeout=5).json() for _ in range(16)]
        return {(r["feature_set_id"], r["bundle_id"]) for r in answers}

    with running_serve(tmp_path, feature_sets["a"], bundles[0], workers=2, env=serve_env(tmp_path)) as server:
        base = server.base
        assert serving(base) == {(a_id, bundle_id)}
        resp = httpx.post(f"{base}/admin/reload", json={"feature_set_path": str(feature_sets["b"])}, headers=ADMIN)
        assert resp.status_code == 200, resp.text
        assert until(lambda: serving(base) == {(b_id, bundle_id)}, 15.0, interval=0.2), serving(base)
        resp = httpx.post(
            f"{base}/admin/reload", json={"feature_set_path": str(feature_sets["corrupted"])}, headers=ADMIN
        )
        assert resp.status_code == 409
        time.sleep(1.5)  # three sync intervals
        assert serving(base) == {(b_id, bundle_id)}
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert f'feature_set_id="{b_id}"' in metrics and f'feature_set_id="{a_id}"' not in metrics
