"""Child processes die with their parent, even when the parent is SIGKILLed.

Every process audiencefit starts (the ``serve`` workers, the tree-compile processes) calls :func:`die_with_parent`
first thing: on Linux the kernel sends it SIGKILL when its parent dies (``prctl(PR_SET_PDEATHSIG)``), and on every
system a watchdog thread ends it once its parent is gone (the fallback, and the guard against a parent that died
before the child got to ``prctl``). Without this a killed worker's compile processes, or a killed front's
workers, kept running (and holding their memory) for good.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 0.5
_PR_SET_PDEATHSIG = 1


def pid_alive(pid: int) -> bool:
    """True when a process ``pid`` exists (this one included; one we may not signal counts as alive)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process end when ``parent_pid`` (default: its parent now) ends. Idempotent; call it early."""
    parent = parent_pid if parent_pid is not None else os.getppid()
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # the parent is already gone: we were handed to init or a subreaper
        os._exit(1)
    if not any(t.name == "die-with-parent" for t in threading.enumerate()):
        threading.Thread(target=_watch, args=(parent,), name="die-with-parent", daemon=True).start()


def _watch(parent: int) -> None:
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if os.getppid() != parent:
            log.error("parent process %s is gone; exiting", parent)
            os.kill(os.getpid(), signal.SIGKILL)
