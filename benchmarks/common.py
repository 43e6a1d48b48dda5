"""Shared benchmark plumbing: timing, peak memory, result tables, goals and the results JSON.

Peak memory is read from Linux's ``VmHWM`` (the resident-set high-water mark of one process), not from
``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``: Linux carries the parent's high-water mark over into a child
across fork + exec, so a child started from a benchmark process that already holds a 1.5 GB index would report at
least 1.5 GB. For a child process ``VmHWM`` is polled from ``/proc/<pid>/status`` (it only grows, so polling misses
at most the last interval's growth); in-process phases reset the mark first by writing ``5`` to
``/proc/self/clear_refs``. Without ``/proc`` (not Linux), psutil (when installed) samples RSS in a thread instead,
and as a last resort ``ru_maxrss`` is reported with its caveat.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

console = Console(width=200, highlight=False)

_STATUS = Path("/proc/self/status")
_POLL_S = 0.1


# ---------------------------------------------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------------------------------------------


def _status_mb(status: str, field_name: str) -> float | None:
    match = re.search(rf"^{field_name}:\s+(\d+)\s+kB", status, re.MULTILINE)
    return int(match.group(1)) / 1024 if match else None


def _read_status(pid: int | str = "self") -> str | None:
    try:
        return Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def rss_mb() -> float:
    """Current resident memory of this process in MB."""
    status = _read_status()
    value = _status_mb(status, "VmRSS") if status else None
    if value is not None:
        return value
    try:
        import psutil

        return float(psutil.Process().memory_info().rss) / 2**20
    except ImportError:
        return float("nan")


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB (since start, or since the last :func:`reset_peak_rss`)."""
    status = _read_status()
    value = _status_mb(status, "VmHWM") if status else None
    if value is not None:
        return value
    import resource

    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024  # bytes on macOS, kB elsewhere


def reset_peak_rss() -> bool:
    """Reset this process's ``VmHWM`` to its current RSS (Linux ≥ 4.0); False when the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


@dataclass
class MemoryUse:
    """Memory of one in-process phase, in MB: RSS before, peak during, RSS after (retained = after − before)."""

    before_mb: float = float("nan")
    peak_mb: float = float("nan")
    after_mb: float = float("nan")
    method: str = ""

    @property
    def peak_delta_mb(self) -> float:
        return self.peak_mb - self.before_mb

    @property
    def retained_mb(self) -> float:
        return self.after_mb - self.before_mb


class _Sampler:
    """Samples this process's RSS in a thread (used only where ``VmHWM`` cannot be reset)."""

    def __init__(self) -> None:
        self.peak = rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(_POLL_S):
            self.peak = max(self.peak, rss_mb())

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


def release_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS, so RSS growth measures new allocations only
    (glibc otherwise keeps freed blocks and serves the next allocation from them, hiding its size)."""
    import ctypes
    import gc

    gc.collect()
    with suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


@contextmanager
def measure_memory() -> Iterator[MemoryUse]:
    """Measure the memory of the code in the ``with`` block (fields are filled in when the block ends)."""
    release_memory()
    use = MemoryUse(before_mb=rss_mb())
    if reset_peak_rss():
        use.method = "VmHWM (reset via clear_refs)"
        yield use
        use.peak_mb = peak_rss_mb()
    else:
        use.method = "RSS sampled every 0.1 s"
        with _Sampler() as sampler:
            yield use
        use.peak_mb = sampler.peak
    use.after_mb = rss_mb()


# ---------------------------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ProcessRun:
    """A finished (or timed-out) child process: wall seconds, its own peak RSS, exit code and log files."""

    command: list[str]
    wall_s: float
    peak_rss_mb: float
    returncode: int | None  # None: killed at the timeout
    stdout: Path
    stderr: Path
    rss_method: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


def _child_peak_mb(pid: int, proc_handle: Any) -> tuple[float | None, Any]:
    """The child's peak so far: ``VmHWM`` from /proc, else its current RSS via psutil (sampled)."""
    status = _read_status(pid)
    hwm = _status_mb(status, "VmHWM") if status else None
    if hwm is not None or status is not None:
        return hwm, proc_handle
    try:
        import psutil

        proc_handle = proc_handle or psutil.Process(pid)
        return float(proc_handle.memory_info().rss) / 2**20, proc_handle
    except Exception:  # psutil missing, or the process just ended
        return None, proc_handle


def _process_parents() -> dict[int, int]:
    """Parent pid of every process in /proc (those that vanish while reading are skipped)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 1:
            parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(root: int) -> list[int]:
    """``root`` and every process descended from it (Linux /proc; just ``[root]`` elsewhere)."""
    if not _STATUS.exists():
        return [root]
    children: dict[int, list[int]] = {}
    for pid, parent in _process_parents().items():
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_rss_mb(root: int) -> tuple[float, int]:
    """Summed current RSS (MB) of ``root`` and its descendants, and how many processes that is.

    Pages shared between processes (a Ray object store, forked copy-on-write memory) count once per process, so
    the sum is an upper bound of the memory the tree holds.
    """
    total, count = 0.0, 0
    for pid in process_tree(root):
        value = _status_mb(_read_status(pid) or "", "VmRSS")
        if value is not None:
            total, count = total + value, count + 1
    return total, count


def _is_helper(pid: int) -> bool:
    """multiprocessing's resource tracker (a few MB, started beside a pool's workers), not a worker."""
    try:
        return b"resource_tracker" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def tree_memory(root: int) -> list[dict[str, Any]]:
    """Memory of ``root`` and each descendant: pid, parent, role (``root``, ``child`` or ``helper``: a resource
    tracker), VmRSS, VmHWM, RssAnon and
    RssFile in MB (file pages are memory-mapped files, shared with the page cache and other processes)."""
    parents = _process_parents()
    rows: list[dict[str, Any]] = []
    for pid in process_tree(root):
        status = _read_status(pid) or ""
        rows.append(
            {
                "pid": pid,
                "parent": parents.get(pid),
                "role": "root" if pid == root else ("helper" if _is_helper(pid) else "child"),
                **{
                    key: _status_mb(status, field_name)
                    for key, field_name in (
                        ("rss_mb", "VmRSS"),
                        ("hwm_mb", "VmHWM"),
                        ("anon_mb", "RssAnon"),
                        ("file_mb", "RssFile"),
                    )
                },
            }
        )
    return rows


class TreeRss:
    """A ``run_measured`` sampler: the peak of the summed RSS of the child and all its descendants.

    Polled every ``interval_s`` (a walk of /proc costs a few milliseconds), so a peak shorter than that may be
    missed; the child's own ``VmHWM`` is exact and is reported beside it.
    """

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self.max_processes = 0
        self._last = float("-inf")

    def __call__(self, pid: int) -> None:
        now = time.perf_counter()
        if now - self._last < self.interval_s:
            return
        self._last = now
        total, count = tree_rss_mb(pid)
        self.peak_mb = max(self.peak_mb, total)
        self.max_processes = max(self.max_processes, count)


def run_measured(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    log_dir: Path,
    name: str,
    timeout_s: float | None = None,
    sample: Callable[[int], None] | None = None,
) -> ProcessRun:
    """Run ``command`` with its output in ``log_dir/<name>.{out,err}``; wall time and the child's own peak RSS.

    The child runs in a session of its own; its process group is killed when ``timeout_s`` passes
    (``returncode`` is then None). ``sample(pid)`` is called at every poll, for measurements of its own.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    peak = 0.0
    handle: Any = None
    method = "VmHWM polled from /proc/<pid>/status" if _STATUS.exists() else "RSS sampled with psutil every 0.1 s"
    returncode: int | None = None
    with out_path.open("wb") as out, err_path.open("wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(list(command), env=dict(env), stdout=out, stderr=err, start_new_session=True)
        while True:
            value, handle = _child_peak_mb(proc.pid, handle)
            peak = max(peak, value or 0.0)
            if sample is not None:
                sample(proc.pid)
            try:
                returncode = proc.wait(timeout=_POLL_S)
                break
            except subprocess.TimeoutExpired:
                if timeout_s is not None and time.perf_counter() - started > timeout_s:
                    os.killpg(proc.pid, 9)
                    proc.wait()
                    returncode = None
                    break
        wall = time.perf_counter() - started
    if peak == 0.0:
        import resource

        # Last resort; an upper bound that includes this process's own peak (see the module docstring).
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        method = "ru_maxrss of children (upper bound)"
    return ProcessRun(list(command), wall, peak, returncode, out_path, err_path, method)


# ---------------------------------------------------------------------------------------------------------------
# Timing and statistics
# ---------------------------------------------------------------------------------------------------------------


@contextmanager
def stopwatch() -> Iterator[dict[str, float]]:
    """``with stopwatch() as t: ...`` then ``t["s"]`` holds the elapsed seconds."""
    box = {"s": float("nan")}
    started = time.perf_counter()
    try:
        yield box
    finally:
        box["s"] = time.perf_counter() - started


@contextmanager
def threads(n: int | None) -> Iterator[None]:
    """Limit FAISS's OpenMP and the BLAS libraries to ``n`` threads inside the block (None: leave as is)."""
    if n is None:
        yield
        return
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            yield
        else:
            with threadpool_limits(limits=n):
                yield
    finally:
        faiss.omp_set_num_threads(before)


def latency_ms(samples_s: Sequence[float] | np.ndarray) -> dict[str, float]:
    """p50, p95, p99 and mean of latencies given in seconds, in milliseconds."""
    ms = np.asarray(samples_s, dtype=np.float64) * 1000.0
    if ms.size == 0:
        return {"p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "mean": float("nan")}
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "mean": float(ms.mean())}


def fmt(value: float | int | None, spec: str = ".2f") -> str:
    """A number for a table cell; '–' for None/NaN."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return format(value, spec)


# ---------------------------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------------------------


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[object]], *, caption: str = "") -> None:
    """Print a results table; the first column is left-aligned, the others right-aligned."""
    table = Table(title=title, caption=caption or None, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*[str(cell) for cell in row])
    console.print(table)


@dataclass
class Goal:
    """One target from the issues and whether the measured figure meets it (None: not measured / no verdict)."""

    benchmark: str
    goal: str
    measured: str
    passed: bool | None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "n/a"}[self.passed]


def print_goals(goals: Sequence[Goal], title: str = "Goals") -> None:
    rows = [(g.benchmark, g.goal, g.measured, g.verdict) for g in goals]
    print_table(title, ("benchmark", "goal", "measured", "verdict"), rows)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    except OSError:
        return None
    return out.stdout.strip() or None


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on; the load average shows how busy the shared machine was."""
    mem_total = None
    try:
        meminfo = Path("/proc/meminfo").read_text(encoding="utf-8")
        mem_total = round((_status_mb(meminfo, "MemTotal") or 0) / 1024, 1)
    except OSError:
        pass
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gb": mem_total,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": _git_commit(),
    }


@dataclass
class Results:
    """What one benchmark writes to ``<data_dir>/bench/<name>.json``."""

    name: str
    config: dict[str, Any]
    results: dict[str, Any] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    machine: dict[str, Any] = field(default_factory=machine_info)


def bench_dir() -> Path:
    """``<data_dir>/bench``: results JSON files, and ``work/`` for generated worlds and feature sets."""
    from audiencefit.settings import get_settings

    return Path(get_settings().data_dir) / "bench"


def work_dir() -> Path:
    return bench_dir() / "work"


def write_results(res: Results) -> Path:
    """Write ``<data_dir>/bench/<name>.json`` (replacing an earlier run's) and return its path."""
    path = bench_dir() / f"{res.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = asdict(res)
    payload["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    payload["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    payload["goals"] = [asdict(g) | {"verdict": g.verdict} for g in res.goals]
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=_json_default), encoding="utf-8")
    os.replace(tmp, path)
    return path


def conclude(res: Results, note: str = "") -> int:
    """End of a benchmark run on its own: write the results, print the goals, and the exit code (1 on a FAIL)."""
    path = write_results(res)
    print_goals(res.goals)
    console.print(f"{res.name}: results in {path}{note}")
    return 1 if any(g.passed is False for g in res.goals) else 0


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
