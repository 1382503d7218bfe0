"""The `lab` stack (the seed's macvlan + host shim recipe) through the real engine on the lab.

The tests run in file order on one stack: each starts from what the previous one left.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.e2e.observe import LabStack, container_facts, docker, sh
from vlaninfra.lab import http_ok
from vlaninfra.transport.testing import stop_brokers

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SHIM = "macvlan-shim"


def facts(stack: LabStack) -> dict[str, dict[str, Any]]:
    """Id, IP and MAC of every container on every host, by `host/name`."""
    return {
        f"{h.name}/{name}": container_facts(h, name)
        for h in stack.hosts
        for name in docker(h, "ps", "-a", "--format", "{{.Names}}").split()
    }


@pytest.fixture(scope="module")
def baseline(lab_stack: LabStack) -> dict[str, Any]:
    """Every host's state before the first `up`."""
    return lab_stack.state()


def test_up_from_empty_peer_and_hosts_reach_the_containers(
    lab_stack: LabStack, baseline: dict[str, Any]
) -> None:
    stop_brokers()
    before = lab_stack.logins()
    changes = lab_stack.changes("up", "--yes")
    after = lab_stack.logins()
    # stack + site root + 1 component + per host: network, shim, 2 containers
    assert changes == {"create": 3 + 2 * 4}
    # One connection per host for both engine phases (the connection broker): never per resource.
    assert {h: after[h] - before[h] for h in after} == {"h1": 1, "h2": 1}
    found = facts(lab_stack)
    assert sorted(found) == ["h1/web1", "h1/web2", "h2/web3", "h2/web4"]
    for key, fact in found.items():
        host = lab_stack.host(key.split("/")[0])
        assert http_ok(lab_stack.peer_netns, fact["ip"]), f"peer cannot reach {key}"
        assert http_ok(host.netns, fact["ip"]), f"{host.name} cannot reach {key} through its shim"


def test_without_the_shim_a_host_cannot_reach_its_containers(lab_stack: LabStack) -> None:
    h1 = lab_stack.host("h1")
    ip = container_facts(h1, "web1")["ip"]
    sh("ip", "-n", h1.netns, "link", "del", SHIM)
    try:
        assert not http_ok(h1.netns, ip)
        assert http_ok(lab_stack.peer_netns, ip)  # the LAN still reaches it
    finally:
        # Drift repair is the next test's business; here only prove the gotcha.
        assert lab_stack.changes("up", "--yes", "--refresh", "--skip-preview") == {
            "create": 1,
            "same": 10,
        }
    assert http_ok(h1.netns, ip)


def test_second_up_changes_nothing_and_contacts_no_host(lab_stack: LabStack) -> None:
    before = lab_stack.logins()
    assert lab_stack.changes("up", "--yes") == {"same": 11}
    # Nothing to create or change: no host is contacted (drift is refresh's job).
    assert lab_stack.logins() == before


def inputs(stack: LabStack) -> dict[str, Any]:
    """Every resource's inputs and modification time in the stack's state, by URN (secrets
    in plain text: their ciphertext changes with every write)."""
    state = json.loads(stack.run("stack", "export", "--show-secrets"))["deployment"]
    return {r["urn"]: (r.get("inputs"), r.get("modified")) for r in state["resources"]}


def test_refresh_opens_one_connection_per_host(lab_stack: LabStack) -> None:
    stop_brokers()  # an earlier command's brokers would serve it without a login
    before, kept = lab_stack.logins(), inputs(lab_stack)
    assert lab_stack.changes("refresh", "--yes", "--skip-preview") == {"same": 11}
    after = lab_stack.logins()
    assert {h: after[h] - before[h] for h in after} == {"h1": 1, "h2": 1}
    # Finding no drift, it leaves each resource's inputs as the program gave them and its
    # modification time as it was: an `up --refresh` has no state to write.
    assert inputs(lab_stack) == kept


def test_refresh_sees_drift_and_up_repairs_it(lab_stack: LabStack) -> None:
    h1, h2 = lab_stack.host("h1"), lab_stack.host("h2")
    routes = sh("ip", "-n", h2.netns, "route", "show", "dev", SHIM, "proto", "57").split("\n")
    dropped = routes[0].split()[0]
    sh("ip", "-n", h2.netns, "route", "del", dropped, "dev", SHIM)
    sh("ip", "-n", h1.netns, "link", "del", SHIM)
    docker(h2, "rm", "-f", "web4")

    # refresh: shim h1 and container web4 are gone, shim h2 lost a route
    assert lab_stack.changes("refresh", "--yes", "--skip-preview") == {
        "delete": 2,
        "update": 1,
        "same": 8,
    }
    assert lab_stack.changes("up", "--yes") == {"create": 2, "update": 1, "same": 8}
    assert dropped in sh("ip", "-n", h2.netns, "route", "show", "dev", SHIM)
    for key, fact in facts(lab_stack).items():
        host = lab_stack.host(key.split("/")[0])
        assert http_ok(host.netns, fact["ip"]), f"{key} not reachable from its host after repair"
    assert lab_stack.changes("up", "--yes") == {"same": 11}


def test_adding_a_container_creates_only_it(lab_stack: LabStack) -> None:
    before = facts(lab_stack)
    sites = lab_stack.sites()
    sites["a"]["containers"].append(
        {"name": "web5", "host": "h1", "network": "pub_net", "image": "vlaninfra/busybox:lab"}
    )
    lab_stack.write(sites)
    # the new container, and h1's shim gets its /32 route
    assert lab_stack.changes("up", "--yes") == {"create": 1, "update": 1, "same": 10}
    after = facts(lab_stack)
    assert {k: v for k, v in after.items() if k != "h1/web5"} == before
    assert http_ok(lab_stack.peer_netns, after["h1/web5"]["ip"])
    assert http_ok(lab_stack.host("h1").netns, after["h1/web5"]["ip"])


def test_changing_a_container_ip_replaces_only_that_container(lab_stack: LabStack) -> None:
    h1 = lab_stack.host("h1")
    network_before = docker(h1, "network", "inspect", "-f", "{{.Id}}", "pub_net").strip()
    before = facts(lab_stack)
    sites = lab_stack.sites()
    sites["a"]["containers"].append(
        {
            "name": "web5",
            "host": "h1",
            "network": "pub_net",
            "image": "vlaninfra/busybox:lab",
            "ipv4": "198.51.100.170",
        }
    )
    lab_stack.write(sites)
    preview_state = lab_stack.state()
    out = lab_stack.run("preview", "--diff")
    assert "replace" in out
    assert lab_stack.state() == preview_state, "preview changed a host"
    assert lab_stack.changes("up", "--yes") == {"replace": 1, "update": 1, "same": 10}
    after = facts(lab_stack)
    assert after["h1/web5"]["ip"] == "198.51.100.170"
    assert after["h1/web5"]["id"] != before["h1/web5"]["id"]
    assert {k: v for k, v in after.items() if k != "h1/web5"} == {
        k: v for k, v in before.items() if k != "h1/web5"
    }
    assert docker(h1, "network", "inspect", "-f", "{{.Id}}", "pub_net").strip() == network_before
    assert http_ok(h1.netns, "198.51.100.170")


BAD_INPUTS = [
    (
        "container ip outside the subnet",
        lambda s: s["a"]["containers"][0].update(ipv4="198.18.99.7"),
        "sites.a.containers[0].ipv4",
    ),
    (
        "address used twice",
        lambda s: (
            s["a"]["containers"][0].update(ipv4="198.51.100.140"),
            s["a"]["containers"][1].update(ipv4="198.51.100.140"),
        ),
        "sites.a.containers[1].ipv4",
    ),
    (
        "container on the shim address",
        lambda s: s["a"]["containers"][0].update(ipv4="198.51.100.250"),
        "sites.a.networks[0].shim.address_per_host.h1: already taken by container web1",
    ),
    (
        "container on the gateway",
        lambda s: s["a"]["containers"][0].update(ipv4="198.51.100.1"),
        "sites.a.containers[0].ipv4",
    ),
    (
        "gateway outside the subnet",
        lambda s: s["a"]["networks"][0]["subnets"][0].update(gateway="198.18.99.1"),
        "sites.a.networks[0].subnets[0].gateway",
    ),
]


@pytest.mark.parametrize(("why", "mutate", "key"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_fails_in_preview_naming_the_key_and_touches_nothing(
    lab_stack: LabStack, why: str, mutate: Any, key: str
) -> None:
    sites = lab_stack.sites()
    mutate(sites)
    lab_stack.write(sites)
    before_state, before_logins = lab_stack.state(), lab_stack.logins()
    try:
        out = lab_stack.run("preview", check=False)
        assert key in out, out
        assert "error" in out.lower()
        out = lab_stack.run("up", "--yes", check=False)
        assert key in out, out
    finally:
        lab_stack.write(lab_stack.base_sites)
    assert lab_stack.state() == before_state
    assert lab_stack.logins() == before_logins, "a bad layout must not even connect"


def test_a_parent_nic_missing_on_a_host_fails_in_preview(lab_stack: LabStack) -> None:
    sites = lab_stack.sites()
    # The layout allows it (h2 says it has eth9); the host itself does not have it.
    sites["a"]["hosts"][1]["parents"] = ["eth9"]
    sites["a"]["networks"][0]["parent_per_host"] = {"h2": "eth9"}
    lab_stack.write(sites)
    before_state = lab_stack.state()
    try:
        out = lab_stack.run("up", "--yes", check=False)
    finally:
        lab_stack.write(lab_stack.base_sites)
    assert "interface 'eth9' does not exist on host h2" in out, out
    assert "sites.a.networks" in out
    assert lab_stack.state() == before_state


def test_a_network_change_replaces_the_network_and_restores_its_containers(
    lab_stack: LabStack,
) -> None:
    lab_stack.write(lab_stack.base_sites)
    assert lab_stack.changes("up", "--yes") == {"delete": 1, "update": 1, "same": 10}  # web5
    h1 = lab_stack.host("h1")
    before = facts(lab_stack)
    network_before = docker(h1, "network", "inspect", "-f", "{{.Id}}", "pub_net").strip()
    sites = lab_stack.sites()
    # A new reservation (a printer outside the ip-range): Docker has no network update.
    sites["a"]["networks"][0]["subnets"][0]["aux_addresses"] = {"printer": "198.51.100.240"}
    lab_stack.write(sites)
    try:
        preview = lab_stack.run("preview", "--diff")
        # The preview names the collateral: every container on the network is replaced too.
        for name in ("web1", "web2", "web3", "web4"):
            assert f"a-{'h1' if name in ('web1', 'web2') else 'h2'}-{name}" in preview
        changes = lab_stack.changes("up", "--yes")
    finally:
        lab_stack.write(lab_stack.base_sites)
    assert changes == {"replace": 6, "same": 5}  # 2 networks + 4 containers; shims untouched
    after = facts(lab_stack)
    assert docker(h1, "network", "inspect", "-f", "{{.Id}}", "pub_net").strip() != network_before
    assert {k: (v["ip"], v["mac"]) for k, v in after.items()} == {
        k: (v["ip"], v["mac"]) for k, v in before.items()
    }
    for key, fact in after.items():
        assert http_ok(lab_stack.peer_netns, fact["ip"]), f"{key} not reachable after the change"
    assert lab_stack.changes("up", "--yes") == {"replace": 6, "same": 5}


def test_destroy_returns_every_host_to_its_state_before_the_first_up(
    lab_stack: LabStack, baseline: dict[str, Any]
) -> None:
    lab_stack.write(lab_stack.base_sites)
    changes = lab_stack.changes("destroy", "--yes")
    assert set(changes) == {"delete"}
    after = lab_stack.state()
    for host, state in baseline.items():
        for part, value in state.items():
            assert after[host][part] == value, f"{host} {part} differs after destroy"
