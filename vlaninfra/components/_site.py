"""Components composing the per-host resources of `vlaninfra.providers` from a layout plan."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pulumi

from vlaninfra.host.contract import ROUTED
from vlaninfra.layout import ContainerPlan, HostPlan, NetworkPlan, ShimPlan, SitePlan
from vlaninfra.layout import Site as LayoutSite
from vlaninfra.providers import (
    Container,
    DockerHost,
    DockerNetwork,
    HostShim,
    IpamPool,
    LanAddress,
    RouterRoute,
    VlanParent,
)
from vlaninfra.providers._args import AddressKey
from vlaninfra.providers._host import Props

__all__ = [
    "ConfigPaths",
    "SiteNetwork",
    "SiteVlanParents",
    "UpstreamRoutes",
    "container_inputs",
    "network_inputs",
    "shim_inputs",
]


class ConfigPaths:
    """The layout keys of a site's objects, the form layout errors use
    (``sites.a.containers[0]``), for provider messages. Without the site's layout, objects are
    named instead (``sites.a.containers.web1``)."""

    def __init__(self, site: str, layout: LayoutSite | None = None) -> None:
        self.site = site
        self._hosts = {h.name: i for i, h in enumerate(layout.hosts)} if layout else {}
        self._networks = {n.name: i for i, n in enumerate(layout.networks)} if layout else {}
        self._containers = ({(c.host, c.name): i for i, c in enumerate(layout.containers)}
                            if layout else {})

    def _key(self, kind: str, index: int | None, name: str) -> str:
        return f"sites.{self.site}.{kind}" + (f"[{index}]" if index is not None else f".{name}")

    def host(self, name: str) -> str:
        return self._key("hosts", self._hosts.get(name), name)

    def network(self, name: str) -> str:
        return self._key("networks", self._networks.get(name), name)

    def container(self, host: str, name: str) -> str:
        return self._key("containers", self._containers.get((host, name)), name)


def _ipam(network: NetworkPlan) -> list[IpamPool]:
    return [
        {
            "subnet": str(s.subnet),
            "gateway": str(s.gateway) if s.gateway else None,
            "ip_range": str(s.ip_range) if s.ip_range else None,
            "aux_addresses": {k: str(v) for k, v in s.aux_addresses.items()},
        }
        for s in network.subnets
    ]


def network_inputs(net: NetworkPlan) -> Props:
    """The `DockerNetwork` properties of a planned network (the provider's names), host aside:
    what its provider's `diff` compares. Example: ``network_inputs(plan_h1.networks[0])["ipam"]``
    """
    return {
        "name": net.name,
        "driver": str(net.driver),
        "parent": net.parent,
        "mode": str(net.mode),
        "flag": str(net.flag) if net.flag else None,
        "ipam": _ipam(net),
        "internal": net.internal,
        "enable_ipv6": net.enable_ipv6,
    }


def shim_inputs(shim: ShimPlan) -> Props:
    """The `HostShim` properties of a planned shim, host aside (see `network_inputs`)."""
    return {
        "name": shim.name,
        "parent": shim.parent,
        "kind": str(shim.kind),
        "mode": str(shim.mode),
        "address": str(shim.address),
        "extra_addresses": [str(a) for a in shim.addresses[1:]],
        "routes": [str(r) for r in shim.routes],
    }


def container_inputs(c: ContainerPlan, network_id: pulumi.Input[str] | None) -> Props:
    """The `Container` properties of a planned container, host aside (see `network_inputs`);
    `network_id` is its network's id (an output of the network's resource)."""
    return {
        "name": c.name,
        "image": c.image,
        "command": list(c.command) if c.command else None,
        "hostname": c.hostname,
        "network": c.network,
        "network_id": network_id,
        "ipv4": str(c.ipv4) if c.ipv4 else None,
        "ipv6": str(c.ipv6) if c.ipv6 else None,
        "mac": c.mac,
        "restart_policy": str(c.restart_policy),
    }


def _lan_device(net: NetworkPlan) -> str | None:
    """The host NIC a new container address is probed from; None: no LAN device sees it."""
    return None if net.internal or net.mode in ROUTED else net.parent


def _lan_addresses(host_plan: HostPlan, net: NetworkPlan) -> list[LanAddress]:
    """The `DockerNetwork` ``lan_addresses``: its containers' addresses its check probes."""
    device = _lan_device(net)
    if not device:
        return []
    return [LanAddress(key=key, address=str(address), mac=c.mac, device=device, name=c.name)
            for c in host_plan.containers if c.network == net.name
            for key, address in _addresses(c) if address]


def _addresses(c: ContainerPlan) -> tuple[tuple[AddressKey, object], ...]:
    return (("ipv4", c.ipv4), ("ipv6", c.ipv6))


class SiteNetwork(pulumi.ComponentResource):
    """One macvlan or ipvlan network laid across the hosts of a site: the Docker network on
    each host, each host's shim (its address reserved in every host's IPAM as an aux-address),
    and the containers attached to it.

    Example: ``SiteNetwork("paris-pub", site="paris", network="pub", hosts=[(h1, plan_h1)])``
    """

    def __init__(
        self,
        resource_name: str,
        *,
        site: str,
        network: str,
        hosts: Sequence[tuple[DockerHost, HostPlan]],
        vlans: Mapping[tuple[str, str], VlanParent] | None = None,
        paths: ConfigPaths | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("vlaninfra:index:SiteNetwork", resource_name, None, opts)
        vlans = vlans or {}
        paths = paths or ConfigPaths(site)
        self.networks: dict[str, DockerNetwork] = {}
        self.shims: dict[str, HostShim] = {}
        self.containers: dict[str, Container] = {}
        child = pulumi.ResourceOptions(parent=self)
        for host, host_plan in hosts:
            net_plan = next(n for n in host_plan.networks if n.name == network)
            vlan = vlans.get((host.name, net_plan.parent))
            # Created after and deleted before the 802.1Q parent it hangs off.
            on_vlan = pulumi.ResourceOptions(parent=self, depends_on=[vlan] if vlan else None)
            inputs = network_inputs(net_plan)
            net = DockerNetwork(
                f"{site}-{host.name}-{network}",
                host=host,
                network_name=inputs.pop("name"),
                **inputs,
                config_path=paths.network(network),
                lan_addresses=_lan_addresses(host_plan, net_plan),
                opts=on_vlan,
            )
            self.networks[host.name] = net
            for shim in (s for s in host_plan.shims if s.network == network):
                inputs = shim_inputs(shim)
                self.shims[host.name] = HostShim(
                    f"{site}-{host.name}-{shim.name}",
                    host=host,
                    shim_name=inputs.pop("name"),
                    **inputs,
                    config_path=f"{paths.network(network)}.shim",
                    opts=on_vlan,
                )
            for c in (c for c in host_plan.containers if c.network == network):
                inputs = container_inputs(c, net.network_id)
                self.containers[f"{host.name}/{c.name}"] = Container(
                    f"{site}-{host.name}-{c.name}",
                    host=host,
                    container_name=inputs.pop("name"),
                    **inputs,
                    config_path=paths.container(host_plan.name, c.name),
                    lan_device=_lan_device(net_plan),
                    opts=child,
                )
        self.register_outputs({})


class SiteVlanParents(pulumi.ComponentResource):
    """The 802.1Q parents (`eth0.50`) the networks and shims of a site's hosts hang off.

    Example: ``SiteVlanParents("paris-vlans", site="paris", hosts=[(h1, plan_h1)])``
    """

    def __init__(
        self,
        resource_name: str,
        *,
        site: str,
        hosts: Sequence[tuple[DockerHost, HostPlan]],
        paths: ConfigPaths | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("vlaninfra:index:SiteVlanParents", resource_name, None, opts)
        paths = paths or ConfigPaths(site)
        self.parents: dict[tuple[str, str], VlanParent] = {}
        """(host, sub-interface) → its resource."""
        for host, host_plan in hosts:
            for v in host_plan.vlan_parents:
                self.parents[(host.name, v.name)] = VlanParent(
                    f"{site}-{host.name}-{v.name}",
                    host=host,
                    parent_name=v.name,
                    trunk=v.trunk,
                    vlan_id=v.vlan_id,
                    config_path=f"{paths.host(host_plan.name)}.parents",
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({})


class UpstreamRoutes(pulumi.ComponentResource):
    """The static routes a site's managed routers need to its tenants' ipvlan L3 subnets
    (prefix via the serving host's LAN address), applied on each managed router.

    Example: ``UpstreamRoutes("paris-routes", site=site_plan, routers={"gw": gw})``
    """

    def __init__(
        self,
        resource_name: str,
        *,
        site: SitePlan,
        routers: Mapping[str, DockerHost],
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("vlaninfra:index:UpstreamRoutes", resource_name, None, opts)
        self.routes: dict[tuple[str, str], RouterRoute] = {}
        """(router, prefix) → its resource."""
        for i, router in enumerate(site.routers):
            if not router.managed:
                continue
            for r in site.upstream_routes:
                self.routes[(router.name, str(r.prefix))] = RouterRoute(
                    f"{site.name}-{router.name}-{r.prefix}",
                    router=routers[router.name],
                    destination=str(r.prefix),
                    via=str(r.via),
                    config_path=f"sites.{site.name}.routers[{i}]",
                    opts=pulumi.ResourceOptions(parent=self),
                )
        self.register_outputs({})
