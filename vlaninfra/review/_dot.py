"""The topology of a plan as Graphviz DOT (`vlaninfra graph`): one cluster per site and per
host; the site's LAN and routers; each host's parent NICs and 802.1Q parents, its Docker
networks, shims and containers (with addresses, filled with their tenant's colour); an edge
per attachment and per upstream route (router → the host serving the prefix)."""

from __future__ import annotations

from collections.abc import Iterator

from vlaninfra.layout import ContainerPlan, HostPlan, Plan, SitePlan

__all__ = ["COLUMN", "TENANT_COLOURS", "render_dot", "tenant_colours"]

TENANT_COLOURS = (("#bfdbfe", "#1d4ed8"), ("#fde68a", "#b45309"), ("#bbf7d0", "#15803d"),
                  ("#fbcfe8", "#be185d"), ("#ddd6fe", "#6d28d9"), ("#fed7aa", "#c2410c"),
                  ("#99f6e4", "#0f766e"), ("#e5e7eb", "#374151"))
"""(fill, line) colours of tenants, in the order of their names; no tenant: white, grey."""

_FONT = 'fontname="Helvetica"'
COLUMN = 12
"""Containers per column: a network with more is drawn in several columns."""


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _label(*lines: str | None) -> str:
    return _q("\n".join(x for x in lines if x)).replace("\n", "\\n")


def render_dot(p: Plan, title: str) -> str:
    """The DOT text, e.g. ``Path("lab.dot").write_text(render_dot(plan, "stack lab"))``."""
    return "\n".join(_graph(p, title)) + "\n"


def tenant_colours(p: Plan) -> dict[str, tuple[str, str]]:
    """Tenant → (fill, line) colour, e.g. ``{"tenant_a": ("#bfdbfe", "#1d4ed8")}``."""
    names = sorted({t for s in p.sites for h in s.hosts for t in (
        *(c.tenant for c in h.containers), *(x.tenant for n in h.networks for x in n.subnets))
        if t})
    return {t: TENANT_COLOURS[i % len(TENANT_COLOURS)] for i, t in enumerate(names)}


def _graph(p: Plan, title: str) -> Iterator[str]:
    colours = tenant_colours(p)
    yield "digraph vlaninfra {"
    yield (f"  graph [rankdir=LR, {_FONT}, fontsize=16, labelloc=t, label={_label(title)}, "
           "nodesep=0.15, ranksep=0.6, newrank=true];")
    yield f"  node [{_FONT}, fontsize=10, shape=box, style=\"rounded,filled\", fillcolor=white];"
    yield f"  edge [{_FONT}, fontsize=9, arrowhead=none, color=\"#64748b\"];"
    for site in p.sites:
        yield from _site(site, colours)
    if colours:
        yield "  subgraph cluster_tenants {"
        yield f"    label=\"tenants\"; style=dashed; color=\"#94a3b8\"; {_FONT};"
        for t, (fill, line) in colours.items():
            yield (f"    {_q('tenant:' + t)} [label={_q(t)}, fillcolor={_q(fill)}, "
                   f"color={_q(line)}];")
        yield "  }"
    yield "}"


def _site(site: SitePlan, colours: dict[str, tuple[str, str]]) -> Iterator[str]:
    s = site.name
    yield f"  subgraph {_q('cluster_site_' + s)} {{"
    yield f"    label={_label('site ' + s)}; style=rounded; color=\"#334155\"; penwidth=2;"
    lan = f"lan:{s}"
    yield (f"    {_q(lan)} [shape=ellipse, fillcolor=\"#f1f5f9\", "
           f"label={_label('LAN', str(site.lan.subnet), _gw(site))}];")
    for r in site.routers:
        rid = f"router:{s}/{r.name}"
        yield (f"    {_q(rid)} [shape=hexagon, fillcolor=\"#e2e8f0\", label="
               f"{_label('router ' + r.name, str(r.address), 'managed' if r.managed else None)}];")
        yield f"    {_q(rid)} -> {_q(lan)};"
    for h in site.hosts:
        yield from _host(s, h, colours)
        # Outside the host's cluster, so that the LAN stays in the site's.
        for nic in _trunks(h):
            yield f"    {_q(lan)} -> {_q(f'nic:{s}/{h.name}/{nic}')};"
    for route in site.upstream_routes:
        colour = colours.get(route.tenant or "", ("", "#475569"))[1]
        target = _q(f"net:{s}/{route.host}/{route.network}")
        for r in site.routers:
            yield (f"    {_q(f'router:{s}/{r.name}')} -> {target} [style=dashed, penwidth=2, "
                   f"arrowhead=normal, color={_q(colour)}, "
                   f"label={_label(f'{route.prefix} via {route.via}')}];")
    yield "  }"


def _gw(site: SitePlan) -> str | None:
    return f"gw {site.lan.gateway}" if site.lan.gateway else None


def _trunks(h: HostPlan) -> list[str]:
    """The host's physical parents in use (an 802.1Q parent counts as its trunk)."""
    vlans = {v.name: v.trunk for v in h.vlan_parents}
    nics = {n.parent for n in h.networks} | {x.parent for x in h.shims} | set(vlans.values())
    return sorted({vlans.get(n, n) for n in nics})


def _host(s: str, h: HostPlan, colours: dict[str, tuple[str, str]]) -> Iterator[str]:
    hid = f"host:{s}/{h.name}"
    yield f"    subgraph {_q(f'cluster_host_{s}_{h.name}')} {{"
    yield "      label=\"\"; style=\"rounded,filled\"; fillcolor=\"#f8fafc\"; color=\"#94a3b8\";"
    docker = f"Docker {h.docker_version}" if h.docker_version else None
    yield (f"      {_q(hid)} [shape=box3d, fillcolor=\"#e0e7ff\", "
           f"label={_label('host ' + h.name, str(h.lan_address or ''), docker)}];")
    for nic in _trunks(h):
        yield f"      {_q(f'nic:{s}/{h.name}/{nic}')} [shape=cds, label={_label(nic)}];"
        yield f"      {_q(hid)} -> {_q(f'nic:{s}/{h.name}/{nic}')} [style=dotted];"
    for v in h.vlan_parents:
        yield (f"      {_q(f'nic:{s}/{h.name}/{v.name}')} [shape=cds, fillcolor=\"#fef3c7\", "
               f"label={_label(v.name, f'802.1Q VLAN {v.vlan_id}')}];")
        yield f"      {_q(f'nic:{s}/{h.name}/{v.trunk}')} -> {_q(f'nic:{s}/{h.name}/{v.name}')};"
    for n in h.networks:
        nid = f"net:{s}/{h.name}/{n.name}"
        mode = n.mode
        subnets = [f"{x.subnet}" + (f" [{x.tenant}]" if x.tenant else "")
                   + (f" range {x.ip_range}" if x.ip_range else "") for x in n.subnets]
        yield (f"      {_q(nid)} [shape=component, fillcolor=\"#ecfeff\", "
               f"label={_label(n.name, f'{n.driver} {mode}', *subnets)}];")
        yield f"      {_q(f'nic:{s}/{h.name}/{n.parent}')} -> {_q(nid)};"
    for x in h.shims:
        sid = f"shim:{s}/{h.name}/{x.name}"
        routes = f"{len(x.routes)} route(s)" if len(x.routes) > 3 else \
            ", ".join(str(r) for r in x.routes) or None
        yield (f"      {_q(sid)} [style=\"rounded,filled,dashed\", fillcolor=\"#fce7f3\", "
               f"label={_label('shim ' + x.name, str(x.address), routes)}];")
        yield f"      {_q(f'nic:{s}/{h.name}/{x.parent}')} -> {_q(sid)};"
        yield f"      {_q(sid)} -> {_q(f'net:{s}/{h.name}/{x.network}')} [style=dotted];"
    for n in h.networks:
        on = [c for c in h.containers if c.network == n.name]
        # A long column of containers is staggered over a few ranks (what Graphviz's
        # `unflatten -l` does), so a big network draws as a block, not a strip.
        columns = -(-len(on) // COLUMN)
        for i, c in enumerate(on):
            yield from _container(s, h.name, c, colours, 1 + i % columns)
    yield "    }"


def _container(s: str, host: str, c: ContainerPlan, colours: dict[str, tuple[str, str]],
               minlen: int) -> Iterator[str]:
    cid = f"ctr:{s}/{host}/{c.name}"
    fill, line = colours.get(c.tenant or "", ("white", "black"))
    yield (f"      {_q(cid)} [fillcolor={_q(fill)}, color={_q(line)}, label="
           f"{_label(c.name, str(c.ipv4 or ''), str(c.ipv6 or ''), c.mac)}];")
    yield f"      {_q(f'net:{s}/{host}/{c.network}')} -> {_q(cid)} [minlen={minlen}];"
