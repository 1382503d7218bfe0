"""Netlink ops: idempotent, errno-based, transactional changes to links, addresses, routes.

Each op converges the host towards a desired state and is a no-op when the host already
matches. ``NetlinkError.code`` decides everything: ``EEXIST`` means already there,
``ENODEV``/``ESRCH``/``EADDRNOTAVAIL`` mean already gone. A multi-step op undoes the steps it
finished when a later step fails (today: a link it created is deleted again).

Links and routes carry vlaninfra's mark (:mod:`vlaninfra.host.marks`: the link alias, route
protocol 57); an op never changes or deletes a link or route without the caller's mark.

Example: ``shim_ensure(ctx, "shim0", "eth0", address="192.0.2.250/32",
routes=["192.0.2.128/26"], owner="infra/prod")``
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Sequence
from typing import Any

from vlaninfra.host import marks
from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError, raise_undone
from vlaninfra.host.facts import (
    KERNEL_PROTOS,
    MAIN_TABLE,
    RTPROT,
    _netlink_code,
    read_addresses,
    read_link,
    read_links,
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
_PROTO_STATIC = 4


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


_IFA_F_NODAD = 0x02


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
        # IPv6 without duplicate address detection: the address is usable at once (not
        # "tentative" for a second); the plan's ledger and the NDP check did that job.
        extra = {"flags": _IFA_F_NODAD} if iface.version == 6 else {}
        try:
            ipr.addr("add", index=index, address=str(iface.ip),
                     prefixlen=iface.network.prefixlen, **extra)
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))


def _converge_routes(ipr: Any, index: int, want: list[ipaddress.IPv4Network
                                                      | ipaddress.IPv6Network],
                     ours: frozenset[int]) -> None:
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
            if msg["proto"] not in ours:
                continue  # the kernel's, or another protocol's (or added by hand): not ours
            present.add(cidr)
            if cidr in wanted:
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
                proto=marks.RTPROT_VLANINFRA,
                scope=253 if net.version == 4 else 0,  # link (IPv6 routes are universe)
                family=socket.AF_INET if net.version == 4 else socket.AF_INET6,
            )
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))


# Routes through a shim vlaninfra may remove: its own; on a legacy shim (made before links and
# routes carried marks: state recorded its ifindex, no alias) also the `static` ones it added.
_OURS_ON_SHIM = frozenset({marks.RTPROT_VLANINFRA})
_OURS_ON_LEGACY_SHIM = frozenset({marks.RTPROT_VLANINFRA, _PROTO_STATIC})


def _set_alias(ipr: Any, index: int, value: str) -> None:
    ipr.link("set", index=index, ifalias=value)


def _link_mark(link: dict[str, Any]) -> marks.Mark | None:
    return marks.of_alias(link.get("alias"))


def _legacy(link: dict[str, Any], ifindex: int | None, kinds: Sequence[str]) -> bool:
    """Whether ``link`` is the one state recorded (by ``ifindex``) before links had marks."""
    return bool(link["index"] == ifindex and link["kind"] in kinds)


def _shim_result(ipr: Any, name: str) -> dict[str, Any] | None:
    link = read_link(ipr, name)
    if link is None:
        return None
    link["routes"] = sorted(
        r["dst"] for r in read_routes(ipr, link["index"]) if r["proto"] in ("vlaninfra", "static")
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
    """The shim link (see ``link.get``) plus ``routes``: the dsts of vlaninfra's routes via it
    (proto 57, or ``static`` from before vlaninfra had its own protocol).

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
    owner: str = marks.ADHOC_OWNER,
    spec: str | None = None,
    ifindex: int | None = None,
    extra_addresses: Sequence[str] = (),
) -> dict[str, Any]:
    """Converge a host shim: a macvlan/ipvlan link on ``parent`` with one address and routes.

    Creates the link (alias ``vlaninfra:<owner>:<spec>``) when missing. A link of that name
    is converged only when it is ``owner``'s: its alias names ``owner``, or it has no alias
    and is the macvlan/ipvlan link ``ifindex`` that state recorded (made before marks
    existed); any other link is an ``EEXIST`` error naming its owner, and is left untouched.
    An owned link is recreated when its kind, parent, mode (or ipvlan flag) differ; it gets
    exactly ``address`` and ``extra_addresses`` (its IPv6 address, tenant gateways; others
    removed, IPv6 link-local kept; IPv6 ones without DAD), is brought up, and its routes
    become exactly ``routes`` (added dev-scoped, proto 57; routes other protocols put through
    it are left alone). If this call created the link and a later step fails, the link is
    deleted again.

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
        want_addr = [ipaddress.ip_interface(a) for a in (address, *extra_addresses) if a]
        want_routes = [ipaddress.ip_network(r) for r in routes]
    except ValueError as exc:
        raise OpError(errno.EINVAL, f"shim {name!r}: {exc}") from exc

    with ctx.netlink() as ipr:
        parent_index = _parent_index(ipr, parent)
        current = read_link(ipr, name)
        route_protos = _OURS_ON_SHIM
        if current is not None:
            legacy = _legacy(current, ifindex, tuple(_KINDS))
            if legacy and _link_mark(current) is None:
                route_protos = _OURS_ON_LEGACY_SHIM
            marks.claim(f"link {name!r}", _link_mark(current), owner, legacy=legacy,
                        how_marked="vlaninfra alias")
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
            link_spec: dict[str, Any] = {"ifname": name, "kind": kind, "link": parent_index}
            if kind == "macvlan":
                link_spec["macvlan_mode"] = mode
            else:
                link_spec["ipvlan_mode"] = {"l2": 0, "l3": 1, "l3s": 2}[mode]
                link_spec["ipvlan_flags"] = {"bridge": 0, "private": 1, "vepa": 2}[flag or "bridge"]
            try:
                ipr.link("add", **link_spec)
                created = True
            except Exception as exc:
                _ignore(exc, frozenset({errno.EEXIST}))
                # Someone made it meanwhile: converge it only if it is ours (a concurrent
                # ensure of this stack), like any link found there.
                current = read_link(ipr, name)
                if current is not None:
                    marks.claim(f"link {name!r}", _link_mark(current), owner,
                                how_marked="vlaninfra alias")
        try:
            index = int(ipr.link("get", ifname=name)[0]["index"])
            if (current or {}).get("alias") != marks.alias(owner, spec):
                _set_alias(ipr, index, marks.alias(owner, spec))
            _converge_addresses(ipr, index, want_addr)
            ipr.link("set", index=index, state="up")
            _converge_routes(ipr, index, want_routes, route_protos)
            result = _shim_result(ipr, name)
            if result is None:
                raise OpError(errno.ENODEV, f"shim {name!r} vanished while converging")
            _verify(name, result, want_addr, want_routes)
        except BaseException as exc:
            if created:
                log.warning("shim.ensure %s failed; deleting the link it created", name)
                _delete_link(ipr, name)
                raise_undone(exc)
            raise
        result["created"] = created
        return result


def _delete_owned(ipr: Any, name: str, kinds: Sequence[str], owner: str,
                  ifindex: int | None) -> dict[str, Any]:
    current = read_link(ipr, name)
    if current is None:
        return {"deleted": False}
    why = marks.refusal(f"link {name!r}", _link_mark(current), owner,
                        _legacy(current, ifindex, kinds))
    if why:
        log.warning("not deleting: %s", why)
        return {"deleted": False, "kept": f"{why}: left in place"}
    return {"deleted": _delete_link(ipr, name)}


def shim_delete(ctx: Context, name: str, owner: str = marks.ADHOC_OWNER,
                ifindex: int | None = None) -> dict[str, Any]:
    """Delete the shim link (its addresses and routes go with it) when it is ``owner``'s (see
    :func:`shim_ensure`); tolerates it being gone. Another's link of that name is left in
    place and reported as ``kept`` (the shim vlaninfra made is gone).

    Example: ``shim_delete(ctx, "shim0", owner="infra/prod")`` → ``{"deleted": True}``
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        return _delete_owned(ipr, name, tuple(_KINDS), owner, ifindex)


def vlan_ensure(ctx: Context, trunk: str, vlan_id: int, name: str,
                owner: str = marks.ADHOC_OWNER, spec: str | None = None) -> dict[str, Any]:
    """Converge an 802.1Q sub-interface ``name`` (id ``vlan_id`` on ``trunk``), up.

    A missing link is created with the alias ``vlaninfra:<owner>:<spec>``. A link ``name``
    that exists with another kind, trunk or id is an ``EEXIST`` error (it is someone else's;
    the caller decides). ``created`` says whether the link is ``owner``'s (made by this call
    or an earlier interrupted one): an existing unmarked one is adopted read-only
    (``created: False``, so it is never deleted).

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
            if created:
                try:
                    _set_alias(ipr, current["index"], marks.alias(owner, spec))
                except BaseException as exc:
                    _delete_link(ipr, name)
                    raise_undone(exc)
        if (current["kind"], current["parent"], current["vlan_id"]) != ("vlan", trunk, vlan_id):
            raise OpError(
                errno.EEXIST,
                f"{name!r} exists as {current['kind']} on {current['parent']!r} "
                f"(vlan id {current['vlan_id']}), not VLAN {vlan_id} on {trunk!r}; vlaninfra "
                "leaves it alone: name another VLAN parent in the config",
                link=current,
            )
        mark = _link_mark(current)
        ours = created or (mark is not None and mark.owner == owner)
        if not ours:
            # Another's (or a hand-made) link is used as it is, never changed.
            if not current["up"]:
                whose = f"owned by stack {mark.owner!r}" if mark else "not owned by vlaninfra"
                raise OpError(errno.ENETDOWN,
                              f"VLAN parent {name!r} exists but is down, and it is {whose}: "
                              f"vlaninfra does not change it; bring it up on the host (`ip "
                              f"link set {name} up`) or name another VLAN parent in the "
                              "config", link=current)
            return {**current, "created": False}
        try:
            ipr.link("set", index=current["index"], state="up")
            result = read_link(ipr, name)
            assert result is not None
        except BaseException as exc:
            if created:
                _delete_link(ipr, name)
                raise_undone(exc)
            raise
        result["created"] = ours
        return result


def vlan_delete(ctx: Context, name: str, owner: str = marks.ADHOC_OWNER,
                ifindex: int | None = None) -> dict[str, Any]:
    """Delete an 802.1Q sub-interface when it is ``owner``'s (its alias, or unmarked and the
    VLAN link ``ifindex`` state recorded); tolerates it being gone. Any other link of that
    name is left in place and reported as ``kept``.

    Links in this namespace whose parent it is (a shim, maybe another stack's) would go with it:
    that is an ``EBUSY`` error naming them. (Containers' macvlan links live in their own
    namespaces and are not seen here; the engine removes a stack's networks first.)

    Example: ``vlan_delete(ctx, "eth0.50")`` → ``{"deleted": False}`` when already gone.
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        current = read_link(ipr, name)
        if current is not None and current["kind"] == "vlan":
            children = [link["name"] for link in read_links(ipr) if link["parent"] == name]
            if children:
                raise OpError(errno.EBUSY, f"VLAN parent {name!r} still carries "
                                           f"{', '.join(children)}: deleting it would delete "
                                           "them too; remove those first (from the config, or "
                                           "on the host if they are not vlaninfra's)",
                              links=children)
        return _delete_owned(ipr, name, ("vlan",), owner, ifindex)


# -- static routes (an upstream router's routes to tenant subnets) ---------------------------

_OURS = "vlaninfra"
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
                oif: int | None, proto: int = marks.RTPROT_VLANINFRA) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "dst": str(net.network_address), "dst_len": net.prefixlen, "table": MAIN_TABLE,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6, "proto": proto,
    }
    if gateway is not None:
        spec["gateway"] = gateway
    if oif is not None:
        spec["oif"] = oif
    return spec


def _route_owned(route: dict[str, Any], legacy_via: str | None) -> bool:
    # Before routes carried vlaninfra's protocol it added them `proto static`: state recorded
    # the next hop of such a route, and only that one is claimed.
    return route["proto"] == _OURS or (
        legacy_via is not None and route["proto"] == "static" and route["gateway"] == legacy_via
    )


def _delete_routes(ipr: Any, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                   routes: list[dict[str, Any]]) -> bool:
    deleted = False
    for old in routes:
        # Exactly what was dumped (metric and proto included), so the kernel finds it.
        spec = _route_spec(net, old["gateway"], None,
                           _PROTO_NUMBER.get(old["proto"], marks.RTPROT_VLANINFRA))
        if old["metric"] is not None:
            spec["priority"] = old["metric"]
        try:
            ipr.route("del", **spec)
            deleted = True
        except Exception as exc:
            _ignore(exc, _GONE)
    return deleted


def route_ensure(ctx: Context, dst: str, via: str, dev: str | None = None,
                 legacy_via: str | None = None, recorded_via: str | None = None,
                 ) -> dict[str, Any]:
    """Converge the main-table route ``dst via <via> [dev <dev>]``, proto 57 (vlaninfra's).

    No-op when that route is there (one made by an earlier, interrupted run is adopted). Routes
    carry no owning stack: a proto-57 route to ``dst`` through another next hop is replaced
    only when it is the one state recorded (``recorded_via``: drift, or the tenant moved host);
    any other is an ``EEXIST`` clash (another stack's, or a leftover) and is left alone. A
    route to ``dst`` that another protocol owns (the kernel: ``dst`` is connected here; bird,
    BGP, OSPF, DHCP, or a static route added by hand) is an ``EEXIST`` error and is left
    alone. ``legacy_via``: the next hop of a ``proto static`` route state recorded from before
    vlaninfra used its own protocol; it is claimed and re-added as proto 57. ``created`` says
    whether this call changed anything.
    Example: ``route_ensure(ctx, "198.18.1.0/24", "192.0.2.21")``
    """
    net, gateway = _route_target(dst, via)
    if dev is not None:
        check_ifname(dev, "route device")
    with ctx.netlink() as ipr:
        current = read_routes_to(ipr, net)
        if any(r["gateway"] == gateway and (dev is None or r["dev"] == dev)
               and r["proto"] == _OURS for r in current):
            match = next(r for r in current if r["gateway"] == gateway and r["proto"] == _OURS)
            return {**match, "created": False}
        connected = [r for r in current if r["proto"] in KERNEL_PROTOS]
        if connected:
            raise OpError(errno.EEXIST, f"{net} is connected on this router "
                                        f"({connected[0]['dev']}): it cannot also be routed to "
                                        "a host; the layout is wrong", route=connected[0])
        other = [r for r in current if r["proto"] == _OURS
                 and r["gateway"] not in (gateway, recorded_via)]
        if other:
            r = other[0]
            raise OpError(errno.EEXIST, f"a vlaninfra route to {net} via {r['gateway'] or r['dev']}"
                                        " exists on this router that this resource did not "
                                        "record (another stack's, or a leftover); vlaninfra "
                                        "leaves it alone: if it is stale, remove it there (`ip "
                                        f"route del {net} proto 57`), else route {net} from "
                                        "one stack only", route=r)
        foreign = [r for r in current if not _route_owned(r, legacy_via)]
        if foreign:
            r = foreign[0]
            raise OpError(errno.EEXIST, f"a route to {net} via {r['gateway'] or r['dev']} owned "
                                        f"by protocol {r['proto']!r} exists on this router; "
                                        "vlaninfra leaves it alone: remove it there, or drop "
                                        f"{net} from the routes vlaninfra manages",
                          route=r)
        oif = _parent_index(ipr, dev) if dev is not None else None
        _delete_routes(ipr, net, current)
        try:
            ipr.route("add", **_route_spec(net, gateway, oif))
        except Exception as exc:
            _ignore(exc, frozenset({errno.EEXIST}))  # a concurrent ensure won the race
        after = [r for r in read_routes_to(ipr, net)
                 if r["gateway"] == gateway and r["proto"] == _OURS]
        if not after:
            raise OpError(errno.EIO, f"route {net} via {gateway} is missing after adding it")
        return {**after[0], "created": True}


def route_delete(ctx: Context, dst: str, via: str,
                 legacy: bool = False) -> dict[str, bool]:
    """Delete vlaninfra's main-table route ``dst via <via>`` (proto 57; with ``legacy``, also
    the ``proto static`` one state recorded); tolerates it being gone, and leaves any other
    route to ``dst`` alone (another next hop, another protocol: not ours).

    Example: ``route_delete(ctx, "198.18.1.0/24", "192.0.2.21")`` → ``{"deleted": True}``
    """
    net, gateway = _route_target(dst, via)
    with ctx.netlink() as ipr:
        ours = [r for r in read_routes_to(ipr, net)
                if r["gateway"] == gateway and _route_owned(r, gateway if legacy else None)]
        return {"deleted": _delete_routes(ipr, net, ours)}
