"""Mode-aware validation of a layout: `analyse` runs the rules by topic over each site and
returns every problem plus the facts the ledger and the plan need.

Where each part lives:
- ``_facts``: resolution of pools and facts (`Pool`, `Resolved`, `Facts`, the `Check`
  collector);
- ``_docker``: Docker-version capabilities;
- ``_names``: name syntax (interfaces, hostnames, containers, MACs, shim names);
- ``_check_hosts``, ``_check_networks``, ``_check_containers``, ``_check_addresses``: the rules
  by topic; ``_modes``, ``_switch`` and ``_probes`` add theirs per site.
"""

from __future__ import annotations

from vlaninfra.errors import Problem

from ._check_addresses import check_lan, check_overlap, check_upstream
from ._check_containers import check_containers
from ._check_hosts import check_host, check_parents
from ._check_networks import check_network, check_tenants
from ._docker import docker_allows_shared_parent
from ._facts import Check, Facts, Pool, Resolved, routed_pool, routes_tenants
from ._model import Layout, Site
from ._modes import mode_problems
from ._names import IFNAMSIZ, mac_problem, shim_name
from ._probes import probe_problems
from ._switch import switch_problems

__all__ = [
    "IFNAMSIZ",
    "Facts",
    "Pool",
    "Resolved",
    "analyse",
    "docker_allows_shared_parent",
    "mac_problem",
    "routed_pool",
    "routes_tenants",
    "shim_name",
]


def analyse(layout: Layout) -> tuple[list[Problem], Facts]:
    """Every rule-level problem of ``layout`` plus the facts the ledger and plan need.

    Example: ``problems, facts = analyse(layout)``
    """
    check = Check()
    check.duplicates(((f"sites.{s.name}", s.name) for s in layout.sites), "site")
    for site in layout.sites:
        _site(check, site)
    check_overlap(check, layout)
    return check.problems, check.facts


def _site(check: Check, site: Site) -> None:
    base = f"sites.{site.name}"
    hosts = {h.name: h for h in site.hosts}
    nets = {n.name: n for n in site.networks}
    net_index = {n.name: i for i, n in enumerate(site.networks)}
    host_index = {h.name: i for i, h in enumerate(site.hosts)}
    check.duplicates(((f"{base}.hosts[{i}].name", h.name) for i, h in enumerate(site.hosts)),
                     "host")
    check.duplicates(((f"{base}.networks[{i}].name", n.name)
                      for i, n in enumerate(site.networks)), "network")
    check.duplicates(((f"{base}.tenants[{i}].name", t.name)
                      for i, t in enumerate(site.tenants)), "tenant")
    check.duplicates(((f"{base}.routers[{i}].name", r.name)
                      for i, r in enumerate(site.routers)), "router")
    check_lan(check, site)
    for i, host in enumerate(site.hosts):
        check_host(check, site, i, host)
    for i, net in enumerate(site.networks):
        check_network(check, site, i, net, hosts)
    check_tenants(check, site, nets, net_index)
    for host in site.hosts:
        check_parents(check, site, host, host_index[host.name], net_index)
    check_containers(check, site, hosts, nets)
    check_upstream(check, site, host_index)
    check.problems += probe_problems(site, {
        (r.container.host, r.container.name) for r in check.facts.containers
        if r.site is site and (r.pool4 is not None or r.pool6 is not None)})
    check.problems += mode_problems(site) + switch_problems(site)
