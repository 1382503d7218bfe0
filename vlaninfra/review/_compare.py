"""The change between two plans, judged by the providers' own `diff` on the inputs the program
declares (`vlaninfra.components.*_inputs`): a network is "replaced" exactly when its provider
would replace it, and a container is re-created exactly when its provider would re-create it.
Pure: no host, no engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from ipaddress import ip_network
from typing import Any, TypeVar

from vlaninfra.components import container_inputs, network_inputs, shim_inputs
from vlaninfra.layout import ContainerPlan, HostPlan, NetworkPlan, Plan, ShimPlan, SitePlan
from vlaninfra.providers import ContainerProvider, NetworkProvider, ShimProvider

from ._model import (
    Action,
    ContainerChange,
    Diff,
    Endpoint,
    FieldChange,
    Finding,
    NetworkChange,
    ParentChange,
    ShimChange,
    UpstreamChange,
)

__all__ = ["compare"]

_NETWORKS, _SHIMS, _CONTAINERS = NetworkProvider(), ShimProvider(), ContainerProvider()
_EMPTY = Plan((), ())

Where = tuple[str, str, str]
"""(site, host, name)"""
C = TypeVar("C")


def compare(old: Plan | None, new: Plan, *, stack: str, base: str,
            base_version: int | None = None) -> Diff:
    """What applying `new` over `old` (None: nothing deployed) does, in network terms.

    Example: ``compare(plan(deployed, previous=pins), plan(config, previous=pins), stack="lab",
    base="version 3").replaced_networks``
    """
    was = old or _EMPTY
    networks = _networks(was, new)
    replaced = {(n.site, n.host, n.name) for n in networks if n.action == "replace"}
    containers = _containers(was, new, replaced)
    # Every container that was on the host before and is on a replaced network after goes
    # down with it, whatever else changes about it.
    before = _by_where(was, "containers")
    restarts: dict[Where, list[str]] = {}
    for (site, host, name), c in _by_where(new, "containers").items():
        if (site, host, c.network) in replaced and (site, host, name) in before:
            restarts.setdefault((site, host, c.network), []).append(name)
    networks = [n if n.action != "replace" else _with_restarts(n, restarts) for n in networks]
    old_tenants, new_tenants = _tenants(was), _tenants(new)
    known = {str(p) for p in was.warnings}
    return Diff(
        stack=stack, base=base, base_version=base_version,
        containers=tuple(containers), networks=tuple(networks), shims=tuple(_shims(was, new)),
        upstream_routes=tuple(_upstream(was, new)), vlan_parents=tuple(_parents(was, new)),
        tenants_added=tuple(sorted(new_tenants - old_tenants)),
        tenants_removed=tuple(sorted(old_tenants - new_tenants)),
        findings=tuple(Finding(p.severity, p.path, p.message) for p in new.warnings
                       if str(p) not in known))


def _with_restarts(n: NetworkChange, restarts: Mapping[Where, list[str]]) -> NetworkChange:
    return replace(n, restarts=tuple(sorted(restarts.get((n.site, n.host, n.name), ()))))


def _hosts(p: Plan) -> Iterable[tuple[SitePlan, HostPlan]]:
    return ((s, h) for s in p.sites for h in s.hosts)


def _by_where(p: Plan, attr: str) -> dict[Where, Any]:
    return {(s.name, h.name, x.name if attr != "shims" else x.network): x
            for s, h in _hosts(p) for x in getattr(h, attr)}


def _text(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value) or "-"
    return str(value)


def _fields(provider: Any, olds: Mapping[str, Any], news: Mapping[str, Any],
            keys: Iterable[str]) -> tuple[FieldChange, ...]:
    """The properties (normalized as the provider compares them) that differ, old → new."""
    a, b = provider.normalize(olds), provider.normalize(news)
    out: list[FieldChange] = []
    for k in sorted(keys):
        if a.get(k) == b.get(k):
            continue
        if k == "ipam":
            out += _ipam_fields(a[k], b[k])
        else:
            out.append(FieldChange(k, _text(a.get(k)), _text(b.get(k))))
    return tuple(out)


def _ipam_fields(olds: list[dict[str, Any]], news: list[dict[str, Any]]) -> list[FieldChange]:
    """An IPAM change pool by pool and value by value (aux addresses entry by entry)."""
    a, b = {p["subnet"]: p for p in olds}, {p["subnet"]: p for p in news}
    out: list[FieldChange] = []
    for subnet in sorted(a.keys() | b.keys()):
        if subnet not in a or subnet not in b:
            out.append(FieldChange("ipam subnet", subnet if subnet in a else "-",
                                   subnet if subnet in b else "-"))
            continue
        for k in ("gateway", "ip_range"):
            if a[subnet][k] != b[subnet][k]:
                out.append(FieldChange(f"ipam {subnet} {k}", _text(a[subnet][k]),
                                       _text(b[subnet][k])))
        ax, bx = a[subnet]["aux_addresses"], b[subnet]["aux_addresses"]
        for name in sorted(ax.keys() | bx.keys()):
            if ax.get(name) != bx.get(name):
                out.append(FieldChange(f"ipam {subnet} aux {name}", _text(ax.get(name)),
                                       _text(bx.get(name))))
    return out


def _by_presence(old: Plan, new: Plan, attr: str, changed: Callable[[Where, Any, Any], C | None],
                 alone: Callable[[Where, Any, Action], C]) -> list[C]:
    """Per object ``attr`` of either plan, by where: ``changed(where, was, now)`` when both
    have it (None: no change), else ``alone(where, it, "add" or "remove")``."""
    a, b = _by_where(old, attr), _by_where(new, attr)
    out = []
    for where in sorted(a.keys() | b.keys()):
        was, now = a.get(where), b.get(where)
        if was is not None and now is not None:
            change = changed(where, was, now)
            if change is not None:
                out.append(change)
        else:
            out.append(alone(where, now, "add") if now is not None else alone(where, was, "remove"))
    return out


def _networks(old: Plan, new: Plan) -> list[NetworkChange]:
    def changed(where: Where, was: NetworkPlan, now: NetworkPlan) -> NetworkChange | None:
        olds, news = network_inputs(was), network_inputs(now)
        forced = _NETWORKS.diff("", olds, news).replaces
        return _network(where, now, "replace", _fields(_NETWORKS, olds, news, forced)) \
            if forced else None

    return _by_presence(old, new, "networks", changed,
                        lambda where, n, action: _network(where, n, action, ()))


def _network(where: Where, n: NetworkPlan, action: Action,
             fields: tuple[FieldChange, ...]) -> NetworkChange:
    return NetworkChange(where[0], where[1], n.name, action, n.driver, n.parent,
                         tuple(str(s.subnet) for s in n.subnets), fields, ())


def _endpoint(host: str, c: ContainerPlan) -> Endpoint:
    return Endpoint(host, c.network, str(c.ipv4) if c.ipv4 else None,
                    str(c.ipv6) if c.ipv6 else None, c.mac, c.image, c.tenant)


def _containers(old: Plan, new: Plan, replaced: set[Where]) -> list[ContainerChange]:
    a, b = _by_where(old, "containers"), _by_where(new, "containers")
    out = []
    for where in sorted(a.keys() & b.keys()):
        change = _same_host(where, a[where], b[where], replaced)
        if change is not None:
            out.append(change)
    gone, came = _by_name(a.keys() - b.keys()), _by_name(b.keys() - a.keys())
    moved = {k for k in gone.keys() & came.keys() if len(gone[k]) == len(came[k]) == 1}
    for key in sorted(moved):  # one container of that name left a host, one came to another
        (w0,), (w1,) = gone[key], came[key]
        fields = (FieldChange("host", w0[1], w1[1]),
                  *_fields(_CONTAINERS, container_inputs(a[w0], None),
                           container_inputs(b[w1], None), _CONTAINERS.INPUT_KEYS))
        out.append(ContainerChange(key[0], key[1], "move", _endpoint(w0[1], a[w0]),
                                   _endpoint(w1[1], b[w1]), fields, True))
    for key, wheres in came.items():
        out += [ContainerChange(w[0], w[2], "add", None, _endpoint(w[1], b[w]), (), False)
                for w in wheres if key not in moved]
    for key, wheres in gone.items():
        out += [ContainerChange(w[0], w[2], "remove", _endpoint(w[1], a[w]), None, (), True)
                for w in wheres if key not in moved]
    return sorted(out, key=_order)


def _order(c: ContainerChange) -> tuple[str, str, str]:
    at = c.new or c.old
    return c.site, c.name, at.host if at is not None else ""


def _by_name(wheres: Iterable[Where]) -> dict[tuple[str, str], list[Where]]:
    """(site, container name) → where such containers are (a name may be on several hosts)."""
    out: dict[tuple[str, str], list[Where]] = {}
    for w in sorted(wheres):
        out.setdefault((w[0], w[2]), []).append(w)
    return out


def _same_host(where: Where, was: ContainerPlan, now: ContainerPlan,
               replaced: set[Where]) -> ContainerChange | None:
    site, host, name = where
    # The network's id stands for the network object: a new one when it is replaced.
    renewed = (site, host, now.network) in replaced
    olds = container_inputs(was, f"{site}/{host}/{was.network}")
    news = container_inputs(now, f"{site}/{host}/{now.network}" + ("#new" if renewed else ""))
    result = _CONTAINERS.diff("", olds, news)
    if not result.changes:
        return None
    shown = _CONTAINERS.INPUT_KEYS - {"network_id"}
    fields = _fields(_CONTAINERS, olds, news, shown)
    ends = _endpoint(host, was), _endpoint(host, now)
    if was.network != now.network:  # disconnect + connect: the container keeps running
        return ContainerChange(site, name, "move", *ends, fields, False)
    if result.replaces:
        collateral = list(result.replaces) == ["network_id"]
        return ContainerChange(site, name, "replace", *ends, fields, True,
                               f"{host}/{now.network}" if collateral else None)
    return ContainerChange(site, name, "update", *ends, fields, False)


def _shims(old: Plan, new: Plan) -> list[ShimChange]:
    def changed(where: Where, was: ShimPlan, now: ShimPlan) -> ShimChange | None:
        olds, news = shim_inputs(was), shim_inputs(now)
        result = _SHIMS.diff("", olds, news)
        if not result.changes:
            return None
        action: Action = "replace" if result.replaces else "update"
        shown = _SHIMS.INPUT_KEYS - {"routes"}
        return _shim(where, now, action, _fields(_SHIMS, olds, news, shown), was)

    return _by_presence(old, new, "shims", changed,
                        lambda where, s, action: _shim(where, s, action, (), None))


def _shim(where: Where, s: ShimPlan, action: Action, fields: tuple[FieldChange, ...],
          was: ShimPlan | None) -> ShimChange:
    old_routes = {str(r) for r in was.routes} if was is not None else set()
    new_routes = {str(r) for r in s.routes}
    if action == "remove":
        old_routes, new_routes = new_routes, set()
    return ShimChange(where[0], where[1], s.name, s.network, action, str(s.address), fields,
                      tuple(sorted(new_routes - old_routes, key=_net_key)),
                      tuple(sorted(old_routes - new_routes, key=_net_key)))


def _net_key(text: str) -> tuple[int, int, int]:
    net = ip_network(text)
    return net.version, int(net.network_address), net.prefixlen


def _upstream(old: Plan, new: Plan) -> list[UpstreamChange]:
    def routes(p: Plan) -> dict[tuple[str, str], tuple[str, str | None, bool]]:
        return {(s.name, str(r.prefix)): (str(r.via), r.tenant, any(x.managed for x in s.routers))
                for s in p.sites for r in s.upstream_routes}

    a, b = routes(old), routes(new)
    out = []
    for key in sorted(a.keys() | b.keys()):
        was, now = a.get(key), b.get(key)
        if was == now:
            continue
        action: Action = "add" if was is None else "remove" if now is None else "update"
        tenant, applied = (now or was or ("", None, False))[1:]
        out.append(UpstreamChange(key[0], key[1], action, was[0] if was else None,
                                  now[0] if now else None, tenant, applied))
    return out


def _parents(old: Plan, new: Plan) -> list[ParentChange]:
    def parents(p: Plan) -> dict[Where, tuple[str, int]]:
        return {(s.name, h.name, v.name): (v.trunk, v.vlan_id)
                for s, h in _hosts(p) for v in h.vlan_parents}

    a, b = parents(old), parents(new)
    return [ParentChange(*w, *(b.get(w) or a[w]), "add" if w in b else "remove")
            for w in sorted(a.keys() ^ b.keys())]


def _tenants(p: Plan) -> set[str]:
    return {t for s, h in _hosts(p) for t in (
        *(sub.tenant for n in h.networks for sub in n.subnets),
        *(c.tenant for c in h.containers)) if t is not None}
