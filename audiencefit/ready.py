"""``python -m audiencefit.ready URL --key-file FILE --pid PID``: wait until a starting service is ready, then print
one line to paste from (its URL, the demo key and a ``curl`` of a recommendation).

``make run`` starts ``audiencefit serve`` in the background and runs this beside it, so that its last line, once
the model and the feature set are loaded, is the one a person needs; the key is read from the file ``make run``
wrote it to (never from the service, which logs no key). Exit 0 when ready, 1 when the service process ended or
the timeout passed first.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from audiencefit.children import pid_alive

# After the ready answer, the service still logs that request (its access line): wait that long so that the line
# this prints is the last one on the console.
SETTLE_S = 0.3
# A request that works on the demo world: a brief and one segment (README, "Quick start").
EXAMPLE_REQUEST = {
    "description": "Trail running shoes for beginners",
    "segments": [{"text": "people training for their first marathon or trail race"}],
    "k": 3,
}


def is_ready(base_url: str, timeout: float = 2.0) -> bool:
    """Does ``GET <base_url>/readyz`` answer 200 with ``"ready": true``? (Refused connections and 503: no.)"""
    try:
        with urllib.request.urlopen(f"{base_url}/readyz", timeout=timeout) as resp:
            return resp.status == 200 and json.loads(resp.read()).get("ready") is True
    except (OSError, ValueError):  # URLError and connection errors are OSErrors; a body that is not JSON
        return False


def wait_ready(
    base_url: str, timeout: float, *, alive: Callable[[], bool] = lambda: True, interval: float = 0.25
) -> bool:
    """Poll ``/readyz`` until ready (True), or until ``alive()`` is false or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_ready(base_url):
            return True
        if not alive():
            return False
        time.sleep(interval)
    return is_ready(base_url)


def ready_line(base_url: str, key: str) -> str:
    """The one line: where the service listens, the key, and a ``curl`` to paste (shell-quoted)."""
    curl = shlex.join(
        [
            *("curl", "-s", "-X", "POST", f"{base_url}/v1/recommendations"),
            *("-H", f"X-API-Key: {key}", "-H", "Content-Type: application/json"),
            *("-d", json.dumps(EXAMPLE_REQUEST, separators=(",", ":"))),
        ]
    )
    return f"ready: {base_url}  API key: {key}  try: {curl}"


def running(pid: int) -> bool:
    """Is ``pid`` running? An ended process its parent has not reaped yet (a zombie: ``make``'s shell reaps the
    service only at ``wait``) has ended."""
    if not pid_alive(pid):
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):  # no /proc (macOS): alive as far as signals tell
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m audiencefit.ready", description=__doc__.split("\n\n")[0])
    parser.add_argument("url", help="Base URL of the service, e.g. http://127.0.0.1:8000.")
    parser.add_argument("--key-file", type=Path, required=True, help="File holding the API key to show.")
    parser.add_argument("--pid", type=int, help="Process id of the service: stop waiting when it ends.")
    parser.add_argument("--timeout", type=float, default=600.0, help="Seconds to wait at most (default 600).")
    args = parser.parse_args(argv)
    try:
        key = args.key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        sys.stderr.write(f"error: --key-file {args.key_file}: {exc.strerror or exc}\n")
        return 2
    pid = args.pid
    alive = (lambda: running(pid)) if pid is not None else (lambda: True)
    base = args.url.rstrip("/")
    if not wait_ready(base, args.timeout, alive=alive):
        sys.stderr.write(f"error: the service at {base} was not ready (ended, or {args.timeout:.0f} s passed)\n")
        return 1
    time.sleep(SETTLE_S)
    sys.stdout.write(ready_line(base, key) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
