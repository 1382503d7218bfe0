"""What a refresh hands the engine as a resource's inputs. The engine writes the whole state
file for a same step whose inputs changed, so a read that finds the object as state has it
gives no inputs (the engine keeps state's own); one that finds drift gives the inputs as found,
never the outputs the provider adds (ids, what the host picked)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit.providers import typed_host
from tests.unit.providers.test_persist_providers import _shim_link
from tests.unit.providers.test_providers import container, network, shim
from tests.unit.providers.test_vlan_route_providers import route, vlan
from vlaninfra.host.contract import (
    CONTAINER_CREATE,
    CONTAINER_INSPECT,
    NETWORK_CREATE,
    NETWORK_INSPECT,
    ROUTE_ENSURE,
    ROUTE_READ,
    SHIM_ENSURE,
    SHIM_READ,
    VLAN_ENSURE,
    VLAN_READ,
    IpamPool,
    NetworkState,
)
from vlaninfra.providers import (
    ContainerProvider,
    NetworkProvider,
    RouterRouteProvider,
    ShimProvider,
    VlanParentProvider,
)

from .typed_host import TypedAgent

_NETWORK = NetworkState(
    id="n1", name="lan", driver="macvlan", parent="eth0", mode="bridge", flag=None,
    ipam=(IpamPool("192.0.2.0/24", "192.0.2.1", "192.0.2.128/26"), IpamPool("198.51.100.0/24")),
    internal=False, enable_ipv6=False, labels={}, containers=())
# network.inspect answers in the daemon's form
_INSPECT = {"id": "n1", "name": "lan", "driver": "macvlan",
            "options": {"parent": "eth0", "macvlan_mode": "bridge"},
            "ipam": [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
                      "ip_range": "192.0.2.128/26"}, {"subnet": "198.51.100.0/24"}],
            "internal": False, "enable_ipv6": False, "labels": {}}

CASES: list[tuple[Any, dict[str, Any], list[tuple[Any, Any]], tuple[Any, Any, str, object]]] = [
    (ContainerProvider(), container(),
     [(CONTAINER_CREATE, typed_host.container()), (CONTAINER_INSPECT, typed_host.container())],
     (CONTAINER_INSPECT, typed_host.container(running=False), "running", False)),
    (NetworkProvider(), {**network(), "lan_addresses": [
        {"key": "ipv4", "address": "192.0.2.130", "device": "eth0", "name": "web1"}]},
     [(NETWORK_CREATE, _NETWORK), (NETWORK_INSPECT, _INSPECT)],
     (NETWORK_INSPECT, {**_INSPECT, "internal": True}, "internal", True)),
    # the program's routes in layout order, the host's sorted
    (ShimProvider(), {**shim(routes=["192.0.2.131/32", "192.0.2.130/32"]), "persist": True},
     [(SHIM_ENSURE, _shim_link()), (SHIM_READ, replace(_shim_link(), persisted="ok"))],
     (SHIM_READ, replace(_shim_link(), routes=("192.0.2.130/32",), persisted="ok"), "routes",
      ["192.0.2.130/32"])),
    (VlanParentProvider(), {**vlan(), "persist": True},
     [(VLAN_ENSURE, typed_host.link(created=True)), (VLAN_READ, typed_host.link(persisted="ok"))],
     (VLAN_READ, typed_host.link(vlan_id=51, persisted="ok"), "vlan_id", 51)),
    (RouterRouteProvider(), {**route(), "persist": True},
     [(ROUTE_ENSURE, typed_host.route()), (ROUTE_READ, typed_host.route(persisted="ok"))],
     (ROUTE_READ, typed_host.route(gateway="192.0.2.99", persisted="ok"), "via", "192.0.2.99")),
]


def serve(agent: TypedAgent, op: Any, answer: Any) -> None:
    if isinstance(answer, dict):
        agent.responses[op.name] = answer
    else:
        agent.serve(op, answer)


@pytest.mark.parametrize("provider,props,serves,drift", CASES,
                         ids=[type(c[0]).__name__ for c in CASES])
def test_a_read_gives_inputs_only_for_drift_and_never_the_outputs(
    agent: TypedAgent, provider: Any, props: dict[str, Any], serves: list[tuple[Any, Any]],
    drift: tuple[Any, Any, str, object],
) -> None:
    for op, answer in serves:
        serve(agent, op, answer)
    made = provider.create(props)
    assert set(made.outs) - set(props) == provider.OUTPUT_KEYS
    read = provider.read(made.id, made.outs)
    assert read.inputs is None and read.outs == made.outs
    # A change the provider takes as none (the config key moved: a container added above it)
    # leaves the outputs as they were made; the read still finds no drift.
    moved = {**made.outs, "config_path": "sites.a.elsewhere[9]"}
    assert provider.read(made.id, moved).inputs is None
    op, answer, key, value = drift
    serve(agent, op, answer)
    drifted = provider.read(made.id, made.outs)
    assert drifted.inputs is not None and drifted.inputs[key] == value
    assert set(drifted.inputs) == set(props)
    assert set(drifted.outs) - set(props) == provider.OUTPUT_KEYS
    assert provider.diff("x", drifted.outs, props).changes is True


def test_a_shim_with_two_ipv4_addresses_and_not_its_own_is_drift_the_next_up_repairs(
    agent: TypedAgent,
) -> None:
    props = {**shim(), "persist": True}
    agent.serve(SHIM_READ, replace(_shim_link(), addresses=("192.0.2.7/24", "192.0.2.8/24"),
                                   persisted="ok"))
    read = ShimProvider().read("h1/vshim0", props)
    assert read.inputs is not None and read.outs is not None
    assert read.inputs["address"] is None  # none of them is the shim's: what is there is listed
    assert read.inputs["extra_addresses"] == ["192.0.2.7/24", "192.0.2.8/24"]
    # the refresh's diff and the next `up`'s read these outputs back
    assert ShimProvider().diff("x", read.outs, props).changes is True
