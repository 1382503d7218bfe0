"""Namespaces, veths, bridge, addresses and routes, through `ip` with fixed argument lists.

Every function is idempotent. ``ns=None`` means the root namespace.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from typing import Any

from vlaninfra.lab._errors import LabError

__all__ = [
    "add_veth",
    "addr_replace",
    "delete_link",
    "delete_netns",
    "ensure_bridge",
    "ensure_netns",
    "link_names",
    "list_netns",
    "netns_inode",
    "nsenter",
    "route_replace",
    "run",
    "set_up",
    "sysctl",
]

NETNS_DIR = "/run/netns"


def run_process(
    argv: Sequence[str],
    *,
    check: bool = True,
    timeout: float = 60,
    what: str = "",
    error: type[LabError] = LabError,
) -> subprocess.CompletedProcess[str]:
    """Run a command (never through a shell); raise `error` when it cannot run, times out or
    (with `check`) fails. `what` names it in messages (default: the command line)."""
    label = what or f"`{' '.join(argv)}`"
    try:
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except FileNotFoundError:
        raise error(
            f"{label}: `{argv[0]}` is not installed; the lab needs iproute2, util-linux "
            "(nsenter), openssh-server, openssh-client, docker.io and busybox-static (VM hosts: "
            "see vm_unavailable_reason)"
        ) from None
    except subprocess.TimeoutExpired:
        raise error(f"{label} did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise error(f"{label} failed (exit {proc.returncode}): {msg}")
    return proc


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60) -> str:
    """Run a command (never through a shell); return stdout, raise `LabError` on failure."""
    return run_process(argv, check=check, timeout=timeout).stdout


def _ip(ns: str | None, *args: str, check: bool = True) -> str:
    return run(["ip", *(("-n", ns) if ns else ()), *args], check=check)


def nsenter(ns: str) -> list[str]:
    """Command prefix that runs in namespace `ns`'s network only (keeps the cgroup mounts)."""
    return ["nsenter", f"--net={NETNS_DIR}/{ns}", "--"]


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_inode(ns: str) -> int | None:
    try:
        return os.stat(f"{NETNS_DIR}/{ns}").st_ino
    except FileNotFoundError:
        return None


def ensure_netns(ns: str) -> None:
    if ns not in list_netns():
        run(["ip", "netns", "add", ns])
    set_up(ns, "lo")


def delete_netns(ns: str) -> None:
    if ns in list_netns():
        run(["ip", "netns", "delete", ns])


def _links(ns: str | None) -> list[dict[str, Any]]:
    out = _ip(ns, "-j", "link", "show")
    links: list[dict[str, Any]] = json.loads(out or "[]")
    return links


def link_names(ns: str | None) -> set[str]:
    return {str(link["ifname"]) for link in _links(ns)}


def add_veth(ns: str | None, name: str, peer_ns: str, peer_name: str) -> bool:
    """Ensure veth `name` in `ns` paired with `peer_name` in `peer_ns`; True if created.

    Both ends are created directly in their namespaces, so no lab name ever appears in the
    root namespace except the management ends.
    """
    here, there = name in link_names(ns), peer_name in link_names(peer_ns)
    if here and there:
        return False
    # Half a pair cannot exist for a veth; a stale name from another pair is removed.
    if here:
        _ip(ns, "link", "delete", name)
    if there:
        _ip(peer_ns, "link", "delete", peer_name)
    _ip(ns, "link", "add", name, "type", "veth", "peer", "name", peer_name, "netns", peer_ns)
    return True


def delete_link(ns: str | None, name: str) -> None:
    # The kernel may remove it meanwhile (a deleted namespace takes its veth peers along,
    # asynchronously): only a link that is still there is an error.
    if name in link_names(ns):
        _ip(ns, "link", "delete", name, check=False)
    if name in link_names(ns):
        raise LabError(f"cannot delete link {name} in {ns or 'the root namespace'}")


def ensure_bridge(ns: str, name: str) -> None:
    """A plain learning switch: no STP (ports forward at once), floods all multicast.

    (VLAN filtering is off by default; this kernel cannot even be asked about it.)
    """
    if name not in link_names(ns):
        _ip(ns, "link", "add", name, "type", "bridge", "stp_state", "0", "mcast_snooping", "0")
    set_up(ns, name)


def set_up(ns: str | None, name: str, *, master: str | None = None) -> None:
    _ip(ns, "link", "set", name, *(("master", master) if master else ()), "up")


def addr_replace(ns: str | None, name: str, cidr: str, *flags: str) -> None:
    _ip(ns, "addr", "replace", cidr, "dev", name, *flags)


def route_replace(ns: str, dst: str, via: str, *family: str) -> None:
    _ip(ns, *family, "route", "replace", dst, "via", via)


def sysctl(ns: str, key: str, value: str) -> None:
    # /proc/sys/net is per network namespace of the writer.
    run([*nsenter(ns), "sysctl", "-q", "-w", f"{key}={value}"])
