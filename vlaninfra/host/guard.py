"""Commit-confirmed guards: a host puts its own network plumbing back unless confirmed in time.

A change can cut the very path the controller uses to reach a host, so the host must be able
to undo its own part without help. Before a ``vlaninfra up --confirm-within`` applies, the
controller asks every host (and managed router) once to ``guard.arm``: the agent snapshots
the plumbing the calling stack owns — links whose alias names the stack (shims, 802.1Q
parents: kind, parent, mode, flag, VLAN id, MAC, MTU, state, addresses, alias) and every
route of vlaninfra's protocol (57) in the main table — into a root-only file under
``/run/vlaninfra/guard/`` and starts a detached *restorer* (double fork and ``setsid`` from
the agent, which has this code in memory: no systemd needed, and it outlives the SSH
session). At the deadline, unless ``guard.disarm`` came first, the restorer puts the owned
plumbing back exactly as in the snapshot (`vlaninfra.host.restore`).

Files (per network namespace and stack; namespace-lab hosts share one ``/run``):
``<netns-inode>-<sha12(owner)>.json`` (the armed guard: owner, token, deadline, snapshot),
``.pid`` (the restorer's pid, for ``vlaninfra lab down``), ``.fired.json`` (what a restorer
did), ``.log`` (its log), ``.lock`` (``flock``: arm, disarm and restore exclude each other).

Example::

    arm(ctx, owner="vlaninfra/prod", token="3f2a9c01", seconds=60)
    ...                                   # the change is applied, verified
    disarm(ctx, owner="vlaninfra/prod", token="3f2a9c01")   # confirmed: kept
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import signal
import socket
import stat
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from vlaninfra.host import persist
from vlaninfra.host.context import Context, warmed_up
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import read_links, read_routes
from vlaninfra.host.restore import restore, snapshot_of
from vlaninfra.host.rundir import RUN_DIR, private_dir

__all__ = [
    "GUARD_DIR",
    "MAX_SECONDS",
    "arm",
    "disarm",
    "forget",
    "pidfiles",
    "snapshot",
    "status",
]

log = logging.getLogger("vlaninfra.host.guard")

State = dict[str, Any]
"""A guard's state file as read back (JSON written by :func:`arm`: owner, token, deadline,
snapshot, boot files, restorer pid): the one untyped value here."""
GUARD_DIR = RUN_DIR / "guard"
MAX_SECONDS = 86400.0
"""The longest window a guard accepts (one day)."""
_POLL = 0.25
"""How often a waiting restorer looks at its file (disarmed? deadline moved?)."""
# -- files ------------------------------------------------------------------------------------


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _base(owner: str) -> Path:
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return GUARD_DIR / f"{_netns_inode()}-{digest}"


@contextlib.contextmanager
def _locked(base: Path) -> Iterator[int]:
    """Holds the guard's lock; yields its descriptor (a forked restorer must close it, or it
    would hold the lock too)."""
    fd = os.open(f"{base}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read(path: Path) -> State | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: Mapping[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _start_time(pid: int) -> int | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
        return int(text[text.rindex(")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def _stop_restorer(state: State) -> None:
    """SIGTERM the guard's restorer, if that very process still runs (pid and start time)."""
    pid, started = state.get("pid"), state.get("pid_start")
    if isinstance(pid, int) and pid > 1 and started is not None and _start_time(pid) == started:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def pidfiles(netns_inodes: Sequence[int]) -> list[Path]:
    """The restorers' pidfiles of guards armed in these network namespaces (`lab down` ends
    those processes).

    Example: ``pidfiles([4026532301])`` → ``[Path("/run/vlaninfra/guard/4026532301-…pid")]``
    """
    if not GUARD_DIR.is_dir():
        return []
    prefixes = tuple(f"{ino}-" for ino in netns_inodes)
    return sorted(p for p in GUARD_DIR.glob("*.pid") if p.name.startswith(prefixes))


def forget(netns_inodes: Sequence[int]) -> None:
    """Removes the guard files of these network namespaces (after `lab down` ended their
    restorers: the namespaces are gone, an inode number may be reused)."""
    if GUARD_DIR.is_dir():
        prefixes = tuple(f"{ino}-" for ino in netns_inodes)
        for p in GUARD_DIR.iterdir():
            if p.name.startswith(prefixes):
                p.unlink(missing_ok=True)


# -- the restorer -----------------------------------------------------------------------------


def _session_end(fd: int) -> bool:
    """Whether `fd` may be an end of the agent's session (a pipe, or a socket that is not
    netlink): stdin, the protocol stream, stderr, or a copy of one."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    if stat.S_ISFIFO(mode):
        return True
    if not stat.S_ISSOCK(mode):
        return False  # the agent's code (a memfd), an epoll, files
    sock = socket.socket(fileno=fd)
    try:
        return sock.family != socket.AF_NETLINK
    finally:
        sock.detach()


def _detach(base: Path) -> None:
    """Leave the agent's session, so its SSH channel can end: every pipe and non-netlink
    socket inherited from the agent (stdin, the protocol stream, stderr, asyncio's wake-up
    pairs) is replaced by /dev/null. Replaced, not closed: objects of the agent that still
    name those numbers must never close a descriptor the restorer opens later. stderr
    (logging) goes to the guard's log."""
    null = os.open(os.devnull, os.O_RDWR)
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd != null and (fd <= 2 or _session_end(fd)):
            os.dup2(null, fd)
    logfd = os.open(f"{base}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(logfd, 2)
    os.close(logfd)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _spawn(base: Path, token: str, lock_fd: int) -> tuple[int, int]:
    """Starts the restorer of guard `base` (double fork, new session); its (pid, start time)."""
    warmed_up()  # never fork in the middle of the agent's pyroute2 import
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # the agent has threads; the child uses none of them
        warnings.simplefilter("ignore", DeprecationWarning)
        child = os.fork()
    if child == 0:
        code = 0
        try:
            os.close(read_end)
            os.close(lock_fd)
            os.setsid()
            if os.fork() != 0:
                os._exit(0)
            Path(f"{base}.pid").write_text(f"{os.getpid()}\n")
            os.write(write_end, str(os.getpid()).encode())
            os.close(write_end)
            _detach(base)
            # A fresh thread: none of the forking thread's per-thread state (its netlink
            # socket, its event loop) is touched again.
            worker = threading.Thread(target=_wait_and_restore, args=(base, token))
            worker.start()
            worker.join()
        except BaseException:
            log.exception("guard restorer failed")
            code = 1
        finally:
            os._exit(code)
    os.close(write_end)
    os.waitpid(child, 0)
    with os.fdopen(read_end, "rb") as f:
        pid = int(f.read() or b"0")
    if pid <= 1:
        raise OpError(errno.ECHILD, "the guard's restorer did not start")
    return pid, _start_time(pid) or 0


def _wait_and_restore(base: Path, token: str) -> None:
    state_path = base.with_name(base.name + ".json")
    try:
        while True:
            state = _read(state_path)
            if state is None or state.get("token") != token:
                log.info("guard %s disarmed or replaced; exiting", token)
                return
            left = float(state["deadline"]) - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(_POLL, left))
        with _locked(base):
            state = _read(state_path)
            if state is None or state.get("token") != token:
                return
            deadline = float(state["deadline"])
            from pyroute2 import IPRoute

            with IPRoute() as ipr:
                result = restore(ipr, state["snapshot"], state["owner"])
            if "files" in state:  # what the host re-creates at boot goes back too
                try:
                    persist.put_back(persist.Store.from_env(), state["owner"], state["files"])
                except OpError as exc:
                    result["errors"].append(f"boot files: {exc}")
            fired = {**result, "token": token,
                     "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "late_ms": round((time.monotonic() - deadline) * 1000, 1)}
            log.warning("guard %s not confirmed in time: plumbing restored: %s", token, fired)
            _write(base.with_name(base.name + ".fired.json"), fired)
            state_path.unlink(missing_ok=True)
    finally:
        Path(f"{base}.pid").unlink(missing_ok=True)


# -- ops --------------------------------------------------------------------------------------


def _check(owner: object, token: object) -> None:
    if not isinstance(owner, str) or not owner or not isinstance(token, str) or not token:
        raise OpError(errno.EINVAL, "guard: owner and token are non-empty strings")


def snapshot(ctx: Context, owner: str) -> dict[str, list[dict[str, object]]]:
    """What a guard of `owner` would keep now: `owner`'s links and the proto-57 routes."""
    with ctx.netlink() as ipr:
        return snapshot_of(read_links(ipr), read_routes(ipr), owner)


def arm(ctx: Context, owner: str, token: str, seconds: float) -> dict[str, object]:
    """Keeps `owner`'s plumbing as it is now and starts a restorer that puts it back in
    `seconds` unless :func:`disarm` comes first. Arming again with the same token changes
    nothing (a retried call keeps the first snapshot); another token replaces the guard (its
    restorer ends, the snapshot is taken anew).

    Example: ``arm(ctx, "vlaninfra/prod", "3f2a9c01", 60)`` → ``{"armed": True, "links": 2,
    "routes": 3, "deadline_in": 60.0, ...}``
    """
    _check(owner, token)
    if (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
            or not 0 < seconds <= MAX_SECONDS):
        raise OpError(errno.EINVAL, f"guard: seconds must be 0-{MAX_SECONDS:g}, not {seconds!r}")
    private_dir(GUARD_DIR, "the guard")
    base = _base(owner)
    state_path = base.with_name(base.name + ".json")
    with _locked(base) as lock_fd:
        old = _read(state_path)
        if old is not None and old.get("token") == token:
            return _describe(old, again=True)
        if old is not None:
            _stop_restorer(old)
            log.info("guard %s replaces guard %s", token, old.get("token"))
        base.with_name(base.name + ".fired.json").unlink(missing_ok=True)
        state: State = {"owner": owner, "token": token,
                        "deadline": time.monotonic() + float(seconds),
                 "armed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "snapshot": snapshot(ctx, owner),
                 "files": persist.files_of(persist.Store.from_env(), owner)}
        _write(state_path, state)
        try:
            state["pid"], state["pid_start"] = _spawn(base, token, lock_fd)
        except BaseException:
            state_path.unlink(missing_ok=True)
            raise
        _write(state_path, state)
        return _describe(state, again=False)


def _describe(state: State, again: bool) -> dict[str, object]:
    return {"armed": True, "again": again, "token": state["token"], "pid": state.get("pid"),
            "deadline_in": round(float(state["deadline"]) - time.monotonic(), 2),
            "links": sorted(link["name"] for link in state["snapshot"]["links"]),
            "routes": len(state["snapshot"]["routes"])}


def disarm(ctx: Context, owner: str, token: str | None = None) -> dict[str, object]:
    """Ends `owner`'s guard (only the one armed with `token`, when given): the change is kept.
    ``{"disarmed": True}`` when a guard was waiting; ``{"disarmed": False, "fired": {...}}``
    when the restorer of the window `token` names had already put the plumbing back;
    ``{"disarmed": False}`` when there was none.

    Example: ``disarm(ctx, "vlaninfra/prod", "3f2a9c01")`` → ``{"disarmed": True, ...}``
    """
    _check(owner, token or "any")
    if not GUARD_DIR.is_dir():
        return {"disarmed": False, "fired": None}
    base = _base(owner)
    state_path = base.with_name(base.name + ".json")
    with _locked(base):
        state = _read(state_path)
        if state is not None and token in (None, state.get("token")):
            _stop_restorer(state)
            state_path.unlink(missing_ok=True)
            Path(f"{base}.pid").unlink(missing_ok=True)
            return {"disarmed": True, "token": state.get("token"), "fired": None}
        # What fired is news only to the run that asks for that very window (`confirm`).
        fired = _read(base.with_name(base.name + ".fired.json")) if token else None
        if fired is not None and fired.get("token") != token:
            fired = None
        return {"disarmed": False, "fired": fired}


def status(ctx: Context, owner: str) -> dict[str, object]:
    """`owner`'s guard: ``{"armed": bool, "token", "deadline_in", "fired": {...} | None}``."""
    _check(owner, "any")
    base = _base(owner)
    state = _read(base.with_name(base.name + ".json"))
    fired = _read(base.with_name(base.name + ".fired.json"))
    if state is None:
        return {"armed": False, "fired": fired}
    return {**_describe(state, again=False), "fired": fired}
