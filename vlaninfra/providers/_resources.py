"""The Pulumi resources users declare: one Docker network, container, host shim, 802.1Q parent
or router route on one host.

Each has the shape of a Pulumi package resource: an Args class (`@pulumi.input_type`,
`pulumi.Input` on every field but `host`), the same as a TypedDict (`...ArgsDict`), typed
outputs, and `get()` to read an existing object into the program. Declare with the Args class,
the dict or keywords::

    Container("web-h1", ContainerArgs(host=h1, container_name="web", image="busybox",
                                      network="pub_net"))
    Container("web-h1", host=h1, container_name="web", image="busybox", network="pub_net")

`host` is plain (not an Input): how to reach the host must be known before anything runs.

Their type tokens (`pulumi-python:dynamic/vlaninfra:<Name>`) and the provider classes' module paths
end up in every URN and in state: they never move without Pulumi aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar, overload

import pulumi
from pulumi import Input
from pulumi.dynamic import Resource as _Dynamic
from pulumi.dynamic import ResourceProvider
from typing_extensions import NotRequired, TypedDict, Unpack

from ._base import CONFIG_PATH, CONNECTION, HOST, OWNER, DockerHost
from ._container import ContainerProvider
from ._network import LAN_ADDRESSES, NetworkProvider
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = [
    "Container",
    "ContainerArgs",
    "ContainerArgsDict",
    "DockerNetwork",
    "DockerNetworkArgs",
    "DockerNetworkArgsDict",
    "HostShim",
    "HostShimArgs",
    "HostShimArgsDict",
    "IpamPool",
    "RouterRoute",
    "RouterRouteArgs",
    "RouterRouteArgsDict",
    "VlanParent",
    "VlanParentArgs",
    "VlanParentArgsDict",
]


IpamPool = Mapping[str, Any]
"""One IPAM pool: ``{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26",
"aux_addresses": {"shim-h1": "192.0.2.250"}}``."""

_A = TypeVar("_A")
_R = TypeVar("_R", bound=_Dynamic)


def _host_props(host: DockerHost, config_path: Input[str] | None) -> dict[str, Any]:
    # The owning stack marks every object on the host; it is not part of any object's identity.
    owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
    return {HOST: host.name, CONNECTION: host.connection(), CONFIG_PATH: config_path,
            OWNER: owner}


def _set(args: object, values: Mapping[str, Any]) -> None:
    for k, v in values.items():
        if k != "self":
            pulumi.set(args, k, v)


def _args(cls: type[_A], args: _A | Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> _A:
    """The Args object of a resource declared with an Args object, its dict form or keywords."""
    if isinstance(args, cls):
        return args
    return cls(**{**dict(args or {}), **kwargs})  # type: ignore[arg-type]


def _list(value: Any) -> Any:
    """A list of a plain sequence (None when empty); an Output as it is."""
    if isinstance(value, (list, tuple)):
        return list(value) or None
    return value


def _dict(value: Any) -> Any:
    return dict(value or {}) if value is None or isinstance(value, Mapping) else value


def _get(cls: type[_R], provider: ResourceProvider, resource_name: str, id: Input[str],
         host: DockerHost, props: Mapping[str, Any], opts: pulumi.ResourceOptions | None) -> _R:
    """Reads an existing object (its name on `host`, its id) into the program, unmanaged."""
    res = cls.__new__(cls)
    _Dynamic.__init__(res, provider, resource_name, {**_host_props(host, None), **props},
                      pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id)))
    return res


# -- DockerNetwork ---------------------------------------------------------------------------


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
    lan_addresses: NotRequired[Input[Sequence[Input[Mapping[str, Any]]]]]


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
    enable_ipv6: Input[bool]
    labels: Input[Mapping[str, Input[str]]] | None
    config_path: Input[str] | None
    """The layout key it comes from (``sites.a.networks[0]``), used in messages."""
    lan_addresses: Input[Sequence[Input[Mapping[str, Any]]]]
    """The addresses its containers get on this host, which preview probes on the LAN at once
    (`vlaninfra.components` fills it from the plan; never a reason for an update)."""

    def __init__(self, *, host: DockerHost, network_name: Input[str], driver: Input[str],
                 parent: Input[str], ipam: Input[Sequence[Input[IpamPool]]],
                 mode: Input[str] | None = None, flag: Input[str] | None = None,
                 internal: Input[bool] = False, enable_ipv6: Input[bool] = False,
                 labels: Input[Mapping[str, Input[str]]] | None = None,
                 config_path: Input[str] | None = None,
                 lan_addresses: Input[Sequence[Input[Mapping[str, Any]]]] = ()) -> None:
        _set(self, locals())


class DockerNetwork(_Dynamic, module="vlaninfra", name="DockerNetwork"):
    """A Docker macvlan or ipvlan network on one host.

    Example::

        DockerNetwork("pub-h1", host=h1, network_name="pub_net", driver="macvlan", parent="eth0",
                      ipam=[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}])
    """

    network_id: pulumi.Output[str]
    """The daemon's id of the network."""

    @overload
    def __init__(self, resource_name: str, args: DockerNetworkArgs | DockerNetworkArgsDict,
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None,
                 **kwargs: Unpack[DockerNetworkArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: DockerNetworkArgs | DockerNetworkArgsDict | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        a = _args(DockerNetworkArgs, args, kwargs)
        props = {
            **_host_props(a.host, a.config_path),
            # What its containers' checks will probe, probed at once (see LAN_ADDRESSES).
            LAN_ADDRESSES: [_dict(x) for x in a.lan_addresses]
            if isinstance(a.lan_addresses, (list, tuple)) else a.lan_addresses,
            "name": a.network_name,
            "driver": a.driver,
            "parent": a.parent,
            "mode": a.mode,
            "flag": a.flag,
            "ipam": [_dict(p) for p in a.ipam] if isinstance(a.ipam, (list, tuple)) else a.ipam,
            "internal": a.internal,
            "enable_ipv6": a.enable_ipv6,
            "labels": _dict(a.labels),
            "network_id": None,
        }
        super().__init__(NetworkProvider(), resource_name, props, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            network_name: Input[str], opts: pulumi.ResourceOptions | None = None
            ) -> DockerNetwork:
        """An existing network (its name on `host` and its id) read into the program."""
        return _get(cls, NetworkProvider(), resource_name, id, host,
                    {"name": network_name, "network_id": None}, opts)


# -- Container -------------------------------------------------------------------------------


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

    def __init__(self, *, host: DockerHost, container_name: Input[str], image: Input[str],
                 network: Input[str], network_id: Input[str] | None = None,
                 ipv4: Input[str] | None = None, ipv6: Input[str] | None = None,
                 mac: Input[str] | None = None,
                 command: Input[Sequence[Input[str]]] | None = None,
                 hostname: Input[str] | None = None,
                 restart_policy: Input[str] = "unless-stopped",
                 labels: Input[Mapping[str, Input[str]]] | None = None,
                 config_path: Input[str] | None = None,
                 lan_device: Input[str] | None = None) -> None:
        _set(self, locals())


class Container(_Dynamic, module="vlaninfra", name="Container"):
    """A container attached to one macvlan/ipvlan network with a fixed address and MAC.

    Example::

        Container("web-h1", host=h1, container_name="web", image="vlaninfra/busybox:lab",
                  network=net.name, network_id=net.network_id, ipv4="192.0.2.130")
    """

    container_id: pulumi.Output[str]
    """The daemon's id of the container."""
    ipv4_address: pulumi.Output[str]
    """Its IPv4 address on the network, as the daemon reports it."""
    mac_address: pulumi.Output[str]
    """Its MAC address on the network."""

    @overload
    def __init__(self, resource_name: str, args: ContainerArgs | ContainerArgsDict,
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None,
                 **kwargs: Unpack[ContainerArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: ContainerArgs | ContainerArgsDict | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        a = _args(ContainerArgs, args, kwargs)
        props = {
            **_host_props(a.host, a.config_path),
            "lan_device": a.lan_device,
            "name": a.container_name,
            "image": a.image,
            "command": _list(a.command),
            "hostname": a.hostname,
            "labels": _dict(a.labels),
            "network": a.network,
            "network_id": a.network_id,
            "ipv4": a.ipv4,
            "ipv6": a.ipv6,
            "mac": a.mac,
            "restart_policy": a.restart_policy,
            "running": True,
            "container_id": None,
            "ipv4_address": None,
            "mac_address": None,
        }
        super().__init__(ContainerProvider(), resource_name, props, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            container_name: Input[str], network: Input[str],
            opts: pulumi.ResourceOptions | None = None) -> Container:
        """An existing container (its name on `host`, its network and id) read into the program.
        """
        return _get(cls, ContainerProvider(), resource_name, id, host,
                    {"name": container_name, "network": network, "container_id": None,
                     "ipv4_address": None, "mac_address": None}, opts)


# -- HostShim --------------------------------------------------------------------------------


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

    def __init__(self, *, host: DockerHost, shim_name: Input[str], parent: Input[str],
                 address: Input[str], routes: Input[Sequence[Input[str]]] = (),
                 kind: Input[str] = "macvlan", mode: Input[str] | None = None,
                 config_path: Input[str] | None = None,
                 extra_addresses: Input[Sequence[Input[str]]] = ()) -> None:
        _set(self, locals())


class HostShim(_Dynamic, module="vlaninfra", name="HostShim"):
    """The host's own macvlan/ipvlan interface on a parent NIC, with an address and routes, so
    the host reaches its containers (the seed's `macvlan-shim`).

    Example::

        HostShim("shim-h1", host=h1, shim_name="vshim0", parent="eth0",
                 address="192.0.2.250/32", routes=["192.0.2.128/26"],
                 extra_addresses=["2001:db8::fa/64"])  # IPv6, tenant gateways
    """

    mac_address: pulumi.Output[str]
    """The shim's MAC address."""

    @overload
    def __init__(self, resource_name: str, args: HostShimArgs | HostShimArgsDict,
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None,
                 **kwargs: Unpack[HostShimArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: HostShimArgs | HostShimArgsDict | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        a = _args(HostShimArgs, args, kwargs)
        props = {
            **_host_props(a.host, a.config_path),
            "name": a.shim_name,
            "parent": a.parent,
            "kind": a.kind,
            "mode": a.mode,
            "address": a.address,
            "extra_addresses": (list(a.extra_addresses)
                                if isinstance(a.extra_addresses, (list, tuple))
                                else a.extra_addresses),
            "routes": list(a.routes) if isinstance(a.routes, (list, tuple)) else a.routes,
            "mac_address": None,
            "ifindex": None,
        }
        super().__init__(ShimProvider(), resource_name, props, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost, shim_name: Input[str],
            opts: pulumi.ResourceOptions | None = None) -> HostShim:
        """An existing shim (its name on `host`) read into the program."""
        return _get(cls, ShimProvider(), resource_name, id, host,
                    {"name": shim_name, "mac_address": None, "ifindex": None}, opts)


# -- VlanParent ------------------------------------------------------------------------------


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

    def __init__(self, *, host: DockerHost, parent_name: Input[str], trunk: Input[str],
                 vlan_id: Input[int], config_path: Input[str] | None = None) -> None:
        _set(self, locals())


class VlanParent(_Dynamic, module="vlaninfra", name="VlanParent"):
    """An 802.1Q sub-interface on one host, created when missing (and then removed on delete);
    networks and shims on it depend on it.

    Example::

        VlanParent("h1-eth0.50", host=h1, parent_name="eth0.50", trunk="eth0", vlan_id=50)
    """

    created: pulumi.Output[bool]
    """True when vlaninfra created the link (so delete removes it); False when it was there."""

    @overload
    def __init__(self, resource_name: str, args: VlanParentArgs | VlanParentArgsDict,
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None,
                 **kwargs: Unpack[VlanParentArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: VlanParentArgs | VlanParentArgsDict | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        a = _args(VlanParentArgs, args, kwargs)
        props = {
            **_host_props(a.host, a.config_path),
            "name": a.parent_name,
            "trunk": a.trunk,
            "vlan_id": a.vlan_id,
            "created": None,
            "ifindex": None,
        }
        super().__init__(VlanParentProvider(), resource_name, props, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            parent_name: Input[str], opts: pulumi.ResourceOptions | None = None) -> VlanParent:
        """An existing 802.1Q sub-interface (its name on `host`) read into the program."""
        return _get(cls, VlanParentProvider(), resource_name, id, host,
                    {"name": parent_name, "created": None, "ifindex": None}, opts)


# -- RouterRoute -----------------------------------------------------------------------------


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

    def __init__(self, *, router: DockerHost, destination: Input[str], via: Input[str],
                 dev: Input[str] | None = None, config_path: Input[str] | None = None) -> None:
        _set(self, locals())


class RouterRoute(_Dynamic, module="vlaninfra", name="RouterRoute"):
    """A static route on a managed router, e.g. a tenant's ipvlan L3 subnet via its host.

    Example::

        RouterRoute("gw-198.18.1.0-24", router=gw, destination="198.18.1.0/24",
                    via="192.0.2.21")
    """

    out_dev: pulumi.Output[str]
    """The device the router sends the prefix out of."""

    @overload
    def __init__(self, resource_name: str, args: RouterRouteArgs | RouterRouteArgsDict,
                 opts: pulumi.ResourceOptions | None = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: pulumi.ResourceOptions | None = None,
                 **kwargs: Unpack[RouterRouteArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: RouterRouteArgs | RouterRouteArgsDict | None = None,
                 opts: pulumi.ResourceOptions | None = None, **kwargs: Any) -> None:
        a = _args(RouterRouteArgs, args, kwargs)
        props = {
            **_host_props(a.router, a.config_path),
            "name": a.destination,
            "destination": a.destination,
            "via": a.via,
            "dev": a.dev,
            "out_dev": None,
            "proto": None,
        }
        super().__init__(RouterRouteProvider(), resource_name, props, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, router: DockerHost,
            destination: Input[str], opts: pulumi.ResourceOptions | None = None
            ) -> RouterRoute:
        """An existing route (its prefix on `router`) read into the program."""
        return _get(cls, RouterRouteProvider(), resource_name, id, router,
                    {"name": destination, "destination": destination, "out_dev": None,
                     "proto": None}, opts)
