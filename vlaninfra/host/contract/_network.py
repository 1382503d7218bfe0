"""Docker macvlan/ipvlan networks: the spec a provider asks for, the state a host reports, and
their ops. The mode travels as one typed value; Docker's option names (``macvlan_mode``,
``ipvlan_mode``, ``ipvlan_flag``) are written and read only here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vlaninfra.host.marks import ADHOC_OWNER

from ._codec import Json, Op, as_, of_mapping
from ._common import Mark, Named, Removed
from ._enums import Driver, IpvlanFlag, LinkMode, check_link

__all__ = [
    "NETWORK_CREATE",
    "NETWORK_INSPECT",
    "NETWORK_REMOVE",
    "IpamPool",
    "NetworkCreate",
    "NetworkRemove",
    "NetworkSpec",
    "NetworkState",
]


@dataclass(frozen=True)
class IpamPool:
    """One IPAM pool, e.g. ``IpamPool("192.0.2.0/24", gateway="192.0.2.1")``."""

    subnet: str
    gateway: str | None = None
    ip_range: str | None = None
    aux_addresses: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class NetworkSpec:
    """A Docker network as asked for.

    Example: ``NetworkSpec("lan", Driver.MACVLAN, "eth0", MacvlanMode.BRIDGE,
    ipam=(IpamPool("192.0.2.0/24"),))``
    """

    name: str
    driver: Driver
    parent: str
    mode: LinkMode
    flag: IpvlanFlag | None = None
    """None: the kernel's default (bridge); ipvlan only."""
    ipam: tuple[IpamPool, ...] = ()
    internal: bool = False
    enable_ipv6: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_link(self.driver, self.mode, self.flag)

    def docker_options(self) -> dict[str, str]:
        """The driver options Docker is given.

        Example: ``NetworkSpec("t", Driver.IPVLAN, "eth0", IpvlanMode.L3).docker_options()``
        → ``{"parent": "eth0", "ipvlan_mode": "l3"}``
        """
        if self.driver is Driver.MACVLAN:
            return {"parent": self.parent, "macvlan_mode": self.mode.value}
        opts = {"parent": self.parent, "ipvlan_mode": self.mode.value}
        if self.flag is not None:
            opts["ipvlan_flag"] = self.flag.value
        return opts


@dataclass(frozen=True)
class NetworkState:
    """A network as the host's daemon has it (any driver: one of that name may be another's).

    ``mode`` and ``flag`` are read back from Docker's options; ``labels`` include vlaninfra's
    marks; ``parent_preexisted`` (create only) says whether the parent link was there before
    (Docker makes an 802.1Q parent like ``eth0.50`` itself), ``adopted`` that the create took
    over the network an earlier run made.
    """

    id: str
    name: str
    driver: str | None
    parent: str | None
    mode: str | None
    flag: str | None
    ipam: tuple[IpamPool, ...]
    internal: bool
    enable_ipv6: bool
    labels: Mapping[str, str]
    containers: tuple[str, ...]
    parent_preexisted: bool | None = None
    adopted: bool = False

    @classmethod
    def of_inspect(cls, found: Mapping[str, Json]) -> NetworkState:
        """From the agent's network inspect (``docker_facts.network_inspect``)."""
        opts: Mapping[str, str] = found.get("options") or {}
        return cls(
            id=found["id"], name=found["name"], driver=found.get("driver"),
            parent=opts.get("parent"),
            mode=opts.get("macvlan_mode") or opts.get("ipvlan_mode"),
            flag=opts.get("ipvlan_flag"),
            ipam=tuple(IpamPool(p["subnet"], p.get("gateway"), p.get("ip_range"),
                                dict(p.get("aux_addresses") or {}))
                       for p in found.get("ipam") or []),
            internal=bool(found.get("internal")), enable_ipv6=bool(found.get("enable_ipv6")),
            labels=dict(found.get("labels") or {}),
            containers=tuple(sorted(found.get("containers") or ())),
            parent_preexisted=found.get("parent_preexisted"),
            adopted=bool(found.get("adopted")),
        )


@dataclass(frozen=True)
class NetworkCreate:
    """Create the network ``spec`` marked ``mark`` (adopt it when an earlier run made it)."""

    spec: NetworkSpec
    mark: Mark = field(default_factory=Mark)


@dataclass(frozen=True)
class NetworkRemove:
    """Remove ``owner``'s network ``name`` (``id``: the one state recorded, claimed even
    without labels: made before marks)."""

    name: str
    owner: str = ADHOC_OWNER
    id: str | None = None


_inspected = of_mapping("a network", NetworkState.of_inspect)
"""The inspect op answers in the agent's inspect form (host snapshots carry it too)."""
NETWORK_CREATE: Op[NetworkCreate, NetworkState] = Op(
    "docker.network.create", NetworkCreate, as_(NetworkState))
NETWORK_INSPECT: Op[Named, NetworkState | None] = Op("docker.network.inspect", Named, _inspected)
NETWORK_REMOVE: Op[NetworkRemove, Removed] = Op("docker.network.remove", NetworkRemove,
                                                 as_(Removed))
