"""The features-large benchmark's arguments, goals and figures (issue 20 §1), without running a large build."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from benchmarks import features as fb
from benchmarks.common import ProcessRun, TreeRss, run_measured
from benchmarks.run import _timeout, parse_args


def _run(wall_s: float, peak_mb: float, returncode: int | None = 0, **extra: Any) -> dict[str, Any]:
    return {
        "wall_s": wall_s,
        "peak_rss_mb": peak_mb,
        "returncode": returncode,
        "timed_out": returncode is None,
        "row_counts": {"creators": 1000, "posts": 14_000},
        "texts": 30_000,
        "embedded": 18_000,
        **extra,
    }


# --------------------------------------------------------------------------------------------------- arguments


def test_creators_takes_one_size_a_list_or_a_repeated_flag() -> None:
    one = parse_args(["--only", "features-large", "--creators", "30000"])
    assert one.sizes == (30_000,) and one.creators == 30_000
    listed = parse_args(["--only", "features-large", "--creators", "100000,300000,1_000_000"])
    assert listed.sizes == (100_000, 300_000, 1_000_000)
    repeated = parse_args(["--only", "features-large", "--creators", "100000", "--creators", "300000"])
    assert repeated.sizes == (100_000, 300_000)
    assert parse_args(["--only", "features", "--creators", "1000"]).creators == 1000
    assert parse_args(["--only", "features"]).creators is None


@pytest.mark.parametrize(
    "argv",
    [
        ["--only", "features-large"],  # neither sizes nor a world
        ["--only", "features-large", "--creators", "0"],
        ["--only", "features-large", "--creators", "ten"],
        ["--only", "features,features-large", "--creators", "1000,2000"],  # several sizes for another benchmark
        ["--only", "features", "--world", "/tmp/w"],
        ["--only", "features-large", "--world", "/tmp/w", "--creators", "1000,2000"],
        ["--only", "features-large", "--creators", "1000", "--partition-creators", "0"],
    ],
)
def test_bad_arguments_are_refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_a_world_needs_no_size_and_timeouts_default_per_benchmark() -> None:
    args = parse_args(["--only", "features-large", "--world", "/tmp/w1m", "--partition-creators", "50000"])
    assert args.world == Path("/tmp/w1m") and args.sizes == () and args.partition_creators == 50_000
    assert _timeout(args, 3660.0) == 3660.0
    assert _timeout(parse_args(["--only", "features", "--features-timeout", "0"]), 360.0) is None
    assert _timeout(parse_args(["--only", "features", "--features-timeout", "90"]), 360.0) == 90.0


def test_config_refuses_what_cannot_run() -> None:
    with pytest.raises(ValueError, match="sizes"):
        fb.LargeBenchConfig()
    with pytest.raises(ValueError, match="one world"):
        fb.LargeBenchConfig(sizes=(1, 2), world=Path("/tmp/w"))
    with pytest.raises(ValueError, match="partition"):
        fb.LargeBenchConfig(sizes=(10,), partition_creators=0)


# --------------------------------------------------------------------------------------------- goals, figures


def test_goals_pass_within_an_hour_and_8_gb_and_fail_otherwise() -> None:
    ok = fb.large_goals(1_000_000, _run(3500.0, 8000.0))
    assert [g.passed for g in ok] == [True, True]
    assert "issue's goal" not in ok[0].measured  # the target size itself
    slow_fat = fb.large_goals(1_000_000, _run(3700.0, 8200.0))
    assert [g.passed for g in slow_fat] == [False, False]
    killed = fb.large_goals(1_000_000, _run(3660.0, 2000.0, returncode=None))
    assert [g.passed for g in killed] == [False, False] and "timed out" in killed[0].measured
    crashed = fb.large_goals(100_000, _run(10.0, 100.0, returncode=1))
    assert [g.passed for g in crashed] == [False, False] and "exit code 1" in crashed[1].measured
    # The peak of the build and the processes it started counts, not only the build process.
    tree = fb.large_goals(100_000, _run(100.0, 3000.0, peak_tree_rss_mb=9000.0))
    assert tree[1].passed is False and "9,000 MB" in tree[1].measured and "1,000,000" in tree[1].measured


def test_figures_are_per_second_of_the_whole_build() -> None:
    figures = fb.large_figures(None, _run(10.0, 500.0, peak_tree_rss_mb=700.0))
    assert figures["creators"] == 1000  # from the manifest when the world's size was not known
    assert figures["creators_per_s"] == pytest.approx(100.0)
    assert figures["texts_per_s"] == pytest.approx(3000.0)
    assert figures["embedded_per_s"] == pytest.approx(1800.0)
    assert figures["peak_rss_mb"] == 700.0 and figures["peak_rss_build_process_mb"] == 500.0
    failed = fb.large_figures(5000, _run(10.0, 500.0, returncode=None))
    assert failed["creators_per_s"] is None and failed["texts_per_s"] is None


# ------------------------------------------------------------------------------------------------ the runner


def test_a_given_world_is_built_once_with_the_partition_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = tmp_path / "world"
    world.mkdir()
    pl.DataFrame({"creator_id": ["a", "b", "c"]}).write_parquet(world / "creators.parquet")
    calls: list[dict[str, Any]] = []

    def fake_build(
        w: Path, home: Path, embedder: str | None, name: str, timeout_s: float | None, **kw: Any
    ) -> dict[str, Any]:
        calls.append({"world": w, "home": home, "timeout_s": timeout_s, **kw})
        return _run(2.0, 50.0, peak_tree_rss_mb=80.0)

    monkeypatch.setattr(fb, "build_once", fake_build)
    monkeypatch.setattr(fb, "_prepare_artifacts", lambda backend, home: None)
    monkeypatch.setattr(fb, "work_dir", lambda: tmp_path / "work")
    monkeypatch.setattr(fb, "ensure_world", lambda n, seed: pytest.fail("a given world is never generated"))
    config = fb.LargeBenchConfig(world=world, embedder="minilm-static", partition_creators=2, timeout_s=100.0)
    (res,) = fb.run_features_large(config)
    assert res.name == "features-large-3"
    assert calls == [
        {
            "world": world,
            "home": tmp_path / "work" / "home-large-3-minilm-static",
            "timeout_s": 100.0,
            "extra_env": {fb.PARTITION_ENV: "2"},
            "tree_rss": True,
        }
    ]
    assert res.results["world"]["rows"] == {"creators": 3}
    assert [g.passed for g in res.goals] == [True, True]

    with pytest.raises(ValueError, match="holds 3 creators"):
        fb.run_features_large(fb.LargeBenchConfig(world=world, sizes=(4,)))
    with pytest.raises(FileNotFoundError, match="no creators table"):
        fb.run_features_large(fb.LargeBenchConfig(world=tmp_path / "work"))


def test_without_a_partition_size_the_build_environment_is_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, str] = {}

    def fake_measured(command: list[str], *, env: dict[str, str], log_dir: Path, name: str, **kw: Any) -> ProcessRun:
        seen.update(env)
        log_dir.mkdir(parents=True, exist_ok=True)
        (log_dir / "cold.err").write_text("")
        return ProcessRun(command, 1.0, 10.0, 1, log_dir / "cold.out", log_dir / "cold.err", "test")

    monkeypatch.setattr(fb, "run_measured", fake_measured)
    monkeypatch.delenv(fb.PARTITION_ENV, raising=False)
    fb.build_once(tmp_path, tmp_path / "home", None, "cold", None)
    assert fb.PARTITION_ENV not in seen and seen["AUDIENCEFIT_DATA_DIR"] == str((tmp_path / "home").resolve())
    fb.build_once(tmp_path, tmp_path / "home", None, "cold", None, extra_env={fb.PARTITION_ENV: "7"})
    assert seen[fb.PARTITION_ENV] == "7"


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="process trees are read from Linux /proc")
def test_tree_rss_counts_the_processes_a_child_starts(tmp_path: Path) -> None:
    script = (
        "import subprocess, sys; ps = [subprocess.Popen(['sleep', '1.5']) for _ in range(2)]; [p.wait() for p in ps]"
    )
    tree = TreeRss(interval_s=0.05)
    run = run_measured([sys.executable, "-c", script], env={}, log_dir=tmp_path, name="tree", sample=tree)
    assert run.returncode == 0
    assert tree.max_processes == 3
    assert tree.peak_mb > 0 and run.peak_rss_mb > 0
