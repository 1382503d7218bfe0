"""Resolution of pools and facts: what validation learns about a layout while it checks it
(each subnet's pool with its allocation range and hosts, each container's pools), kept in
`Facts` for the ledger and the plan, so nothing is derived twice; and `Check`, the collector
the rules report problems to."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from vlaninfra.errors import Problem

from ._model import (
    Container,
    Host,
    IPAddress,
    IpvlanNetwork,
    Network,
    Site,
    Subnet,
)

__all__ = [
    "Check",
    "Facts",
    "Pool",
    "Resolved",
    "add_pool",
    "pick_pool",
    "pool_range",
    "routed_pool",
    "routes_tenants",
]


@dataclass(frozen=True, slots=True)
class Pool:
    """One subnet of a network as served on some hosts, with its allocation range."""

    site: str
    network: Network
    subnet: Subnet
    path: str
    hosts: tuple[str, ...]
    tenant: str | None
    gateway: IPAddress
    first: int
    last: int

    @property
    def size(self) -> int:
        """Addresses containers may be allocated from, e.g. 62 for a /26 ip_range."""
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Resolved:
    """A container whose host, network and pools are known."""

    site: Site
    index: int
    container: Container
    network: Network
    host: Host
    pool4: Pool | None
    pool6: Pool | None
    key: str = field(init=False)
    """Ledger identity, e.g. ``paris/h1/pub_net/web`` (computed once: a plan of 30,000
    containers asks for it hundreds of thousands of times)."""

    def __post_init__(self) -> None:
        c = self.container
        object.__setattr__(self, "key", f"{self.site.name}/{c.host}/{c.network}/{c.name}")

    @property
    def path(self) -> str:
        """Config path, e.g. ``sites.paris.containers[3]``."""
        return f"sites.{self.site.name}.containers[{self.index}]"


@dataclass
class Facts:
    """What validation learnt about a layout, for the ledger and the plan."""

    pools: list[Pool] = field(default_factory=list)
    by_net_host: dict[tuple[str, str, str], list[Pool]] = field(default_factory=dict)
    containers: list[Resolved] = field(default_factory=list)
    vlans: dict[tuple[str, str], dict[str, tuple[str, int]]] = field(default_factory=dict)
    """(site, host) -> parent name -> (trunk, VLAN id), for 802.1Q parents to create."""
    notes: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    """(site, host, network) -> why the plan looks the way it does."""


class Check:
    """Collects problems for one layout."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.facts = Facts()

    def error(self, path: str, value: object, message: str) -> None:
        self.problems.append(Problem(path, value, message))

    def warn(self, path: str, value: object, message: str) -> None:
        self.problems.append(Problem(path, value, message, "warning"))

    def duplicates(self, items: Iterable[tuple[str, str]], what: str) -> None:
        seen: dict[str, str] = {}
        for path, name in items:
            if name in seen:
                self.error(path, name, f"duplicate {what} name; first used at {seen[name]}")
            else:
                seen[name] = path


def pool_range(subnet: Subnet) -> tuple[int, int]:
    """Allocation bounds: the ip_range (else the subnet) without its first and, for IPv4,
    last address; for 192.168.1.128/26 that is .129-.190, the 62 the seed counts. Docker's
    own allocator would also use .128 and .191 (it only skips the subnet's network and
    broadcast addresses); it never matters, as vlaninfra always passes explicit addresses."""
    net = subnet.ip_range if subnet.ip_range is not None else subnet.subnet
    first = int(net.network_address) + 1
    last = int(net.broadcast_address) - (1 if net.version == 4 else 0)
    # An ip_range may reach the subnet's own network or broadcast address: never hand those out.
    lo = max(first, int(subnet.subnet.network_address) + 1)
    hi = min(last, int(subnet.subnet.broadcast_address) - (1 if net.version == 4 else 0))
    return lo, hi


def add_pool(check: Check, site: Site, net: Network, subnet: Subnet, path: str,
             hosts: tuple[str, ...], tenant: str | None, gateway: IPAddress) -> None:
    """Records ``subnet`` of ``net`` as a pool on ``hosts`` (a tenant's when ``tenant``);
    warns when its range reaches into the LAN's DHCP pool."""
    first, last = pool_range(subnet)
    dhcp = site.lan.dhcp_pool
    if dhcp is not None and dhcp.first.version == subnet.subnet.version \
            and int(dhcp.first) <= last and first <= int(dhcp.last):
        key = "ip_range" if subnet.ip_range is not None else "subnet"
        check.warn(f"{path}.{key}", subnet.ip_range or subnet.subnet, (
            f"overlaps the DHCP pool {dhcp}: vlaninfra never allocates from it, but Docker "
            "does for containers it addresses itself; keep the ip_range out of it"))
    pool = Pool(site.name, net, subnet, path, hosts, tenant, gateway, first, last)
    check.facts.pools.append(pool)
    for host in hosts:
        check.facts.by_net_host.setdefault((site.name, net.name, host), []).append(pool)


def pick_pool(check: Check, base: str, key: str, address: IPAddress | None, pools: list[Pool],
              version: int, host: str, network: str) -> tuple[bool, Pool | None]:
    """The pool a container's address comes from; (False, None) after reporting a problem."""
    pools = [p for p in pools if p.subnet.subnet.version == version]
    if address is not None:
        inside = [p for p in pools if address in p.subnet.subnet]
        if not inside:
            nets = ", ".join(str(p.subnet.subnet) for p in pools) or "none"
            check.error(f"{base}.{key}", address,
                        f"outside the subnets of network {network} on host {host} ({nets})")
            return False, None
        sub = inside[0].subnet.subnet
        if address == sub.network_address or (sub.version == 4
                                               and address == sub.broadcast_address):
            check.error(f"{base}.{key}", address,
                        f"the network or broadcast address of {sub} is not a host address")
            return False, None
        return True, inside[0]
    if len(pools) > 1:
        nets = ", ".join(str(p.subnet.subnet) for p in pools)
        check.error(f"{base}.{key}", None, (
            f"network {network} has {len(pools)} {key.replace('ip', 'IP')} subnets on host "
            f"{host} ({nets}): set {key} or tenant"))
        return False, None
    return True, pools[0] if pools else None


def routes_tenants(net: Network) -> bool:
    """Whether ``net`` serves routed tenant subnets: ipvlan l3/l3s, or macvlan bridge with a
    shim (the host routes them through the shim, which holds their gateways).

    Example: ``routes_tenants(IpvlanNetwork(name="t", parent="eth0", hosts=("h1",), mode="l3"))``
    """
    if isinstance(net, IpvlanNetwork):
        return net.mode in ("l3", "l3s")
    return net.mode == "bridge" and net.shim is not None


def routed_pool(pool: Pool) -> bool:
    """Whether the upstream router reaches ``pool`` through a host (an upstream route)."""
    return routes_tenants(pool.network) and (
        isinstance(pool.network, IpvlanNetwork) or pool.tenant is not None)
