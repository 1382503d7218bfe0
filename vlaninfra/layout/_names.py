"""Name syntax: what the kernel, Docker and DNS accept as interface, host, container and object
names and MAC addresses, and the interface names a host reserves. Pure checks that return a
message (or None); the rules in ``_check_*`` say where."""

from __future__ import annotations

import re

from vlaninfra.errors import Severity
from vlaninfra.host.contract import MAC

from ._model import Network

__all__ = [
    "CONTAINER_NAME",
    "HOSTNAME_MAX",
    "IFNAMSIZ",
    "OBJECT_NAME",
    "RESERVED_IFNAME",
    "RESERVED_IFNAMES",
    "VLAN",
    "hostname_problem",
    "iface_problem",
    "mac_problem",
    "shim_name",
]

IFNAMSIZ = 15
"""Longest interface name the kernel accepts, in bytes (IFNAMSIZ 16 with the NUL)."""
HOSTNAME_MAX = 64
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
VLAN = re.compile(r"(.+)\.(\d+)")
"""An 802.1Q sub-interface name: ``<trunk>.<VLAN id>``, e.g. ``eth0.50``."""
RESERVED_IFNAMES = frozenset({"lo", "eth0", "mgmt0", "docker0", "docker_gwbridge"})
"""Interface names a shim never takes: loopback, the usual LAN/management NIC (``eth0``, also
the lab's), Docker's bridges."""
RESERVED_IFNAME = re.compile(r"(bond|br|team|vxlan|wg)\d+|br-[0-9a-f]{12}|veth[0-9a-f]+")
"""Names the host's own bonds, bridges and Docker's per-network bridges and veths take."""


def iface_problem(name: str) -> str | None:
    """Why ``name`` cannot be an interface name, e.g. for ``"a/b"``; None when it can."""
    size = len(name.encode())
    if size == 0 or name in (".", "..") or re.search(r"[/:\s]", name):
        return "not a valid interface name: no '/', ':' or spaces, not '.' or '..'"
    if size > IFNAMSIZ:
        return f"interface name is {size} bytes; the kernel allows {IFNAMSIZ}: choose a shorter one"
    return None


def hostname_problem(name: str) -> str | None:
    """Why ``name`` cannot be a hostname, e.g. for ``"-web"``; None when it can."""
    size = len(name.encode())
    if size > HOSTNAME_MAX:
        return f"hostname is {size} bytes; the kernel allows {HOSTNAME_MAX}: choose a shorter one"
    if not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return ("not a valid hostname: dot-separated labels of letters, digits and '-', "
                "1 to 63 bytes each, not starting or ending with '-'")
    return None


def mac_problem(mac: str) -> tuple[Severity, str] | None:
    """(severity, message) when ``mac`` is no good for a container, e.g. ``"01:00:5e:00:00:01"``."""
    if not MAC.fullmatch(mac):
        return "error", "expected a MAC address like 02:42:c0:00:02:0a"
    first = int(mac[:2], 16)
    if first & 1:
        return "error", ("multicast MAC (low bit of the first byte set): use a unicast one, "
                         "e.g. 02:…")
    if not first & 2:
        return "warning", ("globally administered MAC (bit 0x02 of the first byte clear) may clash "
                           "with real hardware; fine when it is a licence-pinned MAC")
    return None


def shim_name(net: Network) -> str:
    """The shim's interface name, e.g. ``shim-pub_net``."""
    assert net.shim is not None
    return net.shim.name or f"shim-{net.name}"
