"""The typed layout: what the user declares, before validation and allocation."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

from vlaninfra.host.contract import Driver, IpvlanFlag, IpvlanMode, MacvlanMode, RestartPolicy

__all__ = [
    "AddressRange",
    "Container",
    "Host",
    "IPAddress",
    "IPNetwork",
    "IpvlanFlag",
    "IpvlanMode",
    "IpvlanNetwork",
    "Lan",
    "Layout",
    "MacvlanMode",
    "MacvlanNetwork",
    "Network",
    "Probe",
    "ProbeExpect",
    "RestartPolicy",
    "Router",
    "Shim",
    "ShimRoutes",
    "Site",
    "SshTarget",
    "Subnet",
    "Switch",
    "Tenant",
    "TenantSubnet",
]

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
ShimRoutes = Literal["per-container", "ip-range"]
ProbeExpect = Literal["reach", "blocked"]
Promiscuous = Literal["allowed", "denied"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SshTarget:
    """How to reach a host, e.g. ``SshTarget(address="203.0.113.2", user="admin")``."""

    address: str
    port: int = 22
    user: str = "root"
    host_key: str | None = None
    private_key_file: str | None = None
    """Path of the private key file on the machine running Pulumi (absolute or ``~/...``)."""
    private_key_config: str | None = None
    """Name of a *secret* Pulumi config key holding the private key (never the key itself).
    Neither set: ssh-agent (``SSH_AUTH_SOCK``) authenticates."""
    sudo: bool = False
    docker_socket: str = "/var/run/docker.sock"
    python: str = "python3"


@dataclass(frozen=True, slots=True)
class AddressRange:
    """Inclusive, e.g. ``AddressRange(ip_address("192.0.2.2"), ip_address("192.0.2.9"))``."""

    first: IPAddress
    last: IPAddress

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, (IPv4Address, IPv6Address)):
            return False
        if address.version != self.first.version:
            return False
        return int(self.first) <= int(address) <= int(self.last)

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Lan:
    """A site's LAN, e.g. ``Lan(subnet=IPv4Network("192.0.2.0/24"))``."""

    subnet: IPv4Network
    gateway: IPv4Address | None = None
    dhcp_pool: AddressRange | None = None
    """Addresses a DHCP server hands out on this LAN: never given to a container or shim."""
    subnet6: IPv6Network | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Switch:
    """What the switch port behind a parent allows (port security), e.g.
    ``Switch(mac_limit_per_port=16, promiscuous="denied")``; ``None`` means not stated."""

    mac_limit_per_port: int | None = None
    promiscuous: Promiscuous | None = None
    """``denied``: the port drops frames from MACs it did not learn first (no macvlan)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Router:
    """An upstream router of a site, e.g. ``Router(name="gw", address=ip_address("192.0.2.1"))``."""

    name: str
    address: IPAddress
    managed: bool = False
    """True when vlaninfra may apply the upstream routes to it; they are computed either way."""
    ssh: SshTarget | None = None
    """How vlaninfra reaches a managed router (like a host); the lab inventory supplies it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    """A Docker host, e.g. ``Host(name="h1", ssh=SshTarget(address="203.0.113.2"))``."""

    name: str
    ssh: SshTarget | None = None
    lan_address: IPv4Address | None = None
    lan_address6: IPv6Address | None = None
    parents: tuple[str, ...] = ("eth0",)
    """Physical NICs (or trunks) that networks may use; ``eth0.50`` derives from ``eth0``."""
    docker_version: str | None = None
    """The daemon's version, e.g. ``"20.10"``; when absent the strict 20.10 rules apply."""
    switch_per_parent: Mapping[str, Switch] = field(default_factory=dict)
    """The switch port behind a parent, when it differs from the site's ``switch``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Subnet:
    """One IPAM pool of a network, e.g. ``Subnet(subnet=IPv4Network("192.0.2.0/24"))``."""

    subnet: IPNetwork
    gateway: IPAddress | None = None
    """When absent, Docker takes the first address; the plan always states it explicitly."""
    ip_range: IPNetwork | None = None
    aux_addresses: Mapping[str, IPAddress] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Shim:
    """A host-side interface so a host reaches its own containers.

    Example: ``Shim(address_per_host={"h1": IPv4Address("192.0.2.250")}, routes="ip-range")``
    """

    address_per_host: Mapping[str, IPv4Address]
    address6_per_host: Mapping[str, IPv6Address] = field(default_factory=dict)
    """The shim's IPv6 address on each host (in an IPv6 subnet of the network), so the host
    reaches its containers' IPv6 addresses too."""
    routes: ShimRoutes = "per-container"
    """``per-container``: one /32 (/128) per container of that host; ``ip-range``: the
    ip_ranges."""
    name: str | None = None
    """The interface name; defaults to ``shim-<network>``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _NetworkBase:
    name: str
    parent: str
    hosts: tuple[str, ...]
    subnets: tuple[Subnet, ...] = ()
    shim: Shim | None = None
    internal: bool = False
    parent_per_host: Mapping[str, str] = field(default_factory=dict)
    """Hosts whose NIC is named differently, e.g. ``{"h2": "enp3s0"}``."""

    def parent_on(self, host: str) -> str:
        """The parent interface on ``host``, e.g. ``net.parent_on("h2") == "enp3s0"``."""
        return self.parent_per_host.get(host, self.parent)


@dataclass(frozen=True, slots=True, kw_only=True)
class MacvlanNetwork(_NetworkBase):
    """A macvlan network, e.g. ``MacvlanNetwork(name="pub", parent="eth0", hosts=("h1",))``."""

    mode: MacvlanMode = MacvlanMode.BRIDGE

    @property
    def driver(self) -> Literal[Driver.MACVLAN]:
        """Always ``Driver.MACVLAN``."""
        return Driver.MACVLAN


@dataclass(frozen=True, slots=True, kw_only=True)
class IpvlanNetwork(_NetworkBase):
    """An ipvlan network, e.g. ``IpvlanNetwork(name="t", parent="eth0", hosts=("h1",))``."""

    mode: IpvlanMode = IpvlanMode.L2
    flag: IpvlanFlag = IpvlanFlag.BRIDGE

    @property
    def driver(self) -> Literal[Driver.IPVLAN]:
        """Always ``Driver.IPVLAN``."""
        return Driver.IPVLAN


Network = MacvlanNetwork | IpvlanNetwork


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantSubnet:
    """A routed subnet of a tenant, served by an ipvlan l3/l3s network on one host, or by a
    macvlan (bridge) network whose shim on that host is the subnet's gateway (the host routes
    it; where the kernel has no ipvlan).

    Example: ``TenantSubnet(subnet=IPv4Network("198.18.1.0/24"), network="tenants", host="h1")``
    """

    subnet: IPNetwork
    network: str
    host: str | None = None
    """Required when the network spans several hosts: the router sends the prefix to one host."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Tenant:
    """A tenant and its routed subnets, e.g. ``Tenant(name="tenant_a", subnets=(...,))``."""

    name: str
    subnets: tuple[TenantSubnet, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """A container, e.g. ``Container(name="web", host="h1", network="pub_net", image="nginx")``."""

    name: str
    host: str
    network: str
    image: str
    command: tuple[str, ...] | None = None
    ipv4: IPv4Address | None = None
    """Fixed address; when absent one is allocated from the ip_range (else the subnet)."""
    ipv6: IPv6Address | None = None
    mac: str | None = None
    """When absent on macvlan, derived from (site, host, network, name), locally administered."""
    tenant: str | None = None
    """Chooses the tenant subnet to allocate from when the network carries several."""
    hostname: str | None = None
    restart_policy: RestartPolicy = RestartPolicy.UNLESS_STOPPED


@dataclass(frozen=True, slots=True, kw_only=True)
class Probe:
    """A reachability check the user adds to verification.

    Example: ``Probe(source="h1", to="web1", port=80)`` (h1 reaches web1's port 80), or
    ``Probe(source="web1", to="198.18.2.10", expect="blocked")`` (web1 must not).
    """

    source: str
    """``from`` in the config: a host of the site (runs on the host, through its shim where it
    has one), a container of the site (runs inside it; ``host/name`` when the name is on several
    hosts) or the site's managed router."""
    to: str
    """A container of the site (its planned address; ``host/name`` when ambiguous) or an IP
    address."""
    port: int | None = None
    """TCP port to connect to; without it an ICMP echo (ping)."""
    expect: ProbeExpect = "reach"
    """``blocked``: passes when the connection or ping fails within its short timeout."""
    name: str | None = None
    """Shown in the verification table; unique in the site."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Site:
    """One site: its LAN, routers, hosts, networks, tenants and containers.

    Example: ``Site(name="paris", lan=Lan(subnet=IPv4Network("192.0.2.0/24")), hosts=(...,))``
    """

    name: str
    lan: Lan
    hosts: tuple[Host, ...]
    networks: tuple[Network, ...] = ()
    tenants: tuple[Tenant, ...] = ()
    containers: tuple[Container, ...] = ()
    routers: tuple[Router, ...] = ()
    probes: tuple[Probe, ...] = ()
    """Reachability checks verification runs besides the ones the layout implies."""
    switch: Switch | None = None
    """What the site's switch ports allow; a host's ``switch_per_parent`` overrides it."""
    inventory: str | None = None
    """``"lab"``: SSH targets come from the local lab at run time, so ``ssh`` is optional."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Layout:
    """The whole layout, e.g. ``Layout(sites=(Site(...),))``."""

    sites: tuple[Site, ...]
