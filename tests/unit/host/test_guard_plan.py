"""The guard's restore plan (pure): what is deleted, created, left alone. The real thing on a
real namespace: tests/lab/test_guard.py."""

from __future__ import annotations

from typing import Any

from vlaninfra.host import marks
from vlaninfra.host.restore import plan_links, plan_routes, snapshot_of

OWNER = "vlaninfra/prod"


def link(name: str, kind: str = "macvlan", parent: str | None = "eth0", owner: str | None = OWNER,
         **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": kind, "parent": parent, "mode": "bridge" if kind == "macvlan"
            else None, "flag": None, "vlan_id": kw.pop("vlan_id", None), "mac": "02:00:00:00:00:01",
            "mtu": 1500, "up": True, "addresses": [], "index": 7,
            "alias": marks.alias(owner, "s") if owner else None, **kw}


def route(dst: str, dev: str | None = "shim0", gateway: str | None = None,
          proto: str = "vlaninfra") -> dict[str, Any]:
    return {"dst": dst, "gateway": gateway, "dev": dev, "scope": "link", "proto": proto,
            "metric": None}


def test_snapshot_keeps_only_the_owners_links_and_proto_57_routes() -> None:
    links = [link("eth0", "veth", None, None), link("shim0"), link("theirs", owner="x/y")]
    routes = [route("10.0.0.0/8", proto="kernel"), route("198.18.1.0/24")]
    snap = snapshot_of(links, routes, OWNER)
    assert [x["name"] for x in snap["links"]] == ["shim0"]
    assert "index" not in snap["links"][0]  # indexes change when a link is recreated
    assert snap["routes"] == [route("198.18.1.0/24")]


def test_matching_host_needs_nothing() -> None:
    want = [link("eth0.50", "vlan", vlan_id=50), link("shim0", parent="eth0.50")]
    assert plan_links(want, [link("eth0", "veth", None, None), *want], OWNER) == ([], [], [])


def test_new_links_of_the_change_go_shims_before_their_vlan_parent() -> None:
    have = [link("eth0", "veth", None, None), link("eth0.60", "vlan", vlan_id=60),
            link("shim1", parent="eth0.60"), link("shim0")]
    delete, create, skipped = plan_links([link("shim0")], have, OWNER)
    assert delete == ["shim1", "eth0.60"] and create == [] and skipped == []


def test_changed_shape_is_recreated_and_a_removed_vlan_parent_comes_first() -> None:
    want = [link("eth0.50", "vlan", vlan_id=50), link("shim0", parent="eth0.50")]
    have = [link("eth0", "veth", None, None), link("shim0", mode="private")]
    delete, create, _ = plan_links(want, have, OWNER)
    assert delete == ["shim0"]
    assert [w["name"] for w in create] == ["eth0.50", "shim0"]


def test_children_of_a_recreated_parent_are_recreated_too() -> None:
    want = [link("eth0.50", "vlan", vlan_id=50), link("shim0", parent="eth0.50")]
    have = [link("eth0.50", "vlan", vlan_id=51), link("shim0", parent="eth0.50")]
    delete, create, _ = plan_links(want, have, OWNER)
    assert delete == ["shim0", "eth0.50"]
    assert [w["name"] for w in create] == ["eth0.50", "shim0"]


def test_others_links_are_never_touched() -> None:
    want = [link("shim0")]
    have = [link("shim0", owner="other/stack"), link("hand0", owner=None),
            link("theirs1", owner="other/stack")]
    delete, create, skipped = plan_links(want, have, OWNER)
    assert delete == [] and create == []
    assert skipped == ["link 'shim0' is now owned by stack 'other/stack': left alone"]


def test_a_parent_carrying_a_link_that_stays_is_not_deleted() -> None:
    have = [link("eth0.60", "vlan", vlan_id=60), link("hand0", parent="eth0.60", owner=None)]
    delete, _, skipped = plan_links([], have, OWNER)
    assert delete == [] and skipped == ["link 'eth0.60' still carries hand0: not deleted"]


def test_routes_made_exact_other_protocols_ignored() -> None:
    want = [route("198.18.1.0/24"), route("198.18.9.0/24", None, "192.0.2.21")]
    have = [route("198.18.1.0/24"), route("198.18.2.0/24"), route("198.18.3.0/24", proto="bird"),
            route("198.18.9.0/24", None, "192.0.2.22")]
    delete, add = plan_routes(want, have)
    assert [r["dst"] for r in delete] == ["198.18.2.0/24", "198.18.9.0/24"]
    assert add == [route("198.18.9.0/24", None, "192.0.2.21")]
