"""The Pulumi resources users declare: one Docker network, container or host shim on one host.

Their type tokens (`pulumi-python:dynamic/vlaninfra:<Name>`) and the provider classes' module paths
end up in every URN and in state: they never move without Pulumi aliases.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from ._base import CONFIG_PATH, CONNECTION, HOST, OWNER, DockerHost
from ._container import ContainerProvider
from ._network import LAN_ADDRESSES, NetworkProvider
from ._route import RouterRouteProvider
from ._shim import ShimProvider
from ._vlan import VlanParentProvider

__all__ = ["Container", "DockerNetwork", "HostShim", "IpamPool", "RouterRoute", "VlanParent"]

IpamPool = Mapping[str, Any]
"""One IPAM pool: ``{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26",
"aux_addresses": {"shim-h1": "192.0.2.250"}}``."""


def _host_props(host: DockerHost, config_path: str | None) -> dict[str, Any]:
    # The owning stack marks every object on the host; it is not part of any object's identity.
    owner = f"{pulumi.get_project()}/{pulumi.get_stack()}"
    return {HOST: host.name, CONNECTION: host.connection(), CONFIG_PATH: config_path,
            OWNER: owner}


class DockerNetwork(Resource, module="vlaninfra", name="DockerNetwork"):
    """A Docker macvlan or ipvlan network on one host.

    Example::

        DockerNetwork("pub-h1", host=h1, network_name="pub_net", driver="macvlan", parent="eth0",
                      ipam=[{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"}])
    """

    network_id: pulumi.Output[str]
    """The daemon's id of the network."""

    def __init__(
        self,
        resource_name: str,
        *,
        host: DockerHost,
        network_name: pulumi.Input[str],
        driver: str,
        parent: pulumi.Input[str],
        ipam: Sequence[IpamPool],
        mode: str | None = None,
        flag: str | None = None,
        internal: bool = False,
        enable_ipv6: bool = False,
        labels: Mapping[str, str] | None = None,
        config_path: str | None = None,
        lan_addresses: Sequence[Mapping[str, Any]] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **_host_props(host, config_path),
            # What its containers' checks will probe, probed at once (see LAN_ADDRESSES).
            LAN_ADDRESSES: [dict(a) for a in lan_addresses],
            "name": network_name,
            "driver": driver,
            "parent": parent,
            "mode": mode,
            "flag": flag,
            "ipam": [dict(p) for p in ipam],
            "internal": internal,
            "enable_ipv6": enable_ipv6,
            "labels": dict(labels or {}),
            "network_id": None,
        }
        super().__init__(NetworkProvider(), resource_name, props, opts)


class Container(Resource, module="vlaninfra", name="Container"):
    """A container attached to one macvlan/ipvlan network with a fixed address and MAC.

    Example::

        Container("web-h1", host=h1, container_name="web", image="vlaninfra/busybox:lab",
                  network=net.name, network_id=net.network_id, ipv4="192.0.2.130")
    """

    container_id: pulumi.Output[str]
    ipv4_address: pulumi.Output[str]
    mac_address: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        host: DockerHost,
        container_name: str,
        image: str,
        network: pulumi.Input[str],
        network_id: pulumi.Input[str] | None = None,
        ipv4: str | None = None,
        ipv6: str | None = None,
        mac: str | None = None,
        command: Sequence[str] | None = None,
        hostname: str | None = None,
        restart_policy: str = "unless-stopped",
        labels: Mapping[str, str] | None = None,
        config_path: str | None = None,
        lan_device: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **_host_props(host, config_path),
            # Where preview sends an ARP probe for a new address (the network's parent on a
            # LAN-facing network); not an input of the container, never a reason to change it.
            "lan_device": lan_device,
            "name": container_name,
            "image": image,
            "command": list(command) if command else None,
            "hostname": hostname,
            "labels": dict(labels or {}),
            "network": network,
            "network_id": network_id,
            "ipv4": ipv4,
            "ipv6": ipv6,
            "mac": mac,
            "restart_policy": restart_policy,
            "running": True,
            "container_id": None,
            "ipv4_address": None,
            "mac_address": None,
        }
        super().__init__(ContainerProvider(), resource_name, props, opts)


class HostShim(Resource, module="vlaninfra", name="HostShim"):
    """The host's own macvlan/ipvlan interface on a parent NIC, with an address and routes, so
    the host reaches its containers (the seed's `macvlan-shim`).

    Example::

        HostShim("shim-h1", host=h1, shim_name="vshim0", parent="eth0",
                 address="192.0.2.250/32", routes=["192.0.2.128/26"],
                 extra_addresses=["2001:db8::fa/64"])  # IPv6, tenant gateways
    """

    mac_address: pulumi.Output[str]

    def __init__(
        self,
        resource_name: str,
        *,
        host: DockerHost,
        shim_name: str,
        parent: str,
        address: str,
        routes: Sequence[str] = (),
        kind: str = "macvlan",
        mode: str | None = None,
        config_path: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
        extra_addresses: Sequence[str] = (),
    ) -> None:
        props = {
            **_host_props(host, config_path),
            "name": shim_name,
            "parent": parent,
            "kind": kind,
            "mode": mode,
            "address": address,
            "extra_addresses": list(extra_addresses),
            "routes": list(routes),
            "mac_address": None,
            "ifindex": None,
        }
        super().__init__(ShimProvider(), resource_name, props, opts)


class VlanParent(Resource, module="vlaninfra", name="VlanParent"):
    """An 802.1Q sub-interface on one host, created when missing (and then removed on delete);
    networks and shims on it depend on it.

    Example::

        VlanParent("h1-eth0.50", host=h1, parent_name="eth0.50", trunk="eth0", vlan_id=50)
    """

    created: pulumi.Output[bool]
    """True when vlaninfra created the link (so delete removes it); False when it was there."""

    def __init__(
        self,
        resource_name: str,
        *,
        host: DockerHost,
        parent_name: str,
        trunk: str,
        vlan_id: int,
        config_path: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **_host_props(host, config_path),
            "name": parent_name,
            "trunk": trunk,
            "vlan_id": vlan_id,
            "created": None,
            "ifindex": None,
        }
        super().__init__(VlanParentProvider(), resource_name, props, opts)


class RouterRoute(Resource, module="vlaninfra", name="RouterRoute"):
    """A static route on a managed router, e.g. a tenant's ipvlan L3 subnet via its host.
    The router is reached like a host (`DockerHost`; its Docker socket is never used).

    Example::

        RouterRoute("gw-198.18.1.0-24", router=gw, destination="198.18.1.0/24",
                    via="192.0.2.21")
    """

    out_dev: pulumi.Output[str]
    """The device the router sends the prefix out of."""

    def __init__(
        self,
        resource_name: str,
        *,
        router: DockerHost,
        destination: str,
        via: str,
        dev: str | None = None,
        config_path: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        props = {
            **_host_props(router, config_path),
            "name": destination,
            "destination": destination,
            "via": via,
            "dev": dev,
            "out_dev": None,
            "proto": None,
        }
        super().__init__(RouterRouteProvider(), resource_name, props, opts)
