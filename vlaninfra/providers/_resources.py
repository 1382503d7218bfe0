"""The Pulumi resources users declare: one Docker network, container, host shim, 802.1Q parent
or router route on one host.

Each has the shape of a Pulumi package resource: an Args class and its TypedDict form
(`vlaninfra.providers._args`), typed outputs, and `get()` to read an existing object into the
program. Declare with the Args class, the dict or keywords::

    Container("web-h1", ContainerArgs(host=h1, container_name="web", image="busybox",
                                      network="pub_net"))
    Container("web-h1", host=h1, container_name="web", image="busybox", network="pub_net")

Their type tokens (`pulumi-python:dynamic/vlaninfra:<Name>`) and the provider classes' module paths
end up in every URN and in state: they never move without Pulumi aliases.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import TypeVar, overload

import pulumi
from pulumi import Input
from pulumi.dynamic import Resource as _Dynamic
from pulumi.dynamic import ResourceProvider
from typing_extensions import Unpack

from vlaninfra.errors import VlanInfraError

from ._args import (
    ContainerArgs,
    ContainerArgsDict,
    DockerNetworkArgs,
    DockerNetworkArgsDict,
    HostShimArgs,
    HostShimArgsDict,
    RouterRouteArgs,
    RouterRouteArgsDict,
    VlanParentArgs,
    VlanParentArgsDict,
)
from ._container import ContainerProvider
from ._host import CONFIG_PATH, CONNECTION, HOST, OWNER, DockerHost, Props
from ._network import LAN_ADDRESSES, NetworkProvider
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = ["Container", "DockerNetwork", "HostShim", "RouterRoute", "VlanParent"]

_A = TypeVar("_A")
_R = TypeVar("_R", bound="_HostResource")
_Opts = pulumi.ResourceOptions | None


def _args(cls: type[_A], args: object, kwargs: Mapping[str, object]) -> _A:
    """The Args object of a resource declared with an Args object, its dict form or keywords."""
    if isinstance(args, cls):
        return args
    given: Mapping[str, object] = args if isinstance(args, Mapping) else {}
    return cls(**{**given, **kwargs})


def _list(value: object) -> object:
    """A list of a plain sequence (None when empty); an Output as it is."""
    if isinstance(value, (list, tuple)):
        return list(value) or None
    return value


def _dicts(value: object) -> object:
    """A list of plain dicts of a plain sequence of mappings; an Output as it is."""
    return [_dict(x) for x in value] if isinstance(value, (list, tuple)) else value


def _dict(value: object) -> object:
    return dict(value or {}) if value is None or isinstance(value, Mapping) else value


_quiet: list[Callable[..., None]] = []
"""The `pulumi.log.debug` that `quiet_sdk_debug` put in place (at most one)."""


def quiet_sdk_debug() -> None:
    """Stop the Pulumi SDK's own debug lines in this program, unless ``VLANINFRA_SDK_DEBUG``
    is set: the SDK sends each (about four per resource: registering, prepared, successful,
    ...) to the engine as a blocking RPC, which only `pulumi --debug` shows. 444 of them took
    0.34-0.40 s of a 205-resource program, which runs twice per `pulumi up`. Lines the
    program itself logs with `pulumi.log.debug` still go; so do warnings and errors."""
    if os.environ.get("VLANINFRA_SDK_DEBUG") or pulumi.log.debug in _quiet:
        return
    send = pulumi.log.debug

    def debug(msg: str, resource: pulumi.Resource | None = None,
              stream_id: int | None = None, ephemeral: bool | None = None) -> None:
        if not str(sys._getframe(1).f_globals.get("__name__", "")).startswith("pulumi."):
            send(msg, resource, stream_id, ephemeral)

    _quiet[:] = [debug]
    pulumi.log.debug = debug


class _HostResource(_Dynamic):
    """What every resource adds to its own properties: the host, how to reach it, the config
    key and the owning stack (which marks every object on the host and is part of no object's
    identity)."""

    def _declare(self, provider: ResourceProvider, resource_name: str, host: DockerHost,
                 config_path: Input[str] | None, props: Props, opts: _Opts) -> None:
        quiet_sdk_debug()
        owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
        try:
            connection = host.connection()
        except VlanInfraError as err:  # the program stops with the message, no traceback
            raise pulumi.RunError(f"{resource_name}: {err}") from None
        super().__init__(provider, resource_name,
                         {HOST: host.name, CONNECTION: connection,
                          CONFIG_PATH: config_path, OWNER: owner, **props}, opts)

    @classmethod
    def _existing(cls: type[_R], provider: ResourceProvider, resource_name: str,
                  id: Input[str], host: DockerHost, props: Props, opts: _Opts) -> _R:
        """An existing object (its name on `host`, its id) read into the program, unmanaged."""
        res = cls.__new__(cls)
        res._declare(provider, resource_name, host, None, props,
                     pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(id=id)))
        return res


class DockerNetwork(_HostResource, module="vlaninfra", name="DockerNetwork"):
    """A Docker macvlan or ipvlan network on one host.

    Example::

        DockerNetwork("pub-h1", host=h1, network_name="pub_net", driver="macvlan", parent="eth0",
                      ipam=[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}])
    """

    network_id: pulumi.Output[str]
    """The daemon's id of the network."""

    @overload
    def __init__(self, resource_name: str, args: DockerNetworkArgs | DockerNetworkArgsDict,
                 opts: _Opts = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: _Opts = None,
                 **kwargs: Unpack[DockerNetworkArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: DockerNetworkArgs | DockerNetworkArgsDict | None = None,
                 opts: _Opts = None, **kwargs: object) -> None:
        a = _args(DockerNetworkArgs, args, kwargs)
        self._declare(NetworkProvider(), resource_name, a.host, a.config_path, {
            # What its containers' checks will probe, probed at once (see LAN_ADDRESSES).
            LAN_ADDRESSES: _dicts(a.lan_addresses),
            "name": a.network_name, "driver": a.driver, "parent": a.parent,
            "mode": a.mode, "flag": a.flag, "ipam": _dicts(a.ipam), "internal": a.internal,
            "enable_ipv6": a.enable_ipv6, "labels": _dict(a.labels), "network_id": None,
        }, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            network_name: Input[str], opts: _Opts = None) -> DockerNetwork:
        """An existing network (its name on `host` and its id) read into the program."""
        return cls._existing(NetworkProvider(), resource_name, id, host,
                             {"name": network_name, "network_id": None}, opts)


class Container(_HostResource, module="vlaninfra", name="Container"):
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
                 opts: _Opts = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: _Opts = None,
                 **kwargs: Unpack[ContainerArgsDict]) -> None: ...

    def __init__(self, resource_name: str, args: ContainerArgs | ContainerArgsDict | None = None,
                 opts: _Opts = None, **kwargs: object) -> None:
        a = _args(ContainerArgs, args, kwargs)
        self._declare(ContainerProvider(), resource_name, a.host, a.config_path, {
            "lan_device": a.lan_device, "name": a.container_name, "image": a.image,
            "command": _list(a.command), "hostname": a.hostname, "labels": _dict(a.labels),
            "network": a.network, "network_id": a.network_id, "ipv4": a.ipv4, "ipv6": a.ipv6,
            "mac": a.mac, "restart_policy": a.restart_policy, "running": True,
            "container_id": None, "ipv4_address": None, "mac_address": None,
        }, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            container_name: Input[str], network: Input[str], opts: _Opts = None) -> Container:
        """An existing container (its name on `host`, its network and id) read into the program.
        """
        return cls._existing(ContainerProvider(), resource_name, id, host,
                             {"name": container_name, "network": network, "container_id": None,
                              "ipv4_address": None, "mac_address": None}, opts)


class HostShim(_HostResource, module="vlaninfra", name="HostShim"):
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
                 opts: _Opts = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: _Opts = None,
                 **kwargs: Unpack[HostShimArgsDict]) -> None: ...

    def __init__(self, resource_name: str, args: HostShimArgs | HostShimArgsDict | None = None,
                 opts: _Opts = None, **kwargs: object) -> None:
        a = _args(HostShimArgs, args, kwargs)
        routes, extra = a.routes, a.extra_addresses
        self._declare(ShimProvider(), resource_name, a.host, a.config_path, {
            "name": a.shim_name, "parent": a.parent, "kind": a.kind, "mode": a.mode,
            "address": a.address,
            "extra_addresses": list(extra) if isinstance(extra, (list, tuple)) else extra,
            "routes": list(routes) if isinstance(routes, (list, tuple)) else routes,
            "mac_address": None, "ifindex": None,
        }, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost, shim_name: Input[str],
            opts: _Opts = None) -> HostShim:
        """An existing shim (its name on `host`) read into the program."""
        return cls._existing(ShimProvider(), resource_name, id, host,
                             {"name": shim_name, "mac_address": None, "ifindex": None}, opts)


class VlanParent(_HostResource, module="vlaninfra", name="VlanParent"):
    """An 802.1Q sub-interface on one host, created when missing (and then removed on delete);
    networks and shims on it depend on it.

    Example::

        VlanParent("h1-eth0.50", host=h1, parent_name="eth0.50", trunk="eth0", vlan_id=50)
    """

    created: pulumi.Output[bool]
    """True when vlaninfra created the link (so delete removes it); False when it was there."""

    @overload
    def __init__(self, resource_name: str, args: VlanParentArgs | VlanParentArgsDict,
                 opts: _Opts = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: _Opts = None,
                 **kwargs: Unpack[VlanParentArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: VlanParentArgs | VlanParentArgsDict | None = None,
                 opts: _Opts = None, **kwargs: object) -> None:
        a = _args(VlanParentArgs, args, kwargs)
        self._declare(VlanParentProvider(), resource_name, a.host, a.config_path, {
            "name": a.parent_name, "trunk": a.trunk, "vlan_id": a.vlan_id, "created": None,
            "ifindex": None,
        }, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, host: DockerHost,
            parent_name: Input[str], opts: _Opts = None) -> VlanParent:
        """An existing 802.1Q sub-interface (its name on `host`) read into the program."""
        return cls._existing(VlanParentProvider(), resource_name, id, host,
                             {"name": parent_name, "created": None, "ifindex": None}, opts)


class RouterRoute(_HostResource, module="vlaninfra", name="RouterRoute"):
    """A static route on a managed router, e.g. a tenant's ipvlan L3 subnet via its host.

    Example::

        RouterRoute("gw-198.18.1.0-24", router=gw, destination="198.18.1.0/24",
                    via="192.0.2.21")
    """

    out_dev: pulumi.Output[str]
    """The device the router sends the prefix out of."""

    @overload
    def __init__(self, resource_name: str, args: RouterRouteArgs | RouterRouteArgsDict,
                 opts: _Opts = None) -> None: ...

    @overload
    def __init__(self, resource_name: str, *, opts: _Opts = None,
                 **kwargs: Unpack[RouterRouteArgsDict]) -> None: ...

    def __init__(self, resource_name: str,
                 args: RouterRouteArgs | RouterRouteArgsDict | None = None,
                 opts: _Opts = None, **kwargs: object) -> None:
        a = _args(RouterRouteArgs, args, kwargs)
        self._declare(RouterRouteProvider(), resource_name, a.router, a.config_path, {
            "name": a.destination, "destination": a.destination, "via": a.via, "dev": a.dev,
            "out_dev": None, "proto": None,
        }, opts)

    @classmethod
    def get(cls, resource_name: str, id: Input[str], *, router: DockerHost,
            destination: Input[str], opts: _Opts = None) -> RouterRoute:
        """An existing route (its prefix on `router`) read into the program."""
        return cls._existing(RouterRouteProvider(), resource_name, id, router,
                             {"name": destination, "destination": destination, "out_dev": None,
                              "proto": None}, opts)
