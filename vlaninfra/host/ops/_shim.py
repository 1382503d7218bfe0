"""Host shims: a macvlan or ipvlan link on a parent NIC with exactly its addresses and
dev-scoped routes, through which the host reaches its containers."""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Sequence
from dataclasses import replace

from vlaninfra.host import marks
from vlaninfra.host.context import Context
from vlaninfra.host.contract import (
    Deleted,
    Driver,
    IpvlanFlag,
    LinkState,
    Mark,
    ShimSpec,
)
from vlaninfra.host.errors import OpError, raise_undone
from vlaninfra.host.facts import (
    IPVLAN_FLAGS,
    IPVLAN_MODES,
    MAIN_TABLE,
    read_addresses,
    read_routes,
)
from vlaninfra.host.untyped import Netlink

from ._common import (
    GONE,
    check_ifname,
    delete_link,
    delete_owned,
    ignore,
    legacy,
    link_mark,
    parent_index,
    read_state,
)

__all__ = ["converge_addresses", "shim_delete", "shim_ensure", "shim_read"]

log = logging.getLogger("vlaninfra.host.ops")

_KINDS = tuple(d.value for d in Driver)
_PROTO_STATIC = 4
_IFA_F_NODAD = 0x02
_IPVLAN_MODE_NUMBER = {name: number for number, name in IPVLAN_MODES.items()}
_IPVLAN_FLAG_NUMBER = {name: number for number, name in IPVLAN_FLAGS.items()}

Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def link_kwargs(name: str, kind: str, parent: int, mode: str, flag: str | None,
                ) -> dict[str, str | int]:
    """pyroute2's arguments that add the macvlan/ipvlan link ``name`` on ``parent`` (an
    ifindex) in ``mode`` (and ipvlan ``flag``, default bridge)."""
    if kind == Driver.MACVLAN:
        return {"ifname": name, "kind": kind, "link": parent, "macvlan_mode": mode}
    return {"ifname": name, "kind": kind, "link": parent,
            "ipvlan_mode": _IPVLAN_MODE_NUMBER[mode],
            "ipvlan_flags": _IPVLAN_FLAG_NUMBER[flag or IpvlanFlag.BRIDGE.value]}


def converge_addresses(ipr: Netlink, index: int, want: Sequence[Interface]) -> None:
    """Make link ``index``'s addresses exactly ``want`` (IPv6 link-local kept)."""
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
            ignore(exc, GONE)
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
            ignore(exc, frozenset({errno.EEXIST}))


def _converge_routes(ipr: Netlink, index: int, want: Sequence[Network],
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
            spec: dict[str, str | int] = {
                "dst": dst, "dst_len": msg["dst_len"], "oif": index, "table": MAIN_TABLE,
                "family": family, "scope": msg["scope"], "proto": msg["proto"],
            }
            if msg.get("RTA_PRIORITY") is not None:
                spec["priority"] = msg.get("RTA_PRIORITY")
            try:
                ipr.route("del", **spec)
            except Exception as exc:
                ignore(exc, GONE)
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
            ignore(exc, frozenset({errno.EEXIST}))

# Routes through a shim vlaninfra may remove: its own; on a legacy shim (made before links and
# routes carried marks: state recorded its ifindex, no alias) also the `static` ones it added.
_OURS_ON_SHIM = frozenset({marks.RTPROT_VLANINFRA})
_OURS_ON_LEGACY_SHIM = frozenset({marks.RTPROT_VLANINFRA, _PROTO_STATIC})


def _shim_result(ipr: Netlink, name: str, created: bool | None = None) -> LinkState | None:
    link = read_state(ipr, name)
    if link is None:
        return None
    routes = sorted(str(r["dst"]) for r in read_routes(ipr, link.index)
                    if r["proto"] in ("vlaninfra", "static"))
    return replace(link, routes=tuple(routes), created=created)


def _verify(name: str, result: LinkState, want_addr: Sequence[Interface],
            want_routes: Sequence[Network]) -> None:
    # A tolerated ESRCH/EEXIST must not hide a real mismatch: check the outcome.
    addresses = sorted(str(a) for a in want_addr)
    if list(result.addresses) != addresses:
        raise OpError(errno.EIO, f"shim {name!r}: addresses are {list(result.addresses)} after "
                                 f"converging, wanted {addresses}")
    if not set(map(str, want_routes)) <= set(result.routes):
        raise OpError(errno.EIO, f"shim {name!r}: routes are {list(result.routes)} after "
                                 f"converging, wanted {sorted(map(str, want_routes))}")


def shim_read(ctx: Context, name: str) -> LinkState | None:
    """The shim link (see ``link.get``) with ``routes``: the dsts of vlaninfra's routes via it
    (proto 57, or ``static`` from before vlaninfra had its own protocol).

    Example: ``shim_read(ctx, "shim0").routes`` → ``("192.0.2.128/26",)``
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        return _shim_result(ipr, name)


def _differs(current: LinkState, spec: ShimSpec, flag: str | None) -> bool:
    return (current.kind != spec.kind.value or current.parent != spec.parent
            or current.mode != spec.mode.value
            or (spec.kind is Driver.IPVLAN and current.flag != flag))


def shim_ensure(ctx: Context, spec: ShimSpec, mark: Mark | None = None,
                ifindex: int | None = None) -> LinkState:
    """Converge the host shim ``spec``: a macvlan/ipvlan link on its parent with its addresses
    and routes.

    Creates the link (alias ``vlaninfra:<owner>:<spec>`` from ``mark``) when missing. A link
    of that name is converged only when it is ``mark.owner``'s: its alias names the owner, or
    it has no alias and is the macvlan/ipvlan link ``ifindex`` that state recorded (made
    before marks existed); any other link is an ``EEXIST`` error naming its owner, and is left
    untouched. An owned link is recreated when its kind, parent, mode (or ipvlan flag) differ;
    it gets exactly ``address`` and ``extra_addresses`` (its IPv6 address, tenant gateways;
    others removed, IPv6 link-local kept; IPv6 ones without DAD), is brought up, and its routes
    become exactly ``routes`` (added dev-scoped, proto 57; routes other protocols put through
    it are left alone). If this call created the link and a later step fails, the link is
    deleted again.

    Example: ``shim_ensure(ctx, ShimSpec("shim0", "eth0", Driver.MACVLAN,
    MacvlanMode.BRIDGE, "192.0.2.250/32", ("192.0.2.128/26",)))``
    """
    mark = mark or Mark()
    name = check_ifname(spec.name, "shim name")
    check_ifname(spec.parent, "parent interface name")
    if name == spec.parent:
        raise OpError(errno.EINVAL, f"shim {name!r} cannot be its own parent")
    flag = (spec.flag or IpvlanFlag.BRIDGE).value if spec.kind is Driver.IPVLAN else None
    try:
        want_addr = [ipaddress.ip_interface(a)
                     for a in (spec.address, *spec.extra_addresses) if a]
        want_routes = [ipaddress.ip_network(r) for r in spec.routes]
    except ValueError as exc:
        raise OpError(errno.EINVAL, f"shim {name!r}: {exc}") from exc

    with ctx.netlink() as ipr:
        parent = parent_index(ipr, spec.parent)
        current = read_state(ipr, name)
        route_protos = _OURS_ON_SHIM
        if current is not None:
            old = legacy(current, ifindex, _KINDS)
            if old and link_mark(current) is None:
                route_protos = _OURS_ON_LEGACY_SHIM
            marks.claim(f"link {name!r}", link_mark(current), mark.owner, legacy=old,
                        how_marked="vlaninfra alias")
        if current is not None and _differs(current, spec, flag):
            log.info("recreating %s: %s on %s mode %s differs", name, current.kind,
                     current.parent, current.mode)
            delete_link(ipr, name)
            current = None
        created = False
        if current is None:
            try:
                ipr.link("add", **link_kwargs(name, spec.kind.value, parent, spec.mode.value,
                                              flag))
                created = True
            except Exception as exc:
                ignore(exc, frozenset({errno.EEXIST}))
                # Someone made it meanwhile: converge it only if it is ours (a concurrent
                # ensure of this stack), like any link found there.
                current = read_state(ipr, name)
                if current is not None:
                    marks.claim(f"link {name!r}", link_mark(current), mark.owner,
                                how_marked="vlaninfra alias")
        try:
            index = int(ipr.link("get", ifname=name)[0]["index"])
            alias = marks.alias(mark.owner, mark.spec)
            if current is None or current.alias != alias:
                ipr.link("set", index=index, ifalias=alias)
            converge_addresses(ipr, index, want_addr)
            ipr.link("set", index=index, state="up")
            _converge_routes(ipr, index, want_routes, route_protos)
            result = _shim_result(ipr, name, created)
            if result is None:
                raise OpError(errno.ENODEV, f"shim {name!r} vanished while converging")
            _verify(name, result, want_addr, want_routes)
        except BaseException as exc:
            if created:
                log.warning("shim.ensure %s failed; deleting the link it created", name)
                delete_link(ipr, name)
                raise_undone(exc)
            raise
        return result


def shim_delete(ctx: Context, name: str, owner: str = marks.ADHOC_OWNER,
                ifindex: int | None = None) -> Deleted:
    """Delete the shim link (its addresses and routes go with it) when it is ``owner``'s (see
    :func:`shim_ensure`); tolerates it being gone. Another's link of that name is left in
    place and reported as ``kept`` (the shim vlaninfra made is gone).

    Example: ``shim_delete(ctx, "shim0", owner="infra/prod")`` → ``Deleted(True)``
    """
    check_ifname(name)
    with ctx.netlink() as ipr:
        return delete_owned(ipr, name, _KINDS, owner, ifindex)
