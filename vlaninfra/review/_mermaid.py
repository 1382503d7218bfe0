"""A Mermaid flowchart of the new topology with the change marked (GitHub renders it in a PR
comment): sites, hosts, networks, shims, containers; added green, removed red (dashed),
re-created orange, moved blue; an upstream router with its routes."""

from __future__ import annotations

from collections.abc import Iterator

from vlaninfra.layout import Plan

from ._model import Diff

__all__ = ["MAX_CONTAINERS", "render_mermaid"]

MAX_CONTAINERS = 40
"""Above this, unchanged containers are summed up per network (one node), for readability."""
MAX_DRAWN = 80
"""Containers drawn at most (changed ones first come, first drawn); the rest are summed up."""

_CLASSES = {
    "add": "fill:#dcfce7,stroke:#15803d",
    "remove": "fill:#fee2e2,stroke:#b91c1c,stroke-dasharray:4 3",
    "replace": "fill:#ffedd5,stroke:#c2410c,stroke-width:3px",
    "move": "fill:#dbeafe,stroke:#1d4ed8",
    "update": "fill:#fef9c3,stroke:#a16207",
}


class _Ids:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __call__(self, key: str) -> str:
        return self.ids.setdefault(key, f"n{len(self.ids)}")


def _label(*lines: str | None) -> str:
    text = "<br/>".join(x for x in lines if x)
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(d: Diff, new: Plan) -> str:
    """The flowchart's source (without the fence), e.g. ``render_mermaid(diff, new_plan)``."""
    return "\n".join(_lines(d, new)) + "\n"


def _lines(d: Diff, new: Plan) -> Iterator[str]:
    ids = _Ids()
    marked: dict[str, str] = {}
    hosts: dict[tuple[str, str], dict[str, list[str]]] = {}
    """(site, host) → network → its container nodes"""
    for nc in d.networks:
        marked[f"net:{nc.site}/{nc.host}/{nc.name}"] = nc.action
    for sc in d.shims:
        marked[f"shim:{sc.site}/{sc.host}/{sc.network}"] = sc.action
    for cc in d.containers:
        e = cc.new or cc.old
        assert e is not None
        marked[f"ctr:{cc.site}/{e.host}/{cc.name}"] = cc.action
    total = sum(len(h.containers) for s in new.sites for h in s.hosts)
    yield "flowchart LR"
    for site in new.sites:
        yield f"  subgraph {ids('site:' + site.name)}[{_label('site ' + site.name)}]"
        for h in site.hosts:
            yield f"    subgraph {ids(f'host:{site.name}/{h.name}')}" \
                  f"[{_label(h.name, str(h.lan_address or ''))}]"
            yield "      direction TB"
            nets = hosts.setdefault((site.name, h.name), {})
            removed_nets = [n for n in d.networks if n.action == "remove"
                            and (n.site, n.host) == (site.name, h.name)]
            for net in [*((n.name, n.driver, n.parent) for n in h.networks),
                        *((n.name, n.driver, n.parent) for n in removed_nets)]:
                key = f"net:{site.name}/{h.name}/{net[0]}"
                yield f"      {ids(key)}[[{_label(net[0], f'{net[1]} on {net[2]}')}]]"
                nets[net[0]] = []
            for s in h.shims:
                key = f"shim:{site.name}/{h.name}/{s.network}"
                yield f"      {ids(key)}>{_label(s.name, str(s.address))}]"
            hidden: dict[str, int] = {}
            for c in h.containers:
                key = f"ctr:{site.name}/{h.name}/{c.name}"
                drawn = sum(1 for k in ids.ids if k.startswith("ctr:"))
                if (total > MAX_CONTAINERS and key not in marked) or drawn >= MAX_DRAWN:
                    hidden[c.network] = hidden.get(c.network, 0) + 1
                    continue
                yield f"      {ids(key)}({_label(c.name, str(c.ipv4 or c.ipv6 or ''))})"
                nets.setdefault(c.network, []).append(key)
            for cc in d.containers:
                if cc.action == "remove" and cc.old and (cc.site, cc.old.host) == (site.name,
                                                                                   h.name):
                    key = f"ctr:{site.name}/{h.name}/{cc.name}"
                    yield f"      {ids(key)}({_label(cc.name, cc.old.ipv4)})"
                    nets.setdefault(cc.old.network, []).append(key)
            for net_name, count in hidden.items():
                key = f"more:{site.name}/{h.name}/{net_name}"
                yield f"      {ids(key)}({_label(f'{count} more containers')})"
                nets.setdefault(net_name, []).append(key)
            yield "    end"
        for r in site.routers:
            router = ids(f"router:{site.name}/{r.name}")
            yield f"    {router}{{{{{_label(r.name, str(r.address))}}}}}"
        yield "  end"
    for (site_name, host), nets in hosts.items():
        for net_name, attached in nets.items():
            net_id = ids(f"net:{site_name}/{host}/{net_name}")
            shim = f"shim:{site_name}/{host}/{net_name}"
            if shim in ids.ids:
                yield f"  {net_id} -.- {ids(shim)}"
            for key in attached:
                yield f"  {net_id} --- {ids(key)}"
    for site in new.sites:
        for r in site.routers:
            for route in site.upstream_routes:
                yield (f"  {ids(f'router:{site.name}/{r.name}')} -->|{_label(str(route.prefix))}| "
                       f"{ids(f'net:{site.name}/{route.host}/{route.network}')}")
    for action, style in _CLASSES.items():
        members = [ids.ids[k] for k, a in marked.items() if a == action and k in ids.ids]
        if members:
            yield f"  classDef {action} {style}"
            yield f"  class {','.join(members)} {action}"
