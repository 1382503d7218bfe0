"""The controller's watcher of a commit-confirmed window: a detached process (``python -m
vlaninfra.watcher watch STACK TOKEN DEADLINE PROJECT``, started by `vlaninfra.confirm.up`)
that at the deadline plus `WATCH_GRACE`, when the change is still pending, applies the
version it returns to again. Its files (pid, state, log) live under `watch_dir`.

Example::

    start_watcher(stack_of("prod", None, None), token, deadline)
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vlaninfra.engine import Engine, is_lab_stack, project_root, stack_file
from vlaninfra.errors import VlanInfraError
from vlaninfra.rollout import (
    Report,
    RolloutError,
    Stack,
    Step,
    last_verified,
    read_records,
    stack_of,
)
from vlaninfra.rollout import rollback as _rollback
from vlaninfra.window import iso, pending

__all__ = [
    "WATCH_GRACE",
    "expire",
    "start_watcher",
    "stop_watcher",
    "watch",
    "watch_base",
    "watch_dir",
    "watcher_pidfiles",
]

WATCH_GRACE = 2.0
"""Seconds after the deadline before the controller rolls back: the hosts have restored
their plumbing by then, so the two never change one link at the same time."""
_LOCK_RETRY = 600.0


def watch_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/run/vlaninfra/watch")
    return Path.home() / ".cache" / "vlaninfra" / "watch"


def _lab_instance(s: Stack) -> str | None:
    project = s.cwd or s.engine.root
    if not is_lab_stack(stack_file(project, s.name)):
        return None
    return os.environ.get("VLANINFRA_LAB_INSTANCE") or "default"


def watch_base(s: Stack) -> Path:
    project = (s.cwd or s.engine.root).resolve()
    digest = hashlib.sha256(f"{project}\0{s.name}".encode()).hexdigest()[:12]
    lab = _lab_instance(s)
    return watch_dir() / (f"lab-{lab}-{digest}" if lab else digest)


def watcher_pidfiles(lab_instance: str) -> list[Path]:
    """The pidfiles of controller watchers of stacks on lab instance `lab_instance` (`lab
    down` ends them: their rollback could only fail once the lab is gone)."""
    folder = watch_dir()
    return sorted(folder.glob(f"lab-{lab_instance}-*.pid")) if folder.is_dir() else []


def start_watcher(s: Stack, token: str, deadline: float) -> None:
    base = watch_base(s)
    base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    stop_watcher(s, None)
    project = (s.cwd or s.engine.root).resolve()
    fd = os.open(f"{base}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with open(fd, "a", encoding="utf-8") as log:
        log.write(f"{iso(time.time())} watching stack {s.name} (token {token}): rollback at "
                  f"{iso(deadline + WATCH_GRACE)} unless confirmed\n")
        log.flush()
        proc = subprocess.Popen(
            [sys.executable, "-m", "vlaninfra.watcher", "watch", s.name, token, repr(deadline),
             str(project)], cwd=project, env=s.engine.env(s.name, s.cwd), stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    Path(f"{base}.pid").write_text(f"{proc.pid}\n")
    Path(f"{base}.json").write_text(json.dumps({"pid": proc.pid, "token": token,
                                                "deadline": deadline, "stack": s.name}))


def stop_watcher(s: Stack, token: str | None) -> None:
    base = watch_base(s)
    try:
        info = json.loads(Path(f"{base}.json").read_text())
    except (OSError, ValueError):
        return
    if token is not None and info.get("token") != token:
        return
    from vlaninfra.lab._procs import recorded_pid

    pid = recorded_pid(Path(f"{base}.pid"))
    if pid is not None and pid != os.getpid():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for suffix in (".pid", ".json"):
        Path(f"{base}{suffix}").unlink(missing_ok=True)


def expire(s: Stack, records: Sequence[Mapping[str, Any]],
            record: Mapping[str, Any]) -> tuple[Step, ...]:
    """Applies the version an expired pending change returns to (its guards aim at the same
    plumbing, so they are left as they are); the run marks the record expired."""
    to = record.get("return_to")
    if to is None:
        target = last_verified(records, before=int(record["version"]))
        to = int(target["version"]) if target else None
    if to is None:
        raise RolloutError(f"stack {s.name}: version {record['version']} was not confirmed, "
                           "and no verified version is recorded to return to")
    return _rollback(s.name, to=int(to), engine=s.engine, cwd=s.cwd).steps


def watch(stack: str, token: str, deadline: float, project: Path) -> int:
    s = stack_of(stack, Engine(project_root()), project)

    def say(text: str) -> None:
        print(f"{iso(time.time())} {text}", flush=True)

    try:
        while (left := deadline + WATCH_GRACE - time.time()) > 0:
            time.sleep(min(left, 5.0))
        give_up = time.monotonic() + _LOCK_RETRY
        while True:
            try:
                records = read_records(s)
                p = pending(records)
                if p is None or p.get("token") != token:
                    say(f"stack {stack}: no change of token {token} is pending (confirmed, "
                        "rolled back or failed): nothing to do")
                    return 0
                say(f"stack {stack}: version {p['version']} was not confirmed by "
                    f"{p['deadline']}: applying version {p.get('return_to')} again")
                started = time.monotonic()
                steps = expire(s, records, p)
                report = Report(stack, "rollback", steps, "")
                say(f"rollback took {time.monotonic() - started:.1f} s:\n{report.text()}")
                return 0 if report.ok else 1
            except VlanInfraError as err:
                if "locked" not in str(err) or time.monotonic() > give_up:
                    say(f"rollback failed: {err}")
                    return 1
                say("the stack is locked (another run): trying again in 5 s")
                time.sleep(5)
    finally:
        base = watch_base(s)
        with contextlib.suppress(OSError, ValueError):
            if json.loads(Path(f"{base}.json").read_text()).get("token") == token:
                for suffix in (".pid", ".json"):
                    Path(f"{base}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "watch":
        sys.exit(watch(sys.argv[2], sys.argv[3], float(sys.argv[4]), Path(sys.argv[5])))
    sys.exit("usage: python -m vlaninfra.watcher watch STACK TOKEN DEADLINE PROJECT")
