"""Every child process dies with its parent, even when the parent is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.processes import alive, until

ROOT = Path(__file__).resolve().parents[2]

# Loaded by every interpreter started with this PYTHONPATH, the compile processes included: compiling a tree
# model takes seconds to minutes, so the compile job is replaced by one that records its pid and sleeps.
SITECUSTOMIZE = textwrap.dedent(
    """
    import os, time
    from pathlib import Path
    import audiencefit.models.forest

    def _compile_into_cache(text, cache_dir):
        (Path(os.environ["H3_PIDS"]) / str(os.getpid())).write_text(text)
        time.sleep(120)

    audiencefit.models.forest._compile_into_cache = _compile_into_cache
    """
)
PARENT = textwrap.dedent(
    """
    from pathlib import Path
    import sys
    from audiencefit.models.forest import compile_forests
    compile_forests(["model one", "model two"], Path(sys.argv[1]), workers=2)
    """
)


def test_compile_processes_die_when_their_parent_is_killed(tmp_path: Path):
    site, pids = tmp_path / "site", tmp_path / "pids"
    site.mkdir()
    pids.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]), "H3_PIDS": str(pids)}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, str(tmp_path / "cache")], env=env, cwd=ROOT)
    children: list[int] = []
    try:
        assert until(lambda: len(list(pids.iterdir())) == 2, 60), "the compile processes did not start"
        children = [int(p.name) for p in pids.iterdir()]
        assert all(alive(pid) for pid in children)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert until(lambda: not any(alive(pid) for pid in children), 5), "compile processes outlived their parent"
    finally:
        parent.kill()
        parent.wait()
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_die_with_parent_watchdog_without_prctl(tmp_path: Path):
    """The fallback alone (no prctl, as on other systems) also ends an orphan within a second or so."""
    child_code = textwrap.dedent(
        """
        import sys, time
        sys.platform = "other"  # skip prctl: only the watchdog thread is left
        from audiencefit.children import die_with_parent
        die_with_parent()
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    middle_code = textwrap.dedent(
        f"""
        import subprocess, sys, time
        child = subprocess.Popen([sys.executable, "-c", {child_code!r}], stdout=subprocess.PIPE)
        assert child.stdout.readline().strip() == b"ready"
        print(child.pid, flush=True)
        time.sleep(60)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    middle = subprocess.Popen([sys.executable, "-c", middle_code], env=env, cwd=ROOT, stdout=subprocess.PIPE)
    assert middle.stdout is not None
    child = int(middle.stdout.readline())
    try:
        middle.kill()
        middle.wait()
        assert until(lambda: not alive(child), 5)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)


def test_serve_control_dir_fits_a_unix_socket_and_replaces_stale_ones(tmp_path: Path, monkeypatch):
    import shutil
    import tempfile

    from audiencefit.cli.serve_cmd import make_control_dir

    long_tmp = tmp_path / ("x" * 90)
    long_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long_tmp))
    made = make_control_dir()
    try:
        assert len(str(made / "front.sock")) <= 107 and made.parent == Path("/tmp")
    finally:
        shutil.rmtree(made)

    short_tmp = Path(tempfile.mkdtemp(dir="/tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(short_tmp))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (short_tmp / f"audiencefit-serve-{dead.pid}-abcd").mkdir()
    (short_tmp / f"audiencefit-serve-{os.getppid()}-live").mkdir()
    try:
        made = make_control_dir()
        kept = sorted(p.name for p in short_tmp.iterdir())
        assert kept == sorted([made.name, f"audiencefit-serve-{os.getppid()}-live"])
    finally:
        shutil.rmtree(short_tmp)
