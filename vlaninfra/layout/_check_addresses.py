"""Rules for addresses across a site and the layout: the LAN and its routers, the LAN
addresses upstream routes need, and overlapping subnets across tenants, LANs, networks and
sites."""

from __future__ import annotations

from ._facts import Check, Pool, routed_pool
from ._model import IPNetwork, IpvlanNetwork, Layout, Site

__all__ = ["check_lan", "check_overlap", "check_upstream"]


def check_lan(check: Check, site: Site) -> None:
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


def check_upstream(check: Check, site: Site, host_index: dict[str, int]) -> None:
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


def _overlaps(a: IPNetwork, b: IPNetwork) -> bool:
    return a.version == b.version and a.overlaps(b)


_Space = tuple[IPNetwork, str, str, str, object]
"""(prefix, config path, label, site, owner: a Pool or a LAN marker)."""



def check_overlap(check: Check, layout: Layout) -> None:
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
