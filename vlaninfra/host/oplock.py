"""One change of a Docker object at a time on a host, whichever agent makes it.

An agent whose controller is gone (an interrupted run, a deadline that expired) still finishes
the ops it started: an op is never cut in half, and a failed create removes what it made. The
next run's agent may meanwhile reach the same object: adopt a container the first agent is
about to remove again, or find it attached to the network it was asked to remove. So each
Docker change op holds an exclusive ``flock`` on a file named by the Docker socket, the kind
and the name, in ``/run/vlaninfra/locks`` (0700, root's; namespace lab hosts share ``/run`` but
not a Docker socket): a container's create, start, update, connect, disconnect and remove; a
network's create and remove (which also waits for changes of the containers it finds attached,
`wait_for`); and a network's endpoints while a container leaves it (one at a time per network,
moby/moby#43286: `docker_ops._leave`). A change of the same object waits for it, all the waits
of one op together for at most half the Docker deadline counted from the request's arrival (the
rest is left for the op itself), then fails ``EBUSY`` naming the process that holds it. The
file holds its holder's pid and is removed when the holder is done; a holder that dies releases
it with its descriptor (a child the agent forks, the guard's restorer, closes the descriptors
it inherited). Locks are not re-entrant: a locked op must not call another on the same object.
Netlink changes (shims, VLAN parents, routes) take milliseconds and are not locked.

An agent that does not run as root (a Docker-group user) changes objects without these
locks, as before, and logs that once.

Example::

    with changing(ctx, "container", "web"):
        ...  # create, start, or roll back "web"; no other agent changes it meanwhile
"""

from __future__ import annotations

import contextlib
import errno
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
from vlaninfra.host.rundir import RUN_DIR, private_dir, try_lock

__all__ = ["LOCK_DIR", "changes", "changing", "counted_from", "path_of", "sweep", "wait_for"]

_A = TypeVar("_A")
_R = TypeVar("_R")

log = logging.getLogger(__name__)

LOCK_DIR = RUN_DIR / "locks"
_POLL = 0.05
"""Seconds between tries of a lock another agent holds."""
_local = threading.local()
"""``started``: when the request of this thread's op arrived (`counted_from`), else when its
outermost change began: the op's waits share one budget from then."""
_warned = threading.Lock()
"""Taken (never released) by the first op that found it may not lock: logged once."""


def _close_in_child() -> None:
    # A forked child (the guard's restorer) must not keep this process's locks held: every
    # descriptor of a file in LOCK_DIR, also one another thread had just locked.
    with contextlib.suppress(OSError):
        for fd in os.listdir("/proc/self/fd"):
            with contextlib.suppress(OSError, ValueError):
                if os.readlink(f"/proc/self/fd/{fd}").startswith(f"{LOCK_DIR}/"):
                    os.close(int(fd))


os.register_at_fork(after_in_child=_close_in_child)


def path_of(ctx: Context, kind: str, name: str) -> Path:
    """The lock file of ``kind`` ``name`` on ``ctx``'s Docker."""
    key = f"{os.path.realpath(ctx.docker_socket)}\0{kind}\0{name}"
    return LOCK_DIR / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock"


def _as_root() -> bool:
    return os.geteuid() == 0


def _may_lock() -> bool:
    """Whether this agent keeps change locks: not when it does not run as root (said once:
    ``/run`` is root's); a fault of the directory is an error."""
    if not _as_root():
        if _warned.acquire(blocking=False):
            log.warning("changing Docker objects without change locks: the agent does not run "
                        "as root (give the host `sudo: true` in its ssh settings)")
        return False
    private_dir(LOCK_DIR, "a change lock")
    return True


def _holder(path: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return f" (by process {int(path.read_text())} on this host)"
    return ""


def _acquire(ctx: Context, kind: str, name: str, what: str, at_least: float,
             ) -> tuple[Path, int] | None:
    """The lock of ``kind`` ``name``, waiting for another holder until half the Docker
    deadline after the request arrived (`counted_from`), else after this thread's outermost
    change began, but ``at_least`` seconds; then ``EBUSY`` naming ``what``. None when it may
    not lock."""
    if not _may_lock():
        return None
    began = time.monotonic()
    started = getattr(_local, "started", None) or began
    budget = ctx.docker_timeout / 2
    path = path_of(ctx, kind, name)
    while (fd := try_lock(path)) is None:
        now = time.monotonic()
        if now - started > budget and now - began > at_least:
            queued = (" (its wait budget, half the Docker deadline, was spent while it queued "
                      "behind the agent's other ops)" if began - started > budget else "")
            raise OpError(errno.EBUSY, f"{what}: another change of it{_holder(path)} is still "
                          f"under way after {now - began:.1f} s{queued} (an agent finishing "
                          "the ops of a run that was interrupted or gave up, or another run); "
                          "nothing was changed: run this again once it is done",
                          kind=kind, name=name)
        time.sleep(_POLL)
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    if time.monotonic() - began > 1:
        log.info("%s %s: waited %.1f s for another change of it", kind, name,
                 time.monotonic() - began)
    return path, fd


def _release(held: tuple[Path, int] | None) -> None:
    if held is not None:
        path, fd = held
        try:
            path.unlink()  # while still held: a waiter then opens the path anew
        except OSError as exc:
            if not isinstance(exc, FileNotFoundError):
                log.warning("could not remove the change lock %s: %s", path, exc)
        finally:
            os.close(fd)


@contextlib.contextmanager
def changing(ctx: Context, kind: str, name: str, what: str | None = None,
             at_least: float = 0.0) -> Iterator[None]:
    """Hold the change lock of ``kind`` ``name`` (e.g. "container", "web") on this host's
    Docker; waits for another holder up to half the Docker deadline (but ``at_least``
    seconds), then ``EBUSY`` naming ``what`` (default: the kind and name)."""
    outermost = getattr(_local, "started", None) is None
    if outermost:
        _local.started = time.monotonic()
    try:
        held = _acquire(ctx, kind, name, what or f"{kind} {name!r}", at_least)
        try:
            yield
        finally:
            _release(held)
    finally:
        if outermost:
            del _local.started


@contextlib.contextmanager
def counted_from(arrived: float) -> Iterator[None]:
    """The waits of the changes this thread makes meanwhile count from ``arrived`` (monotonic
    seconds: when the agent read the request), so time the op queued behind the agent's busy
    workers is in its budget too, as it is in the controller's deadline."""
    before = getattr(_local, "started", None)
    _local.started = arrived
    try:
        yield
    finally:
        _local.started = before


def wait_for(ctx: Context, kind: str, names: list[str]) -> None:
    """Wait until no change of these objects is under way (each lock taken and given back at
    once), within the budget of the change this thread makes; ``EBUSY`` as `changing`."""
    for name in names:
        with changing(ctx, kind, name):
            pass


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
            if path.exists() and (fd := try_lock(path)) is not None:
                _release((path, fd))
                removed += 1
    return removed
