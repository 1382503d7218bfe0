"""What `deploy` declares for a plan, under Pulumi's mocks (no engine, no host): 802.1Q parents
before the networks and shims on them, shims only where the layout wants them, upstream routes
only on managed routers."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.hostkeys import fake_host_key
from vlaninfra.components import deploy
from vlaninfra.layout import load_config, plan
from vlaninfra.providers import DockerHost


class Mocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append((args.typ, args.name, dict(args.inputs)))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        return {}, []


HOST = DockerHost("v1", "203.0.113.9", host_key=fake_host_key("v1"), key_path="/k")
GW = DockerHost("gw", "203.0.113.1", host_key=fake_host_key("gw"), key_path="/k")


def _site(networks: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"sites": {"a": {
        "lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"},
        "routers": [{"name": "gw", "address": "192.0.2.1", "managed": True,
                     "ssh": {"address": "203.0.113.1", "host_key": fake_host_key("gw")}}],
        "hosts": [{"name": "v1", "ssh": {"address": "203.0.113.9"}, "lan_address": "192.0.2.21",
                   "parents": ["eth0"]}],
        "networks": networks, **extra}}}  # fmt: skip


def _declare(cfg: dict[str, Any]) -> Mocks:
    mocks = Mocks()
    pulumi.runtime.set_mocks(mocks, preview=False)
    the_plan = plan(load_config(cfg))

    @pulumi.runtime.test  # type: ignore[untyped-decorator]
    def run() -> None:
        deploy(the_plan, {("a", "v1"): HOST}, {("a", "gw"): GW})

    run()
    return mocks


def _types(mocks: Mocks) -> list[str]:
    """Type names of what was declared (registration order is not declaration order)."""
    return sorted(t.split(":")[-1] for t, _, _ in mocks.resources)


def test_macvlan_on_an_8021q_parent_gets_its_vlan_parent_and_shim() -> None:
    mocks = _declare(_site([{
        "name": "v50", "driver": "macvlan", "parent": "eth0.50", "hosts": ["v1"],
        "subnets": [{"subnet": "198.18.50.0/24"}],
        "shim": {"address_per_host": {"v1": "198.18.50.250"}}}]))  # fmt: skip
    assert _types(mocks) == ["DockerNetwork", "HostShim", "Site", "SiteNetwork", "SiteVlanParents",
                             "VlanParent"]
    vlan = next(i for t, _, i in mocks.resources if t.endswith("VlanParent"))
    assert (vlan["name"], vlan["trunk"], vlan["vlan_id"]) == ("eth0.50", "eth0", 50)


def test_ipvlan_l3_tenants_get_routes_on_the_managed_router_and_no_shim() -> None:
    mocks = _declare(_site(
        [{"name": "t3", "driver": "ipvlan", "mode": "l3", "parent": "eth0", "hosts": ["v1"]}],
        tenants=[{"name": "ta", "subnets": [{"subnet": "198.18.1.0/24", "network": "t3"}]},
                 {"name": "tb", "subnets": [{"subnet": "198.18.2.0/24", "network": "t3"}]}]))
    assert _types(mocks) == ["DockerNetwork", "RouterRoute", "RouterRoute", "Site", "SiteNetwork",
                             "UpstreamRoutes"]
    routes = sorted((i["destination"], i["via"], i["host"]) for t, _, i in mocks.resources
                    if t.endswith("RouterRoute"))
    assert routes == [("198.18.1.0/24", "192.0.2.21", "gw"), ("198.18.2.0/24", "192.0.2.21", "gw")]


def test_an_unmanaged_router_gets_nothing() -> None:
    cfg = _site(
        [{"name": "t3", "driver": "ipvlan", "mode": "l3", "parent": "eth0", "hosts": ["v1"]}],
        tenants=[{"name": "ta", "subnets": [{"subnet": "198.18.1.0/24", "network": "t3"}]}])
    cfg["sites"]["a"]["routers"][0]["managed"] = False
    assert "RouterRoute" not in _types(_declare(cfg))


@pytest.fixture(autouse=True)
def _reset_mocks() -> Any:
    yield
    pulumi.runtime.settings.reset_options()
