"""`Site`: the root component of one site, parenting every resource of it and exporting what
the site looks like once applied (container addresses and MACs, network ids, shim addresses,
upstream routes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pulumi
from typing_extensions import TypedDict

from vlaninfra import providers as res
from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.layout import Layout, Plan, SitePlan, UpstreamRoute, plan
from vlaninfra.layout import Site as LayoutSite

from ._site import ConfigPaths, SiteNetwork, SiteVlanParents, UpstreamRoutes

__all__ = ["ContainerOutput", "Site", "SiteArgs", "SiteOutputs", "UpstreamRouteOutput",
           "deploy"]

_MOVED_UNDER_SITE = [pulumi.Alias(parent=pulumi.ROOT_STACK_RESOURCE)]
"""Before `Site`, a site's components were declared at the stack's root: their old URNs."""


class ContainerOutput(TypedDict):
    """One container as applied: ``{"host": "h1", "ipv4": "192.0.2.130", "mac": "02:42:..."}``.
    """

    host: str
    ipv4: str | None
    mac: str | None


class UpstreamRouteOutput(TypedDict):
    """A route on a managed router: ``{"router": "gw", "destination": ..., "via": ...}``."""

    router: str
    destination: str
    via: str


class SiteOutputs(TypedDict):
    """A site as applied, keyed ``host/name``: what `pulumi stack output sites` shows."""

    containers: dict[str, ContainerOutput]
    network_ids: dict[str, str]
    shim_addresses: dict[str, str]
    upstream_routes: list[UpstreamRouteOutput]


@dataclass(frozen=True, kw_only=True)
class SiteArgs:
    """What a `Site` lays out. Plain values, not Inputs: the site is validated and planned
    (addresses allocated) before anything is declared.

    - ``site``: the site's layout (`vlaninfra.layout.Site`, written in Python or read from
      stack config); validated and planned alone unless ``plan`` is given.
    - ``plan``: the site's plan, when the caller planned the whole layout (the stack program
      does, with the allocations of its last record pinned).
    - ``hosts`` / ``routers``: how to reach each host and managed router, by name; default:
      its ``ssh`` settings or the site's inventory (`vlaninfra.inventory`).
    - ``previous``: allocations to pin (an earlier `Plan.allocations`).

    Example: ``SiteArgs(site=layout.Site(name="paris", ...))``
    """

    site: LayoutSite | None = None
    plan: SitePlan | None = None
    hosts: Mapping[str, res.DockerHost] | None = None
    routers: Mapping[str, res.DockerHost] | None = None
    previous: Mapping[str, Sequence[str]] | None = None


class Site(pulumi.ComponentResource):
    """One site: its 802.1Q parents, networks, shims and containers on every host, and the
    upstream routes on its managed routers, all children of this component.

    Example::

        paris = Site("paris", SiteArgs(site=layout.Site(name="paris", ...)))
        pulumi.export("paris", paris.outputs)
    """

    container_addresses: pulumi.Output[dict[str, str]]
    """Each container's IPv4 address as the daemon reports it, by ``host/name``."""
    container_macs: pulumi.Output[dict[str, str]]
    """Each container's MAC address, by ``host/name``."""
    network_ids: pulumi.Output[dict[str, str]]
    """Each Docker network's id, by ``host/network``."""
    shim_addresses: dict[str, str]
    """Each host shim's address (``192.0.2.250/32``), by ``host/shim``."""
    upstream_routes: list[UpstreamRouteOutput]
    """The routes applied on managed routers."""
    outputs: pulumi.Output[SiteOutputs]
    """All of the above in one value (`SiteOutputs`), for `pulumi.export`."""

    def __init__(self, resource_name: str, args: SiteArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("vlaninfra:index:Site", resource_name, None, opts)
        site_plan = args.plan or _plan_alone(args)
        name = site_plan.name
        paths = ConfigPaths(name, args.site)
        hosts = args.hosts if args.hosts is not None else _reach(args, "hosts")
        child = pulumi.ResourceOptions(parent=self, aliases=_MOVED_UNDER_SITE)
        self.parents: dict[tuple[str, str], res.VlanParent] = {}
        self.networks: dict[str, res.DockerNetwork] = {}
        self.shims: dict[str, res.HostShim] = {}
        self.containers: dict[str, res.Container] = {}
        self.routes: dict[tuple[str, str], res.RouterRoute] = {}
        self.components: list[pulumi.ComponentResource] = []
        if any(h.vlan_parents for h in site_plan.hosts):
            vlans = SiteVlanParents(
                f"{name}-vlans", site=name, paths=paths, opts=child,
                hosts=[(hosts[h.name], h) for h in site_plan.hosts if h.vlan_parents])
            self.parents.update(vlans.parents)
            self.components.append(vlans)
        for network in sorted({n.name for h in site_plan.hosts for n in h.networks}):
            members = [(hosts[h.name], h) for h in site_plan.hosts
                       if any(n.name == network for n in h.networks)]
            net = SiteNetwork(f"{name}-{network}", site=name, network=network, hosts=members,
                              vlans=self.parents, paths=paths, opts=child)
            self.networks.update({f"{h}/{network}": r for h, r in net.networks.items()})
            self.shims.update({f"{h}/{network}": r for h, r in net.shims.items()})
            self.containers.update(net.containers)
            self.components.append(net)
        if site_plan.upstream_routes and any(r.managed for r in site_plan.routers):
            routers = args.routers if args.routers is not None else _reach(args, "routers")
            managed = {r.name: routers[r.name] for r in site_plan.routers if r.managed}
            up = UpstreamRoutes(f"{name}-routes", site=site_plan, routers=managed, opts=child)
            self.routes.update(up.routes)
            self.components.append(up)
        self.container_addresses = _by_key({k: c.ipv4_address for k, c in self.containers.items()})
        self.container_macs = _by_key({k: c.mac_address for k, c in self.containers.items()})
        self.network_ids = _by_key({k: n.network_id for k, n in self.networks.items()})
        self.shim_addresses = {f"{h.name}/{s.name}": str(s.address)
                               for h in site_plan.hosts for s in h.shims}
        self.upstream_routes = [
            {"router": router, "destination": prefix, "via": str(r.via)}
            for (router, prefix), r in ((k, _route_of(site_plan, k[1])) for k in self.routes)]
        self.outputs = pulumi.Output.all(self.container_addresses, self.container_macs,
                                         self.network_ids).apply(self._outputs)
        self.register_outputs({"outputs": self.outputs})

    def _outputs(self, values: list[dict[str, str]]) -> SiteOutputs:
        addresses, macs, ids = values
        return {
            "containers": {k: {"host": k.split("/", 1)[0], "ipv4": addresses.get(k) or None,
                               "mac": macs.get(k) or None} for k in sorted(self.containers)},
            "network_ids": dict(sorted(ids.items())),
            "shim_addresses": dict(sorted(self.shim_addresses.items())),
            "upstream_routes": self.upstream_routes,
        }


def _by_key(values: Mapping[str, pulumi.Output[str]]) -> pulumi.Output[dict[str, str]]:
    keys = list(values)
    return pulumi.Output.all(*values.values()).apply(lambda vs: dict(zip(keys, vs, strict=True)))


def _route_of(site: SitePlan, prefix: str) -> UpstreamRoute:
    return next(r for r in site.upstream_routes if str(r.prefix) == prefix)


def _plan_alone(args: SiteArgs) -> SitePlan:
    """The site planned alone; an invalid layout stops the program before anything is declared,
    listing every error by config key (no traceback)."""
    if args.site is None:
        raise pulumi.RunError("SiteArgs: give site (its layout) or plan")
    try:
        return plan(Layout(sites=(args.site,)), previous=args.previous).sites[0]
    except LayoutError as err:
        raise pulumi.RunError(f"site {args.site.name} is not a valid layout:\n{err}") from None


def _reach(args: SiteArgs, what: str) -> Mapping[str, res.DockerHost]:
    """The site's hosts or routers, from their `ssh` settings or the site's inventory."""
    from vlaninfra.program import by_config_path, check_targets, hosts_of, routers_of

    if args.site is None:
        raise pulumi.RunError(f"SiteArgs: give {what} (how to reach them) with a plan")
    layout = Layout(sites=(args.site,))
    try:  # the program stops with the message, no traceback
        found = hosts_of(layout) if what == "hosts" else routers_of(layout)
    except VlanInfraError as err:
        raise pulumi.RunError(str(err)) from None
    hosts, routers = (found, {}) if what == "hosts" else ({}, found)
    problems = check_targets(by_config_path(layout, hosts, routers))
    if problems:
        raise pulumi.RunError("\n".join(problems))
    return {name: target for (_, name), target in found.items()}


def deploy(
    plan: Plan,
    hosts: Mapping[tuple[str, str], res.DockerHost],
    routers: Mapping[tuple[str, str], res.DockerHost] | None = None,
    *,
    layout: Layout | None = None,
) -> list[Site]:
    """Declares a `Site` per site of `plan`: every 802.1Q parent, network, shim and container,
    and the upstream routes on managed routers; `hosts` and `routers` map (site, name) to how
    to reach it; `layout` (the planned layout) gives messages their config keys.

    Example: ``deploy(layout.plan(load_config(cfg)), {("paris", "h1"): DockerHost(...)})``
    """
    sites = {s.name: s for s in layout.sites} if layout else {}
    return [
        Site(site.name, SiteArgs(
            site=sites.get(site.name),
            plan=site,
            hosts={name: h for (s, name), h in hosts.items() if s == site.name},
            routers={name: r for (s, name), r in (routers or {}).items() if s == site.name},
        ))
        for site in plan.sites
    ]
