"""Process-wide counters for tests and benchmarks."""

from __future__ import annotations

import threading

__all__ = ["bump", "reset_stats", "stats"]

_KEYS = ("ssh_connections", "agent_starts", "uploads", "calls")
_lock = threading.Lock()
_counts = dict.fromkeys(_KEYS, 0)


def bump(key: str, n: int = 1) -> None:
    """Add ``n`` to counter ``key``."""
    with _lock:
        _counts[key] = _counts.get(key, 0) + n


def stats() -> dict[str, int]:
    """A copy of the counters: ``ssh_connections``, ``agent_starts``, ``uploads``, ``calls``.

    Example: ``stats()["ssh_connections"]`` → ``1`` after many calls to one host.
    """
    with _lock:
        return dict(_counts)


def reset_stats() -> None:
    """Zero every counter (tests)."""
    with _lock:
        for key in _counts:
            _counts[key] = 0
