"""Provider logic without a host: diffs, checks, reads and the dill round-trip into state."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import dill
import pytest
from pulumi.dynamic.dynamic import serialize_provider

from tests.hostkeys import fake_host_key
from vlaninfra.host.contract import (
    CONTAINER_INSPECT,
    CONTAINER_START,
    NETWORK_CONNECT,
    NETWORK_DISCONNECT,
    ContainerRef,
    Endpoint,
)
from vlaninfra.providers import (
    ContainerProvider,
    DockerHost,
    NetworkProvider,
    ProviderError,
    ShimProvider,
    _host,
)
from vlaninfra.transport import SshTarget

from . import typed_host
from .typed_host import TypedAgent

H1 = DockerHost("h1", "203.0.113.2", host_key=fake_host_key("test"))
"""Authenticated by ssh-agent: reaching it reads no key file (the typed stand-in answers)."""


def network(**over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "host": "h1",
        "connection": H1.connection(),
        "config_path": "sites.a.networks[0]",
        "name": "lan",
        "driver": "macvlan",
        "parent": "eth0",
        "mode": None,
        "flag": None,
        "ipam": [
            {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26"},
            {"subnet": "198.51.100.0/24"},
        ],
        "internal": False,
        "enable_ipv6": False,
        "labels": {},
    }
    props.update(over)
    return props


def container(**over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "host": "h1",
        "connection": H1.connection(),
        "config_path": "sites.a.containers[0]",
        "name": "web1",
        "image": "vlaninfra/busybox:lab",
        "command": None,
        "hostname": None,
        "labels": {},
        "network": "lan",
        "network_id": "n1",
        "ipv4": "192.0.2.130",
        "ipv6": None,
        "mac": "02:42:c0:00:02:82",
        "restart_policy": "unless-stopped",
        "running": True,
    }
    props.update(over)
    return props


def shim(**over: Any) -> dict[str, Any]:
    props: dict[str, Any] = {
        "host": "h1",
        "connection": H1.connection(),
        "config_path": "sites.a.networks[0].shim",
        "name": "vshim0",
        "parent": "eth0",
        "kind": "macvlan",
        "mode": None,
        "address": "192.0.2.250/32",
        "routes": ["192.0.2.130/32", "192.0.2.131"],
    }
    props.update(over)
    return props


@pytest.mark.parametrize("provider", [NetworkProvider(), ContainerProvider(), ShimProvider()])
def test_providers_survive_the_dill_round_trip_into_state(provider: Any) -> None:
    blob = serialize_provider(provider)
    back = dill.loads(base64.b64decode(blob))
    assert type(back) is type(provider)
    # Pickled by reference: the class path is public API, the pickle holds no code.
    assert type(provider).__module__.encode() in base64.b64decode(blob)
    assert back.REPLACE_KEYS == provider.REPLACE_KEYS


def test_network_ipam_order_and_spelling_make_no_diff() -> None:
    olds = network()
    news = network(ipam=list(reversed(olds["ipam"])), mode="bridge")
    result = NetworkProvider().diff("id", olds, news)
    assert result.changes is False
    assert result.replaces == []


def test_network_change_replaces_with_delete_first() -> None:
    result = NetworkProvider().diff("id", network(), network(mode="private"))
    assert result.changes is True
    assert result.replaces == ["mode"]
    assert result.delete_before_replace is True


def test_network_connection_change_is_an_update_not_a_replacement() -> None:
    moved = DockerHost("h1", "203.0.113.6", host_key=fake_host_key("test"), key_path="/k")
    result = NetworkProvider().diff("id", network(), network(connection=moved.connection()))
    assert result.changes is True
    assert result.replaces == []


def test_network_read_ignores_the_gateway_the_daemon_chose(agent: TypedAgent) -> None:
    wanted = network(ipam=[{"subnet": "192.0.2.0/24", "ip_range": "192.0.2.128/26"}])
    agent.responses["docker.network.inspect"] = {
        "id": "n1",
        "name": "lan",
        "driver": "macvlan",
        "options": {"parent": "eth0", "macvlan_mode": "bridge"},
        "ipam": [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1", "ip_range": "192.0.2.128/26"}],
        "internal": False,
        "enable_ipv6": False,
        "labels": {},
    }
    read = NetworkProvider().read("n1", wanted)
    assert read.id == "n1"
    assert read.inputs is None and read.outs is not None  # no drift: state's inputs stay
    assert NetworkProvider().diff("n1", read.outs, wanted).changes is False


def test_network_read_of_a_removed_network_reports_it_gone(agent: TypedAgent) -> None:
    agent.responses["docker.network.inspect"] = None
    assert NetworkProvider().read("n1", network()).id == ""


def test_check_asks_the_host_only_about_new_or_changed_objects(agent: TypedAgent) -> None:
    agent.responses["link.exists"] = False
    agent.responses["docker.network.inspect"] = None
    unchanged = NetworkProvider().check(network(), network())
    assert unchanged.failures == [] and agent.ops() == []
    created = NetworkProvider().check({}, network(parent="eth9"))
    assert [f.reason for f in created.failures] == [
        "sites.a.networks[0].parent: interface 'eth9' does not exist on host h1; "
        "name an existing NIC of that host"
    ]


def test_check_rejects_unknown_modes_without_asking_the_host(agent: TypedAgent) -> None:
    result = NetworkProvider().check({}, network(mode="l3"))
    assert [f.reason for f in result.failures] == [
        "sites.a.networks[0].mode: 'l3' is not one of bridge, private, vepa, passthru"
    ]
    assert agent.ops() == []


def test_container_new_address_replaces_only_the_container() -> None:
    result = ContainerProvider().diff("c", container(), container(ipv4="192.0.2.140"))
    assert result.replaces == ["ipv4"]


def test_container_restart_policy_is_updated_in_place() -> None:
    result = ContainerProvider().diff("c", container(), container(restart_policy="always"))
    assert result.changes is True and result.replaces == []


def test_container_move_to_another_network_is_connect_disconnect(agent: TypedAgent) -> None:
    news = container(network="lan2", network_id="n2", ipv4="198.51.100.130")
    assert ContainerProvider().diff("c", container(), news).replaces == []
    moved = typed_host.container(networks={"lan2": Endpoint(
        "n2", "198.51.100.130", None, "02:42:c0:00:02:82")})
    agent.serve(NETWORK_DISCONNECT, typed_host.container(networks={}))
    agent.serve(NETWORK_CONNECT, moved)
    agent.serve(CONTAINER_INSPECT, moved)
    out = ContainerProvider().update("c", container(), news).outs
    assert agent.ops() == [
        "docker.network.disconnect",
        "docker.network.connect",
        "docker.container.inspect",
    ]
    assert out is not None and out["ipv4_address"] == "198.51.100.130"


def test_container_stopped_by_hand_is_started_by_the_next_up(agent: TypedAgent) -> None:
    stopped = typed_host.container(running=False, labels={"from-image": "x"})
    agent.serve(CONTAINER_INSPECT, stopped)
    read = ContainerProvider().read("c", container())
    assert read.inputs is not None and read.inputs["running"] is False and read.outs is not None
    assert "container_id" not in read.inputs
    diff = ContainerProvider().diff("c", read.outs, container())  # the engine's olds: outputs
    assert diff.changes is True and diff.replaces == []
    agent.serve(CONTAINER_START, typed_host.container())
    ContainerProvider().update("c", read.outs, container())
    assert agent.args(CONTAINER_START) == [ContainerRef("web1", id="c")]


def test_shim_routes_are_compared_as_a_set_and_updated_in_place() -> None:
    same = ShimProvider().diff("s", shim(), shim(routes=["192.0.2.131/32", "192.0.2.130/32"]))
    assert same.changes is False
    moved = ShimProvider().diff("s", shim(), shim(address="192.0.2.251/32"))
    assert moved.changes is True and moved.replaces == []
    assert ShimProvider().diff("s", shim(), shim(name="vshim1")).replaces == ["name"]


def test_no_secret_in_properties_and_key_errors_name_the_file_not_the_key() -> None:
    conn = replace(H1, key_path="/nonexistent/key").connection()
    assert "private_key" not in str(conn).replace("key_path", "")
    with pytest.raises(ProviderError, match="cannot read the SSH private key file /nonexistent"):
        _host.target_of({"connection": conn})


def test_key_from_secret_config() -> None:
    h = DockerHost("h1", "203.0.113.2", host_key=fake_host_key("test"), key_config="sshKey")
    config = {"vlaninfra:sshKey": "PEM"}
    target = _host.target_of({"connection": h.connection()}, config.get)
    assert isinstance(target, SshTarget) and target.private_key == "PEM"
    assert "PEM" not in repr(target)
    with pytest.raises(ProviderError, match=r"pulumi config set --secret sshKey < KEYFILE"):
        _host.target_of({"connection": h.connection()}, lambda _key: None)


@pytest.mark.parametrize(("make", "key", "value", "reason"), [
    (lambda: container(), "ipv4", "10.0.0.300", "sites.a.containers[0].ipv4: '10.0.0.300' is "
                                                "not an IPv4 address"),
    (lambda: container(), "ipv4", "fd00::1", "is not an IPv4 address"),
    (lambda: container(), "ipv6", "fd00::zz", "sites.a.containers[0].ipv6: 'fd00::zz' is not "
                                              "an IPv6 address"),
    (lambda: container(), "mac", "zz:00", "sites.a.containers[0].mac: 'zz:00' is not a MAC "
                                          "address"),
    (lambda: network(), "ipam", [{"subnet": "192.0.2.0/33"}],
     "sites.a.networks[0].subnets[0].subnet: '192.0.2.0/33' is not a network"),
    (lambda: network(), "ipam", [{"subnet": "192.0.2.0/24", "gateway": "gw"}],
     "sites.a.networks[0].subnets[0].gateway: 'gw' is not an IP address"),
    (lambda: network(), "ipam", [{"gateway": "192.0.2.1"}],
     "sites.a.networks[0].subnets[0].subnet: missing"),
    (lambda: network(), "ipam", ["192.0.2.0/24"],
     "sites.a.networks[0].subnets[0]: '192.0.2.0/24' is not a pool (subnet, gateway, ip_range)"),
])
def test_addresses_that_do_not_parse_are_check_failures_naming_the_key(
        agent: TypedAgent, make: Any, key: str, value: object, reason: str) -> None:
    """What the typed API lets through (the layout checks its own): a check failure at
    preview, for a new resource and a changed one alike, never a ValueError traceback."""
    bad = {**make(), key: value}
    provider = ContainerProvider() if key in ("ipv4", "ipv6", "mac") else NetworkProvider()
    olds: dict[str, Any]
    for olds in ({}, make()):
        failures = provider.check(olds, bad).failures
        assert [f.property for f in failures] == [key] and reason in failures[0].reason
    assert agent.calls == []  # refused before any host is asked


def test_values_known_only_once_applied_are_compared_not_parsed(agent: TypedAgent) -> None:
    """A preview of a typed program whose address or subnet comes from another resource's
    output (unknown until applied): the update's check compares it as it is."""
    from vlaninfra.providers._host import UNKNOWN

    assert ContainerProvider().check(container(), {**container(), "ipv4": UNKNOWN}).failures == []
    pools = [{"subnet": UNKNOWN, "gateway": None}]
    assert NetworkProvider().check(network(), {**network(), "ipam": pools}).failures == []
