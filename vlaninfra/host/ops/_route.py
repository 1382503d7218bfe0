"""Static routes on an upstream router: vlaninfra's main-table routes to tenant subnets
(``dst via <next hop> [dev <dev>]``, proto 57)."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import replace

from vlaninfra.host import marks
from vlaninfra.host.context import Context
from vlaninfra.host.contract import Deleted, RouteSpec, RouteState, encode
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import KERNEL_PROTOS, MAIN_TABLE, RTPROT
from vlaninfra.host.untyped import Netlink

from ._common import GONE, check_ifname, ignore, parent_index, routes_to

__all__ = ["route_delete", "route_ensure"]

_OURS = "vlaninfra"
_PROTO_NUMBER = {name: number for number, name in RTPROT.items()}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _route_target(dst: str, via: str | None) -> tuple[Network, str | None]:
    try:
        net = ipaddress.ip_network(dst)
        gateway = str(ipaddress.ip_address(via)) if via is not None else None
    except (TypeError, ValueError) as exc:
        raise OpError(errno.EINVAL, f"route {dst!r} via {via!r}: {exc}") from None
    if gateway is not None and ipaddress.ip_address(gateway).version != net.version:
        raise OpError(errno.EINVAL, f"route {dst}: next hop {gateway} is another IP family")
    return net, gateway


def _route_kwargs(net: Network, gateway: str | None, oif: int | None,
                  proto: int = marks.RTPROT_VLANINFRA) -> dict[str, str | int]:
    """pyroute2's arguments for the main-table route ``net via gateway [oif]``."""
    spec: dict[str, str | int] = {
        "dst": str(net.network_address), "dst_len": net.prefixlen, "table": MAIN_TABLE,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6, "proto": proto,
    }
    if gateway is not None:
        spec["gateway"] = gateway
    if oif is not None:
        spec["oif"] = oif
    return spec


def _route_owned(route: RouteState, legacy_via: str | None) -> bool:
    # Before routes carried vlaninfra's protocol it added them `proto static`: state recorded
    # the next hop of such a route, and only that one is claimed.
    return route.proto == _OURS or (
        legacy_via is not None and route.proto == "static" and route.gateway == legacy_via
    )


def _delete_routes(ipr: Netlink, net: Network, routes: Sequence[RouteState]) -> bool:
    deleted = False
    for old in routes:
        # Exactly what was dumped (metric and proto included), so the kernel finds it.
        spec = _route_kwargs(net, old.gateway, None,
                             _PROTO_NUMBER.get(old.proto, marks.RTPROT_VLANINFRA))
        if old.metric is not None:
            spec["priority"] = old.metric
        try:
            ipr.route("del", **spec)
            deleted = True
        except Exception as exc:
            ignore(exc, GONE)
    return deleted


def _state(route: RouteState, created: bool) -> RouteState:
    return replace(route, created=created)


def route_ensure(ctx: Context, spec: RouteSpec, legacy_via: str | None = None,
                 recorded_via: str | None = None) -> RouteState:
    """Converge the main-table route ``spec`` (``destination via <via> [dev <dev>]``), proto
    57 (vlaninfra's).

    No-op when that route is there (one made by an earlier, interrupted run is adopted). Routes
    carry no owning stack: a proto-57 route to the destination through another next hop is
    replaced only when it is the one state recorded (``recorded_via``: drift, or the tenant
    moved host); any other is an ``EEXIST`` clash (another stack's, or a leftover) and is left
    alone. A route to it that another protocol owns (the kernel: it is connected here; bird,
    BGP, OSPF, DHCP, or a static route added by hand) is an ``EEXIST`` error and is left
    alone. ``legacy_via``: the next hop of a ``proto static`` route state recorded from before
    vlaninfra used its own protocol; it is claimed and re-added as proto 57. ``created`` says
    whether this call changed anything.

    Example: ``route_ensure(ctx, RouteSpec("198.18.1.0/24", "192.0.2.21"))``
    """
    net, gateway = _route_target(spec.destination, spec.via)
    dev = spec.dev
    if dev is not None:
        check_ifname(dev, "route device")
    with ctx.netlink() as ipr:
        current = routes_to(ipr, net)
        if any(r.gateway == gateway and (dev is None or r.dev == dev)
               and r.proto == _OURS for r in current):
            match = next(r for r in current if r.gateway == gateway and r.proto == _OURS)
            return _state(match, False)
        connected = [r for r in current if r.proto in KERNEL_PROTOS]
        if connected:
            raise OpError(errno.EEXIST, f"{net} is connected on this router "
                                        f"({connected[0].dev}): it cannot also be routed to "
                                        "a host; the layout is wrong", route=encode(connected[0]))
        other = [r for r in current if r.proto == _OURS
                 and r.gateway not in (gateway, recorded_via)]
        if other:
            r = other[0]
            raise OpError(errno.EEXIST, f"a vlaninfra route to {net} via {r.gateway or r.dev}"
                                        " exists on this router that this resource did not "
                                        "record (another stack's, or a leftover); vlaninfra "
                                        "leaves it alone: if it is stale, remove it there (`ip "
                                        f"route del {net} proto 57`), else route {net} from "
                                        "one stack only", route=encode(r))
        foreign = [r for r in current if not _route_owned(r, legacy_via)]
        if foreign:
            r = foreign[0]
            raise OpError(errno.EEXIST, f"a route to {net} via {r.gateway or r.dev} owned "
                                        f"by protocol {r.proto!r} exists on this router; "
                                        "vlaninfra leaves it alone: remove it there, or drop "
                                        f"{net} from the routes vlaninfra manages",
                          route=encode(r))
        oif = parent_index(ipr, dev) if dev is not None else None
        _delete_routes(ipr, net, current)
        try:
            ipr.route("add", **_route_kwargs(net, gateway, oif))
        except Exception as exc:
            ignore(exc, frozenset({errno.EEXIST}))  # a concurrent ensure won the race
        after = [r for r in routes_to(ipr, net)
                 if r.gateway == gateway and r.proto == _OURS]
        if not after:
            raise OpError(errno.EIO, f"route {net} via {gateway} is missing after adding it")
        return _state(after[0], True)


def route_delete(ctx: Context, dst: str, via: str, legacy: bool = False) -> Deleted:
    """Delete vlaninfra's main-table route ``dst via <via>`` (proto 57; with ``legacy``, also
    the ``proto static`` one state recorded); tolerates it being gone, and leaves any other
    route to ``dst`` alone (another next hop, another protocol: not ours).

    Example: ``route_delete(ctx, "198.18.1.0/24", "192.0.2.21")`` → ``Deleted(True)``
    """
    net, gateway = _route_target(dst, via)
    with ctx.netlink() as ipr:
        ours = [r for r in routes_to(ipr, net)
                if r.gateway == gateway and _route_owned(r, gateway if legacy else None)]
        return Deleted(_delete_routes(ipr, net, ours))
