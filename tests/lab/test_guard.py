"""Commit-confirmed guards through a real agent in a throw-away namespace: armed, the plumbing
changed, the deadline passes, the host has put a shim, a route and (where the kernel has
802.1Q) a VLAN parent back by itself, after the agent's session ended; others' links untouched.

Addresses: 192.0.2.0/24 inside the namespace only, tenant routes in 198.18.0.0/15.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab._agent_fixtures import netns, sh
from tests.typed_calls import call
from vlaninfra.host import guard
from vlaninfra.lab import Inventory
from vlaninfra.transport import Agent, LocalTarget, agent_for, close_all

pytestmark = pytest.mark.lab

OWNER = "vlaninfra/guard-test"
OTHER = "vlaninfra/someone-else"
WINDOW = 3.0


@pytest.fixture
def ns() -> Iterator[str]:
    with netns("grd") as name:
        sh("ip", "-n", name, "addr", "add", "192.0.2.11/24", "dev", "eth0")
        try:
            yield name
        finally:
            close_all()
            # a test that failed half way leaves no guard behind (the namespace goes below)
            for p in guard.GUARD_DIR.glob(f"{_inode(name)}-*"):
                p.unlink(missing_ok=True)


def _inode(ns: str) -> int:
    import os

    return os.stat(f"/run/netns/{ns}").st_ino


def _agent(ns: str) -> Agent:
    return agent_for(LocalTarget(netns=ns))


def _ip(ns: str, *args: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(sh("ip", "-n", ns, "-j", "-d", *args).stdout or "[]")
    return out


def state(ns: str) -> dict[str, Any]:
    """Links (name, kind, MAC, MTU, flags, alias), addresses and routes, as `ip` shows them."""
    return {
        "links": sorted(
            (link["ifname"], link.get("linkinfo", {}).get("info_kind"), link.get("address"),
             link.get("mtu"), tuple(link.get("flags", [])), link.get("ifalias"))
            for link in _ip(ns, "link", "show")),
        "addresses": sorted(f"{a['ifname']} {i['local']}/{i['prefixlen']}"
                            for a in _ip(ns, "addr", "show") for i in a.get("addr_info", [])
                            if i.get("scope") != "link"),
        "routes": sorted(json.dumps(r, sort_keys=True) for r in _ip(ns, "route", "show")),
    }


def wait_fired(agent: Agent, within: float) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        st = agent.call("guard.status", owner=OWNER)
        if st["fired"] is not None:
            fired: dict[str, Any] = st["fired"]
            return fired
        time.sleep(0.2)
    raise AssertionError(f"the guard did not fire within {within} s: {st}")


def has_8021q(ns: str) -> bool:
    probe = sh("ip", "-n", ns, "link", "add", "link", "eth0", "name", "probe.9", "type", "vlan",
               "id", "9", check=False)
    sh("ip", "-n", ns, "link", "del", "probe.9", check=False)
    return probe.returncode == 0


def before_change(agent: Agent, ns: str, vlan: bool) -> None:
    """This stack's plumbing: a shim with an address and a route, a router-style route via a
    next hop, optionally an 802.1Q parent with a shim on it; and two links that are not ours."""
    call(agent, "shim.ensure", name="shim0", parent="eth0", address="192.0.2.250/32",
               routes=["192.0.2.128/26"], owner=OWNER, spec="s1")
    call(agent, "route.ensure", dst="198.18.7.0/24", via="192.0.2.1")
    if vlan:
        call(agent, "vlan.ensure", trunk="eth0", vlan_id=50, name="eth0.50", owner=OWNER, spec="v")
        call(agent, "shim.ensure", name="shim50", parent="eth0.50", address="198.18.50.250/32",
                   routes=["198.18.50.128/26"], owner=OWNER, spec="s50")
    call(agent, "shim.ensure", name="theirs0", parent="eth0", address="192.0.2.240/32",
               owner=OTHER, spec="x")
    sh("ip", "-n", ns, "link", "add", "link", "eth0", "name", "hand0", "type", "macvlan")


def change(agent: Agent, ns: str, vlan: bool) -> None:
    """What an apply might do: the shim recreated in another mode (new MAC) with another
    address and routes, a new shim, the router route moved, the VLAN parent removed."""
    call(agent, "shim.ensure", name="shim0", parent="eth0", mode="private",
               address="192.0.2.249/32", routes=["192.0.2.192/26"], owner=OWNER, spec="s2")
    call(agent, "shim.ensure", name="shim1", parent="eth0", address="192.0.2.248/32",
               owner=OWNER, spec="new")
    call(agent, "route.delete", dst="198.18.7.0/24", via="192.0.2.1")
    call(agent, "route.ensure", dst="198.18.8.0/24", via="192.0.2.1")
    if vlan:
        call(agent, "shim.delete", name="shim50", owner=OWNER)
        call(agent, "vlan.delete", name="eth0.50", owner=OWNER)
    # others' links change too: the guard must leave them as they are then
    sh("ip", "-n", ns, "addr", "add", "192.0.2.241/32", "dev", "theirs0")
    sh("ip", "-n", ns, "link", "set", "hand0", "mtu", "1400")


@pytest.mark.parametrize("vlan", [False, True], ids=["shim+route", "vlan-parent"])
def test_deadline_passes_host_restores_its_own_plumbing(ns: str, vlan: bool) -> None:
    if vlan and not has_8021q(ns):
        pytest.skip("this kernel has no 802.1Q (VLAN parents: VM hosts, `lab up --vm-hosts`)")
    agent = _agent(ns)
    before_change(agent, ns, vlan)
    before = state(ns)
    armed = agent.call("guard.arm", owner=OWNER, token="t1", seconds=WINDOW)
    assert armed["armed"] and sorted(armed["links"]) == sorted(
        ["shim0", *(["eth0.50", "shim50"] if vlan else [])])
    assert armed["routes"] == 2 + vlan  # proto 57: the shim's route(s), the router-style one
    change(agent, ns, vlan)
    changed = state(ns)
    assert changed != before
    close_all()  # the agent's session ends: the restorer must not depend on it
    fired = wait_fired(_agent(ns), WINDOW + 5)
    after = state(ns)
    print(f"\nrestored {fired['late_ms']:.0f} ms after the deadline: {fired['done']}")
    assert fired["errors"] == [], fired
    assert fired["late_ms"] < 1500
    # ours exactly as before; theirs as the change left them
    theirs = ("theirs0", "hand0")

    def split(s: dict[str, Any], keep_theirs: bool) -> dict[str, Any]:
        return {k: [x for x in v if any(t in str(x) for t in theirs) == keep_theirs]
                for k, v in s.items()}

    assert split(after, keep_theirs=False) == split(before, keep_theirs=False)
    assert split(after, keep_theirs=True) == split(changed, keep_theirs=True)
    assert not list(guard.GUARD_DIR.glob(f"{_inode(ns)}-*.pid")), "the restorer exited"
    # order does not matter: restoring a host that already matches does nothing
    agent = _agent(ns)
    agent.call("guard.arm", owner=OWNER, token="t2", seconds=1)
    assert wait_fired(agent, 6)["done"] == []
    assert state(ns) == after


def test_disarmed_in_time_the_change_is_kept(ns: str) -> None:
    agent = _agent(ns)
    before_change(agent, ns, vlan=False)
    armed = agent.call("guard.arm", owner=OWNER, token="t1", seconds=WINDOW)
    again = agent.call("guard.arm", owner=OWNER, token="t1", seconds=WINDOW)
    assert again["again"] and again["pid"] == armed["pid"], "a retried arm changes nothing"
    change(agent, ns, vlan=False)
    changed = state(ns)
    done = agent.call("guard.disarm", owner=OWNER, token="t1")
    assert done["disarmed"] is True
    time.sleep(WINDOW + 1)
    assert state(ns) == changed
    assert agent.call("guard.status", owner=OWNER) == {"armed": False, "fired": None}
    assert agent.call("guard.disarm", owner=OWNER, token="t1") == {"disarmed": False,
                                                                     "fired": None}
    assert not list(guard.GUARD_DIR.glob(f"{_inode(ns)}-*.pid"))
    assert not any(line.split()[0] == str(armed["pid"])
                   for line in sh("ps", "-eo", "pid=").stdout.splitlines() if line.strip())


def test_a_new_token_replaces_the_guard_and_bad_input_is_refused(ns: str) -> None:
    agent = _agent(ns)
    first = agent.call("guard.arm", owner=OWNER, token="t1", seconds=30)
    second = agent.call("guard.arm", owner=OWNER, token="t2", seconds=30)
    assert second["pid"] != first["pid"] and not second["again"]
    assert agent.call("guard.disarm", owner=OWNER, token="t1")["disarmed"] is False
    assert agent.call("guard.disarm", owner=OWNER, token="t2")["disarmed"] is True
    for bad in ({"seconds": 0}, {"seconds": "60s"}, {"seconds": 10**6}, {"token": ""}):
        args: dict[str, Any] = {"owner": OWNER, "token": "t3", "seconds": 5, **bad}
        with pytest.raises(Exception, match="guard: "):
            agent.call("guard.arm", **args)
    assert agent.call("guard.status", owner=OWNER)["armed"] is False


def test_lab_down_ends_restorers_and_watchers_left_behind() -> None:
    """A crashed run leaves a host's restorer and a controller's watcher: `lab down` ends both
    (found from their pidfiles) and removes the guard's files."""
    import subprocess

    from vlaninfra.lab import lab_down, lab_up
    from vlaninfra.lab._procs import alive
    from vlaninfra.watcher import watch_dir as _watch_dir

    instance = "g7"
    lab_down(instance)
    watcher = None
    try:
        host = lab_up(hosts=1, instance=instance).sites[0].hosts[0]
        agent = agent_for(LocalTarget(netns=host.netns))
        restorer = agent.call("guard.arm", owner=OWNER, token="t1", seconds=600)["pid"]
        close_all()
        # a watcher of a stack on this lab, as `up --confirm-within` starts it
        watcher = subprocess.Popen(["sleep", "600"], start_new_session=True)
        folder = _watch_dir()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        (folder / f"lab-{instance}-0123456789ab.pid").write_text(f"{watcher.pid}\n")
        assert alive(restorer)
        inode = _inode(host.netns)
        lab_down(instance)
        watcher.wait(10)
        assert not alive(restorer)
        assert not list(guard.GUARD_DIR.glob(f"{inode}-*"))
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
        (_watch_dir() / f"lab-{instance}-0123456789ab.pid").unlink(missing_ok=True)
        lab_down(instance)


@pytest.mark.vm
def test_vlan_parent_restored_on_a_vm_host(vm_lab: Inventory) -> None:
    """Where the kernel has 802.1Q (a QEMU lab host over SSH, of the session's shared VM lab):
    the stack's VLAN parent with its shim and the shim's route come back, after the change
    removed them and made another."""
    from pathlib import Path

    from vlaninfra.transport import SshTarget

    inv = vm_lab
    vm = next(h for h in inv.sites[0].hosts if h.kind == "vm")
    target = SshTarget(vm.mgmt_address, private_key=Path(inv.key_path).read_text(),
                       host_key=vm.host_key, port=vm.ssh_port, user=vm.user)
    try:
        agent = agent_for(target)

        def plumbing() -> dict[str, Any]:
            snap = agent.call("host.snapshot")
            return {"links": sorted(json.dumps({k: v for k, v in link.items() if k != "index"},
                                               sort_keys=True) for link in snap["links"]),
                    "routes": sorted(json.dumps(r, sort_keys=True) for r in snap["routes"])}

        call(agent, "vlan.ensure", trunk="eth0", vlan_id=50, name="eth0.50", owner=OWNER, spec="v")
        call(agent, "shim.ensure", name="shim50", parent="eth0.50", address="198.18.50.250/32",
                   routes=["198.18.50.128/26"], owner=OWNER, spec="s")
        time.sleep(2)  # IPv6 on the new links settles
        before = plumbing()
        armed = agent.call("guard.arm", owner=OWNER, token="t1", seconds=WINDOW)
        assert sorted(armed["links"]) == ["eth0.50", "shim50"] and armed["routes"] == 1
        call(agent, "shim.delete", name="shim50", owner=OWNER)
        call(agent, "vlan.delete", name="eth0.50", owner=OWNER)
        call(agent, "vlan.ensure", trunk="eth0", vlan_id=60, name="eth0.60", owner=OWNER, spec="w")
        call(agent, "shim.ensure", name="shim60", parent="eth0.60", address="198.18.60.250/32",
                   routes=["198.18.60.128/26"], owner=OWNER, spec="s")
        assert plumbing() != before
        close_all()
        agent = agent_for(target)
        fired = wait_fired(agent, WINDOW + 10)
        print(f"\nVM host restored {fired['late_ms']:.0f} ms after the deadline: {fired['done']}")
        assert fired["errors"] == [], fired
        time.sleep(2)
        assert plumbing() == before
    finally:
        close_all()
        # The shared lab's VM host as it was: no guard left armed, none of this test's links.
        agent = agent_for(target)
        agent.call("guard.disarm", owner=OWNER, token="t1")
        for shim in ("shim50", "shim60"):
            call(agent, "shim.delete", name=shim, owner=OWNER)
        for vlan in ("eth0.50", "eth0.60"):
            call(agent, "vlan.delete", name=vlan, owner=OWNER)
        close_all()
