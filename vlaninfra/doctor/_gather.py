"""The doctor's I/O half: one agent session per host (all hosts in parallel) reads the host's
facts, asks the providers' preview clash checks about every planned object and sends the
ARP/NDP probes; :func:`diagnose` then judges them.

Example: ``doctor(layout, hosts_of(layout), "vlaninfra/lab").ok``
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from vlaninfra.errors import LayoutError, VlanInfraError
from vlaninfra.host.contract import ROUTED
from vlaninfra.layout import Layout, Plan, Site, plan

from ._diagnose import Finding, HostFacts, Report, diagnose

__all__ = ["ARP_TIMEOUT", "doctor", "gather"]

ARP_TIMEOUT = 5.0
"""Seconds a host gets for all its ARP probes (each listens about 1 s, all in parallel)."""


def _container_keys(site: Site) -> dict[tuple[str, str], str]:
    return {(c.host, c.name): f"sites.{site.name}.containers[{i}]"
            for i, c in enumerate(site.containers)}


def _planned_objects(site: Site, the_plan: Plan | None, host: str, member: Any,
                     owner: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(config key, provider kind, props) of every object the plan makes on ``host``: what
    the providers' preview clash checks are asked about."""
    from vlaninfra.providers._host import CONFIG_PATH, CONNECTION, HOST, OWNER

    if the_plan is None:
        return []
    hp = next(h for s in the_plan.sites if s.name == site.name for h in s.hosts
              if h.name == host)
    base = {CONNECTION: member.connection(), HOST: host, OWNER: owner}
    nets = {n.name: i for i, n in enumerate(site.networks)}
    keys = _container_keys(site)
    out: list[tuple[str, str, dict[str, Any]]] = []
    for n in hp.networks:
        key = f"sites.{site.name}.networks[{nets[n.name]}]"
        out.append((f"{key}.name", "network", {**base, "name": n.name, CONFIG_PATH: key}))
    for s in hp.shims:
        key = f"sites.{site.name}.networks[{nets[s.network]}].shim"
        out.append((f"{key}.name", "shim", {**base, "name": s.name, CONFIG_PATH: key}))
    for c in hp.containers:
        key = keys[(host, c.name)]
        out.append((f"{key}.name", "container", {**base, "name": c.name, CONFIG_PATH: key}))
    for v in hp.vlan_parents:
        key = f"sites.{site.name}.hosts.{host}.parents"
        out.append((key, "vlan", {**base, "name": v.name, "trunk": v.trunk,
                                  "vlan_id": v.vlan_id, CONFIG_PATH: key}))
    return out


def _arp_checks(site: Site, the_plan: Plan | None, host: str,
                links: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(config key, ``arp-unique`` check) for every planned container address on the LAN's
    L2 (macvlan, ipvlan l2; not internal) whose parent exists on the host."""
    if the_plan is None:
        return []
    hp = next(h for s in the_plan.sites if s.name == site.name for h in s.hosts
              if h.name == host)
    keys = _container_keys(site)
    fixed = {(c.host, c.name): c.ipv4 is not None for c in site.containers}
    out: list[tuple[str, dict[str, Any]]] = []
    for c in hp.containers:
        net = next(n for n in hp.networks if n.name == c.network)
        if net.internal or net.mode in ROUTED or net.parent not in links:
            continue
        if c.ipv4 is not None:
            key = keys[(host, c.name)] + (".ipv4" if fixed[(host, c.name)] else "")
            out.append((key, {"kind": "arp-unique", "device": net.parent,
                              "address": str(c.ipv4), "own": [c.mac] if c.mac else []}))
        if c.ipv6 is not None:  # NDP (neighbour solicitation) for IPv6
            out.append((keys[(host, c.name)] + ".ipv6", {
                "kind": "ndp-unique", "device": net.parent, "address": str(c.ipv6),
                "own": [c.mac] if c.mac else []}))
    return out


def gather(site: Site, the_plan: Plan | None, host: str, member: Any, owner: str,
           agent_of: Callable[[Any], Any], dmi_dir: str | None = None) -> HostFacts:
    """One host's facts through its agent: ``doctor.facts``, the preview clash checks of the
    planned objects, and one ``probe.run`` of ARP probes. Never raises for a host problem."""
    from vlaninfra.providers import _container, _network, _shim, _vlan

    providers: dict[str, Any] = {"network": _network.NetworkProvider(),
                                 "shim": _shim.ShimProvider(),
                                 "container": _container.ContainerProvider(),
                                 "vlan": _vlan.VlanParentProvider()}
    try:
        agent = agent_of(member)
        facts = agent.call("doctor.facts", **({"dmi_dir": dmi_dir} if dmi_dir else {}))
        clashes: dict[str, str] = {}
        for key, kind, props in _planned_objects(site, the_plan, host, member, owner):
            why = providers[kind].clash(agent, props)
            if why:
                clashes[key] = why
        links = {link["name"] for link in facts.get("links") or ()}
        checks = _arp_checks(site, the_plan, host, {n: True for n in links})
        arp: dict[str, dict[str, Any]] = {}
        if checks:
            answers = agent.call("probe.run", checks=[c for _, c in checks],
                                 timeout=ARP_TIMEOUT)
            for (key, check), answer in zip(checks, answers, strict=True):
                arp[key] = {**answer, "address": check["address"], "device": check["device"]}
    except VlanInfraError as err:
        return HostFacts(error=str(err))
    except (KeyError, TypeError, ValueError, AttributeError) as err:  # a malformed answer
        return HostFacts(error=f"unexpected answer: {type(err).__name__}: {err}")
    return HostFacts(facts, clashes, arp)


def doctor(layout: Layout, hosts: Mapping[tuple[str, str], Any], owner: str,
           config: Any = None, dmi_dir: str | None = None) -> Report:
    """Checks every host of ``layout`` (reached as ``hosts`` says: (site, host) -> a
    ``DockerHost``) for the stack ``owner`` (``project/stack``), read-only. ``config`` looks
    up secret stack config keys as the providers do; ``dmi_dir`` replaces
    ``/sys/class/dmi/id`` on every host (tests).

    Example: ``doctor(layout, hosts_of(layout), "vlaninfra/lab").ok``
    """
    from vlaninfra.providers._host import CONNECTION, target_of
    from vlaninfra.transport import agent_for

    started = time.monotonic()
    try:
        the_plan: Plan | None = plan(layout)
    except LayoutError:
        the_plan = None  # its errors are findings; planned objects are not checked

    def agent_of(member: Any) -> Any:
        return agent_for(target_of({CONNECTION: member.connection()}, config))

    work = [(site, host.name) for site in layout.sites for host in site.hosts
            if (site.name, host.name) in hosts]
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(work)))) as pool:
        answers = list(pool.map(lambda w: gather(
            w[0], the_plan, w[1], hosts[(w[0].name, w[1])], owner, agent_of, dmi_dir), work))
    facts = {(site.name, name): hf for (site, name), hf in zip(work, answers, strict=True)}
    findings = diagnose(layout, facts)
    if the_plan is None:
        findings.append(Finding("info", "sites", (
            "the layout has errors: the planned objects and addresses were not checked on "
            "the hosts; fix the errors and run doctor again")))
    return Report(tuple(findings), time.monotonic() - started)
