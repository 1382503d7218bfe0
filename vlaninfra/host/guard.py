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
plumbing back exactly as in the snapshot: links of the stack that the snapshot lacks are
removed, missing or changed ones recreated (same MAC and alias), MACs, MTUs, addresses and
states repaired, proto-57 routes made exactly the snapshot's. Links of anyone else are never
touched; a link the snapshot names that is no longer the stack's is left alone and reported.

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
import ipaddress
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

from vlaninfra.host import marks
from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import MAIN_TABLE, RT_SCOPE, read_links, read_routes

__all__ = [
    "GUARD_DIR",
    "MAX_SECONDS",
    "arm",
    "disarm",
    "forget",
    "pidfiles",
    "plan_links",
    "plan_routes",
    "restore",
    "snapshot",
    "status",
]

log = logging.getLogger("vlaninfra.host.guard")

GUARD_DIR = Path("/run/vlaninfra/guard")
MAX_SECONDS = 86400.0
"""The longest window a guard accepts (one day)."""
_POLL = 0.25
"""How often a waiting restorer looks at its file (disarmed? deadline moved?)."""
LINK_KEYS = ("name", "kind", "parent", "mode", "flag", "vlan_id", "mac", "mtu", "up",
             "addresses", "alias")
_SHAPE = ("kind", "parent", "mode", "flag", "vlan_id")
"""What a link cannot change in place: a difference means delete and create again."""
_PROTO = "vlaninfra"
_SCOPE_NUMBER = {name: number for number, name in RT_SCOPE.items()}


# -- what is owned, and what to do about it (pure) -------------------------------------------


def _owned(link: Mapping[str, Any], owner: str) -> bool:
    mark = marks.of_alias(link.get("alias"))
    return mark is not None and mark.owner == owner


def snapshot_of(links: Sequence[Mapping[str, Any]], routes: Sequence[Mapping[str, Any]],
                owner: str) -> dict[str, Any]:
    """The part of a host's links and routes a guard keeps: `owner`'s links, proto-57 routes."""
    return {
        "links": [{k: link.get(k) for k in LINK_KEYS} for link in links if _owned(link, owner)],
        "routes": [dict(r) for r in routes if r.get("proto") == _PROTO],
    }


def plan_links(want: Sequence[Mapping[str, Any]], have: Sequence[Mapping[str, Any]],
               owner: str) -> tuple[list[str], list[dict[str, Any]], list[str]]:
    """What to do to `have` (the links now) to get `want` (the snapshot's owned links):
    ``(delete, create, skipped)``. Deletes are names, shims before 802.1Q parents; creates are
    snapshot links, 802.1Q parents first; `skipped` says what was left alone and why. Only
    `owner`'s links are deleted; a name the snapshot holds that is now someone else's link is
    skipped; a parent that still carries a link that stays is not deleted.

    Example: ``plan_links([], [shim0 owned], "p/s")`` → ``(["shim0"], [], [])``
    """
    wanted = {w["name"]: w for w in want}
    now = {h["name"]: h for h in have}
    delete: list[str] = []
    skipped: list[str] = []
    foreign: set[str] = set()
    for name, link in now.items():
        if not _owned(link, owner):
            if name in wanted:
                foreign.add(name)
                mark = marks.of_alias(link.get("alias"))
                whose = f"owned by stack {mark.owner!r}" if mark else "not owned by vlaninfra"
                skipped.append(f"link {name!r} is now {whose}: left alone")
            continue
        w = wanted.get(name)
        if w is None or any(link.get(k) != w.get(k) for k in _SHAPE):
            delete.append(name)
    # Deleting a link deletes the links on it: ours go too (and come back if the snapshot
    # has them); a parent that carries someone else's link stays.
    for name in [n for n in delete if now[n].get("kind") == "vlan"]:
        children = [c for c, link in now.items() if link.get("parent") == name]
        kept = sorted(c for c in children if not _owned(now[c], owner))
        if kept:
            delete.remove(name)
            skipped.append(f"link {name!r} still carries {', '.join(kept)}: not deleted")
        else:
            delete += [c for c in children if c not in delete]
    delete.sort(key=lambda n: (now[n].get("kind") == "vlan", n))
    gone = set(delete) | {c for c, link in now.items() if link.get("parent") in delete}
    create = [dict(w) for name, w in wanted.items()
              if (name not in now or name in gone) and name not in foreign]
    create.sort(key=lambda w: (w.get("kind") != "vlan", w["name"]))
    return delete, create, skipped


def _route_key(r: Mapping[str, Any]) -> tuple[Any, ...]:
    return (r.get("dst"), r.get("gateway"), r.get("dev"), r.get("metric"))


def plan_routes(want: Sequence[Mapping[str, Any]], have: Sequence[Mapping[str, Any]],
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(delete, add)``: proto-57 routes now that the snapshot lacks, snapshot routes that are
    missing (same destination, next hop, device and metric). Other protocols' routes are
    never in either list.

    Example: ``plan_routes([], [{"dst": "198.18.5.0/24", "proto": "vlaninfra", ...}])``
    → ``([that route], [])``
    """
    wanted = {_route_key(r) for r in want}
    present = {_route_key(r) for r in have if r.get("proto") == _PROTO}
    return ([dict(r) for r in have if r.get("proto") == _PROTO and _route_key(r) not in wanted],
            [dict(r) for r in want if _route_key(r) not in present])


# -- applying it (netlink) --------------------------------------------------------------------


def _index(ipr: Any, name: str) -> int:
    return int(ipr.link("get", ifname=name)[0]["index"])


def _create_link(ipr: Any, w: Mapping[str, Any]) -> None:
    spec: dict[str, Any] = {"ifname": w["name"], "kind": w["kind"],
                            "link": _index(ipr, w["parent"])}
    if w["kind"] == "vlan":
        spec["vlan_id"] = w["vlan_id"]
    elif w["kind"] == "macvlan":
        spec["macvlan_mode"] = w["mode"]
    elif w["kind"] == "ipvlan":
        spec["ipvlan_mode"] = {"l2": 0, "l3": 1, "l3s": 2}[w["mode"]]
        spec["ipvlan_flags"] = {"bridge": 0, "private": 1, "vepa": 2}[w.get("flag") or "bridge"]
    else:
        raise OpError(errno.EINVAL, f"link {w['name']!r}: cannot recreate kind {w['kind']!r}")
    if w.get("mac") and w["kind"] != "ipvlan":  # an ipvlan link always has its parent's MAC
        spec["address"] = w["mac"]
    ipr.link("add", **spec)
    ipr.link("set", index=_index(ipr, w["name"]), ifalias=w.get("alias") or "")


def _repair_link(ipr: Any, w: Mapping[str, Any], now: Mapping[str, Any],
                 done: list[str]) -> None:
    from vlaninfra.host.ops import _converge_addresses

    index = _index(ipr, w["name"])
    if w.get("mac") and w["kind"] != "ipvlan" and now.get("mac") != w["mac"]:
        ipr.link("set", index=index, address=w["mac"])
        done.append(f"{w['name']}: MAC {w['mac']}")
    if w.get("mtu") and now.get("mtu") != w["mtu"]:
        ipr.link("set", index=index, mtu=w["mtu"])
        done.append(f"{w['name']}: MTU {w['mtu']}")
    if now.get("alias") != w.get("alias"):
        ipr.link("set", index=index, ifalias=w.get("alias") or "")
    if sorted(now.get("addresses") or []) != sorted(w.get("addresses") or []):
        _converge_addresses(ipr, index, [ipaddress.ip_interface(a) for a in w["addresses"]])
        done.append(f"{w['name']}: addresses {', '.join(w['addresses']) or 'none'}")
    if bool(now.get("up")) != bool(w.get("up")):
        ipr.link("set", index=index, state="up" if w.get("up") else "down")
        done.append(f"{w['name']}: {'up' if w.get('up') else 'down'}")


def _route_spec(ipr: Any, r: Mapping[str, Any]) -> dict[str, Any]:
    net = ipaddress.ip_network(r["dst"])
    spec: dict[str, Any] = {
        "dst": str(net.network_address), "dst_len": net.prefixlen, "table": MAIN_TABLE,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6,
        "proto": marks.RTPROT_VLANINFRA, "scope": _SCOPE_NUMBER.get(r.get("scope") or "", 0),
    }
    if r.get("gateway"):
        spec["gateway"] = r["gateway"]
    if r.get("dev"):
        spec["oif"] = _index(ipr, r["dev"])
    if r.get("metric") is not None:
        spec["priority"] = r["metric"]
    return spec


def restore(ipr: Any, snap: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """Puts `owner`'s links and the proto-57 routes back as in `snap`; returns
    ``{"done": [...], "skipped": [...], "errors": [...]}``. Each step is tried on its own, so
    one failure does not stop the rest. Idempotent: on a host that matches, nothing is done.

    Example: ``restore(ipr, snapshot(ctx, "vlaninfra/prod"), "vlaninfra/prod")["done"]``
    """
    out: dict[str, list[str]] = {"done": [], "skipped": [], "errors": []}

    def step(what: str, fn: Any, *args: Any, **kwargs: Any) -> bool:
        try:
            fn(*args, **kwargs)
            return True
        except Exception as exc:  # report it, go on with the rest
            out["errors"].append(f"{what}: {type(exc).__name__}: {exc}")
            return False

    delete, _, skipped = plan_links(snap["links"], read_links(ipr), owner)
    out["skipped"] += skipped
    for name in delete:
        if step(f"delete link {name}", ipr.link, "del", ifname=name):
            out["done"].append(f"deleted link {name}")
    _, create, _ = plan_links(snap["links"], read_links(ipr), owner)
    for w in create:
        if step(f"create link {w['name']}", _create_link, ipr, w):
            out["done"].append(f"created link {w['name']} ({w['kind']} on {w['parent']})")
    have = {link["name"]: link for link in read_links(ipr)}
    for w in sorted(snap["links"], key=lambda w: (w.get("kind") != "vlan", w["name"])):
        if w["name"] in have and _owned(have[w["name"]], owner):
            changes: list[str] = []
            if step(f"repair link {w['name']}", _repair_link, ipr, w, have[w["name"]], changes):
                out["done"] += changes
    drop, add = plan_routes(snap["routes"], read_routes(ipr))
    for r in drop:
        if step(f"delete route {r['dst']}", lambda r=r: ipr.route("del", **_route_spec(ipr, r))):
            out["done"].append(f"deleted route {r['dst']} via {r.get('gateway') or r.get('dev')}")
    for r in add:
        if step(f"add route {r['dst']}", lambda r=r: ipr.route("add", **_route_spec(ipr, r))):
            out["done"].append(f"added route {r['dst']} via {r.get('gateway') or r.get('dev')}")
    return out


# -- files ------------------------------------------------------------------------------------


def _netns_inode() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _base(owner: str) -> Path:
    digest = hashlib.sha256(owner.encode()).hexdigest()[:12]
    return GUARD_DIR / f"{_netns_inode()}-{digest}"


def _private_dir() -> None:
    """``/run/vlaninfra/guard``: 0700, ours, no symlink, in a directory only we may write:
    nobody else may plant or read a guard."""
    for d in (GUARD_DIR.parent, GUARD_DIR):
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            st = d.lstat()
        except PermissionError:
            raise OpError(errno.EACCES, f"cannot create {d}: the guard needs root on the host "
                                        "(give the host `sudo: true` in its ssh settings)"
                          ) from None
        # /run/vlaninfra may be shared with other tools (readable); the guard's own is 0700.
        mask = 0o077 if d == GUARD_DIR else 0o022
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & mask:
            raise OpError(errno.EPERM, f"{d} is not a directory of this user closed to others "
                                       "(a symlink, or writable by others): remove it and retry")


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


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: Mapping[str, Any]) -> None:
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


def _stop_restorer(state: Mapping[str, Any]) -> None:
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
            result.update(token=token, at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                          late_ms=round((time.monotonic() - deadline) * 1000, 1))
            log.warning("guard %s not confirmed in time: plumbing restored: %s", token, result)
            _write(base.with_name(base.name + ".fired.json"), result)
            state_path.unlink(missing_ok=True)
    finally:
        Path(f"{base}.pid").unlink(missing_ok=True)


# -- ops --------------------------------------------------------------------------------------


def _check(owner: object, token: object) -> None:
    if not isinstance(owner, str) or not owner or not isinstance(token, str) or not token:
        raise OpError(errno.EINVAL, "guard: owner and token are non-empty strings")


def snapshot(ctx: Context, owner: str) -> dict[str, Any]:
    """What a guard of `owner` would keep now: `owner`'s links and the proto-57 routes."""
    with ctx.netlink() as ipr:
        return snapshot_of(read_links(ipr), read_routes(ipr), owner)


def arm(ctx: Context, owner: str, token: str, seconds: float) -> dict[str, Any]:
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
    _private_dir()
    base = _base(owner)
    state_path = base.with_name(base.name + ".json")
    with _locked(base) as lock_fd:
        state = _read(state_path)
        if state is not None and state.get("token") == token:
            return _describe(state, again=True)
        if state is not None:
            _stop_restorer(state)
            log.info("guard %s replaces guard %s", token, state.get("token"))
        base.with_name(base.name + ".fired.json").unlink(missing_ok=True)
        state = {"owner": owner, "token": token, "deadline": time.monotonic() + float(seconds),
                 "armed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                 "snapshot": snapshot(ctx, owner)}
        _write(state_path, state)
        try:
            state["pid"], state["pid_start"] = _spawn(base, token, lock_fd)
        except BaseException:
            state_path.unlink(missing_ok=True)
            raise
        _write(state_path, state)
        return _describe(state, again=False)


def _describe(state: Mapping[str, Any], again: bool) -> dict[str, Any]:
    return {"armed": True, "again": again, "token": state["token"], "pid": state.get("pid"),
            "deadline_in": round(float(state["deadline"]) - time.monotonic(), 2),
            "links": sorted(link["name"] for link in state["snapshot"]["links"]),
            "routes": len(state["snapshot"]["routes"])}


def disarm(ctx: Context, owner: str, token: str | None = None) -> dict[str, Any]:
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


def status(ctx: Context, owner: str) -> dict[str, Any]:
    """`owner`'s guard: ``{"armed": bool, "token", "deadline_in", "fired": {...} | None}``."""
    _check(owner, "any")
    base = _base(owner)
    state = _read(base.with_name(base.name + ".json"))
    fired = _read(base.with_name(base.name + ".fired.json"))
    if state is None:
        return {"armed": False, "fired": fired}
    return {**_describe(state, again=False), "fired": fired}
