"""Lab address ranges against this machine's root namespace: `lab up` refuses any overlap.

A lab range that overlaps an address or a route of the root namespace would make lab traffic
(or a stack applied to the lab) reach the machine's real network, or cut it off. The default
route does not count (it overlaps everything); addresses and routes on the links of the very
instance being built (its management veths and VM taps) are its own.

Example::

    table = read_root_table()
    check_ranges("default", lab_ranges(p, vms, pool), table, own_links("default", table))
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from vlaninfra.lab._errors import LabError
from vlaninfra.lab._netns import run
from vlaninfra.lab._topology import LabPlan, VmPlan, instance_of, vm_instance_of

__all__ = [
    "LabRange",
    "RootEntry",
    "check_ranges",
    "lab_ranges",
    "overlaps",
    "own_links",
    "read_root_table",
]

_LINK_LOCAL = ipaddress.IPv6Network("fe80::/10")
_MULTICAST = ipaddress.IPv6Network("ff00::/8")
_TAP_PREFIX = "vt-"  # QEMU taps of lab VMs: vt-<vm name>-l / -m
# Route types that are not a destination reachable through a link.
_NOT_REACHABLE = {"local", "broadcast", "multicast", "anycast", "blackhole", "unreachable"}


@dataclass(frozen=True)
class LabRange:
    """One range a lab instance puts on its links (or hands to its dockerds)."""

    what: str
    """What uses it, e.g. ``site a LAN`` or ``management of vl-a-h1``."""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RootEntry:
    """An IPv4 or IPv6 address or route of the root namespace."""

    text: str
    """As a person reads it: ``address 192.0.2.2/24 on eth0``, ``route 10.0.0.0/8 via … dev …``."""
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    dev: str
    """The link it is on ("" for a route without one, e.g. multipath)."""


def lab_ranges(p: LabPlan, vms: Sequence[VmPlan], address_pool: str) -> list[LabRange]:
    """Every range `p` (with its VM members `vms`) puts on a link or gives to dockerd.

    Example: ``lab_ranges(plan("default", 0), (), "198.19.128.0/17")[0].what == "site a LAN"``
    """
    net = ipaddress.IPv4Network
    out: list[LabRange] = [LabRange(f"site {s.name} LAN", net(s.lan)) for s in p.sites]
    out += [LabRange(f"site {s.name} IPv6 LAN", ipaddress.IPv6Network(s.lan6))
            for s in p.sites if s.lan6]
    for node in p.mgmt_nodes:
        out.append(LabRange(f"management of {node.netns}", net(f"{node.mgmt_root_address}/31")))
    wan = p.sites[0].wan
    if wan is not None:  # one /31 between the two routers
        out.append(LabRange("router-to-router link", net(wan.address, strict=False)))
    for v in vms:
        out.append(LabRange(f"management of VM {v.vm_name}", net(f"{v.mgmt_root_address}/31")))
        if v.vlan_address is not None:
            out.append(LabRange(f"VLAN {v.vlan} of {v.vm_name}", net(v.vlan_address, strict=False)))
    out.append(LabRange("Docker default address pool", net(address_pool)))
    return out


def _entry(text: str, cidr: str, dev: str) -> RootEntry | None:
    try:
        network = ipaddress.ip_interface(cidr).network
    except ValueError:
        return None
    if isinstance(network, ipaddress.IPv6Network) and (
            network.subnet_of(_LINK_LOCAL) or network.subnet_of(_MULTICAST)):
        return None  # every link has these; the lab's own links use them too
    return RootEntry(text, network, dev)


def parse_root_table(addrs_json: str, routes_json: str) -> list[RootEntry]:
    """Entries from ``ip -j addr show`` and ``ip -j route show table all`` output (``-4`` or
    ``-6``); default routes, local/broadcast routes (their addresses are listed already) and
    IPv6 link-local and multicast prefixes left out."""
    entries: list[RootEntry] = []
    for link in json.loads(addrs_json or "[]"):
        dev = str(link.get("ifname", ""))
        for a in link.get("addr_info", []):
            if a.get("family", "inet") in ("inet", "inet6") and "local" in a:
                cidr = f"{a['local']}/{a.get('prefixlen', 32)}"
                if (e := _entry(f"address {cidr} on {dev}", cidr, dev)) is not None:
                    entries.append(e)
    for r in json.loads(routes_json or "[]"):
        dst = str(r.get("dst", ""))
        if dst in ("", "default") or r.get("type", "unicast") in _NOT_REACHABLE:
            continue
        dev = str(r.get("dev", ""))
        where = " ".join(
            x
            for x in (
                f"via {r['gateway']}" if "gateway" in r else "",
                f"dev {dev}" if dev else "",
                f"table {r['table']}" if "table" in r else "",
                f"proto {r['protocol']}" if "protocol" in r else "",
            )
            if x
        )
        cidr = dst if "/" in dst else f"{dst}/{128 if ':' in dst else 32}"
        if (e := _entry(f"route {dst} {where}".strip(), cidr, dev)) is not None:
            entries.append(e)
    return entries


def read_root_table() -> list[RootEntry]:
    """This machine's root-namespace IPv4 and IPv6 addresses and (non-default) routes, all
    tables."""
    return [e for family in ("-4", "-6") for e in parse_root_table(
        run(["ip", "-j", family, "addr", "show"]),
        run(["ip", "-j", family, "route", "show", "table", "all"]),
    )]


def own_links(instance: str, devs: Iterable[str]) -> frozenset[str]:
    """The links among `devs` that belong to lab instance `instance` (management veths, VM taps)."""
    own = set()
    for dev in devs:
        vm = dev[len(_TAP_PREFIX) : -2] if dev.startswith(_TAP_PREFIX) else None
        if instance_of(dev) == instance or (vm is not None and vm_instance_of(vm) == instance):
            own.add(dev)
    return frozenset(own)


def overlaps(
    ranges: Sequence[LabRange], table: Sequence[RootEntry], own: frozenset[str] = frozenset()
) -> list[tuple[LabRange, RootEntry]]:
    """Every (lab range, root entry) pair that overlaps, entries on `own` links left out."""
    return [
        (r, e) for r in ranges for e in table if e.dev not in own
        and r.network.version == e.network.version and r.network.overlaps(e.network)
    ]


def check_ranges(
    instance: str,
    ranges: Sequence[LabRange],
    table: Sequence[RootEntry],
    own: frozenset[str] = frozenset(),
) -> None:
    """Raise `LabError` naming every overlap of a lab range with the root namespace."""
    found = overlaps(ranges, table, own)
    if not found:
        return
    lines = [f"{r.what} {r.network} overlaps {e.text}" for r, e in found]
    raise LabError(
        f"lab {instance}: its address ranges overlap this machine's root namespace, so lab "
        "traffic could reach the machine's real network:\n  "
        + "\n  ".join(lines)
        + "\nNothing was built. Use another instance (`--instance NAME` gets other ranges: "
        "198.19.8.0/21 and up), or free the range on this machine (if a lab left it: "
        "`vlaninfra lab down --instance NAME`)."
    )
