"""VlanParent and RouterRoute provider logic without a host: ownership of 802.1Q parents,
route drift on refresh, replace-keys, checks naming the config key."""

from __future__ import annotations

import base64
import errno
from dataclasses import replace
from typing import Any

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from tests.hostkeys import fake_host_key
from vlaninfra.host.contract import (
    ROUTE_DELETE,
    ROUTE_ENSURE,
    ROUTE_READ,
    VLAN_DELETE,
    VLAN_ENSURE,
    VLAN_READ,
    Deleted,
    LinkDelete,
    RouteDelete,
    RouteEnsure,
    RouteSpec,
    RouteState,
)
from vlaninfra.providers import (
    DockerHost,
    ProviderError,
    RouterRouteProvider,
    VlanParentProvider,
)

from . import typed_host
from .typed_host import TypedAgent, link

H1 = DockerHost("h1", "203.0.113.2", host_key=fake_host_key("test"))
GW = DockerHost("gw", "203.0.113.1", host_key=fake_host_key("gw"))


def vlan(**over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "host": "h1",
        "connection": H1.connection(),
        "config_path": "sites.a.hosts.h1.parents",
        "name": "eth0.50",
        "trunk": "eth0",
        "vlan_id": 50,
    }
    props.update(over)
    return props


def route(**over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "host": "gw",
        "connection": GW.connection(),
        "config_path": "sites.a.routers[0]",
        "name": "198.18.1.0/24",
        "destination": "198.18.1.0/24",
        "via": "192.0.2.21",
        "dev": None,
    }
    props.update(over)
    return props




@pytest.mark.parametrize("provider", [VlanParentProvider(), RouterRouteProvider()])
def test_new_providers_survive_the_dill_round_trip(provider: Any) -> None:
    back = dill.loads(base64.b64decode(serialize_provider(provider)))
    assert type(back) is type(provider) and back.REPLACE_KEYS == provider.REPLACE_KEYS


# -- VlanParent ------------------------------------------------------------------------------


def test_vlan_created_by_vlaninfra_is_removed_on_delete(agent: TypedAgent) -> None:
    agent.serve(VLAN_ENSURE, link(created=True))
    agent.serve(VLAN_DELETE, Deleted(True))
    made = VlanParentProvider().create(vlan())
    assert made.id == "h1/eth0.50" and made.outs is not None and made.outs["created"] is True
    VlanParentProvider().delete(made.id, made.outs)
    # a delete always removes the boot file too (state may say persist: false)
    assert agent.args(VLAN_DELETE) == [LinkDelete("eth0.50", "adhoc", made.outs["ifindex"],
                                                  persist_owner="adhoc")]


def test_vlan_that_was_already_there_is_adopted_and_left_on_delete(agent: TypedAgent) -> None:
    agent.serve(VLAN_ENSURE, link(created=False))
    made = VlanParentProvider().create(vlan())
    assert made.outs is not None and made.outs["created"] is False
    VlanParentProvider().delete(made.id, made.outs)
    assert "vlan.delete" not in agent.ops()


def test_vlan_read_gone_keeps_ownership_and_id_change_replaces(agent: TypedAgent) -> None:
    agent.serve(VLAN_READ, None)
    assert VlanParentProvider().read("h1/eth0.50", vlan(created=True)).id == ""
    agent.serve(VLAN_READ, link(vlan_id=51))
    read = VlanParentProvider().read("h1/eth0.50", vlan(created=True))
    assert read.outs is not None and read.outs["created"] is True and read.inputs is not None
    assert "created" not in read.inputs and read.inputs["vlan_id"] == 51
    assert VlanParentProvider().diff("x", read.outs, vlan()).replaces == ["vlan_id"]
    agent.serve(VLAN_READ, link())
    same = VlanParentProvider().read("h1/eth0.50", vlan(created=False))
    assert same.inputs is None and same.outs is not None  # no drift: state's inputs stay
    assert VlanParentProvider().diff("x", same.outs, vlan()).changes is False


def test_vlan_id_arrives_as_the_engines_float(agent: TypedAgent) -> None:
    agent.responses["link.exists"] = True
    agent.responses["link.get"] = None
    assert VlanParentProvider().check({}, vlan(vlan_id=50.0)).failures == []
    agent.serve(VLAN_ENSURE, link(created=True))
    VlanParentProvider().create(vlan(vlan_id=50.0))
    assert type(agent.calls_to("vlan.ensure")[0]["spec"]["vlan_id"]) is int  # on the wire
    assert agent.args(VLAN_ENSURE)[0].spec.vlan_id == 50


def test_vlan_check_names_the_config_key(agent: TypedAgent) -> None:
    bad = VlanParentProvider().check({}, vlan(vlan_id=4095))
    assert [f.reason for f in bad.failures] == [
        "sites.a.hosts.h1.parents: VLAN id 4095 is not 1 to 4094"]
    agent.responses["link.exists"] = False
    agent.responses["link.get"] = None
    missing = VlanParentProvider().check({}, vlan(trunk="eth9", name="eth9.50"))
    assert [f.reason for f in missing.failures] == [
        "sites.a.hosts.h1.parents.trunk: interface 'eth9' does not exist on host h1; "
        "name an existing NIC of that host"]


# -- RouterRoute -----------------------------------------------------------------------------


def _found(via: str = "192.0.2.21") -> RouteState:
    return typed_host.route(gateway=via, proto="static")


def test_route_create_and_delete_call_the_router(agent: TypedAgent) -> None:
    agent.serve(ROUTE_ENSURE, replace(_found(), created=True))
    made = RouterRouteProvider().create(route())
    assert made.id == "gw/198.18.1.0/24"
    assert agent.args(ROUTE_ENSURE) == [RouteEnsure(RouteSpec("198.18.1.0/24", "192.0.2.21"))]
    agent.serve(ROUTE_DELETE, Deleted(False))  # already gone: tolerated
    assert made.outs is not None
    RouterRouteProvider().delete(made.id, made.outs)
    # The route it recorded is `proto static`: made before vlaninfra had its own protocol.
    assert agent.args(ROUTE_DELETE) == [RouteDelete("198.18.1.0/24", "192.0.2.21", legacy=True,
                                                    persist_owner="adhoc")]


def test_route_refresh_gone_and_drifted(agent: TypedAgent) -> None:
    agent.serve(ROUTE_READ, None)
    assert RouterRouteProvider().read("gw/198.18.1.0/24", route()).id == ""
    agent.serve(ROUTE_READ, _found(via="192.0.2.99"))
    read = RouterRouteProvider().read("gw/198.18.1.0/24", route())
    assert read.id == "gw/198.18.1.0/24" and read.inputs is not None and read.outs is not None
    assert read.inputs["via"] == "192.0.2.99"
    diff = RouterRouteProvider().diff("x", read.outs, route())
    assert diff.changes is True and diff.replaces == []  # a new next hop is an update
    agent.serve(ROUTE_READ, _found())
    same = RouterRouteProvider().read("gw/198.18.1.0/24", route())
    assert same.inputs is None and same.outs is not None
    assert RouterRouteProvider().diff("x", same.outs, route()).changes is False


def test_route_destination_is_the_replace_key() -> None:
    diff = RouterRouteProvider().diff("x", route(), route(destination="198.18.2.0/24"))
    assert diff.replaces == ["destination"]


def test_route_check_names_the_config_key(agent: TypedAgent) -> None:
    bad = RouterRouteProvider().check({}, route(via="2001:db8::1"))
    assert [f.reason for f in bad.failures] == [
        "sites.a.routers[0]: next hop 2001:db8::1 is not IPv4"]


def test_route_errors_name_router_and_prefix(agent: TypedAgent) -> None:
    agent.fail("route.ensure", errno.EEXIST, "198.18.1.0/24 is connected on this router")
    with pytest.raises(ProviderError,
                       match=r"route '198.18.1.0/24' \(sites.a.routers\[0\]\) on host gw "
                             r"\(203.0.113.1\)"):
        RouterRouteProvider().create(route())
