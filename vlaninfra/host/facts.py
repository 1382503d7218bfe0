"""Netlink facts: read-only probes of links, addresses and routes (pyroute2).

Every public function takes the agent :class:`~vlaninfra.host.context.Context` and returns
JSON-able data; the ``read_*`` helpers take an open ``IPRoute`` so ops can reuse them inside
one netlink session. Nothing here changes the host.

Example: ``link_get(ctx, "shim0")`` →
``{"name": "shim0", "kind": "macvlan", "parent": "eth0", "mode": "bridge", ...}``
"""

from __future__ import annotations

import errno
import ipaddress
import socket

from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError
from vlaninfra.host.untyped import Netlink, NetlinkMsg

__all__ = [
    "IFF_UP",
    "KERNEL_PROTOS",
    "MAIN_TABLE",
    "link_exists",
    "link_get",
    "read_addresses",
    "read_link",
    "read_links",
    "read_routes",
    "read_routes_to",
    "route_get",
    "route_list",
]

IFF_UP = 0x1
MAIN_TABLE = 254
RTPROT = {0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated",
          9: "ra", 10: "mrt", 11: "zebra", 12: "bird", 16: "dhcp", 57: "vlaninfra", 186: "bgp",
          188: "ospf"}
RT_SCOPE = {0: "universe", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
KERNEL_PROTOS = frozenset({"kernel", "ra", "redirect"})
"""Route protocols the kernel (or the kernel's RA handling) owns: never removed by ops."""

MACVLAN_MODES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}
IPVLAN_MODES = {0: "l2", 1: "l3", 2: "l3s"}
IPVLAN_FLAGS = {0: "bridge", 1: "private", 2: "vepa"}
_PARENTED_KINDS = frozenset({"macvlan", "macvtap", "ipvlan", "ipvtap", "vlan"})


def _netlink_code(exc: BaseException) -> int | None:
    code = getattr(exc, "code", None)
    return code if isinstance(code, int) else None


def _name(table: dict[int, str], value: object) -> str | None:
    """Decode a mode/flag that pyroute2 gives either as a name or as the raw integer."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.lower()
    return table.get(int(str(value)), str(value))


def _nla(msg: NetlinkMsg, name: str) -> NetlinkMsg:
    return msg.get(name) if msg is not None else None


def read_addresses(ipr: Netlink, index: int) -> list[str]:
    """Addresses on link ``index`` as CIDR strings, IPv6 link-local (kernel-made) omitted."""
    out: list[str] = []
    for msg in ipr.get_addr(index=index):
        if msg.get("index") != index:
            continue
        addr = msg.get("IFA_ADDRESS")
        if addr is None:
            continue
        iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
        if iface.version == 6 and iface.ip.is_link_local:
            continue
        out.append(str(iface))
    return sorted(out)


def _link_dict(ipr: Netlink, msg: NetlinkMsg, names: dict[int, str] | None = None,
               ) -> dict[str, object]:
    index = int(msg["index"])
    info = msg.get("IFLA_LINKINFO")
    kind = _nla(info, "IFLA_INFO_KIND")
    data = _nla(info, "IFLA_INFO_DATA")
    if not hasattr(data, "get"):
        data = None
    parent: str | None = None
    parent_index = msg.get("IFLA_LINK")
    if (
        kind in _PARENTED_KINDS
        and parent_index
        and parent_index != index
        and msg.get("IFLA_LINK_NETNSID") is None
    ):
        if names is not None:
            parent = names.get(parent_index)
        else:
            try:
                parent = ipr.link("get", index=parent_index)[0].get("IFLA_IFNAME")
            except Exception as exc:
                if _netlink_code(exc) != errno.ENODEV:
                    raise
    mode: str | None = None
    flag: str | None = None
    vlan_id: int | None = None
    if kind in ("macvlan", "macvtap"):
        mode = _name(MACVLAN_MODES, _nla(data, "IFLA_MACVLAN_MODE"))
    elif kind in ("ipvlan", "ipvtap"):
        mode = _name(IPVLAN_MODES, _nla(data, "IFLA_IPVLAN_MODE"))
        flag = _name(IPVLAN_FLAGS, _nla(data, "IFLA_IPVLAN_FLAGS") or 0)
    elif kind == "vlan":
        raw = _nla(data, "IFLA_VLAN_ID")
        vlan_id = int(raw) if raw is not None else None
    return {
        "name": msg.get("IFLA_IFNAME"),
        "index": index,
        "kind": kind,
        "parent": parent,
        "mode": mode,
        "flag": flag,
        "vlan_id": vlan_id,
        "mac": msg.get("IFLA_ADDRESS"),
        "mtu": msg.get("IFLA_MTU"),
        "up": bool(int(msg["flags"]) & IFF_UP),
        "addresses": read_addresses(ipr, index),
        "alias": msg.get("IFLA_IFALIAS") or None,
    }


def read_link(ipr: Netlink, name: str) -> dict[str, object] | None:
    """The link called ``name`` (see :func:`link_get`), or None if there is none."""
    try:
        msgs = ipr.link("get", ifname=name)
    except Exception as exc:
        if _netlink_code(exc) == errno.ENODEV:
            return None
        raise
    return _link_dict(ipr, msgs[0])


def read_links(ipr: Netlink) -> list[dict[str, object]]:
    """Every link in this network namespace, sorted by index."""
    msgs = list(ipr.get_links())
    names = {int(m["index"]): m.get("IFLA_IFNAME") for m in msgs}
    return [_link_dict(ipr, m, names) for m in sorted(msgs, key=lambda m: int(m["index"]))]


def _route_dict(msg: NetlinkMsg, names: dict[int, str]) -> dict[str, object] | None:
    table = msg.get("RTA_TABLE") or msg.get("table")
    if table != MAIN_TABLE:
        return None
    family = msg["family"]
    dst = msg.get("RTA_DST")
    if dst is None:
        dst = "0.0.0.0" if family == socket.AF_INET else "::"
    oif = msg.get("RTA_OIF")
    proto = msg["proto"]
    scope = msg["scope"]
    return {
        "dst": str(ipaddress.ip_network(f"{dst}/{msg['dst_len']}", strict=False)),
        "gateway": msg.get("RTA_GATEWAY"),
        "dev": names.get(oif) if oif is not None else None,
        "scope": RT_SCOPE.get(scope, str(scope)),
        "proto": RTPROT.get(proto, str(proto)),
        "metric": msg.get("RTA_PRIORITY"),
    }


def read_routes(ipr: Netlink, index: int | None = None) -> list[dict[str, object]]:
    """Main-table IPv4 and IPv6 routes, optionally only those leaving through ``index``."""
    names = {int(m["index"]): m.get("IFLA_IFNAME") for m in ipr.get_links()}
    out: list[dict[str, object]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for msg in ipr.route("dump", family=family):
            if msg["family"] != family:
                continue
            if index is not None and msg.get("RTA_OIF") != index:
                continue
            route = _route_dict(msg, names)
            if route is not None:
                out.append(route)
    return out


def link_get(ctx: Context, name: str) -> dict[str, object] | None:
    """The link ``name`` with kind, parent, mode, MAC, MTU, state and addresses, or None.

    ``alias`` is the link alias (vlaninfra's ownership mark on links it made).

    Example: ``link_get(ctx, "eth0")["up"]`` → ``True``
    """
    with ctx.netlink() as ipr:
        return read_link(ipr, name)


def link_exists(ctx: Context, name: str) -> bool:
    """Whether a link called ``name`` exists (cheap: for preview checks of parent NICs)."""
    with ctx.netlink() as ipr:
        try:
            ipr.link("get", ifname=name)
        except Exception as exc:
            if _netlink_code(exc) == errno.ENODEV:
                return False
            raise
        return True


def route_list(ctx: Context, dev: str | None = None) -> list[dict[str, object]]:
    """Main-table routes (IPv4 and IPv6) through ``dev`` (all devices when None).

    Each route is ``{dst, gateway, dev, scope, proto, metric}``; filter ``proto == "kernel"``
    out to see only routes someone added. A missing ``dev`` is an ``ENODEV`` error.

    Example: ``route_list(ctx, "shim0")`` →
    ``[{"dst": "192.0.2.128/26", "gateway": None, "dev": "shim0", "scope": "link",
    "proto": "static", "metric": None}]``
    """
    with ctx.netlink() as ipr:
        index: int | None = None
        if dev is not None:
            index = int(ipr.link("get", ifname=dev)[0]["index"])
        return read_routes(ipr, index)


def read_routes_to(ipr: Netlink, net: ipaddress.IPv4Network | ipaddress.IPv6Network,
                   ) -> list[dict[str, object]]:
    """Main-table routes whose destination is exactly ``net``, lowest metric first."""
    found = [r for r in read_routes(ipr) if r["dst"] == str(net)]
    return sorted(found, key=lambda r: r["metric"] if isinstance(r["metric"], int) else 0)


def route_get(ctx: Context, dst: str) -> dict[str, object] | None:
    """The main-table route to exactly ``dst`` (lowest metric; see :func:`route_list`), or
    None. A malformed ``dst`` is ``EINVAL``.

    Example: ``route_get(ctx, "198.18.1.0/24")`` → ``{"dst": "198.18.1.0/24", "gateway":
    "192.0.2.21", "dev": "eth0", "scope": "universe", "proto": "static", "metric": None}``
    """
    try:
        net = ipaddress.ip_network(dst)
    except (TypeError, ValueError) as exc:
        raise OpError(errno.EINVAL, f"route {dst!r}: {exc}") from None
    with ctx.netlink() as ipr:
        found = read_routes_to(ipr, net)
    return found[0] if found else None
