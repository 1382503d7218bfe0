"""The plan as plain aligned text tables (what ``vlaninfra plan`` prints)."""

from __future__ import annotations

from vlaninfra._text import table as _table

from ._plan import HostPlan, NetworkPlan, Plan, SitePlan

__all__ = ["render_plan"]


def _mode(net: NetworkPlan) -> str:
    return f"{net.mode}/{net.flag}" if net.flag else f"{net.mode}"


def _host(host: HostPlan) -> list[str]:
    ssh = host.ssh
    target = f"{ssh.user}@{ssh.address}:{ssh.port}" if ssh else "from inventory"
    lines = [f"  host {host.name}  ssh {target}  lan {host.lan_address or '-'}  "
             f"docker {host.docker_version or '20.10 (assumed)'}"]
    if host.vlan_parents:
        lines.append("    802.1Q parents")
        lines += _table(("NAME", "TRUNK", "VLAN"),
                        [(v.name, v.trunk, v.vlan_id) for v in host.vlan_parents], "      ")
    if host.networks:
        lines.append("    networks")
        rows = []
        for n in host.networks:
            for s in n.subnets:
                aux = ", ".join(f"{k}={v}" for k, v in s.aux_addresses.items())
                rows.append((n.name, n.driver, _mode(n), n.parent, s.subnet, s.gateway,
                             s.ip_range, s.usable, s.free, s.tenant, aux))
        lines += _table(("NAME", "DRIVER", "MODE", "PARENT", "SUBNET", "GATEWAY", "IP_RANGE",
                         "USABLE", "FREE", "TENANT", "AUX"), rows, "      ")
        for n in host.networks:
            lines += [f"      note: {n.name} {note}" for note in n.notes]
    if host.shims:
        lines.append("    shims")
        lines += _table(("NAME", "PARENT", "KIND", "MODE", "ADDRESS", "NETWORK", "ROUTES"),
                        [(s.name, s.parent, s.kind, s.mode,
                          ", ".join(str(a) for a in s.addresses), s.network,
                          ", ".join(str(r) for r in s.routes)) for s in host.shims], "      ")
    if host.containers:
        lines.append("    containers")
        lines += _table(("NAME", "NETWORK", "IPV4", "IPV6", "MAC", "ADDRESS", "IMAGE"),
                        [(c.name, c.network, c.ipv4, c.ipv6, c.mac,
                          "allocated" if c.allocated else "fixed", c.image)
                         for c in host.containers], "      ")
    return lines


def _routers(site: SitePlan) -> str:
    return ", ".join(f"{r.name} {r.address}{' (managed)' if r.managed else ''}"
                     for r in site.routers)


def _site(site: SitePlan) -> list[str]:
    lan = site.lan
    lines = [f"site {site.name}  LAN {lan.subnet}  gateway {lan.gateway or '-'}  "
             f"dhcp {lan.dhcp_pool or '-'}  routers {_routers(site) or '-'}"]
    if site.upstream_routes:
        lines.append("  upstream routes (for the site's router)")
        lines += _table(("PREFIX", "VIA", "TENANT", "HOST", "NETWORK"),
                        [(r.prefix, r.via, r.tenant, r.host, r.network)
                         for r in site.upstream_routes], "    ")
    for host in site.hosts:
        lines += _host(host)
    if site.probes:
        lines.append("  probes (run by verification)")
        lines += _table(("PROBE", "RUNS ON", "TARGET", "CHECK", "EXPECT"),
                        [(p.label, p.member + (f" in {p.container}" if p.container else ""),
                          p.target, f"tcp {p.port}" if p.port else "ping", p.expect)
                         for p in site.probes], "    ")
    return lines


def render_plan(plan: Plan) -> str:
    """The plan as text tables, e.g. ``print(render_plan(plan(layout)))``."""
    lines: list[str] = []
    for site in plan.sites:
        lines += [*_site(site), ""]
    if plan.warnings:
        lines.append("warnings")
        lines += [f"  {w}" for w in plan.warnings]
    return "\n".join(lines).rstrip() + "\n"
