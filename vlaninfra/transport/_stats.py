"""Process-wide counters for tests and benchmarks, and the optional timing trace.

With ``VLANINFRA_TRACE=/path/file`` every agent call and agent start appends one JSON line
``{"t": wall, "pid", "host", "what", "op", "s": seconds}`` to that file (the profile behind
``tools/bench_vs_raw.py --trace``). Nothing but op names, host labels and times is written.
"""

from __future__ import annotations

import json
import os
import threading
import time

__all__ = ["bump", "reset_stats", "stats", "trace"]

_KEYS = ("ssh_connections", "agent_starts", "uploads", "calls", "requests")
_lock = threading.Lock()
_counts = dict.fromkeys(_KEYS, 0)


def bump(key: str, n: int = 1) -> None:
    """Add ``n`` to counter ``key``."""
    with _lock:
        _counts[key] = _counts.get(key, 0) + n


def stats() -> dict[str, int]:
    """A copy of the counters: ``ssh_connections``, ``agent_starts``, ``uploads``, ``calls``
    (``Agent.call``s) and ``requests`` (round trips to agents: a batch of reads is one).

    Example: ``stats()["ssh_connections"]`` → ``1`` after many calls to one host.
    """
    with _lock:
        return dict(_counts)


def reset_stats() -> None:
    """Zero every counter (tests)."""
    with _lock:
        for key in _counts:
            _counts[key] = 0


def trace(host: str, what: str, op: str, started: float) -> None:
    """Append one timing line (``started``: a ``time.monotonic()``) when tracing is on."""
    path = os.environ.get("VLANINFRA_TRACE")
    if not path:
        return
    took = time.monotonic() - started
    line = json.dumps({"t": round(time.time() - took, 4), "pid": os.getpid(), "host": host,
                       "what": what, "op": op, "s": round(took, 4)})
    with _lock, open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
