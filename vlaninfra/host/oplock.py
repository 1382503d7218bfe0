"""One change of a Docker object at a time on a host, whichever agent makes it.

An agent whose controller is gone (an interrupted run, a deadline that expired) still
finishes the ops it started: an op is never cut in half, and a failed create removes what it
made. The next run's agent may meanwhile reach the same object: adopt a container the first
agent is about to remove again, or find it attached to the network it was asked to remove.
So every change of a container or network holds an exclusive ``flock`` on a file named by the
Docker socket, the kind and the name, in ``/run/vlaninfra/locks`` (0700, root's; namespace
lab hosts share ``/run`` but not a Docker socket). A change of the same object waits for it,
for at most half the Docker deadline (the rest is left for the change itself), then fails
``EBUSY`` saying an earlier change is still under way. The file is removed when its holder
is done; a holder that dies releases it with its descriptor.

An agent that cannot make that directory (not root: a Docker-group user) changes objects
without these locks, as before, and logs that once.

Example::

    with changing(ctx, "container", "web"):
        ...  # create, start, or roll back "web"; no other agent changes it meanwhile
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import logging
import operator
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError
from vlaninfra.host.rundir import RUN_DIR, private_dir

__all__ = ["LOCK_DIR", "changes", "changing", "sweep", "wait_for"]

_A = TypeVar("_A")
_R = TypeVar("_R")

log = logging.getLogger(__name__)

LOCK_DIR = RUN_DIR / "locks"
_POLL = 0.05
"""Seconds between tries of a lock another agent holds."""
_unlocked = threading.Event()
"""Set once this agent found it cannot make `LOCK_DIR` (logged once)."""


def _path(ctx: Context, kind: str, name: str) -> Path:
    key = f"{os.path.realpath(ctx.docker_socket)}\0{kind}\0{name}"
    return LOCK_DIR / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


def _try(path: Path) -> int | None:
    """The descriptor of ``path`` locked, or None while another holds it. A file its holder
    removed (or replaced) meanwhile is not the lock any more: open it again."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            same = os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _acquire(ctx: Context, kind: str, name: str, started: float) -> tuple[Path, int] | None:
    """The lock of ``kind`` ``name``, waiting for another holder until half the Docker
    deadline after ``started`` (then ``EBUSY``); None when this agent cannot lock."""
    try:
        private_dir(LOCK_DIR, "the change locks")
    except (OpError, OSError) as exc:
        if not _unlocked.is_set():
            _unlocked.set()
            log.warning("changing Docker objects without change locks: %s", exc)
        return None
    path = _path(ctx, kind, name)
    while (fd := _try(path)) is None:
        waited = time.monotonic() - started
        if waited > ctx.docker_timeout / 2:
            raise OpError(errno.EBUSY, f"{kind} {name!r}: another change of it is still under "
                          f"way on this host after {waited:.0f} s (an earlier run's agent "
                          "finishing what it started after its run was interrupted or gave "
                          "up); nothing was changed: run this again once it is done",
                          kind=kind, name=name)
        time.sleep(_POLL)
    if time.monotonic() - started > 1:
        log.info("%s %s: waited %.1f s for another change of it", kind, name,
                 time.monotonic() - started)
    return path, fd


def _release(held: tuple[Path, int] | None) -> None:
    if held is not None:
        path, fd = held
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # while still held: a waiter then opens the path anew
        os.close(fd)


@contextlib.contextmanager
def changing(ctx: Context, kind: str, name: str) -> Iterator[None]:
    """Hold the change lock of ``kind`` ``name`` (e.g. "container", "web") on this host's
    Docker; waits for another holder up to half the Docker deadline, then ``EBUSY``."""
    held = _acquire(ctx, kind, name, time.monotonic())
    try:
        yield
    finally:
        _release(held)


def wait_for(ctx: Context, kind: str, names: list[str]) -> None:
    """Wait until no change of these objects is under way (each lock taken and given back at
    once), for half the Docker deadline in all; ``EBUSY`` as `changing` when one stays held."""
    started = time.monotonic()
    for name in names:
        _release(_acquire(ctx, kind, name, started))


def changes(kind: str, field: str,
            ) -> Callable[[Callable[[Context, _A], _R]], Callable[[Context, _A], _R]]:
    """The op holds `changing` on the ``kind`` object its args' ``field`` (a dotted path)
    names while it runs.

    Example: ``@changes("container", "spec.name")`` on ``container_create``
    """
    name_of = operator.attrgetter(field)

    def wrap(op: Callable[[Context, _A], _R]) -> Callable[[Context, _A], _R]:
        @functools.wraps(op)
        def run(ctx: Context, args: _A) -> _R:
            with changing(ctx, kind, str(name_of(args))):
                return op(ctx, args)
        return run
    return wrap


def sweep() -> int:
    """Remove the lock files no agent holds (left by agents killed during a change: `vlaninfra
    lab down`); returns how many."""
    removed = 0
    for path in LOCK_DIR.glob("*.lock"):
        with contextlib.suppress(OSError):
            if (fd := _try(path)) is not None:
                _release((path, fd))
                removed += 1
    return removed
