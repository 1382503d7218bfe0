"""Rules for containers: names, hostnames, MACs, their host, network and tenant, and the pool
each address comes from (`_facts.pick_pool`), which makes the container resolved."""

from __future__ import annotations

from ._facts import Check, Resolved, pick_pool
from ._model import Host, IpvlanNetwork, MacvlanNetwork, Network, Site
from ._names import CONTAINER_NAME, hostname_problem, mac_problem

__all__ = ["check_containers"]


def check_containers(check: Check, site: Site, hosts: dict[str, Host],
                     nets: dict[str, Network]) -> None:
    tenants = [t.name for t in site.tenants]
    check.duplicates(((f"sites.{site.name}.containers[{i}].name", f"{c.host}/{c.name}")
                      for i, c in enumerate(site.containers)), "container (per host)")
    passthru_users: dict[tuple[str, str], str] = {}
    for i, c in enumerate(site.containers):
        base = f"sites.{site.name}.containers[{i}]"
        if not CONTAINER_NAME.fullmatch(c.name):
            check.error(f"{base}.name", c.name, (
                "not a Docker container name: 2 or more of letters, digits, '_', '.', '-', "
                "starting with a letter or digit"))
        if c.hostname is not None:
            problem = hostname_problem(c.hostname)
            if problem:
                check.error(f"{base}.hostname", c.hostname, problem)
        if c.mac is not None:
            found = mac_problem(c.mac)
            if found is not None:
                add = check.error if found[0] == "error" else check.warn
                add(f"{base}.mac", c.mac, found[1])
        if c.tenant is not None and c.tenant not in tenants:
            check.error(f"{base}.tenant", c.tenant,
                        f"unknown tenant; site {site.name} has: {', '.join(tenants) or 'none'}")
            continue
        host = hosts.get(c.host)
        if host is None:
            check.error(f"{base}.host", c.host,
                        f"unknown host; site {site.name} has: {', '.join(hosts)}")
            continue
        net = nets.get(c.network)
        if net is None:
            check.error(f"{base}.network", c.network,
                        f"unknown network; site {site.name} has: {', '.join(nets) or 'none'}")
            continue
        if c.host not in net.hosts:
            check.error(f"{base}.host", c.host,
                        f"network {net.name} is not on host {c.host}: add it to its hosts")
            continue
        if isinstance(net, IpvlanNetwork) and c.mac is not None:
            check.error(f"{base}.mac", c.mac,
                        "ipvlan containers share the parent's MAC: drop mac, or use macvlan")
        if isinstance(net, MacvlanNetwork) and net.mode == "passthru":
            owner = passthru_users.setdefault((c.host, net.name), c.name)
            if owner != c.name:
                check.error(f"{base}.network", c.network, (
                    f"macvlan passthru holds one container per host; {owner} already uses "
                    f"{net.name} on {c.host}"))
        pools = check.facts.by_net_host.get((site.name, net.name, c.host), [])
        if c.tenant is not None:
            pools = [p for p in pools if p.tenant == c.tenant]
            if not pools:
                check.error(f"{base}.tenant", c.tenant,
                            f"the tenant has no subnet on network {net.name} on host {c.host}")
                continue
        ok4, pool4 = pick_pool(check, base, "ipv4", c.ipv4, pools, 4, c.host, net.name)
        ok6, pool6 = pick_pool(check, base, "ipv6", c.ipv6, pools, 6, c.host, net.name)
        if ok4 and ok6:
            check.facts.containers.append(Resolved(site, i, c, net, host, pool4, pool6))
