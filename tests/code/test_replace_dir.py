"""Directory swaps survive SIGKILL: the path users gave holds the complete old or new output at every instant,
and the next run removes what a killed run left (never a live process's staging directory, never anything else)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = ("a.txt", "b.txt", "sub/c.txt")

# The child writes a new version of TARGET and is SIGKILLed by itself right after its KILL_AT-th rename-like call
# (os.rename, os.replace, or the atomic exchange), i.e. at each point where the on-disk state changes.
CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import audiencefit.features.io as fio

    target, kill_at, how = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    calls = 0

    def counted(fn):
        def wrapped(*args, **kwargs):
            global calls
            result = fn(*args, **kwargs)
            calls += 1
            if calls == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return result
        return wrapped

    os.rename, os.replace = counted(os.rename), counted(os.replace)
    if hasattr(fio, "_exchange"):
        fio._exchange = counted(fio._exchange)
        if how == "fallback":
            fio._exchange = lambda a, b: False

    def fill(d):
        for name in FILES:
            (d / name).parent.mkdir(parents=True, exist_ok=True)
            (d / name).write_text("new")

    if how == "writer":
        from audiencefit.features.synthetic.writer import staged_directory
        with staged_directory(target) as staging:
            fill(staging)
    else:
        tmp = fio.staging_dir(target) if hasattr(fio, "staging_dir") else target.with_name(
            f".{target.name}.tmp-{os.getpid()}")
        tmp.mkdir(exist_ok=True)
        fill(tmp)
        if kill_at == 0:
            os.kill(os.getpid(), signal.SIGKILL)
        fio.replace_dir(tmp, target)
    """
).replace("FILES", repr(FILES))


def _write(directory: Path, version: str) -> None:
    for name in FILES:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(version)


def _version(directory: Path) -> str:
    assert directory.is_dir(), f"{directory} is missing: {sorted(p.name for p in directory.parent.iterdir())}"
    versions = {(directory / name).read_text() for name in FILES}
    assert len(versions) == 1, f"a mix of versions: {versions}"
    return versions.pop()


def _kill_child(target: Path, kill_at: int, how: str) -> int:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(target), str(kill_at), how], env=env, cwd=ROOT, check=False, timeout=60
    )
    return proc.returncode


@pytest.mark.parametrize("how", ["replace_dir", "writer"])
@pytest.mark.parametrize("kill_at", [0, 1, 2, 3])
def test_sigkill_at_any_point_leaves_old_or_new_and_next_run_cleans(tmp_path: Path, kill_at: int, how: str):
    target = tmp_path / "features"
    target.mkdir()
    _write(target, "old")
    (tmp_path / "unrelated.tmp-1").mkdir()  # not ours: never touched
    code = _kill_child(target, kill_at, how)
    assert code in (0, -9)
    assert _version(target) in ("old", "new")

    # The next run: stages, swaps, and leaves nothing of the killed one behind.
    from audiencefit.features.io import replace_dir, staging_dir

    staging = staging_dir(target)
    _write(staging, "next")
    replace_dir(staging, target)
    assert _version(target) == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features", "unrelated.tmp-1"]


def test_without_exchange_a_killed_swap_is_repaired_by_the_next_run(tmp_path: Path):
    from audiencefit.features.io import leftovers, remove_leftovers

    target = tmp_path / "features"
    target.mkdir()
    _write(target, "old")
    assert _kill_child(target, 1, "fallback") == -9  # killed between the two renames of the fallback
    assert not target.exists() and leftovers(target)
    remove_leftovers(target)
    assert _version(target) == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_leftovers_of_earlier_versions_are_repaired(tmp_path: Path):
    """What the two-rename swap of earlier versions left after a kill: no features/, only .old and .tmp."""
    from audiencefit.features.io import remove_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    old, tmp = tmp_path / f".features.old-{dead.pid}", tmp_path / f".features.tmp-{dead.pid}"
    for d, version in ((old, "old"), (tmp, "new")):
        d.mkdir()
        _write(d, version)
    assert remove_leftovers(tmp_path / "features") == 1
    assert _version(tmp_path / "features") == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["features"]


def test_a_live_process_staging_directory_is_kept(tmp_path: Path):
    from audiencefit.features.io import staging_dir

    target = tmp_path / "index"
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f".index.tmp-{live.pid}-abc123"
        other_target = tmp_path / f".features.tmp-{live.pid + 10**6}"
        mine.mkdir()
        other_target.mkdir()
        staging = staging_dir(target)
        assert mine.is_dir() and other_target.is_dir()
        assert staging.name.startswith(f".index.tmp-{os.getpid()}-")
    finally:
        live.kill()
        live.wait()


def test_replace_dir_keeps_layout_plain(tmp_path: Path):
    """The swapped path is a plain directory (no symlink), so every reader and older directory keeps working."""
    from audiencefit.features.io import replace_dir, staging_dir

    target = tmp_path / "bundle"
    for version in ("one", "two"):
        staging = staging_dir(target)
        _write(staging, version)
        replace_dir(staging, target)
    assert target.is_dir() and not target.is_symlink()
    assert _version(target) == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_half_written_tree_objects_of_dead_compiles_are_removed(tmp_path: Path):
    from audiencefit.models.forest import _remove_dead_partials

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".abc123.{dead.pid}-x1y2.o"
    live = tmp_path / f".abc123.{os.getpid()}-x1y2.o"
    other = tmp_path / f".def456.{dead.pid}-x1y2.o"
    for path in (stale, live, other):
        path.write_bytes(b"partial")
    _remove_dead_partials(tmp_path, "abc123")
    assert not stale.exists() and live.exists() and other.exists()


def test_batch_output_cleanup_spares_live_runs(tmp_path: Path):
    """``score`` removes what killed runs left in --out, never the partition a live run is writing."""
    from audiencefit.serving.batch import clean_leftovers

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        out = tmp_path / "out"
        names = {
            "brand_id=a": True,  # a finished partition
            f".brand_id=a.tmp-{dead.pid}-xyz": False,
            f".brand_id=b.tmp-{live.pid}-xyz": True,
            f".tmp-c-{dead.pid}": False,  # the staging name of earlier versions
            f".tmp-d-{live.pid}": True,
        }
        for name in names:
            (out / name).mkdir(parents=True)
        clean_leftovers(out)
        assert {p.name for p in out.iterdir()} == {name for name, kept in names.items() if kept}
    finally:
        live.kill()
        live.wait()
