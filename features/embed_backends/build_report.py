"""What a user sees while embedding artifacts are built: one progress bar per artifact, log lines, no noise.

A build reports through a :class:`BuildReporter`: ``start`` (what is built, why, about how long it takes) returns
a ``(done, total)`` callback that the builder calls as it goes, ``finish`` says how long it took. Two reporters:
:class:`LogReporter` (log lines only) and :class:`RichReporter` (the same lines plus a rich bar with an ETA on
stderr); :func:`default_reporter` picks the bar when stderr is a terminal.

:func:`quiet_third_party` silences what torch, transformers, onnx, onnxruntime, model2vec and skeletoken print
during a build (Python warnings, INFO lines, their own tqdm bars), then restores every setting it changed.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from rich.progress import Progress

logger = logging.getLogger(__name__)

Report = Callable[[int, int], None]
"""``report(done, total)``: how far a builder is, in units of its own (stages, word pieces, texts)."""

# Third-party loggers that speak during a build; kept at ERROR while it runs.
NOISY_LOGGERS = (
    "transformers",
    "torch",
    "torch.onnx",
    "onnx",
    "onnxruntime",
    "onnxscript",
    "model2vec",
    "skeletoken",
    "huggingface_hub",
    "sentence_transformers",
    # onnxruntime.transformers' fusion modules log on these top-level names, a line per fused node.
    "fusion_base",
    "fusion_utils",
    "onnx_model",
    "onnx_model_bert",
)
# torch logs statistics at INFO when the process exits (after the build), so its level is not restored.
_STAY_QUIET = frozenset({"torch"})
# Progress bars of other libraries (huggingface_hub's tqdm, transformers' "Loading weights").
_QUIET_ENV = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}


def _no_report(done: int, total: int) -> None:
    del done, total


class BuildReporter(Protocol):
    """Receives the start and end of each artifact build."""

    def start(self, key: str, why: str, expected_seconds: float) -> Report:
        """An artifact build begins; returns the callback the builder reports its progress to."""
        ...

    def finish(self, key: str, seconds: float) -> None:
        """The artifact build ended successfully after ``seconds``."""
        ...

    def abort(self, key: str) -> None:
        """The artifact build failed (its error propagates; nothing was put in place)."""
        ...


def _about(seconds: float) -> str:
    return f"about {seconds:.0f} s" if seconds < 90 else f"about {seconds / 60:.1f} min"


class LogReporter:
    """Log lines only: one when an artifact build starts (what, why, about how long), one when it ends."""

    def start(self, key: str, why: str, expected_seconds: float) -> Report:
        """Log the start of a build; progress is not reported."""
        logger.info(
            f"building embedding artifact {key} ({_about(expected_seconds)} on 2 cores; once per data directory)",
            extra={"backend": key, "why": why, "expected_seconds": round(expected_seconds)},
        )
        return _no_report

    def finish(self, key: str, seconds: float) -> None:
        """Log the end of a build."""
        logger.info(
            f"embedding artifact {key} built in {seconds:.1f} s", extra={"backend": key, "seconds": round(seconds, 1)}
        )

    def abort(self, key: str) -> None:
        """Nothing to log: the error itself is reported by whoever catches it."""
        del key


class RichReporter(LogReporter):
    """The log lines plus one rich progress bar per artifact on stderr, with elapsed time and an ETA."""

    def __init__(self) -> None:
        self._bar: Progress | None = None

    def start(self, key: str, why: str, expected_seconds: float) -> Report:
        """Log the start and show a bar for ``key`` until :meth:`finish` (or the next start)."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            ProgressColumn,
            Task,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.text import Text

        class EtaColumn(ProgressColumn):
            """Time left from the measured rate; before there is one, from the expected duration."""

            def render(self, task: Task) -> Text:
                left = task.time_remaining
                if left is None or task.completed == 0:
                    left = max(float(task.fields["expected"]) - (task.elapsed or 0.0), 0.0)
                if task.finished:
                    left = 0.0
                return Text(f"ETA {int(left) // 60}:{int(left) % 60:02d}", style="progress.remaining")

        super().start(key, why, expected_seconds)
        self._close()
        bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            EtaColumn(),
            console=Console(stderr=True),
        )
        task = bar.add_task(f"building {key}", total=None, expected=expected_seconds)
        bar.start()
        self._bar = bar

        def report(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1))

        return report

    def finish(self, key: str, seconds: float) -> None:
        """Complete and close the bar, then log the end."""
        if self._bar is not None:
            for task in self._bar.tasks:
                self._bar.update(task.id, completed=task.total or 1, total=task.total or 1)
        self._close()
        super().finish(key, seconds)

    def abort(self, key: str) -> None:
        """Close the bar where it stopped."""
        self._close()
        super().abort(key)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def default_reporter() -> BuildReporter:
    """A :class:`RichReporter` when stderr is a terminal, else a :class:`LogReporter`."""
    return RichReporter() if sys.stderr.isatty() else LogReporter()


@contextmanager
def quiet_third_party() -> Iterator[None]:
    """While a build runs: Python warnings ignored, third-party loggers at ERROR, lines logged on the root logger
    itself below ERROR dropped (onnxruntime's quantizer logs there: a line per tensor, a pre-processing hint),
    third-party progress bars off. All restored after, except torch's logger (see ``_STAY_QUIET``)."""
    saved_env = {name: os.environ.get(name) for name in _QUIET_ENV}
    saved_levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    root = logging.getLogger()
    undo: list[Callable[[], None]] = []
    os.environ.update(_QUIET_ENV)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    root.addFilter(_drop_root_chatter)
    undo.extend(silence_library_bars())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for restore in reversed(undo):
            restore()
        root.removeFilter(_drop_root_chatter)
        for name, level in saved_levels.items():
            if name not in _STAY_QUIET:
                logging.getLogger(name).setLevel(level)
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _drop_root_chatter(record: logging.LogRecord) -> bool:
    """A filter on the root logger: it sees only records logged on the root logger itself (``logging.info(...)``
    in a library), never those of named loggers that propagate to it, so audiencefit's own lines pass."""
    return record.levelno >= logging.ERROR


def silence_library_bars() -> list[Callable[[], None]]:
    """Turn off transformers' and huggingface_hub's own progress bars and transformers' INFO lines, where those
    libraries are loaded; returns how to turn them back on. Builders call it again right after importing
    transformers (the environment variables only reach a library imported after they were set)."""
    undo: list[Callable[[], None]] = []
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None and hf_logging.is_progress_bar_enabled():
        hf_logging.disable_progress_bar()
        undo.append(hf_logging.enable_progress_bar)
    hub = sys.modules.get("huggingface_hub.utils")
    if hub is not None and not hub.are_progress_bars_disabled():
        hub.disable_progress_bars()
        undo.append(hub.enable_progress_bars)
    if hf_logging is not None:
        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        undo.append(lambda: hf_logging.set_verbosity(verbosity))
    return undo
