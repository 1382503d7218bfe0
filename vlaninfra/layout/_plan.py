"""The derived plan: per host its networks, shims, routes and containers; per site the
static routes the upstream router needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
    ip_interface,
)

from vlaninfra.errors import LayoutError, Problem
from vlaninfra.host.contract import Driver, IpvlanFlag, LinkMode, MacvlanMode

from ._facts import Facts, Pool, routed_pool
from ._ledger import Assigned, Ledger, Previous, allocate
from ._model import (
    IPAddress,
    IPNetwork,
    IpvlanNetwork,
    Lan,
    Layout,
    MacvlanNetwork,
    Network,
    RestartPolicy,
    Router,
    Site,
    SshTarget,
)
from ._names import shim_name
from ._probes import ProbePlan, resolve_probes
from ._validate import analyse

__all__ = [
    "ContainerPlan",
    "HostPlan",
    "HostRoute",
    "NetworkPlan",
    "Plan",
    "ShimPlan",
    "SitePlan",
    "SubnetPlan",
    "UpstreamRoute",
    "VlanParentPlan",
    "plan",
    "validate",
]


@dataclass(frozen=True, slots=True)
class SubnetPlan:
    """One IPAM pool as Docker gets it, e.g. ``SubnetPlan(IPv4Network("192.0.2.0/24"), ...)``."""

    subnet: IPNetwork
    gateway: IPAddress
    """Always explicit (Docker's default is the first address) so the daemon fills nothing in."""
    ip_range: IPNetwork | None
    aux_addresses: Mapping[str, IPAddress]
    """Shims, host LAN addresses and routers inside the subnet, plus the user's aux addresses."""
    usable: int
    """Addresses containers may be allocated from, e.g. 62 for ip_range 192.168.1.128/26."""
    free: int
    """Usable addresses nobody holds yet."""
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class NetworkPlan:
    """A Docker network on one host, e.g. ``NetworkPlan(name="pub_net", driver="macvlan", ...)``."""

    name: str
    driver: Driver
    parent: str
    mode: LinkMode
    flag: IpvlanFlag | None
    """ipvlan only."""
    subnets: tuple[SubnetPlan, ...]
    internal: bool
    enable_ipv6: bool
    notes: tuple[str, ...] = ()
    """Why the plan looks this way, e.g. two tenants sharing one network on Docker 20.10."""


@dataclass(frozen=True, slots=True)
class ShimPlan:
    """A host-side interface, e.g. ``ShimPlan(name="macvlan-shim", parent="eth0", ...)``."""

    name: str
    parent: str
    kind: Driver
    mode: LinkMode
    address: IPv4Interface
    routes: tuple[IPNetwork, ...]
    network: str
    address6: IPv6Interface | None = None
    """Its IPv6 address (``shim.address6_per_host``), when the network has IPv6."""
    gateways: tuple[IPv4Interface | IPv6Interface, ...] = ()
    """The gateways of the macvlan tenant subnets it routes (the host is their router)."""

    @property
    def addresses(self) -> tuple[IPv4Interface | IPv6Interface, ...]:
        """Every address the link gets, e.g. ``(198.51.100.250/24, 2001:db8:1::fa/64)``."""
        six = (self.address6,) if self.address6 is not None else ()
        return (self.address, *six, *self.gateways)


@dataclass(frozen=True, slots=True)
class HostRoute:
    """A route on the host, e.g. ``HostRoute(IPv4Network("192.0.2.100/32"), "macvlan-shim")``."""

    destination: IPNetwork
    device: str


@dataclass(frozen=True, slots=True)
class VlanParentPlan:
    """An 802.1Q parent to create, e.g. ``VlanParentPlan("eth0.50", "eth0", 50)``."""

    name: str
    trunk: str
    vlan_id: int


@dataclass(frozen=True, slots=True)
class ContainerPlan:
    """A container with its final addresses, e.g. ``ContainerPlan(name="web", ...)``."""

    name: str
    image: str
    command: tuple[str, ...] | None
    network: str
    ipv4: IPv4Address | None
    ipv6: IPv6Address | None
    mac: str | None
    """None on ipvlan: the container shares the parent's MAC."""
    restart_policy: RestartPolicy
    key: str
    """Ledger identity ``site/host/network/name``."""
    allocated: bool
    """True when vlaninfra chose an address (no fixed ipv4/ipv6)."""
    hostname: str | None = None
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class HostPlan:
    """What one host needs, e.g. ``HostPlan(name="h1", ssh=None, ...)``."""

    name: str
    ssh: SshTarget | None
    """None when the site's inventory (the lab) supplies it at run time."""
    lan_address: IPv4Address | None
    docker_version: str | None
    vlan_parents: tuple[VlanParentPlan, ...]
    networks: tuple[NetworkPlan, ...]
    shims: tuple[ShimPlan, ...]
    routes: tuple[HostRoute, ...]
    containers: tuple[ContainerPlan, ...]


@dataclass(frozen=True, slots=True)
class UpstreamRoute:
    """A static route the site's router needs, e.g. ``10.1.0.0/24 via 192.168.1.10``."""

    prefix: IPNetwork
    via: IPAddress
    tenant: str | None
    host: str
    network: str


@dataclass(frozen=True, slots=True)
class SitePlan:
    """One site's plan, e.g. ``SitePlan(name="paris", ...)``."""

    name: str
    lan: Lan
    inventory: str | None
    routers: tuple[Router, ...]
    """Where upstream_routes go; applied by vlaninfra only to ``managed`` ones."""
    upstream_routes: tuple[UpstreamRoute, ...]
    hosts: tuple[HostPlan, ...]
    probes: tuple[ProbePlan, ...] = ()
    """The user's reachability checks (``sites.<site>.probes``), resolved to addresses."""


@dataclass(frozen=True, slots=True)
class Plan:
    """The whole plan, e.g. ``plan(layout).sites[0].hosts[0].networks``."""

    sites: tuple[SitePlan, ...]
    warnings: tuple[Problem, ...]
    allocations: Mapping[str, tuple[IPAddress, ...]] = field(default_factory=dict)
    """Pool-allocated addresses by container key: pass as ``previous`` to pin them."""


def plan(layout: Layout, *,
         previous: Previous | None = None) -> Plan:
    """Validates ``layout``, allocates addresses and derives the plan.

    Raises LayoutError listing every error (warnings included for context). ``previous``
    (an earlier ``Plan.allocations``, addresses as objects or strings) pins earlier
    allocations. Example: ``plan(layout, previous=json.load(f))``
    """
    problems, facts = analyse(layout)
    ledger, assigned, allocations = allocate(layout, facts, previous)
    problems += ledger.problems
    if any(p.severity == "error" for p in problems):
        raise LayoutError(tuple(problems))
    sites = tuple(_site(site, facts, ledger, assigned) for site in layout.sites)
    return Plan(sites, tuple(problems), allocations)


def validate(layout: Layout) -> tuple[Problem, ...]:
    """Every error and warning of ``layout``, without raising.

    Example: ``[p for p in validate(layout) if p.severity == "error"]``
    """
    problems, facts = analyse(layout)
    ledger = allocate(layout, facts)[0]
    return (*problems, *ledger.problems)


def _aux(pool: Pool, site: Site) -> dict[str, IPAddress]:
    """Everything in the subnet Docker must never hand out, beyond its gateway."""
    aux: dict[str, IPAddress] = dict(pool.subnet.aux_addresses)
    sub = pool.subnet.subnet
    shim = pool.network.shim
    for key, addresses in (("shim", shim.address_per_host if shim else {}),
                           ("shim", shim.address6_per_host if shim else {})):
        for host, shim_address in addresses.items():
            if shim_address in sub:
                aux[f"{key}-{host}"] = shim_address
    for h in site.hosts:
        for address in (h.lan_address, h.lan_address6):
            if address is not None and address in sub:
                aux[f"host-{h.name}"] = address
    for router in site.routers:
        if router.address in sub and router.address != pool.gateway:
            aux[f"router-{router.name}"] = router.address
    return dict(sorted(aux.items()))


def _subnet_plan(pool: Pool, site: Site, ledger: Ledger) -> SubnetPlan:
    free = pool.size - ledger.taken(pool.subnet.subnet.version, pool.first, pool.last)
    return SubnetPlan(pool.subnet.subnet, pool.gateway, pool.subnet.ip_range, _aux(pool, site),
                      max(pool.size, 0), max(free, 0), pool.tenant)


def _network_plan(net: Network, host: str, pools: list[Pool], site: Site, ledger: Ledger,
                  notes: list[str]) -> NetworkPlan:
    subnets = tuple(_subnet_plan(p, site, ledger) for p in pools)
    return NetworkPlan(
        name=net.name, driver=net.driver, parent=net.parent_on(host), mode=net.mode,
        flag=net.flag if isinstance(net, IpvlanNetwork) else None,
        subnets=subnets, internal=net.internal,
        enable_ipv6=any(s.subnet.version == 6 for s in subnets), notes=tuple(notes))


def _host_route(address: IPv4Address | IPv6Address) -> IPNetwork:
    """The /32 (/128) of ``address``: built from its integer, as parsing its text again costs
    a noticeable share of a 30,000-container plan."""
    return IPv4Network(int(address)) if address.version == 4 else IPv6Network(int(address))


def _shim_plan(net: Network, host: str, pools: list[Pool],
               containers: list[ContainerPlan]) -> ShimPlan | None:
    shim = net.shim
    if shim is None or host not in shim.address_per_host:
        return None
    address = shim.address_per_host[host]
    address6 = shim.address6_per_host.get(host)
    own = [p for p in pools if p.tenant is None]
    prefix = next(p.subnet.subnet.prefixlen for p in own if address in p.subnet.subnet)
    six = None if address6 is None else IPv6Interface((address6, next(
        p.subnet.subnet.prefixlen for p in own if address6 in p.subnet.subnet)))
    # A tenant subnet on macvlan is routed by the host: the shim holds its gateway, so the
    # subnet is connected there and needs no route of its own.
    gateways = tuple(ip_interface((p.gateway, p.subnet.subnet.prefixlen)) for p in pools
                     if p.tenant is not None and isinstance(net, MacvlanNetwork))
    versions = {4} | ({6} if six is not None else set())
    routes: tuple[IPNetwork, ...]
    if shim.routes == "ip-range":
        routes = tuple(p.subnet.ip_range for p in own if p.subnet.ip_range is not None
                       and p.subnet.ip_range.version in versions)
    else:
        routes = tuple(_host_route(a) for c in containers if c.network == net.name
                       and c.tenant is None for a in (c.ipv4, c.ipv6)
                       if a is not None and a.version in versions)
    mode = MacvlanMode.BRIDGE if isinstance(net, MacvlanNetwork) else net.mode
    return ShimPlan(shim_name(net), net.parent_on(host), net.driver, mode,
                    IPv4Interface((address, prefix)), routes, net.name, six, gateways)


def _site(site: Site, facts: Facts, ledger: Ledger, assigned: Mapping[str, Assigned]) -> SitePlan:
    by_host: dict[str, list[ContainerPlan]] = {}
    for r in facts.containers:
        if r.site is not site:
            continue
        c, a = r.container, assigned[r.key]
        tenant = next((p.tenant for p in (r.pool4, r.pool6) if p is not None), None)
        by_host.setdefault(c.host, []).append(ContainerPlan(
            c.name, c.image, c.command, c.network, a.ipv4, a.ipv6, a.mac, c.restart_policy,
            r.key, c.ipv4 is None and c.ipv6 is None, c.hostname, tenant))
    hosts = []
    upstream: list[UpstreamRoute] = []
    for host in site.hosts:
        containers = by_host.get(host.name, [])
        networks, shims = [], []
        for net in site.networks:
            if host.name not in net.hosts:
                continue
            pools = facts.by_net_host.get((site.name, net.name, host.name), [])
            notes = facts.notes.get((site.name, host.name, net.name), [])
            networks.append(_network_plan(net, host.name, pools, site, ledger, notes))
            shim = _shim_plan(net, host.name, pools, containers)
            if shim is not None:
                shims.append(shim)
            for p in pools:
                if routed_pool(p):
                    via = host.lan_address if p.subnet.subnet.version == 4 else host.lan_address6
                    assert via is not None
                    upstream.append(UpstreamRoute(p.subnet.subnet, via, p.tenant, host.name,
                                                  net.name))
        vlans = facts.vlans.get((site.name, host.name), {})
        hosts.append(HostPlan(
            name=host.name, ssh=host.ssh, lan_address=host.lan_address,
            docker_version=host.docker_version,
            vlan_parents=tuple(VlanParentPlan(n, t, v) for n, (t, v) in sorted(vlans.items())),
            networks=tuple(networks), shims=tuple(shims),
            routes=tuple(HostRoute(r, s.name) for s in shims for r in s.routes),
            containers=tuple(containers)))
    address_of = {(h, c.name): c.ipv4 or c.ipv6 for h, cs in by_host.items() for c in cs}
    return SitePlan(site.name, site.lan, site.inventory, site.routers,
                    tuple(upstream), tuple(hosts), resolve_probes(site, address_of))


