"""Netlink ops through a real agent (LocalTarget) in a throw-away network namespace."""

from __future__ import annotations

import errno
import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest

from tests.lab._agent_fixtures import netns, sh
from tests.typed_calls import call
from vlaninfra.transport import (
    Agent,
    HostError,
    LocalTarget,
    OutcomeUnknownError,
    agent_for,
    close_all,
    stats,
)

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def ns() -> Iterator[str]:
    with netns("nl") as name:
        try:
            yield name
        finally:
            close_all()


@pytest.fixture
def agent(ns: str) -> Iterator[Agent]:
    a = agent_for(LocalTarget(netns=ns))
    yield a
    a.call("shim.delete", name="shim0")


def _ip(ns: str, *args: str) -> str:
    return str(sh("ip", "-n", ns, *args).stdout)


def test_ping_runs_inside_the_namespace(agent: Agent, ns: str) -> None:
    info = agent.call("ping")
    assert info["pid"] != os.getpid()
    assert info["uid"] == 0
    assert agent.call("link.exists", name="eth0") is True
    assert agent.call("link.exists", name="nope0") is False
    assert agent.call("link.get", name="nope0") is None
    eth0 = agent.call("link.get", name="eth0")
    assert eth0["kind"] == "veth" and eth0["up"] is True and eth0["parent"] is None


def test_shim_ensure_creates_and_is_idempotent(agent: Agent, ns: str) -> None:
    before = agent.call("host.snapshot")
    first = call(agent, "shim.ensure", name="shim0", parent="eth0", kind="macvlan",
                       mode="bridge", address="192.0.2.250/32", routes=["192.0.2.128/26"])
    assert first["created"] is True
    assert (first["kind"], first["parent"], first["mode"], first["up"]) == (
        "macvlan", "eth0", "bridge", True)
    assert first["addresses"] == ["192.0.2.250/32"]
    assert first["routes"] == ["192.0.2.128/26"]
    assert "192.0.2.128/26 dev shim0 proto 57 scope link" in _ip(ns, "route")
    assert first["alias"] == "vlaninfra:adhoc:" and "alias vlaninfra:adhoc:" in _ip(
        ns, "-d", "link", "show", "shim0")
    snap1 = agent.call("host.snapshot")
    second = call(agent, "shim.ensure", name="shim0", parent="eth0", kind="macvlan",
                        mode="bridge", address="192.0.2.250/32", routes=["192.0.2.128/26"])
    assert second["created"] is False
    assert second["index"] == first["index"] and second["mac"] == first["mac"]
    assert agent.call("host.snapshot") == snap1
    assert call(agent, "shim.read", name="shim0") == {**second, "created": None} | {
        k: v for k, v in second.items() if k != "created"} or True
    read = call(agent, "shim.read", name="shim0")
    assert {k: v for k, v in second.items() if k != "created"} == read
    assert call(agent, "shim.delete", name="shim0") == {"deleted": True}
    assert call(agent, "shim.delete", name="shim0") == {"deleted": False}
    assert call(agent, "shim.read", name="shim0") is None
    assert agent.call("host.snapshot") == before


def test_shim_converges_address_and_routes(agent: Agent, ns: str) -> None:
    call(agent, "shim.ensure", name="shim0", parent="eth0", address="192.0.2.250/32",
               routes=["192.0.2.128/26", "198.18.0.0/24"])
    # drift by hand: an extra address, an extra static route, a missing route
    sh("ip", "-n", ns, "addr", "add", "192.0.2.249/32", "dev", "shim0")
    sh("ip", "-n", ns, "route", "add", "198.18.5.0/24", "dev", "shim0", "proto", "static")
    sh("ip", "-n", ns, "route", "del", "198.18.0.0/24", "dev", "shim0")
    assert call(agent, "shim.read", name="shim0")["routes"] == ["192.0.2.128/26",
                                                                "198.18.5.0/24"]
    out = call(agent, "shim.ensure", name="shim0", parent="eth0", address="192.0.2.251/24",
                     routes=["192.0.2.128/26", "198.18.0.0/24"])
    assert out["created"] is False
    assert out["addresses"] == ["192.0.2.251/24"]
    assert out["routes"] == ["192.0.2.128/26", "198.18.0.0/24"]
    routes = agent.call("route.list", dev="shim0")
    kernel = [r for r in routes if r["proto"] == "kernel"]
    assert kernel and kernel[0]["dst"] == "192.0.2.0/24"  # kernel routes are kept, flagged
    assert {r["dst"] for r in routes if r["proto"] == "vlaninfra"} == {"192.0.2.128/26",
                                                                       "198.18.0.0/24"}
    # shrinking the route set removes the extra one
    out = call(agent, "shim.ensure", name="shim0", parent="eth0", address="192.0.2.251/24",
                     routes=[])
    assert "routes" not in out  # none (a default is left out)


def test_shim_recreated_when_mode_differs(agent: Agent) -> None:
    first = call(agent, "shim.ensure", name="shim0", parent="eth0", mode="bridge",
                       address="192.0.2.250/32")
    second = call(agent, "shim.ensure", name="shim0", parent="eth0", mode="private",
                        address="192.0.2.250/32")
    assert second["created"] is True and second["mode"] == "private"
    assert second["index"] != first["index"]


def test_shim_ensure_rolls_back_when_a_route_fails(agent: Agent, ns: str) -> None:
    before = agent.call("host.snapshot")
    sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
    try:
        with pytest.raises(HostError) as info:
            call(agent, "shim.ensure", name="shim0", parent="eth0", address="192.0.2.250/32",
                       routes=["192.0.2.128/26", "2001:db8:1::/64"])
    finally:
        sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=0")
    assert info.value.op == "shim.ensure" and info.value.errno is not None
    assert agent.call("link.exists", name="shim0") is False
    assert agent.call("host.snapshot") == before


def test_bad_arguments_are_einval(agent: Agent) -> None:
    for args in ({"name": "x" * 16, "parent": "eth0"},
                 {"name": "shim0", "parent": "eth0", "mode": "l3"},
                 {"name": "shim0", "parent": "eth0", "routes": ["192.0.2.1/24"]},
                 {"name": "shim0", "parent": "eth0", "bogus": 1}):
        with pytest.raises(HostError) as info:
            call(agent, "shim.ensure", **args)
        assert info.value.errno == errno.EINVAL, args
    with pytest.raises(HostError) as info:
        call(agent, "shim.ensure", name="shim0", parent="nope0")
    assert info.value.errno == errno.ENODEV
    with pytest.raises(HostError) as info:
        agent.call("no.such.op")
    assert info.value.errno == errno.EOPNOTSUPP


def test_vlan_ops_converge_or_fail_cleanly(agent: Agent) -> None:
    before = agent.call("host.snapshot")
    try:
        out = call(agent, "vlan.ensure", trunk="eth0", vlan_id=50, name="eth0.50")
    except HostError as exc:  # this machine's kernel has no 802.1Q
        assert exc.errno in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOENT), exc
    else:  # a kernel with 802.1Q (VM hosts)
        assert (out["created"], out["kind"], out["vlan_id"], out["parent"]) == (
            True, "vlan", 50, "eth0")
        # A retried create finds its own mark: it stays vlaninfra's (removed on destroy).
        assert call(agent, "vlan.ensure", trunk="eth0", vlan_id=50, name="eth0.50")[
            "created"] is True
        assert call(agent, "vlan.delete", name="eth0.50") == {"deleted": True}
    assert call(agent, "vlan.delete", name="eth0.50") == {"deleted": False}
    kept = call(agent, "vlan.delete", name="eth0")  # not vlaninfra's: never deleted
    assert kept == {"deleted": False, "kept": "link 'eth0' is not owned by vlaninfra: left in "
                                              "place"}
    assert agent.call("host.snapshot") == before


def test_links_vlaninfra_did_not_make_are_never_touched(agent: Agent, ns: str) -> None:
    sh("ip", "-n", ns, "link", "add", "vxo1", "type", "veth", "peer", "name", "vxo1p")
    try:
        before = agent.call("host.snapshot")
        with pytest.raises(HostError) as info:
            call(agent, "shim.ensure", name="vxo1", parent="eth0", owner="p/a")
        assert info.value.errno == errno.EEXIST
        assert "link 'vxo1' exists and is not owned by vlaninfra (no vlaninfra alias)" in (
            info.value.message)
        kept = call(agent, "shim.delete", name="vxo1", owner="p/a")
        assert kept["deleted"] is False and "not owned by vlaninfra" in kept["kept"]
        # Another stack's shim: refused and kept the same way.
        call(agent, "shim.ensure", name="shim0", parent="eth0", owner="p/b", spec="s")
        with pytest.raises(HostError) as info:
            call(agent, "shim.ensure", name="shim0", parent="eth0", owner="p/a", mode="vepa")
        assert "owned by stack 'p/b'" in info.value.message
        assert call(agent, "shim.delete", name="shim0", owner="p/a")["deleted"] is False
        assert agent.call("link.get", name="shim0")["mode"] == "bridge"
        assert call(agent, "shim.delete", name="shim0", owner="p/b") == {"deleted": True}
        assert agent.call("host.snapshot") == before
    finally:
        sh("ip", "-n", ns, "link", "del", "vxo1", check=False)


def test_a_legacy_shim_state_recorded_is_claimed_and_marked(agent: Agent, ns: str) -> None:
    sh("ip", "-n", ns, "link", "add", "shim0", "link", "eth0", "type", "macvlan", "mode",
       "bridge")
    index = agent.call("link.get", name="shim0")["index"]
    with pytest.raises(HostError):
        call(agent, "shim.ensure", name="shim0", parent="eth0", owner="p/a")
    out = call(agent, "shim.ensure", name="shim0", parent="eth0", owner="p/a", spec="s1",
                     ifindex=index)
    assert out["index"] == index and out["alias"] == "vlaninfra:p/a:s1"
    assert call(agent, "shim.delete", name="shim0", owner="p/a") == {"deleted": True}


def test_routes_of_other_protocols_are_left_alone(agent: Agent, ns: str) -> None:
    sh("ip", "-n", ns, "addr", "add", "198.18.200.1/24", "dev", "eth0")
    try:
        sh("ip", "-n", ns, "route", "add", "198.18.7.0/24", "via", "198.18.200.9",
           "proto", "bird")
        before = _ip(ns, "route")
        with pytest.raises(HostError) as info:
            call(agent, "route.ensure", dst="198.18.7.0/24", via="198.18.200.21")
        assert info.value.errno == errno.EEXIST
        assert "owned by protocol 'bird'" in info.value.message
        assert call(agent, "route.delete", dst="198.18.7.0/24", via="198.18.200.9") == {
            "deleted": False}
        assert _ip(ns, "route") == before
        out = call(agent, "route.ensure", dst="198.18.8.0/24", via="198.18.200.21")
        assert out["proto"] == "vlaninfra" and "198.18.8.0/24 via 198.18.200.21 dev eth0 " \
            "proto 57" in _ip(ns, "route")
        # another next hop than the one recorded: another stack's (or a leftover), kept
        with pytest.raises(HostError) as info:
            call(agent, "route.ensure", dst="198.18.8.0/24", via="198.18.200.22")
        assert info.value.errno == errno.EEXIST and "via 198.18.200.21" in info.value.message
        moved = call(agent, "route.ensure", dst="198.18.8.0/24", via="198.18.200.22",
                           recorded_via="198.18.200.21")
        assert moved["created"] is True and moved["gateway"] == "198.18.200.22"
        assert call(agent, "route.delete", dst="198.18.8.0/24", via="198.18.200.22") == {
            "deleted": True}
    finally:
        sh("ip", "-n", ns, "addr", "del", "198.18.200.1/24", "dev", "eth0", check=False)


def test_batch(agent: Agent) -> None:
    out = agent.call("batch", calls=[
        {"op": "link.exists", "args": {"name": "eth0"}},
        {"op": "link.get", "args": {"name": "nope0"}},
        {"op": "route.list", "args": {"dev": "nope0"}},
    ])
    assert out[0] == {"ok": True, "result": True}
    assert out[1] == {"ok": True, "result": None}
    assert out[2]["ok"] is False and out[2]["error"]["errno"] == errno.ENODEV


def test_concurrent_calls_run_in_parallel(agent: Agent) -> None:
    agent.call("ping")
    results: list[object] = []
    start = time.monotonic()
    threads = [threading.Thread(target=lambda: results.append(
        agent.call("debug.sleep", seconds=1))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [1.0] * 8
    assert time.monotonic() - start < 4  # 8 one-second ops, not 8 seconds


def test_agent_death_mid_call_is_an_error_then_restarts(agent: Agent) -> None:
    pid = agent.call("ping")["pid"]
    starts = stats()["agent_starts"]
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            agent.call("debug.sleep", seconds=20)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=slow)
    began = time.monotonic()
    t.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    t.join(10)
    assert not t.is_alive()
    assert time.monotonic() - began < 10
    # The call was in flight: whether it ran is unknown, and the message says the agent exited.
    assert len(errors) == 1 and isinstance(errors[0], OutcomeUnknownError), errors
    assert errors[0].op == "debug.sleep" and "exited" in str(errors[0]), str(errors[0])
    assert agent.call("ping")["pid"] != pid
    assert stats()["agent_starts"] == starts + 1
