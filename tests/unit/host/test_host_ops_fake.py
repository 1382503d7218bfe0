"""Netlink op logic against an in-memory fake IPRoute (no privileges, any kernel).

The fake models just enough of rtnetlink: links with kind/parent/mode/vlan id, addresses,
main-table routes, and errno-coded failures, so the converge/rollback logic (including
802.1Q, which this machine's kernel lacks) is testable.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from vlaninfra.host import facts, marks, ops
from vlaninfra.host.contract import (
    Deleted,
    LinkState,
    Mark,
    RouteSpec,
    RouteState,
    ShimSpec,
    VlanSpec,
    driver_of,
    flag_of,
    mode_of,
)
from vlaninfra.host.errors import OpError


class NetlinkError(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class FakeIPRoute:
    def __init__(self) -> None:
        self.links: dict[int, dict[str, Any]] = {}
        self.addrs: list[tuple[int, str, int]] = []
        self.addr_flags: dict[tuple[int, str, int], int] = {}
        """IFA flags each address was added with (IFA_F_NODAD = 0x02)."""
        self.routes: list[dict[str, Any]] = []
        self.fail_route_add: set[str] = set()
        self.next_index = 1
        self.add_link("lo", None)
        self.add_link("eth0", "veth")

    def add_link(self, name: str, kind: str | None, **info: Any) -> int:
        index = self.next_index
        self.next_index += 1
        self.links[index] = {"name": name, "kind": kind, "flags": 0, **info}
        return index

    def _msg(self, index: int) -> dict[str, Any]:
        link = self.links[index]
        data: dict[str, Any] = {}
        if link["kind"] == "macvlan":
            data["IFLA_MACVLAN_MODE"] = link["mode"]
        if link["kind"] == "ipvlan":
            data["IFLA_IPVLAN_MODE"] = link["mode"]
            data["IFLA_IPVLAN_FLAGS"] = link.get("flag") or 0
        if link["kind"] == "vlan":
            data["IFLA_VLAN_ID"] = link["vlan_id"]
        return {"index": index, "flags": link["flags"], "IFLA_IFNAME": link["name"],
                "IFLA_LINK": link.get("parent"), "IFLA_ADDRESS": "02:00:00:00:00:01",
                "IFLA_MTU": 1500, "IFLA_IFALIAS": link.get("alias"),
                "IFLA_LINKINFO": {"IFLA_INFO_KIND": link["kind"], "IFLA_INFO_DATA": data}}

    def _by_name(self, name: str) -> int:
        for index, link in self.links.items():
            if link["name"] == name:
                return index
        raise NetlinkError(errno.ENODEV)

    def link(self, cmd: str, **kw: Any) -> list[dict[str, Any]]:
        if cmd == "get":
            index = kw["index"] if "index" in kw else self._by_name(kw["ifname"])
            if index not in self.links:
                raise NetlinkError(errno.ENODEV)
            return [self._msg(index)]
        if cmd == "add":
            race = getattr(self, "race", None)
            if race is not None:  # another creator makes the link first
                self.race = None
                self.add_link(kw["ifname"], **race)
            if any(link["name"] == kw["ifname"] for link in self.links.values()):
                raise NetlinkError(errno.EEXIST)
            if kw["kind"] == "vlan" and getattr(self, "no_8021q", False):
                raise NetlinkError(errno.EOPNOTSUPP)
            self.add_link(kw["ifname"], kw["kind"], parent=kw["link"],
                          mode=kw.get("macvlan_mode", kw.get("ipvlan_mode")),
                          flag=kw.get("ipvlan_flags"), vlan_id=kw.get("vlan_id"))
            return []
        if cmd == "set":
            if "ifalias" in kw:
                self.links[kw["index"]]["alias"] = kw["ifalias"]
            if kw.get("state") == "up":
                self.links[kw["index"]]["flags"] |= facts.IFF_UP
            return []
        if cmd == "del":
            index = self._by_name(kw["ifname"])
            del self.links[index]
            self.addrs = [a for a in self.addrs if a[0] != index]
            self.routes = [r for r in self.routes if r["oif"] != index]
            return []
        raise AssertionError(cmd)

    def get_links(self) -> list[dict[str, Any]]:
        return [self._msg(i) for i in self.links]

    def get_addr(self, index: int) -> list[dict[str, Any]]:
        return [{"index": i, "IFA_ADDRESS": a, "prefixlen": p} for i, a, p in self.addrs
                if i == index]

    def addr(self, cmd: str, index: int, address: str, prefixlen: int, flags: int = 0) -> None:
        key = (index, address, prefixlen)
        if cmd == "add":
            if key in self.addrs:
                raise NetlinkError(errno.EEXIST)
            self.addrs.append(key)
            self.addr_flags[key] = flags
        else:
            if key not in self.addrs:
                raise NetlinkError(errno.EADDRNOTAVAIL)
            self.addrs.remove(key)

    def route(self, cmd: str, **kw: Any) -> list[dict[str, Any]]:
        if cmd == "dump":
            return [{"family": r["family"], "RTA_TABLE": 254, "RTA_DST": r["dst"],
                     "dst_len": r["dst_len"], "RTA_OIF": r["oif"], "proto": r["proto"],
                     "scope": r["scope"], "RTA_GATEWAY": r.get("gateway")}
                    for r in self.routes if r["family"] == kw["family"]]
        if "gateway" in kw or (cmd == "del" and "oif" not in kw):
            # Gateway routes: the kernel resolves the device; matched by dst and next hop.
            gw_key = {k: kw.get(k) for k in ("dst", "dst_len", "gateway")}
            match = [r for r in self.routes if {k: r.get(k) for k in gw_key} == gw_key]
            if cmd == "add":
                if match:
                    raise NetlinkError(errno.EEXIST)
                self.routes.append({**gw_key, "oif": kw.get("oif", 2), "family": kw["family"],
                                    "proto": kw["proto"], "scope": 0})
                return []
            if not match or match[0]["proto"] != kw.get("proto"):
                raise NetlinkError(errno.ESRCH)
            self.routes.remove(match[0])
            return []
        key = {k: kw[k] for k in ("dst", "dst_len", "oif")}
        match = [r for r in self.routes if {k: r[k] for k in key} == key]
        if cmd == "add":
            if f"{kw['dst']}/{kw['dst_len']}" in self.fail_route_add:
                raise NetlinkError(errno.ENETDOWN)
            if match:
                raise NetlinkError(errno.EEXIST)
            self.routes.append({**key, "family": kw["family"], "proto": kw["proto"],
                                "scope": kw["scope"]})
            return []
        if not match or match[0]["scope"] != kw.get("scope"):
            raise NetlinkError(errno.ESRCH)
        self.routes.remove(match[0])
        return []



def _shim(ctx: Any, name: str, parent: str, kind: str = "macvlan", mode: str | None = None,
          address: str | None = None, routes: Sequence[str] = (), flag: str | None = None,
          owner: str = marks.ADHOC_OWNER, spec: str | None = None, ifindex: int | None = None,
          extra_addresses: Sequence[str] = ()) -> LinkState:
    """``ops.shim_ensure`` with the spec spelled flat (the contract's checks apply)."""
    driver = driver_of(kind)
    return ops.shim_ensure(ctx, ShimSpec(name, parent, driver, mode_of(driver, mode), address,
                                         tuple(routes), flag_of(driver, flag),
                                         tuple(extra_addresses)), Mark(owner, spec), ifindex)


def _vlan(ctx: Any, trunk: str, vlan_id: int, name: str, owner: str = marks.ADHOC_OWNER,
          spec: str | None = None) -> LinkState:
    return ops.vlan_ensure(ctx, VlanSpec(trunk, vlan_id, name), Mark(owner, spec))


def _route(ctx: Any, dst: str, via: str, dev: str | None = None, legacy_via: str | None = None,
           recorded_via: str | None = None) -> RouteState:
    return ops.route_ensure(ctx, RouteSpec(dst, via, dev), legacy_via, recorded_via)

class FakeContext:
    def __init__(self) -> None:
        self.ipr = FakeIPRoute()
        self.docker_socket = "/nonexistent"

    @contextlib.contextmanager
    def netlink(self) -> Iterator[FakeIPRoute]:
        yield self.ipr


@pytest.fixture
def ctx() -> FakeContext:
    return FakeContext()


def test_vlan_ensure_creates_then_is_a_noop(ctx: Any) -> None:
    out = _vlan(ctx, "eth0", 50, "eth0.50")
    assert (out.created, out.kind, out.parent, out.vlan_id, out.up) == (
        True, "vlan", "eth0", 50, True)
    assert ctx.ipr.links[out.index]["alias"] == marks.alias(marks.ADHOC_OWNER, None)
    # A retried create finds its own mark: still vlaninfra's (deleted on destroy).
    again = _vlan(ctx, "eth0", 50, "eth0.50")
    assert again.created is True and again.index == out.index
    assert ops.vlan_delete(ctx, "eth0.50") == Deleted(True)
    assert ops.vlan_delete(ctx, "eth0.50") == Deleted(False)


def test_vlan_ensure_refuses_someone_elses_link(ctx: Any) -> None:
    _vlan(ctx, "eth0", 50, "eth0.50")
    with pytest.raises(OpError) as info:
        _vlan(ctx, "eth0", 51, "eth0.50")
    assert info.value.code == errno.EEXIST and info.value.details["link"]["vlan_id"] == 50


@pytest.mark.parametrize("vid", [0, 4095, True, "50"])
def test_vlan_ensure_validates_the_id(ctx: Any, vid: Any) -> None:
    with pytest.raises(OpError) as info:
        _vlan(ctx, "eth0", vid, "eth0.50")
    assert info.value.code == errno.EINVAL


def test_vlan_ensure_without_8021q_is_the_kernels_errno(ctx: Any) -> None:
    ctx.ipr.no_8021q = True
    with pytest.raises(NetlinkError) as info:
        _vlan(ctx, "eth0", 50, "eth0.50")
    assert info.value.code == errno.EOPNOTSUPP


def test_shim_ensure_converges_and_keeps_kernel_routes(ctx: Any) -> None:
    out = _shim(ctx, "shim0", "eth0", address="192.0.2.250/32",
                          routes=["192.0.2.128/26"])
    assert out.created is True and out.routes == ("192.0.2.128/26",)
    index = out.index
    ctx.ipr.routes.append({"dst": "192.0.2.0", "dst_len": 24, "oif": index,
                           "family": socket.AF_INET, "proto": 2, "scope": 253})
    ctx.ipr.routes.append({"dst": "198.18.9.0", "dst_len": 24, "oif": index,
                           "family": socket.AF_INET, "proto": 3, "scope": 253})
    out = _shim(ctx, "shim0", "eth0", address="192.0.2.251/24",
                          routes=["198.18.0.0/24"])
    assert out.created is False
    assert out.addresses == ("192.0.2.251/24",)
    assert out.routes == ("198.18.0.0/24",)
    # The kernel's route and one added by hand (proto boot) stay.
    assert sorted(r["proto"] for r in ctx.ipr.routes) == [2, 3, marks.RTPROT_VLANINFRA]


def test_shim_ensure_rolls_back_a_link_it_created(ctx: Any) -> None:
    ctx.ipr.fail_route_add.add("198.18.0.0/24")
    with pytest.raises(OpError) as info:
        _shim(ctx, "shim0", "eth0", address="192.0.2.250/32",
                        routes=["192.0.2.128/26", "198.18.0.0/24"])
    assert info.value.details["rolled_back"] is True  # the caller may say "nothing was left"
    assert [link["name"] for link in ctx.ipr.links.values()] == ["lo", "eth0"]
    assert ctx.ipr.routes == [] and ctx.ipr.addrs == []


def test_shim_ensure_keeps_a_preexisting_link_on_failure(ctx: Any) -> None:
    _shim(ctx, "shim0", "eth0", address="192.0.2.250/32")
    ctx.ipr.fail_route_add.add("198.18.0.0/24")
    with pytest.raises(NetlinkError):
        _shim(ctx, "shim0", "eth0", address="192.0.2.250/32",
                        routes=["198.18.0.0/24"])
    assert ops.shim_read(ctx, "shim0") is not None


def test_shim_ensure_recreates_on_mode_change(ctx: Any) -> None:
    first = _shim(ctx, "shim0", "eth0", mode="bridge")
    second = _shim(ctx, "shim0", "eth0", mode="vepa")
    assert second.created is True and second.index != first.index
    assert second.mode == "vepa"


@pytest.mark.parametrize("kw", [
    {"name": "shim0", "parent": "shim0"},
    {"name": "a/b", "parent": "eth0"},
    {"name": "shim0", "parent": "eth0", "kind": "vlan"},
    {"name": "shim0", "parent": "eth0", "kind": "ipvlan", "mode": "bridge"},
    {"name": "shim0", "parent": "eth0", "kind": "ipvlan", "flag": "nope"},
    {"name": "shim0", "parent": "eth0", "flag": "bridge"},
    {"name": "shim0", "parent": "eth0", "address": "192.0.2.999/24"},
])
def test_shim_ensure_validates_before_touching_anything(ctx: Any, kw: dict[str, Any]) -> None:
    with pytest.raises(OpError) as info:
        _shim(ctx, **kw)
    assert info.value.code == errno.EINVAL
    assert len(ctx.ipr.links) == 2


def test_shim_ensure_missing_parent_is_enodev(ctx: Any) -> None:
    with pytest.raises(OpError) as info:
        _shim(ctx, "shim0", "eth9")
    assert info.value.code == errno.ENODEV and "eth9" in info.value.message


# -- static routes on a router -------------------------------------------------------------


def test_route_ensure_adds_then_is_a_noop_and_get_reads_it(ctx: Any) -> None:
    assert facts.route_get(ctx, "198.18.1.0/24") is None
    out = _route(ctx, "198.18.1.0/24", "192.0.2.21")
    assert (out.created, out.gateway, out.proto) == (True, "192.0.2.21", "vlaninfra")
    again = _route(ctx, "198.18.1.0/24", "192.0.2.21")
    assert again.created is False and len(ctx.ipr.routes) == 1
    got = facts.route_get(ctx, "198.18.1.0/24")
    assert got is not None and got["gateway"] == "192.0.2.21" and got["dev"] == "eth0"


def test_route_ensure_replaces_only_the_next_hop_state_recorded(ctx: Any) -> None:
    _route(ctx, "198.18.1.0/24", "192.0.2.22")
    # another stack's (or a leftover) proto-57 route: a clash, left alone
    with pytest.raises(OpError) as info:
        _route(ctx, "198.18.1.0/24", "192.0.2.21")
    assert info.value.code == errno.EEXIST
    assert "198.18.1.0/24 via 192.0.2.22" in info.value.message
    assert "ip route del 198.18.1.0/24 proto 57" in info.value.message
    assert [r["gateway"] for r in ctx.ipr.routes] == ["192.0.2.22"]
    # the same next hop (an earlier run's): adopted
    assert _route(ctx, "198.18.1.0/24", "192.0.2.22").created is False
    # the one state recorded (the tenant moved host): replaced
    out = _route(ctx, "198.18.1.0/24", "192.0.2.21", recorded_via="192.0.2.22")
    assert out.created is True
    assert [r["gateway"] for r in ctx.ipr.routes] == ["192.0.2.21"]


def test_route_ensure_refuses_a_connected_prefix(ctx: Any) -> None:
    ctx.ipr.routes.append({"dst": "198.18.1.0", "dst_len": 24, "oif": 2, "gateway": None,
                           "family": socket.AF_INET, "proto": 2, "scope": 253})
    with pytest.raises(OpError) as info:
        _route(ctx, "198.18.1.0/24", "192.0.2.21")
    assert info.value.code == errno.EEXIST and "connected" in info.value.message
    assert len(ctx.ipr.routes) == 1


def test_route_delete_removes_only_its_own_next_hop_and_tolerates_gone(ctx: Any) -> None:
    _route(ctx, "198.18.1.0/24", "192.0.2.22")
    assert ops.route_delete(ctx, "198.18.1.0/24", "192.0.2.21") == Deleted(False)
    assert len(ctx.ipr.routes) == 1
    assert ops.route_delete(ctx, "198.18.1.0/24", "192.0.2.22") == Deleted(True)
    assert ops.route_delete(ctx, "198.18.1.0/24", "192.0.2.22") == Deleted(False)
    assert ctx.ipr.routes == []


@pytest.mark.parametrize(("dst", "via"), [
    ("198.18.1.7/24", "192.0.2.21"),  # host bits
    ("198.18.1.0/24", "2001:db8::1"),  # other family
    ("nonsense", "192.0.2.21"),
])
def test_route_ensure_validates_before_touching_anything(ctx: Any, dst: str, via: str) -> None:
    with pytest.raises(OpError) as info:
        _route(ctx, dst, via)
    assert info.value.code == errno.EINVAL and ctx.ipr.routes == []


# -- ownership ------------------------------------------------------------------------------


def test_vlan_ensure_adopts_an_unmarked_parent_read_only_and_never_deletes_it(ctx: Any) -> None:
    index = ctx.ipr.add_link("eth0.50", "vlan", parent=2, vlan_id=50)
    with pytest.raises(OpError) as info:  # down, and not ours: never brought up
        _vlan(ctx, "eth0", 50, "eth0.50", owner="p/a")
    assert info.value.code == errno.ENETDOWN and "ip link set eth0.50 up" in info.value.message
    assert ctx.ipr.links[index]["flags"] == 0
    ctx.ipr.links[index]["flags"] = 1  # brought up by its owner: used as it is
    out = _vlan(ctx, "eth0", 50, "eth0.50", owner="p/a")
    assert out.created is False and ctx.ipr.links[index].get("alias") is None
    kept = ops.vlan_delete(ctx, "eth0.50", owner="p/a")
    assert kept.deleted is False and "not owned by vlaninfra" in (kept.kept or "")
    assert index in ctx.ipr.links
    # ...unless state recorded this very link as made by vlaninfra (before marks existed).
    assert ops.vlan_delete(ctx, "eth0.50", owner="p/a", ifindex=index) == Deleted(True)


def test_shim_ensure_never_touches_an_unmarked_link(ctx: Any) -> None:
    index = ctx.ipr.add_link("eth1", "veth")
    with pytest.raises(OpError) as info:
        _shim(ctx, "eth1", "eth0", owner="p/a")
    assert info.value.code == errno.EEXIST
    assert "link 'eth1' exists and is not owned by vlaninfra (no vlaninfra alias)" in (
        info.value.message)
    assert ctx.ipr.links[index] == {"name": "eth1", "kind": "veth", "flags": 0}
    kept = ops.shim_delete(ctx, "eth1", owner="p/a")
    assert kept.deleted is False and index in ctx.ipr.links


def test_shim_ensure_refuses_another_stacks_shim_and_delete_keeps_it(ctx: Any) -> None:
    mine = _shim(ctx, "shim0", "eth0", owner="p/a", spec="s1")
    with pytest.raises(OpError) as info:
        _shim(ctx, "shim0", "eth0", owner="p/b", spec="s1")
    assert "owned by stack 'p/a'" in info.value.message
    assert ops.shim_delete(ctx, "shim0", owner="p/b").deleted is False
    assert ctx.ipr.links[mine.index]["alias"] == "vlaninfra:p/a:s1"
    assert ops.shim_delete(ctx, "shim0", owner="p/a") == Deleted(True)


def test_shim_ensure_adopts_its_own_and_marks_a_legacy_link_state_recorded(ctx: Any) -> None:
    first = _shim(ctx, "shim0", "eth0", owner="p/a", spec="s1")
    again = _shim(ctx, "shim0", "eth0", owner="p/a", spec="s2")
    assert again.created is False and again.index == first.index
    assert ctx.ipr.links[first.index]["alias"] == "vlaninfra:p/a:s2"
    legacy = ctx.ipr.add_link("shim1", "macvlan", parent=2, mode="bridge")
    with pytest.raises(OpError):
        _shim(ctx, "shim1", "eth0", owner="p/a")
    out = _shim(ctx, "shim1", "eth0", owner="p/a", spec="s3", ifindex=legacy)
    assert out.index == legacy and ctx.ipr.links[legacy]["alias"] == "vlaninfra:p/a:s3"


def test_shim_ensure_leaves_other_protocols_routes_through_it(ctx: Any) -> None:
    out = _shim(ctx, "shim0", "eth0", routes=["192.0.2.128/26"])
    ctx.ipr.routes.append({"dst": "198.18.9.0", "dst_len": 24, "oif": out.index,
                           "family": socket.AF_INET, "proto": 12, "scope": 253})  # bird
    out = _shim(ctx, "shim0", "eth0", routes=[])
    assert [r["proto"] for r in ctx.ipr.routes] == [12]


def test_shim_ensure_removes_static_routes_only_on_a_legacy_shim(ctx: Any) -> None:
    static = {"dst": "198.18.9.0", "dst_len": 24, "family": socket.AF_INET, "proto": 4,
              "scope": 253}
    out = _shim(ctx, "shim0", "eth0", owner="p/a")
    ctx.ipr.routes.append({**static, "oif": out.index})  # added by hand: not ours
    _shim(ctx, "shim0", "eth0", owner="p/a", ifindex=out.index)
    assert [r["proto"] for r in ctx.ipr.routes] == [4]
    legacy = ctx.ipr.add_link("shim1", "macvlan", parent=2, mode=4)  # made before marks
    ctx.ipr.routes.append({**static, "oif": legacy})  # which it routed `proto static`
    _shim(ctx, "shim1", "eth0", owner="p/a", ifindex=legacy)
    assert [r["oif"] for r in ctx.ipr.routes] == [out.index]


def test_route_ensure_leaves_another_protocols_route_alone(ctx: Any) -> None:
    for proto in (4, 12, 186, 16):  # static by hand, bird, bgp, dhcp
        ctx.ipr.routes = [{"dst": "198.18.1.0", "dst_len": 24, "oif": 2,
                           "gateway": "192.0.2.9", "family": socket.AF_INET, "proto": proto,
                           "scope": 0}]
        with pytest.raises(OpError) as info:
            _route(ctx, "198.18.1.0/24", "192.0.2.21")
        assert info.value.code == errno.EEXIST
        assert f"owned by protocol {facts.RTPROT[proto]!r}" in info.value.message
        assert ops.route_delete(ctx, "198.18.1.0/24", "192.0.2.9") == Deleted(False)
        assert len(ctx.ipr.routes) == 1 and ctx.ipr.routes[0]["proto"] == proto


def test_route_ensure_claims_the_legacy_static_route_state_recorded(ctx: Any) -> None:
    ctx.ipr.routes = [{"dst": "198.18.1.0", "dst_len": 24, "oif": 2, "gateway": "192.0.2.9",
                       "family": socket.AF_INET, "proto": 4, "scope": 0}]
    out = _route(ctx, "198.18.1.0/24", "192.0.2.21", legacy_via="192.0.2.9")
    assert out.proto == "vlaninfra" and [r["gateway"] for r in ctx.ipr.routes] == [
        "192.0.2.21"]


def test_shim_ensure_claims_a_link_a_concurrent_creator_made(ctx: Any) -> None:
    ctx.ipr.race = {"kind": "macvlan", "parent": 2, "mode": 4}  # not ours: no alias
    with pytest.raises(OpError) as info:
        _shim(ctx, "shim0", "eth0", address="192.0.2.250/32", owner="p/a")
    assert info.value.code == errno.EEXIST and "not owned by vlaninfra" in info.value.message
    (link,) = [v for v in ctx.ipr.links.values() if v["name"] == "shim0"]
    assert link.get("alias") is None and link["flags"] == 0 and ctx.ipr.addrs == []
    ops.shim_delete(ctx, "shim0", ifindex=None)  # left alone: still there
    assert any(v["name"] == "shim0" for v in ctx.ipr.links.values())
    # this stack's own concurrent ensure: converged
    ctx.ipr.links = {i: v for i, v in ctx.ipr.links.items() if v["name"] != "shim0"}
    ctx.ipr.race = {"kind": "macvlan", "parent": 2, "mode": 4,
                    "alias": marks.alias("p/a", None)}
    out = _shim(ctx, "shim0", "eth0", address="192.0.2.250/32", owner="p/a")
    assert out.created is False and out.addresses == ("192.0.2.250/32",)


def test_vlan_delete_refuses_while_links_sit_on_it(ctx: Any) -> None:
    vlan = _vlan(ctx, "eth0", 50, "eth0.50", owner="p/a")
    shim = ctx.ipr.add_link("shim9", "macvlan", parent=vlan.index, mode=4)  # another's
    with pytest.raises(OpError) as info:
        ops.vlan_delete(ctx, "eth0.50", owner="p/a")
    assert info.value.code == errno.EBUSY and "shim9" in info.value.message
    assert vlan.index in ctx.ipr.links and shim in ctx.ipr.links
    del ctx.ipr.links[shim]
    assert ops.vlan_delete(ctx, "eth0.50", owner="p/a") == Deleted(True)


def test_guard_restore_adds_ipv6_addresses_without_dad_like_the_live_op(ctx: Any) -> None:
    from vlaninfra.host.restore import restore, snapshot_of

    owner = "vlaninfra/prod"
    live = _shim(ctx, "shim0", "eth0", address="192.0.2.250/24", owner=owner,
                           extra_addresses=["2001:db8:1::fa/64"], routes=["2001:db8:1::110/128"])
    nodad = {a: f for (i, a, _), f in ctx.ipr.addr_flags.items() if i == live.index}
    assert nodad == {"192.0.2.250": 0, "2001:db8:1::fa": 0x02}
    snap = snapshot_of(facts.read_links(ctx.ipr), facts.read_routes(ctx.ipr), owner)
    ops.shim_delete(ctx, "shim0", owner=owner)  # the change the guard was armed for
    out = restore(ctx.ipr, snap, owner)
    assert out["errors"] == [] and "created link shim0 (macvlan on eth0)" in out["done"]
    index = ctx.ipr._by_name("shim0")
    restored = {a: f for (i, a, _), f in ctx.ipr.addr_flags.items() if i == index}
    assert restored == nodad  # the IPv6 address is usable at once, not tentative for DAD
