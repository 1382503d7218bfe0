"""Verification probes run on a host: what a layout promises, checked where it must hold.

One op, ``probe.run``, takes a list of checks and runs them in parallel under one deadline,
so verifying a host costs one round trip whatever the number of containers. Each check
answers ``{"ok": True | False | None, "ms": float, "detail": str}``; ``None`` means it could
not be judged here (no ``ping`` in the image, say) and is reported, not failed.

Kinds of check:
- ``container`` {name, network, ipv4, ipv6?, mac}: running, on ``network`` with those
  addresses and MAC;
- ``exec-ping`` {container, target}: ``ping`` from inside the container (its gateway);
- ``ping`` {target}: ``ping`` from the host's own namespace (its containers, through a shim);
- ``arp-unique`` {device, address, own}: an ARP probe (RFC 5227, sender 0.0.0.0) out of
  ``device``; any answer from a MAC outside ``own`` means another LAN device holds the address
  (that MAC is then the answer's ``answered_by``);
- ``ndp-unique`` {device, address, own}: the same for an IPv6 address, with neighbour
  solicitations (from the device's link-local address, else from ``::`` as in DAD);
- ``tcp`` {target, port, container?}: a TCP connect from the host's namespace, or from inside
  ``container``'s network namespace (entered by the agent: the image needs no tools).

``ping``, ``exec-ping`` and ``tcp`` take ``expect``: ``reach`` (the default) retries until the
deadline; ``blocked`` makes one attempt of ``BLOCKED_TIMEOUT`` seconds and passes when it fails.

Example: ``run(ctx, [{"kind": "ping", "target": "192.0.2.130"}], timeout=10)``
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any, TypedDict

from vlaninfra.host.context import Context
from vlaninfra.host.docker_api import NotFound
from vlaninfra.host.errors import OpError

__all__ = ["BLOCKED_TIMEOUT", "MAX_TIMEOUT", "run"]

MAX_TIMEOUT = 60.0
"""The longest deadline one ``probe.run`` accepts, in seconds."""
BLOCKED_TIMEOUT = 2.0
"""Seconds an ``expect: blocked`` check waits for an answer before it counts as blocked."""
_ETH_P_ARP = 0x0806
Check = dict[str, Any]
"""One check as the controller's request gives it (JSON: ``kind``, ``target``, ``expect``,
...): :func:`run` checks its fields before any runs, each kind reads the fields it needs."""


class _Answer(TypedDict):
    ok: bool | None
    ms: float
    detail: str


class Result(_Answer, total=False):
    """One check's answer: ``ok`` (None: could not tell), how long it took (``ms``), what was
    seen (``detail``); ``answered_by``: the MAC of another host that answers for the address
    (uniqueness checks)."""

    answered_by: str


def _result(ok: bool | None, started: float, detail: str = "") -> Result:
    return {"ok": ok, "ms": round((time.monotonic() - started) * 1000, 1), "detail": detail}


def _container(ctx: Context, check: Check, deadline: float) -> Result:
    started = time.monotonic()
    try:
        raw = ctx.docker().inspect_container(check["name"])
    except NotFound:
        return _result(False, started, "no such container")
    if not (raw.get("State") or {}).get("Running"):
        status = (raw.get("State") or {}).get("Status")
        return _result(False, started, f"not running (status {status})")
    nets = (raw.get("NetworkSettings") or {}).get("Networks") or {}
    net = nets.get(check["network"])
    if net is None:
        return _result(False, started, f"not attached to network {check['network']}")
    wrong = [
        f"{what} {have or 'none'} (planned {want})"
        for what, have, want in (
            ("address", net.get("IPAddress"), check.get("ipv4")),
            ("IPv6 address", net.get("GlobalIPv6Address"), check.get("ipv6")),
            ("MAC", (net.get("MacAddress") or "").lower(), (check.get("mac") or "").lower()),
        )
        if want and have != want
    ]
    return _result(not wrong, started, "; ".join(wrong) or "running")


def _until(once: Callable[[float], Result], check: Check, deadline: float) -> Result:
    """``expect: reach`` repeats a one-shot attempt (given its wait in seconds) until it
    answers or the deadline passes (a fresh container's first packet may wait for ARP, its
    server may still be starting); ``expect: blocked`` makes one attempt of
    ``BLOCKED_TIMEOUT`` and passes when it gets no answer."""
    if check.get("expect") == "blocked":
        started = time.monotonic()
        if started + BLOCKED_TIMEOUT > deadline:
            return _result(False, started, "not run: deadline passed")
        result = once(BLOCKED_TIMEOUT)
        if result["ok"] is None:
            return result
        return Result(ok=not result["ok"], ms=result["ms"], detail=(
            f"answers, expected blocked: {result['detail']}" if result["ok"]
            else f"blocked: {result['detail']}"))
    result = once(1.0)
    while result["ok"] is False and time.monotonic() + 1.5 < deadline:
        time.sleep(0.3)
        result = once(1.0)
    return result


def _exec_ping(ctx: Context, check: Check, deadline: float) -> Result:
    started = time.monotonic()
    api = ctx.docker()

    def once(wait: float) -> Result:
        ex = api.exec_create(check["container"],
                             ["ping", "-c", "1", "-W", f"{wait:.0f}", check["target"]])
        out = api.exec_start(ex["Id"])
        code = api.exec_inspect(ex["Id"]).get("ExitCode")
        if code in (126, 127):
            return _result(None, started, "no `ping` in the container's image")
        text = out.decode(errors="replace").strip().splitlines() if out else []
        return _result(code == 0, started, "answers" if code == 0 else (text[-1] if text else
                                                                         f"exit {code}"))

    return _until(once, check, deadline)


def _ping(ctx: Context, check: Check, deadline: float) -> Result:
    started = time.monotonic()
    ping = shutil.which("ping")
    if ping is None:
        return _result(None, started, "no `ping` on the host")

    def once(wait: float) -> Result:
        proc = subprocess.run([ping, "-n", "-c", "1", "-W", f"{wait:.0f}", check["target"]],
                              capture_output=True, text=True, timeout=wait + 4, check=False)
        return _result(proc.returncode == 0, started,
                       "answers" if proc.returncode == 0 else "no answer")

    return _until(once, check, deadline)


_CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def _socket_in(pid: int, family: int) -> socket.socket:
    """A TCP socket in the network namespace of process ``pid``. A socket keeps the namespace
    it was made in, so a throw-away thread enters it, makes the socket and ends: the agent's
    own threads stay in the host's namespace, and the image needs no tools."""
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            made.append(socket.socket(family, socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller below
            made.append(exc)

    thread = threading.Thread(target=enter, name="probe-netns", daemon=True)
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


def _tcp(ctx: Context, check: Check, deadline: float) -> Result:
    started = time.monotonic()
    target, port = str(check["target"]), int(check["port"])
    family = socket.AF_INET6 if ipaddress.ip_address(target).version == 6 else socket.AF_INET
    pid = None
    if check.get("container"):
        try:
            state = ctx.docker().inspect_container(check["container"]).get("State") or {}
        except NotFound:
            return _result(False, started, f"no container {check['container']}")
        if not state.get("Running") or not state.get("Pid"):
            return _result(False, started, f"container {check['container']} is not running")
        pid = int(state["Pid"])

    def once(wait: float) -> Result:
        s = _socket_in(pid, family) if pid is not None else socket.socket(family)
        with s:
            s.settimeout(max(0.05, min(wait, deadline - time.monotonic())))
            try:
                s.connect((target, port))
            except TimeoutError:
                return _result(False, started, f"no answer from {target}:{port} in {wait:g} s")
            except OSError as exc:
                why = os.strerror(exc.errno) if exc.errno else str(exc)
                return _result(False, started, f"{target}:{port}: {why.lower()}")
        return _result(True, started, f"connected to {target}:{port}")

    return _until(once, check, deadline)


_ARP_LISTEN = 0.5
"""The least time ``arp-unique`` listens after its first probe before it may say "unique"."""


def _arp_unique(ctx: Context, check: Check, deadline: float) -> Result:
    address = socket.inet_aton(check["address"])

    def probe(mac: bytes) -> bytes:
        return (b"\xff" * 6 + mac + struct.pack("!H", _ETH_P_ARP)
                + struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, 1, mac, b"\0" * 4,
                              b"\0" * 6, address))

    def answered_by(frame: bytes) -> str | None:
        if len(frame) < 42 or frame[12:14] != b"\x08\x06" or frame[28:32] != address:
            return None
        return frame[22:28].hex(":")

    return _unique(check, deadline, _ETH_P_ARP, probe, answered_by, 128)


def _unique(check: Check, deadline: float, ethertype: int,
            probe_from: Callable[[bytes], bytes], answered_by: Callable[[bytes], str | None],
            bufsize: int) -> Result:
    """What ``arp-unique`` and ``ndp-unique`` share: send ``probe_from(device MAC)`` out of
    ``device`` every 0.3 s for about 1 s; a frame ``answered_by`` a MAC outside ``own`` means
    another LAN device holds the address; "unique" only after listening ``_ARP_LISTEN``."""
    started = time.monotonic()
    if started + _ARP_LISTEN > deadline:
        return _result(False, started, "not run: deadline passed")
    own = {str(m).lower() for m in check.get("own") or ()}
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ethertype)) as s:
        s.bind((check["device"], ethertype))
        mac: bytes = s.getsockname()[4]
        own.add(mac.hex(":"))
        probe = probe_from(mac)
        listen_until = min(deadline, time.monotonic() + 1.0)
        next_send = 0.0
        first_sent: float | None = None
        while (now := time.monotonic()) < listen_until:
            if now >= next_send:
                s.send(probe)
                next_send = now + 0.3
                first_sent = now if first_sent is None else first_sent
            ready, _, _ = select.select([s], [], [], min(0.1, listen_until - now))
            if not ready:
                continue
            sender_mac = answered_by(s.recv(bufsize))
            if sender_mac is not None and sender_mac not in own:
                clash = _result(False, started, f"{check['address']} is also answered by "
                                                f"MAC {sender_mac} on the LAN ({check['device']})")
                clash["answered_by"] = sender_mac
                return clash
    if first_sent is None or time.monotonic() - first_sent < _ARP_LISTEN:
        return _result(False, started, "not run: deadline passed")
    return _result(True, started, "no other LAN device answers")


_ETH_P_IPV6 = 0x86DD
_ICMPV6 = 58


def _link_local(device: str) -> bytes | None:
    """The device's IPv6 link-local address (16 bytes), or None (no IPv6 on it)."""
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as f:
            for line in f:
                hexaddr, _, _, scope, _, name = line.split()
                if name == device and scope == "20":
                    return bytes.fromhex(hexaddr)
    except OSError:
        pass
    return None


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _neighbour_solicitation(mac: bytes, source: bytes | None, target: bytes) -> bytes:
    """An Ethernet frame with an ICMPv6 neighbour solicitation for ``target``: from the
    device's link-local address with its MAC as option (address resolution, RFC 4861), or
    without one from ``::`` (duplicate address detection, RFC 4862)."""
    group = ipaddress.IPv6Address("ff02::1:ff00:0").packed[:13] + target[13:]  # solicited-node
    src = source or bytes(16)
    body = struct.pack("!BBHI16s", 135, 0, 0, 0, target)
    if source is not None:
        body += struct.pack("!BB6s", 1, 1, mac)
    pseudo = src + group + struct.pack("!I3xB", len(body), _ICMPV6)
    body = body[:2] + struct.pack("!H", _checksum(pseudo + body)) + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(body), _ICMPV6, 255, src, group)
    return b"\x33\x33" + group[12:] + mac + struct.pack("!H", _ETH_P_IPV6) + ip6 + body


def _ndp_unique(ctx: Context, check: Check, deadline: float) -> Result:
    """``arp-unique`` for IPv6: neighbour solicitations out of ``device``; a neighbour
    advertisement for the address from a MAC outside ``own`` means another LAN device holds
    it."""
    address = ipaddress.IPv6Address(check["address"]).packed

    def probe(mac: bytes) -> bytes:
        return _neighbour_solicitation(mac, _link_local(check["device"]), address)

    def answered_by(frame: bytes) -> str | None:
        # Ethernet 14 + IPv6 40 + a neighbour advertisement (type 136) for the address.
        if len(frame) < 78 or frame[20] != _ICMPV6 or frame[54] != 136 \
                or frame[62:78] != address:
            return None
        return frame[6:12].hex(":")

    return _unique(check, deadline, _ETH_P_IPV6, probe, answered_by, 256)


_KINDS: dict[str, Callable[[Context, Check, float], Result]] = {
    "ndp-unique": _ndp_unique,
    "container": _container,
    "exec-ping": _exec_ping,
    "ping": _ping,
    "arp-unique": _arp_unique,
    "tcp": _tcp,
}


def _one(ctx: Context, check: Check, deadline: float) -> Result:
    started = time.monotonic()
    try:
        return _KINDS[check["kind"]](ctx, check, deadline)
    except Exception as exc:  # one broken check must not hide the others' results
        return _result(False, started, f"{type(exc).__name__}: {exc}")


_MAX_WORKERS = 64
_LOOPING = frozenset({"ping", "exec-ping", "tcp"})


def run(ctx: Context, checks: list[Check], timeout: float = 20.0) -> list[Result]:
    """Runs ``checks`` in parallel; every one answers within ``timeout`` seconds (one that
    has not is reported as not run within the bound). Results come in the order of ``checks``."""
    if not isinstance(timeout, (int, float)) or not 0 < timeout <= MAX_TIMEOUT:
        raise OpError(errno.EINVAL, f"timeout must be 0-{MAX_TIMEOUT:g} seconds")
    for check in checks:
        if not isinstance(check, dict) or check.get("kind") not in _KINDS:
            raise OpError(errno.EINVAL, f"a check is {{kind, ...}} with kind one of "
                                        f"{sorted(_KINDS)}, not {check!r}")
        if "target" in check:  # an address, never an option of `ping` ("-f")
            try:
                ipaddress.ip_address(str(check["target"]))
            except ValueError:
                raise OpError(errno.EINVAL, f"a check's target is an IP address, not "
                                            f"{check['target']!r}") from None
        if check.get("expect", "reach") not in ("reach", "blocked"):
            raise OpError(errno.EINVAL, f"a check's expect is reach or blocked, not "
                                        f"{check['expect']!r}")
        port = check.get("port")
        if check["kind"] == "tcp" and (isinstance(port, bool) or not isinstance(port, int)
                                       or not 0 < port < 65536):
            raise OpError(errno.EINVAL, f"a tcp check's port is 1-65535, not {port!r}")
    started = time.monotonic()
    deadline = started + timeout
    pool = ThreadPoolExecutor(max_workers=max(1, min(len(checks), _MAX_WORKERS)),
                              thread_name_prefix="probe")
    # Quick one-shot checks first, so ping loops (which may run to the deadline) never hold
    # back a container or ARP check when there are more checks than workers.
    order = sorted(range(len(checks)), key=lambda i: checks[i]["kind"] in _LOOPING
                   and checks[i].get("expect") != "blocked")
    futures = {i: pool.submit(_one, ctx, checks[i], deadline) for i in order}
    wait(futures.values(), timeout=timeout + 1.0)
    pool.shutdown(wait=False, cancel_futures=True)
    return [futures[i].result() if futures[i].done() and not futures[i].cancelled()
            else _result(False, started, f"not run within the bound ({timeout:g}s)")
            for i in range(len(checks))]
