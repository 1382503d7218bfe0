"""The `persist` input of shims, 802.1Q parents and router routes: set by `check`, passed to the
host as `persist_owner` with every change, and read back as drift when the host's boot file is
missing or would not re-create the object (the next `up` is an update that writes it)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.providers.test_providers import shim
from tests.unit.providers.test_vlan_route_providers import route, vlan
from vlaninfra.host.contract import (
    ROUTE_DELETE,
    ROUTE_ENSURE,
    ROUTE_READ,
    SHIM_DELETE,
    SHIM_ENSURE,
    SHIM_READ,
    VLAN_ENSURE,
    VLAN_READ,
    Deleted,
    LinkState,
)
from vlaninfra.providers import RouterRouteProvider, ShimProvider, VlanParentProvider

from . import typed_host
from .typed_host import TypedAgent, link

OWNER = "vlaninfra/prod"


def _shim_link() -> LinkState:
    return link("vshim0", kind="macvlan", mode="bridge", vlan_id=None,
                addresses=("192.0.2.250/32",), routes=("192.0.2.130/32", "192.0.2.131/32"),
                index=9)


@pytest.mark.parametrize("provider,props", [
    (ShimProvider(), shim()), (VlanParentProvider(), vlan()), (RouterRouteProvider(), route()),
])
def test_check_asks_for_persistence_without_changing_the_mark(
    agent: TypedAgent, provider: Any, props: dict[str, Any]
) -> None:
    agent.responses.update({"link.exists": True, "link.get": None, "route.get": None})
    news = provider.check({}, props).inputs
    assert news["persist"] is True
    # the spec hash (in the link alias) is the one objects made before carry
    assert provider.spec(news) == provider.spec(props)


def test_a_namespace_host_on_the_local_transport_keeps_no_boot_file(agent: TypedAgent) -> None:
    # it shares this machine's filesystem: its file would re-create the shim in the machine's
    # own namespace at boot
    props = {**shim(), "connection": {"kind": "local", "netns": "ns1", "python": "python3",
                                      "docker_socket": "/run/ns1/docker.sock", "sudo": False}}
    agent.responses.update({"link.exists": True, "link.get": None})
    news = ShimProvider().check({}, props).inputs
    assert news["persist"] is False
    agent.serve(SHIM_DELETE, Deleted(True))
    ShimProvider().delete("h1/vshim0", news)
    assert agent.args(SHIM_DELETE)[0].persist_owner is None


def test_shim_changes_and_reads_carry_the_owner(agent: TypedAgent) -> None:
    props = {**shim(), "persist": True, "owner": OWNER}
    agent.serve(SHIM_ENSURE, _shim_link())
    ShimProvider().create(props)
    assert agent.args(SHIM_ENSURE)[0].persist_owner == OWNER
    agent.serve(SHIM_READ, replace(_shim_link(), persisted="missing"))
    read = ShimProvider().read("h1/vshim0", props)
    assert read.inputs is not None and read.inputs["persist"] is False
    assert agent.args(SHIM_READ)[0].persist_owner == OWNER
    assert read.outs is not None
    diff = ShimProvider().diff("s", read.outs, props)
    assert diff.changes is True and diff.replaces == []  # an update writes it back
    agent.serve(SHIM_READ, replace(_shim_link(), persisted="ok"))
    same = ShimProvider().read("h1/vshim0", props)
    assert same.inputs is None and same.outs is not None  # no drift: state's inputs stay
    assert ShimProvider().diff("s", same.outs, props).changes is False
    agent.serve(SHIM_DELETE, Deleted(True))
    ShimProvider().delete("h1/vshim0", props)
    assert agent.args(SHIM_DELETE)[0].persist_owner == OWNER


def test_state_from_before_persistence_updates_once(agent: TypedAgent) -> None:
    old = shim()  # no `persist`: made by an earlier version
    agent.responses.update({"link.exists": True, "link.get": None})
    news = ShimProvider().check(old, shim()).inputs
    assert ShimProvider().diff("s", old, news).changes is True
    agent.serve(SHIM_READ, _shim_link())
    read = ShimProvider().read("h1/vshim0", old)
    assert agent.args(SHIM_READ)[0].persist_owner is None
    assert read.inputs is None  # no boot file, none in state: the refresh changes nothing


def test_vlan_parent_is_kept_only_when_vlaninfra_made_it(agent: TypedAgent) -> None:
    mine = {**vlan(), "persist": True, "owner": OWNER, "created": True}
    agent.serve(VLAN_READ, link(persisted="altered"))
    read = VlanParentProvider().read("h1/eth0.50", mine)
    assert read.inputs is not None and read.inputs["persist"] is False
    agent.serve(VLAN_ENSURE, link(created=True))
    assert read.outs is not None
    VlanParentProvider().update("h1/eth0.50", read.outs, mine)
    assert agent.args(VLAN_ENSURE)[0].persist_owner == OWNER
    found = {**mine, "created": False}
    agent.serve(VLAN_READ, link())
    read = VlanParentProvider().read("h1/eth0.50", found)
    assert agent.args(VLAN_READ)[-1].persist_owner is None
    assert read.inputs is None  # an adopted link keeps the `persist` state has
    VlanParentProvider().update("h1/eth0.50", found, found)
    assert len(agent.calls_to("vlan.ensure")) == 1  # a link found there is never touched


def test_route_changes_and_reads_carry_the_owner(agent: TypedAgent) -> None:
    props = {**route(), "persist": True, "owner": OWNER}
    agent.serve(ROUTE_ENSURE, typed_host.route())
    RouterRouteProvider().create(props)
    assert agent.args(ROUTE_ENSURE)[0].persist_owner == OWNER
    agent.serve(ROUTE_READ, typed_host.route(persisted="missing"))
    read = RouterRouteProvider().read("gw/198.18.1.0/24", props)
    assert read.inputs is not None and read.inputs["persist"] is False
    agent.serve(ROUTE_DELETE, Deleted(True))
    RouterRouteProvider().delete("gw/198.18.1.0/24", props)
    assert agent.args(ROUTE_DELETE)[0].persist_owner == OWNER
