"""The inputs of the Pulumi resources users declare, in the two forms Pulumi packages give
them: an Args class (`@pulumi.input_type`, `pulumi.Input` on every field but the host) and the
same as a TypedDict (`...ArgsDict`).

`host` (a route's `router`) is plain, not an Input: how to reach the host must be known before
anything runs.

Annotations here are evaluated (no postponed annotations): the TypedDicts' required keys are
read at run time, so an Args class refuses a missing or unknown field as a call would.
"""

from collections.abc import Mapping, Sequence
from typing import Literal

import pulumi
from pulumi import Input
from typing_extensions import NotRequired, Required, TypedDict, Unpack

from ._host import DockerHost

__all__ = [
    "AddressKey",
    "ContainerArgs",
    "ContainerArgsDict",
    "DockerNetworkArgs",
    "DockerNetworkArgsDict",
    "HostShimArgs",
    "HostShimArgsDict",
    "IpamPool",
    "LanAddress",
    "RouterRouteArgs",
    "RouterRouteArgsDict",
    "VlanParentArgs",
    "VlanParentArgsDict",
]


class IpamPool(TypedDict, total=False):
    """One IPAM pool: ``{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range":
    "192.0.2.128/26", "aux_addresses": {"shim-h1": "192.0.2.250"}}``."""

    subnet: Required[str]
    gateway: str | None
    ip_range: str | None
    aux_addresses: Mapping[str, str]


AddressKey = Literal["ipv4", "ipv6"]


class LanAddress(TypedDict):
    """An address the plan gives a container on a LAN-facing network (the network's
    `lan_addresses` property)."""

    key: AddressKey
    address: str
    mac: NotRequired[str | None]
    device: str
    name: str


def _set(args: object, fields: type[Mapping[str, object]], values: Mapping[str, object]
         ) -> None:
    """Sets the fields of the Args object ``args`` that its TypedDict form ``fields`` lists;
    a missing required or an unknown one is a TypeError, as for a call with a wrong keyword."""
    missing = sorted(set(fields.__required_keys__) - set(values))  # type: ignore[attr-defined]
    unknown = sorted(set(values) - set(fields.__annotations__))
    if missing or unknown:
        raise TypeError(f"{type(args).__name__}() " + "; ".join(
            [f"missing required keyword arguments: {', '.join(missing)}"] * bool(missing)
            + [f"got unexpected keyword arguments: {', '.join(unknown)}"] * bool(unknown)))
    for k, v in values.items():
        pulumi.set(args, k, v)


class DockerNetworkArgsDict(TypedDict):
    """`DockerNetworkArgs` as a dict."""

    host: DockerHost
    network_name: Input[str]
    driver: Input[str]
    parent: Input[str]
    ipam: Input[Sequence[Input[IpamPool]]]
    mode: NotRequired[Input[str] | None]
    flag: NotRequired[Input[str] | None]
    internal: NotRequired[Input[bool]]
    enable_ipv6: NotRequired[Input[bool]]
    labels: NotRequired[Input[Mapping[str, Input[str]]] | None]
    config_path: NotRequired[Input[str] | None]
    lan_addresses: NotRequired[Input[Sequence[Input[LanAddress]]]]


@pulumi.input_type
class DockerNetworkArgs:
    """The inputs of a `DockerNetwork`."""

    host: DockerHost
    """The host the network is on."""
    network_name: Input[str]
    """Docker network name, e.g. ``pub_net``."""
    driver: Input[str]
    """``macvlan`` or ``ipvlan``."""
    parent: Input[str]
    """Parent NIC on the host, e.g. ``eth0`` or ``eth0.50``."""
    ipam: Input[Sequence[Input[IpamPool]]]
    """IPAM pools (`IpamPool`)."""
    mode: Input[str] | None
    """macvlan_mode (bridge, private, vepa, passthru) or ipvlan_mode (l2, l3, l3s)."""
    flag: Input[str] | None
    """ipvlan_flag (bridge, private, vepa)."""
    internal: Input[bool]
    """No outside connectivity (default false)."""
    enable_ipv6: Input[bool]
    """Default false."""
    labels: Input[Mapping[str, Input[str]]] | None
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.networks[0]``), used in messages."""
    lan_addresses: Input[Sequence[Input[LanAddress]]]
    """The addresses its containers get on this host, which preview probes on the LAN at once
    (`vlaninfra.components` fills it from the plan; never a reason for an update)."""

    def __init__(self, **args: Unpack[DockerNetworkArgsDict]) -> None:
        _set(self, DockerNetworkArgsDict,
             {"internal": False, "enable_ipv6": False, "lan_addresses": (), **args})


class ContainerArgsDict(TypedDict):
    """`ContainerArgs` as a dict."""

    host: DockerHost
    container_name: Input[str]
    image: Input[str]
    network: Input[str]
    network_id: NotRequired[Input[str] | None]
    ipv4: NotRequired[Input[str] | None]
    ipv6: NotRequired[Input[str] | None]
    mac: NotRequired[Input[str] | None]
    command: NotRequired[Input[Sequence[Input[str]]] | None]
    hostname: NotRequired[Input[str] | None]
    restart_policy: NotRequired[Input[str]]
    labels: NotRequired[Input[Mapping[str, Input[str]]] | None]
    config_path: NotRequired[Input[str] | None]
    lan_device: NotRequired[Input[str] | None]


@pulumi.input_type
class ContainerArgs:
    """The inputs of a `Container`."""

    host: DockerHost
    """The host it runs on."""
    container_name: Input[str]
    image: Input[str]
    """An image already on the host (vlaninfra never pulls)."""
    network: Input[str]
    """The Docker network it attaches to."""
    network_id: Input[str] | None
    """The network's id (its resource's `network_id`): orders it after the network."""
    ipv4: Input[str] | None
    ipv6: Input[str] | None
    mac: Input[str] | None
    command: Input[Sequence[Input[str]]] | None
    hostname: Input[str] | None
    restart_policy: Input[str]
    """no, always, unless-stopped (the default) or on-failure."""
    labels: Input[Mapping[str, Input[str]]] | None
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.containers[0]``), used in messages."""
    lan_device: Input[str] | None
    """Where preview sends an ARP probe for a new address (the network's parent on a
    LAN-facing network); not an input of the container, never a reason to change it."""

    def __init__(self, **args: Unpack[ContainerArgsDict]) -> None:
        _set(self, ContainerArgsDict, {"restart_policy": "unless-stopped", **args})


class HostShimArgsDict(TypedDict):
    """`HostShimArgs` as a dict."""

    host: DockerHost
    shim_name: Input[str]
    parent: Input[str]
    address: Input[str]
    routes: NotRequired[Input[Sequence[Input[str]]]]
    kind: NotRequired[Input[str]]
    mode: NotRequired[Input[str] | None]
    config_path: NotRequired[Input[str] | None]
    extra_addresses: NotRequired[Input[Sequence[Input[str]]]]


@pulumi.input_type
class HostShimArgs:
    """The inputs of a `HostShim`."""

    host: DockerHost
    shim_name: Input[str]
    """Interface name, at most 15 bytes."""
    parent: Input[str]
    address: Input[str]
    """The host's address on it, e.g. ``192.0.2.250/32``."""
    routes: Input[Sequence[Input[str]]]
    """Prefixes routed through it, e.g. the containers' /32s."""
    kind: Input[str]
    """``macvlan`` (the default) or ``ipvlan``."""
    mode: Input[str] | None
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.networks[0].shim``), used in messages."""
    extra_addresses: Input[Sequence[Input[str]]]
    """Further addresses: its IPv6 address, tenant gateways (``2001:db8:1::fffe/128``)."""

    def __init__(self, **args: Unpack[HostShimArgsDict]) -> None:
        _set(self, HostShimArgsDict,
             {"routes": (), "kind": "macvlan", "extra_addresses": (), **args})


class VlanParentArgsDict(TypedDict):
    """`VlanParentArgs` as a dict."""

    host: DockerHost
    parent_name: Input[str]
    trunk: Input[str]
    vlan_id: Input[int]
    config_path: NotRequired[Input[str] | None]


@pulumi.input_type
class VlanParentArgs:
    """The inputs of a `VlanParent`."""

    host: DockerHost
    parent_name: Input[str]
    """The sub-interface, e.g. ``eth0.50``."""
    trunk: Input[str]
    """The NIC it is tagged on, e.g. ``eth0``."""
    vlan_id: Input[int]
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.hosts[0].parents``), used in messages."""

    def __init__(self, **args: Unpack[VlanParentArgsDict]) -> None:
        _set(self, VlanParentArgsDict, args)


class RouterRouteArgsDict(TypedDict):
    """`RouterRouteArgs` as a dict."""

    router: DockerHost
    destination: Input[str]
    via: Input[str]
    dev: NotRequired[Input[str] | None]
    config_path: NotRequired[Input[str] | None]


@pulumi.input_type
class RouterRouteArgs:
    """The inputs of a `RouterRoute`."""

    router: DockerHost
    """The router, reached like a host (its Docker socket is never used)."""
    destination: Input[str]
    """The prefix, e.g. ``198.18.1.0/24``."""
    via: Input[str]
    """The next hop, e.g. the serving host's LAN address."""
    dev: Input[str] | None
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.routers[0]``), used in messages."""

    def __init__(self, **args: Unpack[RouterRouteArgsDict]) -> None:
        _set(self, RouterRouteArgsDict, args)
