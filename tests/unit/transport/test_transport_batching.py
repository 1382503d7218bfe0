"""Reads batched per host, checks answered from one snapshot per host (fake channels)."""

from __future__ import annotations

import threading
from typing import Any

from tests.unit.transport.fakes import FakeChannel
from tests.unit.transport.test_transport_bounds import FakeConnector
from vlaninfra.host import protocol
from vlaninfra.transport import HostError, LocalTarget, checking
from vlaninfra.transport._agent import Agent
from vlaninfra.transport._facts import answer

FACTS: dict[str, Any] = {
    "links": {"eth0": {"name": "eth0", "alias": None}, "shim": {"name": "shim", "alias": "x"}},
    "routes": [{"dst": "198.18.0.5/32", "metric": 100, "dev": "shim"},
               {"dst": "198.18.0.5/32", "metric": None, "dev": "eth0"}],
    "images": ["busybox:lab", "sha256:abc"],
    "networks": {"lan": {"name": "lan"}},
    "containers": {"web": {"name": "web"}},
}


class Host:
    """A fake agent: answers ``check.facts`` from FACTS, every read with its op and args,
    a batch entry by entry; records the ops of every request it got."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.requests: list[str] = []
        self.gate = gate

    def one(self, op: str, args: dict[str, Any]) -> Any:
        if op == "check.facts":
            return FACTS
        if op == "docker.image.exists":
            return args["name"] == "late:1"
        if op == "link.exists":
            return False
        return {"op": op, **args}

    def __call__(self, ch: FakeChannel) -> None:
        for req in ch.requests():
            op, args = req["op"], req["args"]
            self.requests.append(op)
            if op == "hello":
                result: Any = {"pid": 1}
            elif op == "batch":
                if self.gate is not None:
                    self.gate.wait(5)
                result = []
                for c in args["calls"]:
                    if c["op"] == "docker.container.inspect" and c["args"]["name"] == "bad":
                        result.append({"ok": False, "error": {"errno": 2, "message": "gone"}})
                    else:
                        result.append({"ok": True, "result": self.one(c["op"], c["args"])})
            else:
                if self.gate is not None and op != "check.facts":
                    self.gate.wait(5)
                result = self.one(op, args)
            ch.out.put(protocol.encode(protocol.success(req["id"], result)))


def agent_on(host: Host) -> tuple[Agent, FakeConnector]:
    conn = FakeConnector(FakeChannel(host))
    return Agent(LocalTarget(), conn), conn


def test_snapshot_answers_only_what_staleness_cannot_make_wrong() -> None:
    assert answer(FACTS, "link.exists", {"name": "eth0"}) == (True, True)
    assert answer(FACTS, "link.exists", {"name": "eth9"}) == (False, None)  # asked live
    assert answer(FACTS, "docker.image.exists", {"name": "busybox:lab"}) == (True, True)
    assert answer(FACTS, "docker.image.exists", {"name": "nope:1"}) == (False, None)
    assert answer(FACTS, "link.get", {"name": "shim"}) == (True, FACTS["links"]["shim"])
    assert answer(FACTS, "link.get", {"name": "other"}) == (True, None)
    assert answer(FACTS, "docker.container.inspect", {"name": "web"}) == (True, {"name": "web"})
    assert answer(FACTS, "docker.network.inspect", {"name": "x"}) == (True, None)
    # route.get: exactly that destination, lowest metric first (as the host answers)
    assert answer(FACTS, "route.get", {"dst": "198.18.0.5/32"})[1]["dev"] == "eth0"
    assert answer(FACTS, "route.get", {"dst": "198.18.0.6"}) == (True, None)
    assert answer(FACTS, "route.get", {"dst": "198.18.0.5/24"}) == (False, None)  # EINVAL live
    assert answer(FACTS, "shim.read", {"name": "shim"}) == (False, None)
    no_docker = {**FACTS, "images": None, "networks": None, "containers": None}
    assert answer(no_docker, "docker.container.inspect", {"name": "web"}) == (False, None)


def test_checks_take_one_snapshot_per_host_and_ask_the_host_only_for_what_it_lacks() -> None:
    host = Host()
    agent, _ = agent_on(host)
    with checking():
        assert agent.call("docker.image.exists", name="busybox:lab") is True
        assert agent.call("docker.container.inspect", name="new") is None
        assert agent.call("route.get", dst="198.18.0.9/32") is None
        assert agent.call("link.exists", name="eth0") is True
        assert agent.call("docker.image.exists", name="late:1") is True  # missing: asked
    assert host.requests == ["hello", "check.facts", "docker.image.exists"]
    # outside a check every call goes to the host, as before
    assert agent.call("docker.container.inspect", name="web") == {
        "op": "docker.container.inspect", "name": "web"}
    agent.close()


def test_concurrent_reads_share_round_trips_and_keep_their_own_answers() -> None:
    gate = threading.Event()
    host = Host(gate)
    agent, conn = agent_on(host)
    agent.start()
    names = [f"c{i}" for i in range(12)] + ["bad"]
    results: dict[str, Any] = {}

    def read(name: str) -> None:
        try:
            results[name] = agent.call("docker.container.inspect", name=name)
        except HostError as exc:
            results[name] = exc

    threads = [threading.Thread(target=read, args=(n,)) for n in names]
    for t in threads:
        t.start()
    while len(agent._reads) < len(names) - 1:  # the first is on its way, the rest queue
        threading.Event().wait(0.005)
    gate.set()
    for t in threads:
        t.join(5)
    assert host.requests == ["hello", "docker.container.inspect", "batch"]
    assert all(results[n] == {"op": "docker.container.inspect", "name": n} for n in names[:-1])
    bad = results["bad"]
    assert isinstance(bad, HostError) and bad.errno == 2 and bad.op == "docker.container.inspect"
    assert conn.started == 1  # one connection, one agent for all of them
    agent.close()

