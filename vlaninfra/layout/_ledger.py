"""The address ledger: every reserved, fixed and allocated address of a layout, across
hosts and sites, plus stable allocation and derived MACs.

Allocation scheme. A container without a fixed address is identified by its key
``site/host/network/name``. Its address is the first free one when probing the pool
(the ip_range, else the subnet) linearly from ``blake2b(key) mod size``. Containers are
placed in this order: fixed addresses, then addresses pinned by ``previous`` (the
``Plan.allocations`` of an earlier run) while still valid, then the rest sorted by key.

Guarantee: reordering containers never moves anyone (the order is the key order); a
container whose start slot is free keeps its address whatever else is added or removed.
Only hash collisions make one container's address depend on another's, so a plan given
``previous`` never moves an existing container when others are added, removed or
reordered: pinned addresses are placed before any new allocation. Without ``previous``
a collision chain may shift when a colliding neighbour comes or goes; no stateless
scheme over a finite pool can promise more.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address, ip_address

from vlaninfra.errors import Problem

from ._facts import Facts, Pool, Resolved
from ._model import IPAddress, IpvlanNetwork, Layout
from ._names import shim_name

__all__ = ["Assigned", "Ledger", "Previous", "allocate", "derive_mac"]

Previous = Mapping[str, Sequence["IPAddress | str"]]
"""Earlier allocations by container key, e.g. ``{"paris/h1/pub_net/web": ["192.0.2.140"]}``."""


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def derive_mac(key: str) -> str:
    """A stable, unicast, locally administered MAC for ``key``.

    Example: ``derive_mac("paris/h1/pub_net/web")`` -> ``"0a:…"`` (low two bits of byte 0: 10)
    """
    raw = bytearray(hashlib.blake2b(key.encode(), digest_size=6, person=b"vlaninfra-mac").digest())
    raw[0] = (raw[0] & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in raw)


@dataclass(frozen=True, slots=True)
class Assigned:
    """A container's addresses, fixed or allocated."""

    ipv4: IPv4Address | None
    ipv6: IPv6Address | None
    mac: str | None


@dataclass
class Ledger:
    """Who holds each address; ``shared`` holders (gateways, routers) may coincide."""

    problems: list[Problem] = field(default_factory=list)
    owners: dict[IPAddress, tuple[str, bool]] = field(default_factory=dict)
    ranges: list[tuple[int, int, int, str]] = field(default_factory=list)
    _sorted: dict[int, list[int]] | None = None
    _held: set[tuple[int, int]] = field(default_factory=set)
    """``(version, int)`` of every key of ``owners``: what :meth:`probe` tests candidates
    against without building and hashing an address object for each."""

    def holder(self, address: IPAddress) -> str | None:
        """Who holds ``address``, e.g. ``"the gateway of network pub_net"``."""
        owner = self.owners.get(address)
        if owner is not None:
            return owner[0]
        value = int(address)
        for version, lo, hi, label in self.ranges:
            if version == address.version and lo <= value <= hi:
                return label
        return None

    def claim(self, address: IPAddress, label: str, path: str, *, shared: bool = False) -> bool:
        """Records ``address`` for ``label``; reports a problem at ``path`` on collision."""
        owner = self.owners.get(address)
        if shared and owner is not None and owner[1]:
            return True
        taken = self.holder(address)
        if taken is not None and not (shared and owner is None):
            self.problems.append(Problem(path, address,
                                         f"already taken by {taken}: choose a free address"))
            return False
        self.owners[address] = (label, shared)
        self._held.add((address.version, int(address)))
        self._sorted = None
        return True

    def taken(self, version: int, lo: int, hi: int) -> int:
        """How many addresses in ``[lo, hi]`` are held, e.g. to show what is left of a pool."""
        if self._sorted is None:
            self._sorted = {4: [], 6: []}
            for address in self.owners:
                self._sorted[address.version].append(int(address))
            for values in self._sorted.values():
                values.sort()
        values = self._sorted[version]
        count = bisect.bisect_right(values, hi) - bisect.bisect_left(values, lo)
        for v, rlo, rhi, _ in self.ranges:
            if v == version:
                count += max(0, min(hi, rhi) - max(lo, rlo) + 1)
        return count

    def probe(self, pool: Pool, key: str) -> IPAddress | None:
        """The first free address of ``pool`` from ``key``'s hash slot, or None when full."""
        size = pool.size
        if size <= 0:
            return None
        start = _hash(key) % size
        version = pool.subnet.subnet.version
        make = IPv4Address if version == 4 else IPv6Address
        ranges = [(lo, hi) for v, lo, hi, _ in self.ranges if v == version]
        for step in range(size):
            value = pool.first + (start + step) % size
            if (version, value) not in self._held and not any(
                    lo <= value <= hi for lo, hi in ranges):
                return make(value)
        return None


def _reserve(ledger: Ledger, layout: Layout, facts: Facts) -> None:
    for site in layout.sites:
        base = f"sites.{site.name}"
        lan = site.lan
        if lan.gateway is not None:
            ledger.claim(lan.gateway, f"the gateway of site {site.name}'s LAN",
                         f"{base}.lan.gateway", shared=True)
        for i, router in enumerate(site.routers):
            ledger.claim(router.address, f"router {router.name} of site {site.name}",
                         f"{base}.routers[{i}].address", shared=True)
        for pool in facts.pools:
            if pool.site == site.name:
                path = f"{pool.path}.gateway" if pool.subnet.gateway else f"{pool.path}.subnet"
                ledger.claim(pool.gateway, f"the gateway of network {pool.network.name}", path,
                             shared=True)
        if lan.dhcp_pool is not None:
            rng = lan.dhcp_pool
            ledger.ranges.append((rng.first.version, int(rng.first), int(rng.last),
                                  f"the DHCP pool {rng} of site {site.name}"))
    for site in layout.sites:
        base = f"sites.{site.name}"
        for i, host in enumerate(site.hosts):
            for key, address in (("lan_address", host.lan_address),
                                 ("lan_address6", host.lan_address6)):
                if address is not None:
                    ledger.claim(address, f"the LAN address of host {host.name}",
                                 f"{base}.hosts[{i}].{key}")
        for pool in facts.pools:
            if pool.site == site.name:
                for name, aux in pool.subnet.aux_addresses.items():
                    ledger.claim(aux, f"aux address {name} of network {pool.network.name}",
                                 f"{pool.path}.aux_addresses.{name}")


def _shims(ledger: Ledger, layout: Layout) -> None:
    for site in layout.sites:
        for i, net in enumerate(site.networks):
            if net.shim is None:
                continue
            for key, addresses in (("address_per_host", net.shim.address_per_host),
                                   ("address6_per_host", net.shim.address6_per_host)):
                for host, address in addresses.items():
                    ledger.claim(address, f"shim {shim_name(net)} on host {host}",
                                 f"sites.{site.name}.networks[{i}].shim.{key}.{host}")


def allocate(layout: Layout, facts: Facts,
             previous: Previous | None = None
             ) -> tuple[Ledger, dict[str, Assigned], dict[str, tuple[IPAddress, ...]]]:
    """Reserves, checks fixed addresses, allocates the rest and derives MACs.

    Returns the ledger (its ``problems`` filled), each container's addresses by key, and
    the allocations to pass as ``previous`` next time. Example: ``allocate(layout, facts)``
    """
    ledger = Ledger()
    _reserve(ledger, layout, facts)
    # A duplicate container (already reported) would collide with itself: first one wins.
    unique = {r.key: r for r in reversed(facts.containers)}
    containers = [r for r in facts.containers if unique[r.key] is r]
    for r in containers:
        label = f"container {r.container.name} on host {r.container.host}"
        for key, address in (("ipv4", r.container.ipv4), ("ipv6", r.container.ipv6)):
            if address is not None:
                ledger.claim(address, label, f"{r.path}.{key}")
    _shims(ledger, layout)
    pending: list[tuple[Resolved, Pool, str]] = []
    chosen: dict[tuple[str, int], IPAddress] = {}
    for r in containers:
        for key, fixed, pool in (("ipv4", r.container.ipv4, r.pool4),
                                 ("ipv6", r.container.ipv6, r.pool6)):
            if fixed is not None or pool is None:
                continue
            pin = _pinned(ledger, r, pool, (previous or {}).get(r.key, ()))
            if pin is not None:
                chosen[(r.key, pool.subnet.subnet.version)] = pin
            else:
                pending.append((r, pool, key))
    pending.sort(key=lambda item: item[0].key)
    for r, pool, key in pending:
        address = ledger.probe(pool, r.key)
        if address is None:
            rng = pool.subnet.ip_range or pool.subnet.subnet
            ledger.problems.append(Problem(f"{r.path}.{key}", None, (
                f"no free address left in {rng} of network {pool.network.name} ({pool.size} "
                "usable): widen the ip_range or fix some addresses")))
            continue
        ledger.claim(address, f"container {r.container.name} on host {r.container.host}",
                     f"{r.path}.{key}")
        chosen[(r.key, pool.subnet.subnet.version)] = address
    assigned: dict[str, Assigned] = {}
    allocations: dict[str, tuple[IPAddress, ...]] = {}
    macs: dict[str, str] = {}
    for r in containers:
        c = r.container
        v4 = c.ipv4 or chosen.get((r.key, 4))
        v6 = c.ipv6 or chosen.get((r.key, 6))
        mac = None if isinstance(r.network, IpvlanNetwork) else (
            c.mac.lower() if c.mac else derive_mac(r.key))
        if mac is not None:
            first = macs.setdefault(mac, r.path)
            if first != r.path:
                ledger.problems.append(Problem(f"{r.path}.mac", mac,
                                               f"duplicate MAC; first used at {first}.mac"))
        assert v4 is None or isinstance(v4, IPv4Address)
        assert v6 is None or isinstance(v6, IPv6Address)
        assigned[r.key] = Assigned(v4, v6, mac)
        held = tuple(a for v, a in ((4, v4), (6, v6)) if (r.key, v) in chosen and a is not None)
        if held:
            allocations[r.key] = held
    return ledger, assigned, allocations


def _pinned(ledger: Ledger, r: Resolved, pool: Pool,
            previous: Sequence[IPAddress | str]) -> IPAddress | None:
    for old in previous:
        address = ip_address(old)
        if address.version != pool.subnet.subnet.version:
            continue
        holder = ledger.holder(address)
        if pool.first <= int(address) <= pool.last and holder is None:
            ledger.claim(address, f"container {r.container.name} on host {r.container.host}",
                         r.path)
            return address
        why = f"is now held by {holder}" if holder else "is no longer in its pool"
        ledger.problems.append(Problem(f"{r.path}.ipv{address.version}", address, (
            f"its previous address {why}: the container gets a new one"), "warning"))
    return None
