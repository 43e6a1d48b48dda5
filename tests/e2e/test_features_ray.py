"""features build --engine ray: the partitions computed by Ray Data actors give the local engine's files."""

from __future__ import annotations

from pathlib import Path

import pytest

from audiencefit.features.build import build_feature_set
from audiencefit.features.errors import InputError
from audiencefit.settings import Settings

from ..conftest import HashingEmbedder

REPO = Path(__file__).resolve().parents[2]


def test_the_ray_engine_writes_the_local_engines_files(small_world, tmp_path):
    ray = pytest.importorskip("ray")
    settings = Settings(data_dir=tmp_path / "data", embedder=HashingEmbedder.backend)
    local = build_feature_set(small_world, tmp_path / "local", settings=settings, partition_creators=23, progress=False)
    # Two workers, each registering the test's embedder at start (a cluster's workers run the same install).
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": str(REPO)},
            "worker_process_setup_hook": "tests.conftest._register_hashing_backend",
        },
    )
    try:
        on_ray = build_feature_set(
            small_world,
            tmp_path / "ray",
            settings=Settings(data_dir=tmp_path / "data-ray", embedder=HashingEmbedder.backend),
            partition_creators=23,
            progress=False,
            engine="ray",
            workers=2,
        )
    finally:
        ray.shutdown()
    assert on_ray["partitions"]["count"] == local["partitions"]["count"] > 2
    assert on_ray["files"] == local["files"]
    assert on_ray["feature_set_id"] == local["feature_set_id"]
    # Nothing of the run is left beside the output (spill, staging, partition results).
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "data-ray", "local", "ray"]


def test_an_unknown_engine_is_refused_before_anything_is_written(small_world, tmp_path):
    settings = Settings(data_dir=tmp_path / "data", embedder=HashingEmbedder.backend)
    with pytest.raises(InputError, match="--engine 'spark'"):
        build_feature_set(small_world, tmp_path / "fs", settings=settings, engine="spark", progress=False)
    assert not (tmp_path / "fs").exists()
