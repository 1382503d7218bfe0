"""Links vlaninfra makes on a host itself: shims (a macvlan or ipvlan link with addresses and
routes, through which the host reaches its containers) and 802.1Q VLAN parents."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from vlaninfra.host.marks import ADHOC_OWNER

from ._codec import ContractError, Json, Op, as_, of_mapping
from ._common import Mark, Named
from ._enums import Driver, IpvlanFlag, LinkMode, check_link

__all__ = [
    "LINK_GET",
    "SHIM_DELETE",
    "SHIM_ENSURE",
    "SHIM_READ",
    "VLAN_DELETE",
    "VLAN_ENSURE",
    "VLAN_READ",
    "Deleted",
    "LinkDelete",
    "LinkRead",
    "LinkState",
    "ShimEnsure",
    "ShimSpec",
    "VlanEnsure",
    "VlanSpec",
]


@dataclass(frozen=True)
class LinkState:
    """A link as the host has it (``link.get``); ``routes`` (shims: vlaninfra's routes through
    it), ``created`` (ensure: whether it is the caller's), ``persisted`` (reads asked to
    check: ``"ok"`` when its boot file would re-create it, else what is wrong) when asked."""

    name: str
    index: int
    kind: str | None
    parent: str | None
    mode: str | None
    flag: str | None
    vlan_id: int | None
    mac: str | None
    mtu: int | None
    up: bool
    addresses: tuple[str, ...]
    alias: str | None
    routes: tuple[str, ...] = ()
    created: bool | None = None
    persisted: str | None = None

    @classmethod
    def of_link(cls, found: Mapping[str, Json]) -> LinkState:
        """From the agent's link dict (``facts.read_link``, plus what an op added)."""
        fields = {f: found[f] for f in cls.__dataclass_fields__ if f in found}
        for f in ("addresses", "routes"):
            if f in fields:
                fields[f] = tuple(fields[f])
        return cls(**fields)


@dataclass(frozen=True)
class ShimSpec:
    """A host shim, e.g. ``ShimSpec("shim0", "eth0", Driver.MACVLAN, MacvlanMode.BRIDGE,
    "192.0.2.250/32", ("192.0.2.128/26",))``."""

    name: str
    parent: str
    kind: Driver
    mode: LinkMode
    address: str | None = None
    routes: tuple[str, ...] = ()
    flag: IpvlanFlag | None = None
    """ipvlan only; None: bridge."""
    extra_addresses: tuple[str, ...] = ()
    """Its IPv6 address and tenant gateways."""

    def __post_init__(self) -> None:
        check_link(self.kind, self.mode, self.flag)


@dataclass(frozen=True)
class ShimEnsure:
    """Converge the shim ``spec`` marked ``mark``; ``ifindex``: the link state recorded (made
    before marks); ``persist_owner``: also keep its boot file (the owning stack)."""

    spec: ShimSpec
    mark: Mark = field(default_factory=Mark)
    ifindex: int | None = None
    persist_owner: str | None = None


@dataclass(frozen=True)
class LinkRead:
    """Read the link ``name``; ``persist_owner``: also check its boot file."""

    name: str
    persist_owner: str | None = None


@dataclass(frozen=True)
class LinkDelete:
    """Delete ``owner``'s link ``name`` (``ifindex``: the one state recorded);
    ``persist_owner``: also remove its boot file."""

    name: str
    owner: str = ADHOC_OWNER
    ifindex: int | None = None
    persist_owner: str | None = None


@dataclass(frozen=True)
class Deleted:
    """What a delete did: ``deleted``, or ``kept`` (why a link that is not the caller's was
    left in place)."""

    deleted: bool
    kept: str | None = None


@dataclass(frozen=True)
class VlanSpec:
    """An 802.1Q sub-interface, e.g. ``VlanSpec("eth0", 50, "eth0.50")``."""

    trunk: str
    vlan_id: int
    name: str

    def __post_init__(self) -> None:
        if isinstance(self.vlan_id, bool) or not isinstance(self.vlan_id, int) or not (
                1 <= self.vlan_id <= 4094):
            raise ContractError(f"vlan_id: VLAN id {self.vlan_id!r} is not 1 to 4094",
                                "vlan_id")


@dataclass(frozen=True)
class VlanEnsure:
    """Converge the VLAN parent ``spec`` (marked ``mark`` when this call makes it);
    ``persist_owner``: also keep its boot file when it is the caller's."""

    spec: VlanSpec
    mark: Mark = field(default_factory=Mark)
    persist_owner: str | None = None


_link = of_mapping("a link", LinkState.of_link)
LINK_GET: Op[Named, LinkState | None] = Op("link.get", Named, _link)
SHIM_ENSURE: Op[ShimEnsure, LinkState] = Op("shim.ensure", ShimEnsure, as_(LinkState))
SHIM_READ: Op[LinkRead, LinkState | None] = Op("shim.read", LinkRead, _link)
SHIM_DELETE: Op[LinkDelete, Deleted] = Op("shim.delete", LinkDelete, as_(Deleted))
VLAN_ENSURE: Op[VlanEnsure, LinkState] = Op("vlan.ensure", VlanEnsure, as_(LinkState))
VLAN_READ: Op[LinkRead, LinkState | None] = Op("vlan.read", LinkRead, _link)
VLAN_DELETE: Op[LinkDelete, Deleted] = Op("vlan.delete", LinkDelete, as_(Deleted))
