"""Answers shared by the provider processes of ONE engine run (its preview and update phase).

The engine starts a provider process per phase; both are children of the same ``pulumi``
command, so that process (pid and start time) names the run. An answer remembered here by the
preview serves the update phase of the same ``pulumi up`` and nothing else: another command
(the next run's preview) has another ``pulumi`` process and never sees it. Only provider
processes that use brokers (the provider server) take part; anywhere else nothing is shared.

Entries live in ``<runtime dir>/memo-<run>.json`` (the broker's private 0700 directory), keyed
by a sha256 of the caller's key (never the key itself), each with the wall time it was made.
Files of finished runs are removed by the next writer.

Example: ``remember("probe", {key: answer})`` in the preview, ``recall("probe", [key], 30)``
in the update phase.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from vlaninfra.transport._broker import brokering, runtime_dir

__all__ = ["recall", "remember", "run_scope", "sweep"]

KEEP = 600.0
"""Seconds after which a memo file is removed even if its ``pulumi`` process still runs."""
_lock = threading.Lock()


def _stat(pid: int) -> tuple[str, str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    comm = text[text.find("(") + 1:text.rfind(")")]
    return comm, text.rsplit(")", 1)[1].split()[19]  # field 22: start time


def run_scope() -> str | None:
    """``"<pid>-<start time>"`` of the ``pulumi`` command this provider process serves, or
    None (not a brokered provider process of the engine)."""
    if not brokering():
        return None
    found = _stat(os.getppid())
    if found is None or found[0] != "pulumi":
        return None
    return f"{os.getppid()}-{found[1]}"


def _file() -> Path | None:
    scope = run_scope()
    where = runtime_dir() if scope else None
    return where / f"memo-{scope}.json" if where is not None else None


Key = tuple[str, ...]
K = TypeVar("K", bound=Key)


def _digest(kind: str, key: Key) -> str:
    return hashlib.sha256("\0".join((kind, *key)).encode()).hexdigest()


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def recall(kind: str, keys: Iterable[K], max_age: float) -> dict[K, Any]:
    """The answers for ``keys`` this run remembered under ``kind`` within ``max_age`` s."""
    path = _file()
    if path is None:
        return {}
    data = _load(path)
    now = time.time()
    out: dict[K, Any] = {}
    for key in keys:
        entry = data.get(_digest(kind, key))
        if isinstance(entry, list) and len(entry) == 2 and now - entry[0] < max_age:
            out[key] = entry[1]
    return out


def remember(kind: str, answers: Mapping[Key, Any]) -> None:
    """Keep ``answers`` (JSON values) for the other phase of this run."""
    path = _file()
    if path is None or not answers:
        return
    now = time.time()
    with _lock:
        data = _load(path)
        data.update({_digest(kind, k): [now, v] for k, v in answers.items()})
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp, path)
        sweep(path)


def sweep(keep: Path | None = None) -> None:
    """Remove the memo files (but ``keep``) of ``pulumi`` commands that have ended."""
    where = runtime_dir()
    for other in where.glob("memo-*.json") if where is not None else []:
        if other == keep:
            continue
        pid, _, start = other.stem[len("memo-"):].partition("-")
        found = _stat(int(pid)) if pid.isdigit() else None
        with contextlib.suppress(OSError):
            if found is None or found[1] != start or time.time() - other.stat().st_mtime > KEEP:
                other.unlink()
