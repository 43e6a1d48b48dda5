"""Feature pipeline benchmark: ``audiencefit features build`` on a generated world, cold and warm.

Cold: a fresh, empty ``AUDIENCEFIT_DATA_DIR`` (so the embedding cache is empty); the embedding backend's model
artifacts, when it has any under ``<data_dir>/models``, are linked in, so "cold" means an empty embedding cache,
not rebuilding the model. Warm: the same command again on the same data directory (every text a cache hit).
Each run is a separate process; the figures are its wall time, its own peak RSS, the texts embedded and served
from the cache (the manifest's ``embedding`` block) and the embedder's throughput: texts embedded per second
spent in ``embed_texts`` (from the build's JSON log) and per second of the whole build.

The large mode (issue 20 §1: a million creators cold, peak RSS ≤ 8 GB, within 60 minutes on 2 cores) runs only
the cold build, for one or several world sizes (``--creators 100000,300000,1000000``) or on a given world
(``--world DIR``), with a 60-minute limit each. Its peak RSS is that of the build and every process it starts
(a partitioned or Ray build has workers), polled from ``/proc``. ``--partition-creators N`` reaches the build as
``AUDIENCEFIT_FEATURE_PARTITION_CREATORS`` (settings ignore variables they do not know, so a build without
partitions runs as before).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Goal,
    Results,
    TreeRss,
    console,
    fmt,
    print_table,
    run_measured,
    stopwatch,
    work_dir,
)

DEMO_CREATORS = 5000
QUICK_CREATORS = 500
COLD_TARGET_S = 180.0  # "demo world cold under 3 minutes"
WARM_TARGET_S = 30.0  # "warm under 30 s"
LARGE_LIMIT_S = 3600.0  # issue 20: "1M creators cold ... ≤ 60 minutes on 2 cores"
PROJECTION_S = 1800.0  # the features benchmark projects the largest world built cold within 30 minutes
LARGE_RSS_GOAL_MB = 8 * 1024.0  # issue 20: "peak RSS ≤ 8 GB"
LARGE_TARGET_CREATORS = 1_000_000
PARTITION_ENV = "AUDIENCEFIT_FEATURE_PARTITION_CREATORS"


@dataclass(frozen=True)
class FeatureBenchConfig:
    """What to run: world size and seed, embedding backend (None: the settings default), per-build timeout."""

    creators: int = DEMO_CREATORS
    seed: int = 7
    embedder: str | None = None
    timeout_s: float | None = None
    warm: bool = True


def world_dir(creators: int, seed: int) -> Path:
    return work_dir() / f"world-{creators}-seed{seed}"


def ensure_world(creators: int, seed: int) -> tuple[Path, float | None]:
    """The generated world (reused when already complete): (directory, seconds to generate or None if reused)."""
    from audiencefit.features.synthetic import generate_world

    path = world_dir(creators, seed)
    if (path / "segments.parquet").is_file() and (path / "truth").is_dir():
        return path, None  # generate_world renames a finished world into place: present means complete
    with stopwatch() as t:
        generate_world(path, creators, seed, overwrite=True, progress=False)
    return path, t["s"]


def features_home(creators: int, seed: int, embedder: str) -> Path:
    """The ``AUDIENCEFIT_DATA_DIR`` of the benchmark builds; the feature set is its ``features/``."""
    return work_dir() / f"home-{creators}-seed{seed}-{embedder}"


def feature_set_path(creators: int, seed: int, embedder: str) -> Path:
    """The last feature set a benchmark build finished (kept when a later cold build fails or times out)."""
    return work_dir() / f"features-{creators}-seed{seed}-{embedder}"


def _keep_feature_set(home: Path, creators: int, seed: int, embedder: str) -> Path:
    target = feature_set_path(creators, seed, embedder)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(home / "features", tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def _audiencefit_command() -> list[str]:
    script = Path(sys.executable).with_name("audiencefit")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from audiencefit.cli import main; main()"]


def _prepare_artifacts(backend: str, home: Path) -> None:
    """Build the backend's model artifacts (outside any timing) and link them into the fresh data directory."""
    from audiencefit.settings import get_settings

    try:
        from audiencefit.features.embed_backends import SPECS, ensure_artifacts
    except ImportError:  # no fast backends in this checkout: only the built-in torch backend exists
        pass
    else:
        if backend in SPECS:
            ensure_artifacts(backend)
    models = Path(get_settings().data_dir).resolve() / "models"
    if models.is_dir():
        (home / "models").symlink_to(models, target_is_directory=True)


def parse_build_log(stderr: Path) -> dict[str, Any]:
    """From the build's JSON log: model load seconds, and per text column the texts embedded and seconds taken."""
    columns: dict[str, dict[str, Any]] = {}
    model_load_s: float | None = None
    for line in stderr.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.startswith("{"):
            continue  # progress bars and other non-log output
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("event") == "embedding model loaded":
            model_load_s = float(record.get("seconds") or 0.0)
        elif record.get("event") == "texts embedded":
            columns[str(record.get("desc"))] = {
                k: record.get(k)
                for k in ("n", "unique", "embedded", "cached", "seconds", "texts_per_s", "raw_chars", "chars_per_s")
            }
    embedded = sum(int(c["embedded"] or 0) for c in columns.values())
    seconds = sum(float(c["seconds"] or 0.0) for c in columns.values() if c["embedded"])
    return {
        "model_load_s": model_load_s,
        "columns": columns,
        "embed_seconds": seconds,
        "embedder_texts_per_s": embedded / seconds if embedded and seconds > 0 else None,
    }


def _manifest_counts(feature_set: Path) -> dict[str, Any]:
    manifest = json.loads((feature_set / "manifest.json").read_text(encoding="utf-8"))
    embedding: dict[str, int] = manifest.get("embedding", {})
    return {
        "feature_set_id": manifest.get("feature_set_id"),
        "embedder_id": manifest.get("embedder_id"),
        "embedder_backend": manifest.get("embedder_backend"),
        "row_counts": manifest.get("row_counts", {}),
        "embedding": embedding,
        "texts": sum(v for k, v in embedding.items() if k.endswith("_texts")),
        "embedded": sum(v for k, v in embedding.items() if k.endswith("_embedded")),
        "cached": sum(v for k, v in embedding.items() if k.endswith("_cached")),
    }


def build_once(
    world: Path,
    home: Path,
    embedder: str | None,
    name: str,
    timeout_s: float | None,
    *,
    extra_env: dict[str, str] | None = None,
    tree_rss: bool = False,
) -> dict[str, Any]:
    """One ``audiencefit features build`` process on ``world`` with ``AUDIENCEFIT_DATA_DIR=home``; its figures.

    ``extra_env`` is added to the build's environment; ``tree_rss`` also polls the summed RSS of the build and every
    process it started (``peak_tree_rss_mb``), for builds that work in several processes.
    """
    env = {
        **os.environ,
        "AUDIENCEFIT_DATA_DIR": str(home.resolve()),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "AUDIENCEFIT_LOG_LEVEL": "INFO",
        **(extra_env or {}),
    }
    command = [*_audiencefit_command(), "--log-json", "features", "build", "--data", str(world.resolve())]
    command += ["--out", str((home / "features").resolve())]
    if embedder:
        command += ["--embedder", embedder]
    tree = TreeRss() if tree_rss else None
    run = run_measured(command, env=env, log_dir=home / "logs", name=name, timeout_s=timeout_s, sample=tree)
    out: dict[str, Any] = {
        "run": name,
        "command": " ".join(command),
        "wall_s": run.wall_s,
        "peak_rss_mb": run.peak_rss_mb,
        "rss_method": run.rss_method,
        "returncode": run.returncode,
        "timed_out": run.returncode is None,
        "log": str(run.stderr),
    }
    if tree is not None:
        out["peak_tree_rss_mb"] = max(tree.peak_mb, run.peak_rss_mb)
        out["max_processes"] = tree.max_processes
    out |= parse_build_log(run.stderr)
    if run.ok:
        out |= _manifest_counts(home / "features")
        out["end_to_end_texts_per_s"] = out["embedded"] / run.wall_s if out["embedded"] else None
    else:
        tail = run.stderr.read_text(encoding="utf-8", errors="replace")[-1500:]
        console.print(f"[red]{name}: features build failed or timed out[/red] (log {run.stderr})\n{tail}")
    return out


def _backend(config: FeatureBenchConfig) -> str:
    if config.embedder:
        return config.embedder
    from audiencefit.settings import get_settings

    return get_settings().embedder


def run_features(config: FeatureBenchConfig) -> Results:
    """Cold and warm ``features build`` on the world of ``config.creators`` creators; prints a table."""
    backend = _backend(config)
    res = Results("features", {**config.__dict__, "embedder": backend})
    world, gen_s = ensure_world(config.creators, config.seed)
    res.results["world"] = {"path": str(world), "creators": config.creators, "generate_s": gen_s}
    home = features_home(config.creators, config.seed, backend)
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    _prepare_artifacts(backend, home)
    console.print(f"features: {config.creators:,}-creator world (seed {config.seed}), embedder {backend}, cold build")
    runs = [build_once(world, home, config.embedder, "cold", config.timeout_s)]
    if config.warm and runs[0]["returncode"] == 0:
        console.print("features: warm build (same data directory: embedding cache filled)")
        runs.append(build_once(world, home, config.embedder, "warm", config.timeout_s))
    res.results["runs"] = runs
    if runs[0]["returncode"] == 0:
        res.results["feature_set"] = str(_keep_feature_set(home, config.creators, config.seed, backend))

    _print_columns(runs)
    rows = [
        (
            r["run"],
            fmt(r["wall_s"], ".1f") + (" (timeout)" if r["timed_out"] else ""),
            fmt(r["peak_rss_mb"], ".0f"),
            fmt(r.get("texts"), ",d"),
            fmt(r.get("embedded"), ",d"),
            fmt(r.get("cached"), ",d"),
            fmt(r.get("model_load_s"), ".1f"),
            fmt(r.get("embed_seconds"), ".1f"),
            fmt(r.get("embedder_texts_per_s"), ".0f"),
            fmt(r.get("end_to_end_texts_per_s"), ".0f"),
        )
        for r in runs
    ]
    counts = runs[0].get("row_counts") or {}
    print_table(
        f"features build, {config.creators:,} creators"
        + (f" / {counts.get('posts', 0):,} posts / {counts.get('followers', 0):,} followers" if counts else "")
        + f", embedder {backend}",
        ("run", "wall s", "peak RSS MB", "texts", "embedded", "cached", "load s", "embed s", "embed t/s", "e2e t/s"),
        rows,
        caption="embed t/s: texts embedded per second inside embed_texts; e2e t/s: per second of the whole build",
    )

    cold, warm = runs[0], runs[1] if len(runs) > 1 else None
    demo = config.creators == DEMO_CREATORS
    scope = "" if demo else f" (ran {config.creators:,}; target is for {DEMO_CREATORS:,})"
    cold_ok = cold["returncode"] == 0
    res.goals.append(
        Goal(
            "features",
            f"{DEMO_CREATORS:,}-creator world cold < {COLD_TARGET_S:.0f} s",
            f"{cold['wall_s']:.1f} s" + (" (timed out)" if cold["timed_out"] else "") + scope,
            (cold_ok and cold["wall_s"] < COLD_TARGET_S) if demo else None,
        )
    )
    res.goals.append(
        Goal(
            "features",
            f"{DEMO_CREATORS:,}-creator world warm < {WARM_TARGET_S:.0f} s",
            (f"{warm['wall_s']:.1f} s" + scope) if warm else "not run (cold build did not finish)",
            (warm is not None and warm["returncode"] == 0 and warm["wall_s"] < WARM_TARGET_S) if demo else None,
        )
    )
    if cold_ok and backend != TORCH_REFERENCE:
        reference = torch_reference(config.creators, config.seed)
        if reference is not None:
            ratio = reference["wall_s"] / cold["wall_s"]
            res.results["vs_torch_full_build"] = {**reference, "ratio": ratio}
            console.print(
                f"full cold build vs torch fp32 on the same world: {cold['wall_s']:.1f} s vs "
                f"{reference['wall_s']:.1f} s (recorded {reference['recorded']}, {reference['note']}) = ×{ratio:.1f}"
            )
        else:
            console.print(
                f"no torch fp32 build of this world recorded: run `--only features --embedder {TORCH_REFERENCE}` "
                "once (≈ 5–45 min) for the full-build ratio"
            )
    if cold_ok and cold.get("embedder_texts_per_s"):
        # Embedding dominates the cold build and grows linearly with creators; the rest of the build is small.
        projected = int(config.creators * PROJECTION_S / cold["wall_s"])
        res.results["projected_largest_world_30min"] = projected
        console.print(
            f"embedder {backend}: {cold['embedder_texts_per_s']:.0f} texts/s; linear projection of the largest world "
            f"whose cold build finishes in 30 min: about {projected:,} creators (check with --only features-large)"
        )
    return res


TORCH_REFERENCE = "minilm-torch"


def _print_columns(runs: list[dict[str, Any]]) -> None:
    """Per text column of each build: captions (real-length) apart from the short bios and follower profiles."""
    rows = []
    for r in runs:
        for desc, c in (r.get("columns") or {}).items():
            n, raw_chars = c.get("n") or 0, c.get("raw_chars")
            rows.append(
                (
                    r["run"],
                    desc,
                    fmt(n, ",d"),
                    fmt(raw_chars / n if raw_chars is not None and n else None, ".0f"),
                    fmt(c.get("embedded"), ",d"),
                    fmt(c.get("seconds"), ".2f"),
                    fmt(c.get("texts_per_s"), ",.0f"),
                    fmt(c.get("chars_per_s"), ",.0f"),
                )
            )
    if rows:
        print_table(
            "embedding per text column (embed_texts: prepare, de-duplicate, look up, embed the misses)",
            ("run", "column", "texts", "mean chars", "embedded", "seconds", "embedded t/s", "input chars/s"),
            rows,
            caption="captions are real-length (~300 chars, hashtag blocks, emoji); bios and follower profiles short",
        )


def torch_reference(creators: int, seed: int) -> dict[str, Any] | None:
    """The most recent recorded cold build of the same world with torch fp32 MiniLM (any ``features*.json``)."""
    from benchmarks.common import bench_dir

    best: dict[str, Any] | None = None
    for path in sorted(bench_dir().glob("features*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        config = data.get("config") or {}
        if config.get("embedder") != TORCH_REFERENCE or (config.get("creators"), config.get("seed")) != (
            creators,
            seed,
        ):
            continue
        cold = next((r for r in (data.get("results") or {}).get("runs", []) if r.get("run") == "cold"), None)
        if not cold or cold.get("returncode") != 0:
            continue
        recorded = str(data.get("started_at", "?"))
        if best is None or recorded > best["recorded"]:
            load = (data.get("machine") or {}).get("load_average")
            best = {
                "wall_s": float(cold["wall_s"]),
                "texts_per_s": cold.get("embedder_texts_per_s"),
                "recorded": recorded,
                "note": str(config.get("note") or f"load average {load}"),
                "file": path.name,
            }
    return best


@dataclass(frozen=True)
class LargeBenchConfig:
    """The large mode: world sizes to generate (or reuse) under the work directory, or one existing ``world``;
    per-build time limit (None: none) and the partition size handed to the build (None: the build's default)."""

    sizes: tuple[int, ...] = ()
    world: Path | None = None
    seed: int = 7
    embedder: str | None = None
    timeout_s: float | None = LARGE_LIMIT_S + 60.0
    partition_creators: int | None = None

    def __post_init__(self) -> None:
        if not self.sizes and self.world is None:
            raise ValueError("features-large needs world sizes (--creators N[,N...]) or a world (--world DIR)")
        if self.world is not None and len(self.sizes) > 1:
            raise ValueError(f"--world {self.world} is one world; give at most one --creators with it")
        if any(n < 1 for n in self.sizes):
            raise ValueError(f"world sizes must be positive, got {self.sizes}")
        if self.partition_creators is not None and self.partition_creators < 1:
            raise ValueError(f"--partition-creators must be at least 1, got {self.partition_creators}")


def world_rows(world: Path) -> dict[str, int]:
    """Rows of each parquet input table of ``world``, from the file footers (no data is read)."""
    import pyarrow.parquet as pq

    from audiencefit.features.schemas import TABLE_ORDER

    rows: dict[str, int] = {}
    for name in TABLE_ORDER:
        path = world / f"{name}.parquet"
        if path.is_file():
            rows[name] = int(pq.ParquetFile(path).metadata.num_rows)
    return rows


def _given_world(config: LargeBenchConfig) -> tuple[Path, int | None]:
    """The ``--world`` directory, checked, and its creator count (footer of creators.parquet, else --creators)."""
    assert config.world is not None
    world = config.world
    if not world.is_dir():
        raise FileNotFoundError(f"--world {world}: no such directory")
    if not any((world / f"creators{ext}").is_file() for ext in (".parquet", ".csv", ".jsonl", ".ndjson", ".json")):
        raise FileNotFoundError(f"--world {world}: no creators table (creators.parquet / .csv / .jsonl / .json)")
    counted = world_rows(world).get("creators")
    if counted is not None and config.sizes and config.sizes[0] != counted:
        raise ValueError(f"--world {world} holds {counted:,} creators, not --creators {config.sizes[0]:,}")
    return world, counted if counted is not None else (config.sizes[0] if config.sizes else None)


def large_goals(creators: int | None, run: dict[str, Any]) -> list[Goal]:
    """The issue's two goals for one cold build: within 60 minutes, peak RSS ≤ 8 GB (a FAIL when it did not end)."""
    size = f"{creators:,}" if creators else "the given"
    finished = run["returncode"] == 0
    state = "" if finished else (" (timed out)" if run["timed_out"] else f" (exit code {run['returncode']})")
    peak = float(run.get("peak_tree_rss_mb") or run["peak_rss_mb"])
    scope = "" if creators == LARGE_TARGET_CREATORS else f"; the issue's goal is for {LARGE_TARGET_CREATORS:,}"
    return [
        Goal(
            "features-large",
            f"{size}-creator world cold ≤ {LARGE_LIMIT_S:.0f} s",
            f"{run['wall_s']:.0f} s ({run['wall_s'] / 60:.1f} min){state}{scope}",
            finished and run["wall_s"] <= LARGE_LIMIT_S,
        ),
        Goal(
            "features-large",
            f"{size}-creator world cold, peak RSS ≤ {LARGE_RSS_GOAL_MB / 1024:.0f} GB",
            f"{peak:,.0f} MB{state}{scope}",
            finished and peak <= LARGE_RSS_GOAL_MB,
        ),
    ]


def large_figures(creators: int | None, run: dict[str, Any]) -> dict[str, Any]:
    """Creators/s, texts/s (embedded and all texts looked at) per second of the whole build, and its rows."""
    counts = run.get("row_counts") or {}
    n = counts.get("creators") or creators
    wall = float(run["wall_s"])
    ok = run["returncode"] == 0 and wall > 0
    return {
        "creators": n,
        "rows": counts,
        "wall_s": wall,
        "peak_rss_mb": float(run.get("peak_tree_rss_mb") or run["peak_rss_mb"]),
        "peak_rss_build_process_mb": float(run["peak_rss_mb"]),
        "creators_per_s": n / wall if ok and n else None,
        "texts_per_s": run["texts"] / wall if ok and run.get("texts") else None,
        "embedded_per_s": run["embedded"] / wall if ok and run.get("embedded") else None,
        "embedder_texts_per_s": run.get("embedder_texts_per_s"),
    }


def run_features_large(config: LargeBenchConfig) -> list[Results]:
    """A cold ``features build`` per world size (or of ``config.world``): time, peak memory, throughput; one
    :class:`Results` per size (``features-large-<creators>``), and a table of all of them."""
    backend = config.embedder or _backend(FeatureBenchConfig())
    extra_env = {PARTITION_ENV: str(config.partition_creators)} if config.partition_creators else {}
    jobs: list[tuple[Path, int | None, float | None]] = []
    if config.world is not None:
        world, creators = _given_world(config)
        jobs.append((world, creators, None))
    else:
        for size in config.sizes:
            console.print(f"features-large: {size:,}-creator world (seed {config.seed}), generated when missing")
            world, gen_s = ensure_world(size, config.seed)
            jobs.append((world, size, gen_s))

    out: list[Results] = []
    table: list[tuple[str, ...]] = []
    for world, creators, gen_s in jobs:
        label = str(creators) if creators else world.name
        res = Results(
            f"features-large-{label}",
            {
                "creators": creators,
                "world": str(world),
                "seed": config.seed if config.world is None else None,
                "embedder": backend,
                "timeout_s": config.timeout_s,
                "partition_creators": config.partition_creators,
                "env": extra_env,
            },
        )
        home = work_dir() / f"home-large-{label}-{backend}"
        shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True)
        _prepare_artifacts(backend, home)
        limit = f"limit {config.timeout_s / 60:.0f} min" if config.timeout_s else "no limit"
        console.print(f"features-large: cold build of {world} ({label} creators), embedder {backend}, {limit}")
        run = build_once(world, home, config.embedder, "cold", config.timeout_s, extra_env=extra_env, tree_rss=True)
        figures = large_figures(creators, run)
        if run["returncode"] == 0 and config.world is None and creators:
            # Kept where the service and batch benchmarks look for this world's feature set (moved: GBs at 1M).
            kept = feature_set_path(creators, config.seed, backend)
            shutil.rmtree(kept, ignore_errors=True)
            os.replace(home / "features", kept)
            run["kept_feature_set"] = str(kept)
            console.print(
                f"features-large: feature set kept at {kept} (service and batch --creators {creators} use it)"
            )
        res.results = {
            "world": {"path": str(world), "creators": creators, "generate_s": gen_s, "rows": world_rows(world)},
            "run": run,
            "figures": figures,
        }
        res.goals += large_goals(figures["creators"], run)
        out.append(res)
        table.append(
            (
                fmt(figures["creators"], ",d"),
                fmt((figures["rows"] or {}).get("posts"), ",d"),
                fmt((figures["rows"] or {}).get("followers"), ",d"),
                fmt(run.get("texts"), ",d"),
                fmt(run.get("embedded"), ",d"),
                fmt(run["wall_s"], ".0f") + (" (timeout)" if run["timed_out"] else ""),
                fmt(figures["peak_rss_mb"], ",.0f"),
                fmt(figures["creators_per_s"], ",.0f"),
                fmt(figures["texts_per_s"], ",.0f"),
                fmt(figures["embedded_per_s"], ",.0f"),
                fmt(run.get("embedder_texts_per_s"), ",.0f"),
            )
        )
    print_table(
        f"features build (large, cold), embedder {backend}"
        + (f", {PARTITION_ENV}={config.partition_creators}" if config.partition_creators else ""),
        (
            "creators",
            "posts",
            "followers",
            "texts",
            "embedded",
            "wall s",
            "peak RSS MB",
            "creators/s",
            "texts/s",
            "embedded/s",
            "embed t/s",
        ),
        table,
        caption=(
            "per second of the whole build; texts/s counts every text looked at, embedded/s the unique misses run "
            "through the model; embed t/s: inside embed_texts; peak RSS: the build and every process it started"
        ),
    )
    return out
