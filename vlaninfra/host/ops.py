"""Netlink ops: idempotent, errno-based, transactional changes to links, addresses, routes.

Each op converges the host towards a desired state and is a no-op when the host already
matches. ``NetlinkError.code`` decides everything: ``EEXIST`` means already there,
``ENODEV``/``ESRCH``/``EADDRNOTAVAIL`` mean already gone. A multi-step op undoes the steps it
finished when a later step fails (today: a link it created is deleted again).

Example: ``shim_ensure(ctx, "shim0", "eth0", address="192.0.2.250/32",
routes=["192.0.2.128/26"])``
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import (
    KERNEL_PROTOS,
    MAIN_TABLE,
    RTPROT,
    _netlink_code,
    read_addresses,
    read_link,
    read_routes,
    read_routes_to,
)

__all__ = [
    "check_ifname",
    "route_delete",
    "route_ensure",
    "shim_delete",
    "shim_ensure",
    "shim_read",
    "vlan_delete",
    "vlan_ensure",
]

log = logging.getLogger("vlaninfra.host.ops")

_GONE = frozenset({errno.ENODEV, errno.ESRCH, errno.EADDRNOTAVAIL, errno.ENOENT})
_KINDS = {"macvlan": ("private", "vepa", "bridge", "passthru"), "ipvlan": ("l2", "l3", "l3s")}
_IPVLAN_FLAGS = ("bridge", "private", "vepa")
_DEFAULT_MODE = {"macvlan": "bridge", "ipvlan": "l2"}


def check_ifname(name: object, what: str = "interface name") -> str:
    """Validate a Linux interface name (1-15 bytes, no '/', ':', whitespace); return it."""
    if (
        not isinstance(name, str)
        or not 0 < len(name.encode()) <= 15
        or name in (".", "..")
        or any(c in name for c in "/: \t\n\r")
    ):
        raise OpError(errno.EINVAL, f"invalid {what} {name!r}: 1-15 chars, no '/', ':' or spaces")
    return name


def _ignore(exc: BaseException, codes: frozenset[int]) -> None:
    if _netlink_code(exc) not in codes:
        raise exc


def _delete_link(ipr: Any, name: str) -> bool:
    """Delete link ``name``; False when it was already gone."""
    try:
        ipr.link("del", ifname=name)
    except Exception as exc:
        _ignore(exc, _GONE)
        return False
    return True


def _parent_index(ipr: Any, parent: str) -> int:
    try:
        return int(ipr.link("get", ifname=parent)[0]["index"])
    except Exception as exc:
        if _netlink_code(exc) == errno.ENODEV:
            raise OpError(errno.ENODEV, f"parent interface {parent!r} does not exist") from exc
        raise


def _converge_addresses(ipr: Any, index: int, want: list[ipaddress.IPv4Interface
                                                         | ipaddress.IPv6Interface]) -> None:
    have = read_addresses(ipr, index)
    wanted = {str(w) for w in want}
    # Remove extras first: deleting a primary address also drops its secondaries
    # (promote_secondaries is off by default), which would take a just-added one with it.
    for cidr in have:
        if cidr in wanted:
            continue
        iface = ipaddress.ip_interface(cidr)
        try:
            ipr.addr("del", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        except Exception as exc:
            _ignore(exc, _GONE)
    for iface in want:
        if str(iface) in have:
            continue
        try:
            ipr.addr("add", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))


def _converge_routes(ipr: Any, index: int, want: list[ipaddress.IPv4Network
                                                      | ipaddress.IPv6Network]) -> None:
    wanted = {str(n) for n in want}
    present: set[str] = set()
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.route("dump", family=family):
            if msg["family"] != family or msg.get("RTA_OIF") != index:
                continue
            if (msg.get("RTA_TABLE") or msg.get("table")) != MAIN_TABLE:
                continue
            dst = msg.get("RTA_DST") or ("0.0.0.0" if family == socket.AF_INET else "::")
            cidr = str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False))
            present.add(cidr)
            if RTPROT.get(msg["proto"]) in KERNEL_PROTOS or cidr in wanted:
                continue
            # The kernel matches scope, proto and metric too: delete exactly what was dumped.
            spec: dict[str, Any] = {
                "dst": dst, "dst_len": msg["dst_len"], "oif": index, "table": MAIN_TABLE,
                "family": family, "scope": msg["scope"], "proto": msg["proto"],
            }
            if msg.get("RTA_PRIORITY") is not None:
                spec["priority"] = msg.get("RTA_PRIORITY")
            try:
                ipr.route("del", **spec)
            except Exception as exc:
                _ignore(exc, _GONE)
    for net in want:
        if str(net) in present:
            continue
        try:
            ipr.route(
                "add",
                dst=str(net.network_address),
                dst_len=net.prefixlen,
                oif=index,
                table=MAIN_TABLE,
                proto=4,  # static
                scope=253 if net.version == 4 else 0,  # link (IPv6 routes are universe)
                family=socket.AF_INET if net.version == 4 else socket.AF_INET6,
            )
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))


def _shim_result(ipr: Any, name: str) -> dict[str, Any] | None:
    link = read_link(ipr, name)
    if link is None:
        return None
    link["routes"] = sorted(
        r["dst"] for r in read_routes(ipr, link["index"]) if r["proto"] not in KERNEL_PROTOS
    )
    return link


def _verify(name: str, result: dict[str, Any], want_addr: list[Any], want_routes: list[Any],
            ) -> None:
    # A tolerated ESRCH/EEXIST must not hide a real mismatch: check the outcome.
    if result["addresses"] != sorted(str(a) for a in want_addr):
        raise OpError(errno.EIO, f"shim {name!r}: addresses are {result['addresses']} after "
                                 f"converging, wanted {sorted(str(a) for a in want_addr)}")
    if not set(map(str, want_routes)) <= set(result["routes"]):
        raise OpError(errno.EIO, f"shim {name!r}: routes are {result['routes']} after "
                                 f"converging, wanted {sorted(map(str, want_routes))}")


def shim_read(ctx: Context, name: str) -> dict[str, Any] | None:
    """The shim link (see ``link.get``) plus ``routes``: the non-kernel route dsts via it.

    Example: ``shim_read(ctx, "shim0")["routes"]`` → ``["192.0.2.128/26"]``
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        return _shim_result(ipr, name)


def shim_ensure(
    ctx: Context,
    name: str,
    parent: str,
    kind: str = "macvlan",
    mode: str | None = None,
    address: str | None = None,
    routes: Sequence[str] = (),
    flag: str | None = None,
) -> dict[str, Any]:
    """Converge a host shim: a macvlan/ipvlan link on ``parent`` with one address and routes.

    Creates the link when missing and recreates it when its kind, parent, mode (or ipvlan
    flag) differ; sets exactly ``address`` (others removed, IPv6 link-local kept); brings it
    up; makes its non-kernel routes exactly ``routes`` (added dev-scoped, ``proto static``).
    If this call created the link and a later step fails, the link is deleted again.

    Example: ``shim_ensure(ctx, "shim0", "eth0", "macvlan", "bridge", "192.0.2.250/32",
    ["192.0.2.128/26"])``
    """
    check_ifname(name, "shim name")
    check_ifname(parent, "parent interface name")
    if name == parent:
        raise OpError(errno.EINVAL, f"shim {name!r} cannot be its own parent")
    if kind not in _KINDS:
        raise OpError(errno.EINVAL, f"shim kind must be macvlan or ipvlan, not {kind!r}")
    mode = mode or _DEFAULT_MODE[kind]
    if mode not in _KINDS[kind]:
        raise OpError(errno.EINVAL, f"{kind} mode must be one of {_KINDS[kind]}, not {mode!r}")
    if kind == "ipvlan":
        flag = flag or "bridge"
        if flag not in _IPVLAN_FLAGS:
            raise OpError(errno.EINVAL, f"ipvlan flag must be one of {_IPVLAN_FLAGS}")
    elif flag is not None:
        raise OpError(errno.EINVAL, "flag applies to ipvlan shims only")
    try:
        want_addr = [ipaddress.ip_interface(address)] if address else []
        want_routes = [ipaddress.ip_network(r) for r in routes]
    except ValueError as exc:
        raise OpError(errno.EINVAL, f"shim {name!r}: {exc}") from exc

    with ctx.netlink() as ipr:
        parent_index = _parent_index(ipr, parent)
        current = read_link(ipr, name)
        if current is not None and (
            current["kind"] != kind
            or current["parent"] != parent
            or current["mode"] != mode
            or (kind == "ipvlan" and current["flag"] != flag)
        ):
            log.info("recreating %s: %s on %s mode %s differs", name, current["kind"],
                     current["parent"], current["mode"])
            _delete_link(ipr, name)
            current = None
        created = False
        if current is None:
            spec: dict[str, Any] = {"ifname": name, "kind": kind, "link": parent_index}
            if kind == "macvlan":
                spec["macvlan_mode"] = mode
            else:
                spec["ipvlan_mode"] = {"l2": 0, "l3": 1, "l3s": 2}[mode]
                spec["ipvlan_flags"] = {"bridge": 0, "private": 1, "vepa": 2}[flag or "bridge"]
            try:
                ipr.link("add", **spec)
                created = True
            except Exception as exc:
                _ignore(exc, frozenset({errno.EEXIST}))  # a concurrent ensure won the race
        try:
            index = int(ipr.link("get", ifname=name)[0]["index"])
            _converge_addresses(ipr, index, want_addr)
            ipr.link("set", index=index, state="up")
            _converge_routes(ipr, index, want_routes)
            result = _shim_result(ipr, name)
            if result is None:
                raise OpError(errno.ENODEV, f"shim {name!r} vanished while converging")
            _verify(name, result, want_addr, want_routes)
        except BaseException:
            if created:
                log.warning("shim.ensure %s failed; deleting the link it created", name)
                _delete_link(ipr, name)
            raise
        result["created"] = created
        return result


def shim_delete(ctx: Context, name: str) -> dict[str, bool]:
    """Delete the shim link (its addresses and routes go with it); tolerates it being gone.

    Example: ``shim_delete(ctx, "shim0")`` → ``{"deleted": True}``
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        return {"deleted": _delete_link(ipr, name)}


def vlan_ensure(ctx: Context, trunk: str, vlan_id: int, name: str) -> dict[str, Any]:
    """Converge an 802.1Q sub-interface ``name`` (id ``vlan_id`` on ``trunk``), up.

    A link ``name`` that exists with another kind, trunk or id is an ``EEXIST`` error (it is
    someone else's; the caller decides). ``created`` says whether this call made it.

    Example: ``vlan_ensure(ctx, "eth0", 50, "eth0.50")`` → ``{"created": True, ...}``
    """
    check_ifname(trunk, "trunk interface name")
    check_ifname(name, "VLAN interface name")
    if isinstance(vlan_id, bool) or not isinstance(vlan_id, int) or not 1 <= vlan_id <= 4094:
        raise OpError(errno.EINVAL, f"VLAN id must be 1-4094, not {vlan_id!r}")
    with ctx.netlink() as ipr:
        trunk_index = _parent_index(ipr, trunk)
        current = read_link(ipr, name)
        created = False
        if current is None:
            try:
                ipr.link("add", ifname=name, kind="vlan", link=trunk_index, vlan_id=vlan_id)
                created = True
            except Exception as exc:
                _ignore(exc, frozenset({errno.EEXIST}))
            current = read_link(ipr, name)
            assert current is not None
        if (current["kind"], current["parent"], current["vlan_id"]) != ("vlan", trunk, vlan_id):
            raise OpError(
                errno.EEXIST,
                f"{name!r} exists as {current['kind']} on {current['parent']!r} "
                f"(vlan id {current['vlan_id']}), not VLAN {vlan_id} on {trunk!r}",
                link=current,
            )
        try:
            ipr.link("set", index=current["index"], state="up")
            result = read_link(ipr, name)
            assert result is not None
        except BaseException:
            if created:
                _delete_link(ipr, name)
            raise
        result["created"] = created
        return result


def vlan_delete(ctx: Context, name: str) -> dict[str, bool]:
    """Delete an 802.1Q sub-interface; tolerates it being gone (``ENODEV``).

    Example: ``vlan_delete(ctx, "eth0.50")`` → ``{"deleted": False}`` when already gone.
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        current = read_link(ipr, name)
        if current is None:
            return {"deleted": False}
        if current["kind"] != "vlan":
            raise OpError(errno.EINVAL, f"{name!r} is a {current['kind']} link, not a VLAN")
        return {"deleted": _delete_link(ipr, name)}


# -- static routes (an upstream router's routes to tenant subnets) ---------------------------

_RTPROT_STATIC = 4
_PROTO_NUMBER = {name: number for number, name in RTPROT.items()}


def _route_target(dst: str, via: str | None) -> tuple[ipaddress.IPv4Network
                                                    | ipaddress.IPv6Network, str | None]:
    try:
        net = ipaddress.ip_network(dst)
        gateway = str(ipaddress.ip_address(via)) if via is not None else None
    except (TypeError, ValueError) as exc:
        raise OpError(errno.EINVAL, f"route {dst!r} via {via!r}: {exc}") from None
    if gateway is not None and ipaddress.ip_address(gateway).version != net.version:
        raise OpError(errno.EINVAL, f"route {dst}: next hop {gateway} is another IP family")
    return net, gateway


def _route_spec(net: ipaddress.IPv4Network | ipaddress.IPv6Network, gateway: str | None,
                oif: int | None, proto: int = _RTPROT_STATIC) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dst": str(net.network_address), "dst_len": net.prefixlen, "table": MAIN_TABLE,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6, "proto": proto,
    }
    if gateway is not None:
        spec["gateway"] = gateway
    if oif is not None:
        spec["oif"] = oif
    return spec


def route_ensure(ctx: Context, dst: str, via: str, dev: str | None = None) -> dict[str, Any]:
    """Converge the main-table route ``dst via <via> [dev <dev>]``, ``proto static``.

    No-op when that route is there; a route to ``dst`` through another next hop is replaced
    (it is drift, or the tenant moved host), unless the kernel owns it (``dst`` is connected
    here: ``EEXIST``, the layout is wrong). ``created`` says whether this call changed
    anything. Example: ``route_ensure(ctx, "198.18.1.0/24", "192.0.2.21")``
    """
    net, gateway = _route_target(dst, via)
    if dev is not None:
        check_ifname(dev, "route device")
    with ctx.netlink() as ipr:
        current = read_routes_to(ipr, net)
        if any(r["gateway"] == gateway and (dev is None or r["dev"] == dev) for r in current):
            match = next(r for r in current if r["gateway"] == gateway)
            return {**match, "created": False}
        owned = [r for r in current if r["proto"] in KERNEL_PROTOS]
        if owned:
            raise OpError(errno.EEXIST, f"{net} is connected on this router ({owned[0]['dev']}):"
                                        " it cannot also be routed to a host", route=owned[0])
        oif = _parent_index(ipr, dev) if dev is not None else None
        for old in current:
            # Exactly what was dumped (metric and proto included), so the kernel finds it.
            spec = _route_spec(net, old["gateway"], None,
                               _PROTO_NUMBER.get(old["proto"], _RTPROT_STATIC))
            if old["metric"] is not None:
                spec["priority"] = old["metric"]
            try:
                ipr.route("del", **spec)
            except Exception as exc:
                _ignore(exc, _GONE)
        try:
            ipr.route("add", **_route_spec(net, gateway, oif))
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))  # a concurrent ensure won the race
        after = [r for r in read_routes_to(ipr, net) if r["gateway"] == gateway]
        if not after:
            raise OpError(errno.EIO, f"route {net} via {gateway} is missing after adding it")
        return {**after[0], "created": True}


def route_delete(ctx: Context, dst: str, via: str) -> dict[str, bool]:
    """Delete the main-table route ``dst via <via>``; tolerates it being gone, and leaves a
    route to ``dst`` through another next hop alone (it is not ours any more).

    Example: ``route_delete(ctx, "198.18.1.0/24", "192.0.2.21")`` → ``{"deleted": True}``
    """
    net, gateway = _route_target(dst, via)
    with ctx.netlink() as ipr:
        ours = [r for r in read_routes_to(ipr, net)
                if r["gateway"] == gateway and r["proto"] not in KERNEL_PROTOS]
        deleted = False
        for old in ours:
            spec = _route_spec(net, gateway, None, _PROTO_NUMBER.get(old["proto"], _RTPROT_STATIC))
            if old["metric"] is not None:
                spec["priority"] = old["metric"]
            try:
                ipr.route("del", **spec)
                deleted = True
            except Exception as exc:
                _ignore(exc, _GONE)
        return {"deleted": deleted}
