"""The seed's switch facts in the plan: how many MACs each host presents on each switch port,
checked against what the site (or the host's parent) says the port allows.

macvlan gives every container, and the shim, a MAC of its own on the parent's port; ipvlan
and 802.1Q sub-interfaces share the parent's one MAC. A switch with port security drops
frames from the MACs over its limit, and a port that denies promiscuous operation (several
source MACs) drops every macvlan container. Both are refused at plan time, naming the key.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from vlaninfra.errors import Problem

from ._model import Host, MacvlanNetwork, Site, Switch
from ._names import VLAN

__all__ = ["ADVICE", "PortMacs", "port_macs", "switch_problems"]

ADVICE = ("use ipvlan l2 (driver: ipvlan, mode: l2): every container gets its own IP behind "
          "the host's one MAC")
"""The seed's advice for a switch that limits MACs per port."""


@dataclass(frozen=True, slots=True)
class PortMacs:
    """The MACs one host presents on one switch port (a parent NIC of the host)."""

    host: Host
    host_index: int
    port: str
    """The physical parent, e.g. ``eth0`` for networks on ``eth0`` and ``eth0.50``."""
    macvlan: dict[str, int]
    """Network name -> MACs its containers and shim add on this port (macvlan only)."""
    switch: Switch | None
    switch_path: str
    """Config path of the switch facts that apply, e.g. ``sites.a.switch``."""

    @property
    def count(self) -> int:
        """The host's own MAC plus every macvlan container and shim on this port."""
        return 1 + sum(self.macvlan.values())


def _port(host: Host, parent: str) -> str:
    m = VLAN.fullmatch(parent)
    return m.group(1) if m and parent not in host.parents and m.group(1) in host.parents \
        else parent


def port_macs(site: Site) -> list[PortMacs]:
    """Every (host, port) of ``site`` that carries a network, with its MAC count.

    Example: ``[p.count for p in port_macs(site)] == [32]`` for 30 macvlan containers + shim.
    """
    out: list[PortMacs] = []
    per_host_net = Counter((c.host, c.network) for c in site.containers)
    for hi, host in enumerate(site.hosts):
        ports: dict[str, dict[str, int]] = {}
        for net in site.networks:
            if host.name not in net.hosts:
                continue
            per_net = ports.setdefault(_port(host, net.parent_on(host.name)), {})
            if isinstance(net, MacvlanNetwork):
                shim = 1 if net.shim is not None and host.name in net.shim.address_per_host else 0
                per_net[net.name] = shim + per_host_net[(host.name, net.name)]
        for port, macvlan in ports.items():
            if port in host.switch_per_parent:
                switch: Switch | None = host.switch_per_parent[port]
                path = f"sites.{site.name}.hosts[{hi}].switch_per_parent.{port}"
            else:
                switch, path = site.switch, f"sites.{site.name}.switch"
            out.append(PortMacs(host, hi, port, macvlan, switch, path))
    return out


def switch_problems(site: Site) -> list[Problem]:
    """A layout that presents more MACs than a port allows, or macvlan where a port denies
    promiscuous operation; also ``switch_per_parent`` keys that name no parent."""
    problems: list[Problem] = []
    nets = {n.name: i for i, n in enumerate(site.networks)}
    for hi, host in enumerate(site.hosts):
        for parent in host.switch_per_parent:
            if parent not in host.parents:
                problems.append(Problem(
                    f"sites.{site.name}.hosts[{hi}].switch_per_parent.{parent}", parent,
                    f"{parent} is not a parent of host {host.name} "
                    f"({', '.join(host.parents)}): name one of them"))
    for pm in port_macs(site):
        if pm.switch is None:
            continue
        users = {n: k for n, k in pm.macvlan.items() if k}
        limit = pm.switch.mac_limit_per_port
        if limit is not None and pm.count > limit:
            parts = ", ".join(f"network {n} (sites.{site.name}.networks[{nets[n]}]) {k}"
                              for n, k in users.items())
            problems.append(Problem(f"{pm.switch_path}.mac_limit_per_port", limit, (
                f"host {pm.host.name} presents {pm.count} MACs on {pm.port} (its own 1, "
                f"{parts}; macvlan gives each container and shim a MAC) but the switch port "
                f"allows {limit}: {ADVICE}, or raise the port's limit")))
        if pm.switch.promiscuous == "denied":
            for name in users:
                problems.append(Problem(f"sites.{site.name}.networks[{nets[name]}].driver",
                                        "macvlan", (
                    f"the switch port behind {pm.port} of host {pm.host.name} denies "
                    f"promiscuous operation ({pm.switch_path}.promiscuous: denied), so it drops "
                    f"the frames of macvlan's extra MACs: {ADVICE}")))
    return problems
