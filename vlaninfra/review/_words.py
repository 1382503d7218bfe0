"""Words shared by the renderers: one line per change, in the reviewer's terms."""

from __future__ import annotations

from collections.abc import Sequence

from ._model import ContainerChange, Diff, Endpoint, FieldChange, NetworkChange, ShimChange

__all__ = ["container_detail", "endpoint", "fields", "headline", "names", "network_detail",
           "place",
           "shim_detail"]


def endpoint(e: Endpoint | None) -> str:
    """``h1 pub_net 192.0.2.130 02:42:c0:00:02:82``; "-" for none."""
    if e is None:
        return "-"
    return " ".join(x for x in (e.host, e.network, e.ipv4, e.ipv6, e.mac) if x)


def names(items: Sequence[str], limit: int = 30) -> str:
    """``a, b, c`` or ``a, b and 3 more`` beyond `limit`; "none" for none."""
    shown = ", ".join(items[:limit]) or "none"
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def place(c: ContainerChange) -> str:
    """Where the container is: ``old → new``, or one side when the other is absent or equal."""
    if c.old is not None and c.new is not None and c.old != c.new:
        return f"{endpoint(c.old)} → {endpoint(c.new)}"
    return endpoint(c.old or c.new)


def fields(changes: tuple[FieldChange, ...]) -> str:
    """``ipv4 192.0.2.130 → 192.0.2.131; mac ...``"""
    return "; ".join(f"{f.field} {f.old} → {f.new}" for f in changes)


def container_detail(c: ContainerChange) -> str:
    """Why and how a container changes, e.g. ``re-created: network h1/pub_net is replaced``."""
    if c.because_of is not None:
        return f"re-created: network {c.because_of} is replaced"
    if c.action in ("add", "remove"):
        return "created" if c.action == "add" else "stopped and removed"
    if c.action == "move" and c.old and c.new:
        if c.restarts:
            return f"re-created on host {c.new.host} (removed from {c.old.host})"
        return (f"disconnected from {c.old.network}, connected to {c.new.network}: "
                "keeps running")
    if c.action == "replace":
        return "re-created: " + fields(c.fields)
    if c.action == "update":
        return "in place: " + fields(c.fields)
    return ""


def network_detail(n: NetworkChange) -> str:
    """``REPLACED (ipam ... → ...): restarts web1, web2``"""
    subnets = ", ".join(n.subnets) or "no subnets"
    if n.action == "add":
        return f"created: {n.driver} on {n.parent}, {subnets}"
    if n.action == "remove":
        return f"removed: {n.driver} on {n.parent}, {subnets}"
    takes = f"restarts {len(n.restarts)} container(s): {names(n.restarts)}" \
        if n.restarts else "no container on it yet"
    return f"REPLACED ({fields(n.fields)}): {takes}"


def shim_detail(s: ShimChange) -> str:
    """``routes +192.0.2.131/32 -192.0.2.130/32``"""
    parts = []
    if s.action in ("add", "remove"):
        parts.append(f"{'created' if s.action == 'add' else 'removed'} {s.address}")
    elif s.action == "replace":
        parts.append("re-created")
    if s.fields:
        parts.append(fields(s.fields))
    routes = [*("+" + r for r in s.routes_added), *("-" + r for r in s.routes_removed)]
    if routes:
        more = f" and {len(routes) - 12} more" if len(routes) > 12 else ""
        parts.append("routes " + " ".join(routes[:12]) + more)
    return "; ".join(parts)


def headline(d: Diff) -> str:
    """``3 containers added, 1 moved, 4 re-created; 2 networks replaced; ...``"""
    if d.empty:
        return "no change in network terms"
    counts: list[str] = []
    for what, items in (("container", d.containers), ("network", d.networks),
                        ("shim", d.shims), ("upstream route", d.upstream_routes),
                        ("802.1Q parent", d.vlan_parents)):
        by: dict[str, int] = {}
        for x in items:
            by[x.action] = by.get(x.action, 0) + 1
        if by:
            words = {"add": "added", "remove": "removed", "move": "moved",
                     "replace": "replaced" if what != "container" else "re-created",
                     "update": "changed"}
            counts.append(f"{what}s: " + ", ".join(f"{n} {words[a]}" for a, n in by.items()))
    if d.tenants_added or d.tenants_removed:
        counts.append("tenants: " + ", ".join([*("+" + t for t in d.tenants_added),
                                               *("-" + t for t in d.tenants_removed)]))
    return "; ".join(counts)
