"""What a commit-confirmed guard keeps and how its restorer puts it back (`vlaninfra.host.guard`
arms and runs it).

A guard keeps the plumbing its stack owns: links whose alias names the stack (shims, 802.1Q
parents: kind, parent, mode, flag, VLAN id, MAC, MTU, state, addresses, alias) and every
route of vlaninfra's protocol (57) in the main table. Restoring makes the host match that
snapshot exactly: links of the stack that the snapshot lacks are removed, missing or changed
ones recreated (same MAC and alias), MACs, MTUs, addresses and states repaired, proto-57
routes made exactly the snapshot's. Links of anyone else are never touched; a link the
snapshot names that is no longer the stack's is left alone and reported.

Example::

    snap = snapshot_of(read_links(ipr), read_routes(ipr), "vlaninfra/prod")
    ...                                   # the change
    restore(ipr, snap, "vlaninfra/prod")  # → {"done": [...], "skipped": [], "errors": []}
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Mapping, Sequence

from vlaninfra.host import marks
from vlaninfra.host.errors import OpError
from vlaninfra.host.facts import MAIN_TABLE, RT_SCOPE, read_links, read_routes
from vlaninfra.host.ops import converge_addresses
from vlaninfra.host.ops._shim import link_kwargs
from vlaninfra.host.untyped import Netlink

__all__ = ["LINK_KEYS", "plan_links", "plan_routes", "restore", "snapshot_of"]

LINK_KEYS = ("name", "kind", "parent", "mode", "flag", "vlan_id", "mac", "mtu", "up",
             "addresses", "alias")
_SHAPE = ("kind", "parent", "mode", "flag", "vlan_id")
"""What a link cannot change in place: a difference means delete and create again."""
_PROTO = "vlaninfra"
_SCOPE_NUMBER = {name: number for number, name in RT_SCOPE.items()}

Fields = Mapping[str, object]
"""A link or route as a snapshot holds it: from :mod:`~vlaninfra.host.facts`, or read back from
the guard's JSON state file, so its values are narrowed where they are used."""
Snapshot = Mapping[str, Sequence[Fields]]
"""``{"links": [...], "routes": [...]}`` (see :func:`snapshot_of`)."""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _texts(value: object) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else []


# -- what is owned, and what to do about it (pure) -------------------------------------------


def _owned(link: Fields, owner: str) -> bool:
    mark = marks.of_alias(link.get("alias"))
    return mark is not None and mark.owner == owner


def snapshot_of(links: Sequence[Fields], routes: Sequence[Fields],
                owner: str) -> dict[str, list[dict[str, object]]]:
    """The part of a host's links and routes a guard keeps: `owner`'s links, proto-57 routes."""
    return {
        "links": [{k: link.get(k) for k in LINK_KEYS} for link in links if _owned(link, owner)],
        "routes": [dict(r) for r in routes if r.get("proto") == _PROTO],
    }


def plan_links(want: Sequence[Fields], have: Sequence[Fields],
               owner: str) -> tuple[list[str], list[dict[str, object]], list[str]]:
    """What to do to `have` (the links now) to get `want` (the snapshot's owned links):
    ``(delete, create, skipped)``. Deletes are names, shims before 802.1Q parents; creates are
    snapshot links, 802.1Q parents first; `skipped` says what was left alone and why. Only
    `owner`'s links are deleted; a name the snapshot holds that is now someone else's link is
    skipped; a parent that still carries a link that stays is not deleted.

    Example: ``plan_links([], [shim0 owned], "p/s")`` → ``(["shim0"], [], [])``
    """
    wanted = {_text(w["name"]): w for w in want}
    now = {_text(h["name"]): h for h in have}
    delete: list[str] = []
    skipped: list[str] = []
    foreign: set[str] = set()
    for name, link in now.items():
        if not _owned(link, owner):
            if name in wanted:
                foreign.add(name)
                mark = marks.of_alias(link.get("alias"))
                whose = f"owned by stack {mark.owner!r}" if mark else "not owned by vlaninfra"
                skipped.append(f"link {name!r} is now {whose}: left alone")
            continue
        w = wanted.get(name)
        if w is None or any(link.get(k) != w.get(k) for k in _SHAPE):
            delete.append(name)
    # Deleting a link deletes the links on it: ours go too (and come back if the snapshot
    # has them); a parent that carries someone else's link stays.
    for name in [n for n in delete if now[n].get("kind") == "vlan"]:
        children = [c for c, link in now.items() if link.get("parent") == name]
        kept = sorted(c for c in children if not _owned(now[c], owner))
        if kept:
            delete.remove(name)
            skipped.append(f"link {name!r} still carries {', '.join(kept)}: not deleted")
        else:
            delete += [c for c in children if c not in delete]
    delete.sort(key=lambda n: (now[n].get("kind") == "vlan", n))
    gone = set(delete) | {c for c, link in now.items() if link.get("parent") in delete}
    create = [dict(w) for name, w in wanted.items()
              if (name not in now or name in gone) and name not in foreign]
    create.sort(key=lambda w: (w.get("kind") != "vlan", _text(w["name"])))
    return delete, create, skipped


def _route_key(r: Fields) -> tuple[object, ...]:
    return (r.get("dst"), r.get("gateway"), r.get("dev"), r.get("metric"))


def plan_routes(want: Sequence[Fields], have: Sequence[Fields],
                ) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """``(delete, add)``: proto-57 routes now that the snapshot lacks, snapshot routes that are
    missing (same destination, next hop, device and metric). Other protocols' routes are
    never in either list.

    Example: ``plan_routes([], [{"dst": "198.18.5.0/24", "proto": "vlaninfra", ...}])``
    → ``([that route], [])``
    """
    wanted = {_route_key(r) for r in want}
    present = {_route_key(r) for r in have if r.get("proto") == _PROTO}
    return ([dict(r) for r in have if r.get("proto") == _PROTO and _route_key(r) not in wanted],
            [dict(r) for r in want if _route_key(r) not in present])


# -- applying it (netlink) --------------------------------------------------------------------


def _index(ipr: Netlink, name: object) -> int:
    return int(ipr.link("get", ifname=_text(name))[0]["index"])


def _create_link(ipr: Netlink, w: Fields) -> None:
    name, kind, parent = _text(w["name"]), _text(w["kind"]), _index(ipr, w["parent"])
    spec: dict[str, str | int]
    if kind == "vlan":
        spec = {"ifname": name, "kind": kind, "link": parent, "vlan_id": int(_text(w["vlan_id"]))}
    elif kind in ("macvlan", "ipvlan"):
        spec = link_kwargs(name, kind, parent, _text(w["mode"]), _text(w.get("flag")) or None)
    else:
        raise OpError(errno.EINVAL, f"link {name!r}: cannot recreate kind {kind!r}")
    if w.get("mac") and kind != "ipvlan":  # an ipvlan link always has its parent's MAC
        spec["address"] = _text(w["mac"])
    ipr.link("add", **spec)
    ipr.link("set", index=_index(ipr, name), ifalias=_text(w.get("alias")))


def _repair_link(ipr: Netlink, w: Fields, now: Fields, done: list[str]) -> None:
    index = _index(ipr, w["name"])
    if w.get("mac") and w["kind"] != "ipvlan" and now.get("mac") != w["mac"]:
        ipr.link("set", index=index, address=w["mac"])
        done.append(f"{w['name']}: MAC {w['mac']}")
    if w.get("mtu") and now.get("mtu") != w["mtu"]:
        ipr.link("set", index=index, mtu=w["mtu"])
        done.append(f"{w['name']}: MTU {w['mtu']}")
    if now.get("alias") != w.get("alias"):
        ipr.link("set", index=index, ifalias=w.get("alias") or "")
    addresses = _texts(w.get("addresses"))
    if sorted(_texts(now.get("addresses"))) != sorted(addresses):
        converge_addresses(ipr, index, [ipaddress.ip_interface(a) for a in addresses])
        done.append(f"{w['name']}: addresses {', '.join(addresses) or 'none'}")
    if bool(now.get("up")) != bool(w.get("up")):
        ipr.link("set", index=index, state="up" if w.get("up") else "down")
        done.append(f"{w['name']}: {'up' if w.get('up') else 'down'}")


def _route_spec(ipr: Netlink, r: Fields) -> dict[str, str | int]:
    net = ipaddress.ip_network(_text(r["dst"]))
    spec: dict[str, str | int] = {
        "dst": str(net.network_address), "dst_len": net.prefixlen, "table": MAIN_TABLE,
        "family": socket.AF_INET if net.version == 4 else socket.AF_INET6,
        "proto": marks.RTPROT_VLANINFRA, "scope": _SCOPE_NUMBER.get(_text(r.get("scope")), 0),
    }
    if r.get("gateway"):
        spec["gateway"] = _text(r["gateway"])
    if r.get("dev"):
        spec["oif"] = _index(ipr, r["dev"])
    if r.get("metric") is not None:
        spec["priority"] = int(_text(r["metric"]))
    return spec


def restore(ipr: Netlink, snap: Snapshot, owner: str) -> dict[str, list[str]]:
    """Puts `owner`'s links and the proto-57 routes back as in `snap`; returns
    ``{"done": [...], "skipped": [...], "errors": [...]}``. Each step is tried on its own, so
    one failure does not stop the rest. Idempotent: on a host that matches, nothing is done.

    Example: ``restore(ipr, snapshot(ctx, "vlaninfra/prod"), "vlaninfra/prod")["done"]``
    """
    out: dict[str, list[str]] = {"done": [], "skipped": [], "errors": []}

    def step(what: str, fn: Callable[..., object], *args: object) -> bool:
        try:
            fn(*args)
            return True
        except Exception as exc:  # report it, go on with the rest
            out["errors"].append(f"{what}: {type(exc).__name__}: {exc}")
            return False

    delete, _, skipped = plan_links(snap["links"], read_links(ipr), owner)
    out["skipped"] += skipped
    for name in delete:
        if step(f"delete link {name}", lambda name=name: ipr.link("del", ifname=name)):
            out["done"].append(f"deleted link {name}")
    _, create, _ = plan_links(snap["links"], read_links(ipr), owner)
    for w in create:
        if step(f"create link {w['name']}", _create_link, ipr, w):
            out["done"].append(f"created link {w['name']} ({w['kind']} on {w['parent']})")
    have = {link["name"]: link for link in read_links(ipr)}
    for kept in sorted(snap["links"], key=lambda w: (w.get("kind") != "vlan", _text(w["name"]))):
        now = have.get(_text(kept["name"]))
        if now is not None and _owned(now, owner):
            changes: list[str] = []
            if step(f"repair link {kept['name']}", _repair_link, ipr, kept, now, changes):
                out["done"] += changes
    drop, add = plan_routes(snap["routes"], read_routes(ipr))
    for r in drop:
        if step(f"delete route {r['dst']}", lambda r=r: ipr.route("del", **_route_spec(ipr, r))):
            out["done"].append(f"deleted route {r['dst']} via {r.get('gateway') or r.get('dev')}")
    for r in add:
        if step(f"add route {r['dst']}", lambda r=r: ipr.route("add", **_route_spec(ipr, r))):
            out["done"].append(f"added route {r['dst']} via {r.get('gateway') or r.get('dev')}")
    return out
