"""Mode-aware validation of a layout; also resolves what the ledger and the plan need
(pools per network and host, each container's pools), so nothing is derived twice."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from vlaninfra.errors import Problem, Severity

from ._model import (
    Container,
    Host,
    IPAddress,
    IPNetwork,
    IpvlanNetwork,
    Layout,
    MacvlanNetwork,
    Network,
    Site,
    Subnet,
)
from ._modes import mode_problems
from ._probes import probe_problems
from ._switch import switch_problems

__all__ = [
    "IFNAMSIZ",
    "Facts",
    "Pool",
    "Resolved",
    "analyse",
    "docker_allows_shared_parent",
    "mac_problem",
    "routed_pool",
    "routes_tenants",
    "shim_name",
]

IFNAMSIZ = 15
"""Longest interface name the kernel accepts, in bytes (IFNAMSIZ 16 with the NUL)."""
_HOSTNAME_MAX = 64
_HOST_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_CONTAINER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
_OBJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_MAC = re.compile(r"[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}")
_VERSION = re.compile(r"(\d+)\.(\d+)(\.\d+)?([+~-][0-9A-Za-z.+~-]*)?")
_VLAN = re.compile(r"(.+)\.(\d+)")
RESERVED_IFNAMES = frozenset({"lo", "eth0", "mgmt0", "docker0", "docker_gwbridge"})
"""Interface names a shim never takes: loopback, the usual LAN/management NIC (``eth0``, also
the lab's), Docker's bridges."""
_RESERVED_IFNAME = re.compile(r"(bond|br|team|vxlan|wg)\d+|br-[0-9a-f]{12}|veth[0-9a-f]+")
"""Names the host's own bonds, bridges and Docker's per-network bridges and veths take."""
_STRICT_DOCKER = (20, 10)
_IPVLAN_FLAGS_SINCE = (23, 0)
"""moby #42542 (Docker 23.0): the ipvlan driver honours ipvlan_flag and knows mode l3s."""
_SHARED_MACVLAN_SINCE = (27, 0)
"""moby #47318 (Docker 27.0) lets several macvlan networks share a parent, except passthru."""


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

    @property
    def path(self) -> str:
        """Config path, e.g. ``sites.paris.containers[3]``."""
        return f"sites.{self.site.name}.containers[{self.index}]"

    @property
    def key(self) -> str:
        """Ledger identity, e.g. ``paris/h1/pub_net/web``."""
        c = self.container
        return f"{self.site.name}/{c.host}/{c.network}/{c.name}"


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


def docker_allows_shared_parent(version: str | None, driver: str) -> bool:
    """Whether Docker ``version`` lets two ``driver`` networks share a parent.

    Example: ``docker_allows_shared_parent("27.1.1", "macvlan") is True``
    """
    return driver == "macvlan" and _version(version) >= _SHARED_MACVLAN_SINCE


def _version(text: str | None) -> tuple[int, int]:
    m = _VERSION.fullmatch(text) if text is not None else None
    return (int(m.group(1)), int(m.group(2))) if m else _STRICT_DOCKER


def _iface_problem(name: str) -> str | None:
    size = len(name.encode())
    if size == 0 or name in (".", "..") or re.search(r"[/:\s]", name):
        return "not a valid interface name: no '/', ':' or spaces, not '.' or '..'"
    if size > IFNAMSIZ:
        return f"interface name is {size} bytes; the kernel allows {IFNAMSIZ}: choose a shorter one"
    return None


def _hostname_problem(name: str) -> str | None:
    size = len(name.encode())
    if size > _HOSTNAME_MAX:
        return f"hostname is {size} bytes; the kernel allows {_HOSTNAME_MAX}: choose a shorter one"
    if not all(_HOST_LABEL.fullmatch(label) for label in name.split(".")):
        return ("not a valid hostname: dot-separated labels of letters, digits and '-', "
                "1 to 63 bytes each, not starting or ending with '-'")
    return None


def mac_problem(mac: str) -> tuple[Severity, str] | None:
    """(severity, message) when ``mac`` is no good for a container, e.g. ``"01:00:5e:00:00:01"``."""
    if not _MAC.fullmatch(mac):
        return "error", "expected a MAC address like 02:42:c0:00:02:0a"
    first = int(mac[:2], 16)
    if first & 1:
        return "error", ("multicast MAC (low bit of the first byte set): use a unicast one, "
                         "e.g. 02:…")
    if not first & 2:
        return "warning", ("globally administered MAC (bit 0x02 of the first byte clear) may clash "
                           "with real hardware; fine when it is a licence-pinned MAC")
    return None


def _pool_range(subnet: Subnet) -> tuple[int, int]:
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


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


class _Check:
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


def analyse(layout: Layout) -> tuple[list[Problem], Facts]:
    """Every rule-level problem of ``layout`` plus the facts the ledger and plan need.

    Example: ``problems, facts = analyse(layout)``
    """
    check = _Check()
    check.duplicates(((f"sites.{s.name}", s.name) for s in layout.sites), "site")
    for site in layout.sites:
        _site(check, site)
    _overlap(check, layout)
    return check.problems, check.facts


def _site(check: _Check, site: Site) -> None:
    base = f"sites.{site.name}"
    hosts = {h.name: h for h in site.hosts}
    nets = {n.name: n for n in site.networks}
    net_index = {n.name: i for i, n in enumerate(site.networks)}
    host_index = {h.name: i for i, h in enumerate(site.hosts)}
    check.duplicates(((f"{base}.hosts[{i}].name", h.name) for i, h in enumerate(site.hosts)),
                     "host")
    check.duplicates(((f"{base}.networks[{i}].name", n.name)
                      for i, n in enumerate(site.networks)), "network")
    check.duplicates(((f"{base}.tenants[{i}].name", t.name)
                      for i, t in enumerate(site.tenants)), "tenant")
    check.duplicates(((f"{base}.routers[{i}].name", r.name)
                      for i, r in enumerate(site.routers)), "router")
    _lan(check, site)
    for i, host in enumerate(site.hosts):
        _host(check, site, i, host)
    for i, net in enumerate(site.networks):
        _network(check, site, i, net, hosts)
    _tenants(check, site, nets, net_index)
    for host in site.hosts:
        _parents(check, site, host, host_index[host.name], net_index)
    _containers(check, site, hosts, nets)
    _upstream(check, site, host_index)
    check.problems += probe_problems(site, {
        (r.container.host, r.container.name) for r in check.facts.containers
        if r.site is site and (r.pool4 is not None or r.pool6 is not None)})
    check.problems += mode_problems(site) + switch_problems(site)


def _lan(check: _Check, site: Site) -> None:
    base = f"sites.{site.name}.lan"
    lan = site.lan
    if lan.gateway is not None and lan.gateway not in lan.subnet:
        check.error(f"{base}.gateway", lan.gateway,
                    f"the gateway is outside the LAN subnet {lan.subnet}: use an address in it")
    pool = lan.dhcp_pool
    if pool is not None and not (pool.first in lan.subnet and pool.last in lan.subnet):
        check.error(f"{base}.dhcp_pool", str(pool),
                    f"the DHCP pool is outside the LAN subnet {lan.subnet}: use addresses in it")
    for i, router in enumerate(site.routers):
        if router.managed and router.ssh is None and site.inventory is None:
            check.error(f"sites.{site.name}.routers[{i}].ssh", None, (
                "required: a managed router gets the upstream routes over SSH; give its ssh "
                "settings (or set managed: false and add the plan's routes by hand)"))
        lan_net = lan.subnet if router.address.version == 4 else lan.subnet6
        if lan_net is not None and router.address not in lan_net:
            check.error(f"sites.{site.name}.routers[{i}].address", router.address,
                        f"the router is outside the LAN subnet {lan_net}: use its LAN address")


def _host(check: _Check, site: Site, i: int, host: Host) -> None:
    base = f"sites.{site.name}.hosts[{i}]"
    problem = _hostname_problem(host.name)
    if problem:
        check.error(f"{base}.name", host.name, problem)
    if host.ssh is None and site.inventory is None:
        check.error(f"{base}.ssh", None,
                    "required: how to reach the host (or set inventory: lab on the site)")
    for j, parent in enumerate(host.parents):
        problem = _iface_problem(parent)
        if problem:
            check.error(f"{base}.parents[{j}]", parent, problem)
    check.duplicates(((f"{base}.parents[{j}]", p) for j, p in enumerate(host.parents)), "parent")
    if host.docker_version is not None and not _VERSION.fullmatch(host.docker_version):
        check.error(f"{base}.docker_version", host.docker_version,
                    "expected a Docker version such as 20.10 or 27.1.1")
    lan = site.lan
    if host.lan_address is not None:
        if host.lan_address not in lan.subnet:
            check.error(f"{base}.lan_address", host.lan_address,
                        f"outside the LAN subnet {lan.subnet}: use the host's address on it")
        elif host.lan_address in (lan.subnet.network_address, lan.subnet.broadcast_address):
            check.error(f"{base}.lan_address", host.lan_address,
                        f"the network or broadcast address of {lan.subnet} is not a host address")
    if host.lan_address6 is not None and lan.subnet6 is not None \
            and host.lan_address6 not in lan.subnet6:
        check.error(f"{base}.lan_address6", host.lan_address6,
                    f"outside the LAN prefix {lan.subnet6}: use the host's address on it")


def _subnet(check: _Check, path: str, subnet: Subnet, net: Network) -> IPAddress:
    """Checks one IPAM pool; returns its effective gateway."""
    sub = subnet.subnet
    too_small = sub.prefixlen > (30 if sub.version == 4 else 126)
    if too_small:
        check.error(f"{path}.subnet", sub,
                    "too small for a gateway and a container: use a /30 (IPv6 /126) or larger")
    specials = {sub.network_address, sub.broadcast_address} if sub.version == 4 \
        else {sub.network_address}
    gateway: IPAddress = subnet.gateway if subnet.gateway is not None \
        else sub.network_address + 1
    if subnet.gateway is not None:
        if subnet.gateway.version != sub.version or subnet.gateway not in sub:
            check.error(f"{path}.gateway", subnet.gateway,
                        f"the gateway is outside the subnet {sub}: use an address in it")
        elif subnet.gateway in specials:
            check.error(f"{path}.gateway", subnet.gateway,
                        f"the network or broadcast address of {sub} cannot be the gateway")
        if isinstance(net, IpvlanNetwork) and net.mode in ("l3", "l3s"):
            check.warn(f"{path}.gateway", subnet.gateway, (
                f"ipvlan {net.mode} ignores the gateway: containers route through the "
                "parent; drop it"))
    rng = subnet.ip_range
    if rng is not None and (rng.version != sub.version or not rng.subnet_of(sub)):  # type: ignore[arg-type]
        check.error(f"{path}.ip_range", rng,
                    f"the ip_range is outside the subnet {sub}: use a range inside it")
    elif rng is not None and not too_small:
        lo, hi = _pool_range(subnet)
        if hi < lo:
            check.error(f"{path}.ip_range", rng,
                        "the ip_range holds no usable address: make it larger")
    for name, aux in subnet.aux_addresses.items():
        if aux.version != sub.version or aux not in sub:
            check.error(f"{path}.aux_addresses.{name}", aux,
                        f"the aux address is outside the subnet {sub}: use an address in it")
        elif aux in specials:
            check.error(f"{path}.aux_addresses.{name}", aux,
                        f"the network or broadcast address of {sub} cannot be an aux address")
    return gateway


def _network(check: _Check, site: Site, i: int, net: Network, hosts: dict[str, Host]) -> None:
    base = f"sites.{site.name}.networks[{i}]"
    if not _OBJECT_NAME.fullmatch(net.name):
        check.error(f"{base}.name", net.name,
                    "expected a name of letters, digits, '_', '.', '-' (not first)")
    for j, host in enumerate(net.hosts):
        if host not in hosts:
            check.error(f"{base}.hosts[{j}]", host,
                        f"unknown host; site {site.name} has: {', '.join(hosts)}")
    check.duplicates(((f"{base}.hosts[{j}]", h) for j, h in enumerate(net.hosts)), "host")
    for host, parent in net.parent_per_host.items():
        if host not in net.hosts:
            check.error(f"{base}.parent_per_host.{host}", parent,
                        "the host is not in this network's hosts: add it there or drop this")
    layer3 = isinstance(net, IpvlanNetwork) and net.mode in ("l3", "l3s")
    if layer3 and net.subnets and len(net.hosts) > 1:
        check.error(f"{base}.subnets", [str(s.subnet) for s in net.subnets], (
            "an ipvlan l3 subnet is routed to one host: on a network spanning hosts, give "
            "each host its own subnet through a tenant (tenants[].subnets[].host)"))
    for j, subnet in enumerate(net.subnets):
        path = f"{base}.subnets[{j}]"
        gateway = _subnet(check, path, subnet, net)
        _add_pool(check, site, net, subnet, path, net.hosts, None, gateway)
    if isinstance(net, IpvlanNetwork):
        _ipvlan_docker(check, site, base, net, hosts)
    if isinstance(net, MacvlanNetwork) and net.mode == "passthru" and net.shim is not None:
        check.error(f"{base}.shim", net.name, (
            "macvlan passthru gives the whole parent to one container: drop the shim "
            "or use mode bridge"))
    if net.shim is not None:
        _shim(check, site, base, net)


def _ipvlan_docker(check: _Check, site: Site, base: str, net: IpvlanNetwork,
                   hosts: dict[str, Host]) -> None:
    """What Docker's ipvlan driver does with mode and flag, by daemon version. Measured on
    Docker 20.10.24: ``ipvlan_mode=l3s`` is refused, ``ipvlan_flag`` is accepted, stored in the
    network's options and ignored (the links are created with flag bridge)."""
    old = sorted(h for h in net.hosts
                 if h in hosts and _version(hosts[h].docker_version) < _IPVLAN_FLAGS_SINCE)
    if not old:
        return
    where = f"on host(s) {', '.join(old)} (Docker 20.10 assumed where docker_version is not set)"
    if net.mode == "l3s":
        check.error(f"{base}.mode", net.mode, (
            f"Docker before 23.0 refuses ipvlan mode l3s {where}: use l3"))
    if net.flag != "bridge":
        check.error(f"{base}.flag", net.flag, (
            f"Docker before 23.0 accepts ipvlan_flag {net.flag} and ignores it (the links get "
            f"flag bridge) {where}: containers on this network would reach each other; "
            "drop the flag, or give each tenant its own host"))


def _add_pool(check: _Check, site: Site, net: Network, subnet: Subnet, path: str,
              hosts: tuple[str, ...], tenant: str | None, gateway: IPAddress) -> None:
    first, last = _pool_range(subnet)
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


def shim_name(net: Network) -> str:
    """The shim's interface name, e.g. ``shim-pub_net``."""
    assert net.shim is not None
    return net.shim.name or f"shim-{net.name}"


def _shim(check: _Check, site: Site, base: str, net: Network) -> None:
    shim = net.shim
    assert shim is not None
    problem = _iface_problem(shim_name(net))
    if problem:
        path = f"{base}.shim.name" if shim.name else f"{base}.name"
        check.error(path, shim_name(net), problem + (
            "" if shim.name else " (the shim is named shim-<network>; set shim.name)"))
    if isinstance(net, IpvlanNetwork) and net.mode != "l2":
        check.error(f"{base}.shim", net.name, (
            f"ipvlan {net.mode} needs no shim: the host reaches the containers by routing "
            "(through the upstream route to its own subnet); drop the shim"))
    if isinstance(net, IpvlanNetwork) and net.flag == "private":
        check.error(f"{base}.flag", net.flag, (
            "ipvlan private blocks traffic between the shim and the containers: use flag "
            "bridge, or drop the shim"))
    if isinstance(net, MacvlanNetwork) and net.mode == "private":
        check.error(f"{base}.mode", net.mode, (
            "macvlan private blocks traffic between the shim and the containers: use mode "
            "bridge, or drop the shim"))
    if isinstance(net, MacvlanNetwork) and net.mode == "vepa":
        check.warn(f"{base}.mode", net.mode, (
            "with macvlan vepa the shim reaches containers only through a switch port in "
            "hairpin (reflective relay) mode"))
    for key, version, addresses in (("address_per_host", 4, shim.address_per_host),
                                    ("address6_per_host", 6, shim.address6_per_host)):
        subs = [s for s in net.subnets if s.subnet.version == version]
        for host, address in addresses.items():
            path = f"{base}.shim.{key}.{host}"
            specials = [s.subnet.network_address for s in subs] + [
                s.subnet.broadcast_address for s in subs if version == 4]
            if host not in net.hosts:
                check.error(path, address, "the host is not in this network's hosts: add it there")
            elif not any(address in s.subnet for s in subs):
                nets = ", ".join(str(s.subnet) for s in subs) or "none"
                check.error(path, address, f"the shim address is outside the network's "
                                           f"IPv{version} subnets ({nets})")
            elif address in specials:
                check.error(path, address,
                            "the network or broadcast address cannot be a shim address")
    if shim.routes == "ip-range" and not any(s.ip_range is not None for s in net.subnets):
        check.error(f"{base}.shim.routes", shim.routes,
                    "routes: ip-range needs an ip_range on a subnet: add one or use "
                    "per-container")


def _tenants(check: _Check, site: Site, nets: dict[str, Network],
             net_index: dict[str, int]) -> None:
    for t, tenant in enumerate(site.tenants):
        if not _OBJECT_NAME.fullmatch(tenant.name):
            check.error(f"sites.{site.name}.tenants[{t}].name", tenant.name,
                        "expected a name of letters, digits, '_', '.', '-' (not first)")
        for k, ts in enumerate(tenant.subnets):
            path = f"sites.{site.name}.tenants[{t}].subnets[{k}]"
            net = nets.get(ts.network)
            if net is None:
                check.error(f"{path}.network", ts.network,
                            f"unknown network; site {site.name} has: {', '.join(nets) or 'none'}")
                continue
            if not routes_tenants(net):
                mode = f"{net.driver} {net.mode}"
                check.error(f"{path}.network", ts.network, (
                    f"tenant subnets are routed to an ipvlan l3 or l3s network, or to a "
                    f"macvlan bridge network with a shim; {ts.network} is {mode}"
                    + ("" if net.shim is not None or not isinstance(net, MacvlanNetwork)
                       else " without a shim")))
                continue
            host = ts.host
            if host is None and len(net.hosts) != 1:
                check.error(f"{path}.host", None, (
                    f"required: network {net.name} spans {len(net.hosts)} hosts and the router "
                    "sends this subnet to one of them"))
                continue
            host = host if host is not None else net.hosts[0]
            if host not in net.hosts:
                check.error(f"{path}.host", host,
                            f"network {net.name} is not on this host: add it to its hosts")
                continue
            if isinstance(net, MacvlanNetwork) and net.shim is not None and host not in (
                    net.shim.address_per_host):
                check.error(f"{path}.host", host, (
                    f"network {net.name} has no shim on host {host}, and on macvlan the "
                    f"shim is the tenant subnet's gateway: add {host} to "
                    f"sites.{site.name}.networks[{net_index[net.name]}].shim.address_per_host"))
                continue
            subnet = Subnet(subnet=ts.subnet)
            gateway = _subnet(check, path, subnet, net)
            _add_pool(check, site, net, subnet, path, (host,), tenant.name, gateway)
    for net in site.networks:
        for host in net.hosts:
            families = {p.subnet.subnet.version
                        for p in check.facts.by_net_host.get((site.name, net.name, host), [])}
            if families == {6}:
                # Measured on Docker 20.10.24: the daemon then adds an IPv4 pool of its own and
                # gives every container an address from it, on the LAN.
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].subnets", [], (
                    f"network {net.name} has IPv6 but no IPv4 subnet on host {host}: Docker "
                    "adds an IPv4 pool of its own and gives containers addresses from it; add "
                    "an IPv4 subnet (or a tenant's)"))
                break
    for net in site.networks:
        for host in net.hosts:
            if (site.name, net.name, host) not in check.facts.by_net_host:
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].subnets", [], (
                    f"no subnet on host {host}: add subnets (or a tenant subnet), else Docker "
                    "picks a random one"))
                break
    for net in site.networks:
        tenants = sorted({p.tenant for h in net.hosts
                          for p in check.facts.by_net_host.get((site.name, net.name, h), [])
                          if p.tenant is not None})
        if len(tenants) > 1:
            versions = {h.name: h.docker_version or "20.10 (assumed)" for h in site.hosts}
            for h in net.hosts:
                check.facts.notes.setdefault((site.name, h, net.name), []).append(
                    f"carries tenants {', '.join(tenants)} in one ipvlan network: Docker "
                    f"{versions.get(h, '20.10 (assumed)')} allows one ipvlan network per parent "
                    f"({net.parent_on(h)}); the tenants reach each other inside the host (ipvlan "
                    "flag bridge; Docker 20.10 ignores ipvlan_flag, 23.0+ honours private)")


def _parents(check: _Check, site: Site, host: Host, hi: int,
             net_index: dict[str, int]) -> None:
    """Per host: parents exist, 802.1Q ids are valid and unique, and Docker's
    one-network-per-parent and passthru rules hold."""
    hbase = f"sites.{site.name}.hosts[{hi}]"
    on_host = [n for n in site.networks if host.name in n.hosts]
    vlans: dict[str, tuple[str, int]] = {}
    by_vid: dict[tuple[str, int], str] = {}
    users: dict[str, list[Network]] = {}
    for net in on_host:
        parent = net.parent_on(host.name)
        path = f"sites.{site.name}.networks[{net_index[net.name]}]." + (
            f"parent_per_host.{host.name}" if host.name in net.parent_per_host else "parent")
        users.setdefault(parent, []).append(net)
        problem = _iface_problem(parent)
        if problem:
            check.error(path, parent, problem)
            continue
        if parent in host.parents:
            continue
        m = _VLAN.fullmatch(parent)
        if m is None:
            check.error(path, parent, (
                f"{parent} is not a parent of host {host.name} ({', '.join(host.parents)}): "
                f"add it to {hbase}.parents"))
            continue
        trunk, vid = m.group(1), int(m.group(2))
        if trunk not in host.parents:
            check.error(path, parent, (
                f"trunk {trunk} of {parent} is not a parent of host {host.name}: add it to "
                f"{hbase}.parents"))
        elif not 1 <= vid <= 4094:
            check.error(path, parent, f"VLAN id {vid} is out of range: use 1 to 4094")
        elif by_vid.setdefault((trunk, vid), parent) != parent:
            check.error(path, parent, (
                f"VLAN {vid} on trunk {trunk} is already {by_vid[(trunk, vid)]}: use one "
                "name per VLAN"))
        else:
            vlans[parent] = (trunk, vid)
    check.facts.vlans[(site.name, host.name)] = vlans
    _shim_names(check, site, host, on_host, vlans, net_index)
    for parent, nets in users.items():
        _shared_parent(check, site, host, hi, parent, nets, net_index)
    trunks = {trunk: sub for sub, (trunk, _) in vlans.items()}
    for parent, nets in users.items():
        for net in nets:
            if isinstance(net, MacvlanNetwork) and net.mode == "passthru" and parent in trunks:
                check.error(f"sites.{site.name}.networks[{net_index[net.name]}].parent", parent, (
                    f"macvlan passthru gives the whole parent {parent} to network {net.name}; "
                    f"on host {host.name} it is also the trunk of {trunks[parent]}: give one "
                    "of them another parent"))


def _shim_names(check: _Check, site: Site, host: Host, on_host: list[Network],
                vlans: dict[str, tuple[str, int]], net_index: dict[str, int]) -> None:
    """A shim's name is a new link on the host: never one of its parents, an 802.1Q parent,
    another shim or a name the host reserves (vlaninfra would refuse to touch that link; the
    layout says so before anything runs)."""
    taken: dict[str, str] = {p: f"parent {p} of host {host.name}" for p in host.parents}
    taken.update({v: f"the 802.1Q parent {v} on host {host.name}" for v in vlans})
    for net in on_host:
        if net.shim is None:
            continue
        name = shim_name(net)
        base = f"sites.{site.name}.networks[{net_index[net.name]}]"
        path = f"{base}.shim.name" if net.shim.name else f"{base}.name"
        vlan = _VLAN.fullmatch(name)
        if name in taken:
            why = f"is {taken[name]}"
        elif name in RESERVED_IFNAMES or _RESERVED_IFNAME.fullmatch(name):
            why = "is a name the host reserves (loopback, management NIC, bond, bridge, Docker)"
        elif vlan is not None and vlan.group(1) in host.parents:
            why = f"names an 802.1Q sub-interface of parent {vlan.group(1)}"
        else:
            taken[name] = f"the shim of network {net.name} on host {host.name}"
            continue
        check.error(path, name, (
            f"shim name {name} {why}: vlaninfra never takes over a link it did not make; "
            f"choose another name in {base}.shim.name"))


def _shared_parent(check: _Check, site: Site, host: Host, hi: int, parent: str,
                   nets: list[Network], net_index: dict[str, int]) -> None:
    first = nets[0]
    for net in nets[1:]:
        path = f"sites.{site.name}.networks[{net_index[net.name]}].parent"
        passthru = [n for n in (first, net)
                    if isinstance(n, MacvlanNetwork) and n.mode == "passthru"]
        if passthru:
            other = net if passthru[0] is first else first
            check.error(path, parent, (
                f"macvlan passthru gives the whole parent {parent} to network "
                f"{passthru[0].name}; network {other.name} cannot use it too on host "
                f"{host.name}: give it another parent"))
        elif first.driver != net.driver:
            check.error(path, parent, (
                f"the kernel refuses macvlan and ipvlan on one parent: network {net.name} "
                f"({net.driver}) and network {first.name} ({first.driver}) both use {parent} "
                f"on host {host.name}; give one an 802.1Q parent such as {parent}.50"))
        elif not docker_allows_shared_parent(host.docker_version, net.driver):
            version = host.docker_version or (
                f"20.10 (assumed: sites.{site.name}.hosts[{hi}].docker_version is not set)")
            newer = " (Docker 27 and later allow it for macvlan)" \
                if net.driver == "macvlan" else ""
            check.error(path, parent, (
                f"network {net.name} and network {first.name} both use parent {parent} on "
                f"host {host.name}; Docker {version} allows one {net.driver} network per "
                f"parent{newer}: carry both subnets in one network, or give each its own "
                f"802.1Q parent such as {parent}.50"))


def _containers(check: _Check, site: Site, hosts: dict[str, Host],
                nets: dict[str, Network]) -> None:
    tenants = [t.name for t in site.tenants]
    check.duplicates(((f"sites.{site.name}.containers[{i}].name", f"{c.host}/{c.name}")
                      for i, c in enumerate(site.containers)), "container (per host)")
    passthru_users: dict[tuple[str, str], str] = {}
    for i, c in enumerate(site.containers):
        base = f"sites.{site.name}.containers[{i}]"
        if not _CONTAINER_NAME.fullmatch(c.name):
            check.error(f"{base}.name", c.name, (
                "not a Docker container name: 2 or more of letters, digits, '_', '.', '-', "
                "starting with a letter or digit"))
        if c.hostname is not None:
            problem = _hostname_problem(c.hostname)
            if problem:
                check.error(f"{base}.hostname", c.hostname, problem)
        if c.mac is not None:
            found = mac_problem(c.mac)
            if found is not None:
                add = check.error if found[0] == "error" else check.warn
                add(f"{base}.mac", c.mac, found[1])
        if c.tenant is not None and c.tenant not in tenants:
            check.error(f"{base}.tenant", c.tenant,
                        f"unknown tenant; site {site.name} has: {', '.join(tenants) or 'none'}")
            continue
        host = hosts.get(c.host)
        if host is None:
            check.error(f"{base}.host", c.host,
                        f"unknown host; site {site.name} has: {', '.join(hosts)}")
            continue
        net = nets.get(c.network)
        if net is None:
            check.error(f"{base}.network", c.network,
                        f"unknown network; site {site.name} has: {', '.join(nets) or 'none'}")
            continue
        if c.host not in net.hosts:
            check.error(f"{base}.host", c.host,
                        f"network {net.name} is not on host {c.host}: add it to its hosts")
            continue
        if isinstance(net, IpvlanNetwork) and c.mac is not None:
            check.error(f"{base}.mac", c.mac,
                        "ipvlan containers share the parent's MAC: drop mac, or use macvlan")
        if isinstance(net, MacvlanNetwork) and net.mode == "passthru":
            owner = passthru_users.setdefault((c.host, net.name), c.name)
            if owner != c.name:
                check.error(f"{base}.network", c.network, (
                    f"macvlan passthru holds one container per host; {owner} already uses "
                    f"{net.name} on {c.host}"))
        pools = check.facts.by_net_host.get((site.name, net.name, c.host), [])
        if c.tenant is not None:
            pools = [p for p in pools if p.tenant == c.tenant]
            if not pools:
                check.error(f"{base}.tenant", c.tenant,
                            f"the tenant has no subnet on network {net.name} on host {c.host}")
                continue
        ok4, pool4 = _pick(check, base, "ipv4", c.ipv4, pools, 4, c.host, net.name)
        ok6, pool6 = _pick(check, base, "ipv6", c.ipv6, pools, 6, c.host, net.name)
        if ok4 and ok6:
            check.facts.containers.append(Resolved(site, i, c, net, host, pool4, pool6))


def _pick(check: _Check, base: str, key: str, address: IPAddress | None, pools: list[Pool],
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


def _upstream(check: _Check, site: Site, host_index: dict[str, int]) -> None:
    routed = [p for p in check.facts.pools if p.site == site.name and routed_pool(p)]
    for pool in routed:
        for host in pool.hosts:
            if host not in host_index:
                continue  # an unknown host is reported where the network names it
            h = site.hosts[host_index[host]]
            v4 = pool.subnet.subnet.version == 4
            if (h.lan_address if v4 else h.lan_address6) is None:
                key = "lan_address" if v4 else "lan_address6"
                check.error(f"sites.{site.name}.hosts[{host_index[host]}].{key}", None, (
                    f"required: the upstream router reaches {pool.subnet.subnet} through this "
                    "host's LAN address"))
    if routed and not site.routers:
        check.warn(f"sites.{site.name}.routers", [], (
            "no upstream router: add the plan's upstream routes to your router by hand"))


_Space = tuple[IPNetwork, str, str, str, object]
"""(prefix, config path, label, site, owner: a Pool or a LAN marker)."""


def _overlap(check: _Check, layout: Layout) -> None:
    """Overlapping subnets across tenants, LANs, networks and sites. A network may reuse
    its own site's LAN subnet exactly (macvlan on the LAN)."""
    spaces: list[_Space] = []
    for site in layout.sites:
        lan = f"sites.{site.name}.lan"
        spaces.append((site.lan.subnet, f"{lan}.subnet", f"the LAN of site {site.name}",
                       site.name, ("lan", site.name)))
        if site.lan.subnet6 is not None:
            spaces.append((site.lan.subnet6, f"{lan}.subnet6", f"the LAN of site {site.name}",
                           site.name, ("lan", site.name)))
    for p in check.facts.pools:
        label = f"tenant {p.tenant}" if p.tenant else f"network {p.network.name}"
        spaces.append((p.subnet.subnet, f"{p.path}.subnet", label, p.site, p))
    spaces.sort(key=lambda s: (s[0].version, int(s[0].network_address)))
    # Sorted by start, a prefix can only overlap the ones that start before it ends.
    for i, a in enumerate(spaces):
        for b in spaces[i + 1:]:
            if not _overlaps(a[0], b[0]):
                break
            later, earlier = (a, b) if a[1] > b[1] else (b, a)
            message = _overlap_message(later, earlier)
            if message:
                check.error(later[1], later[0], message)


def _overlap_message(a: _Space, b: _Space) -> str | None:
    pa, pb = a[4], b[4]
    pool, lan = (pa, b) if isinstance(pa, Pool) else (pb, a)
    if isinstance(pool, Pool) and not isinstance(lan[4], Pool):
        layer2 = not (isinstance(pool.network, IpvlanNetwork) and pool.network.mode != "l2")
        if layer2 and pool.site == lan[3] and pool.subnet.subnet == lan[0]:
            return None
    if isinstance(pa, Pool) and isinstance(pb, Pool) and pa.site == pb.site:
        shared = [h for h in pa.hosts if h in pb.hosts]
        if shared and pa.network is not pb.network:
            h = shared[0]
            pa_parent, pb_parent = pa.network.parent_on(h), pb.network.parent_on(h)
            if pa_parent != pb_parent:
                return (f"the same subnet on two parents of host {h} ({pb_parent} for network "
                        f"{pb.network.name}, {pa_parent} for network {pa.network.name}): Docker "
                        "rejects it; use one network")
    return (f"overlaps {b[2]} ({b[0]} at {b[1]}): every tenant, LAN, network and site needs "
            "its own addresses")

