"""Fault matrix, ownership slice (issue 8, acceptance 2, 3, 4b, 10, 12): the real engine on the
lab. Each case states its time bound, asserts what the engine said, what the host holds, and that
the next `pulumi up` converges with no manual step.

The cases run in file order on one scratch stack (`lab_stack`, the `lab` stack's program and
config). Faults are made deterministic by watching the host's dockerd event stream: the moment
Docker reports the create, the fault is injected (dockerd frozen with SIGSTOP so the op is held
in flight, the host's sshd sessions killed, the engine SIGKILLed, dockerd restarted).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from tests.e2e.observe import LabStack, container_facts, ip_json, sh
from tests.e2e.observe import docker as docker_cli
from vlaninfra.engine import Engine
from vlaninfra.lab import Host, ensure_dockerd

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SHIM = "macvlan-shim"
ENGINE_BOUND = 240.0
"""No engine run in this module may take longer (seconds): a hang is a failure, not a wait."""
DOCKERD_BOUND = 60.0
"""A restarted lab dockerd answers within this (seconds)."""


# -- observing and disturbing lab processes ----------------------------------------------------


def _netns_pids(netns: str) -> list[int]:
    return [int(p) for p in sh("ip", "netns", "pids", netns, check=False).split()]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _cwd(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def _ppid(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            children.setdefault(_ppid(int(entry.name)), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def dockerd_pid(host: Host) -> int:
    pids = [p for p in _netns_pids(host.netns) if _comm(p) == "dockerd"]
    assert len(pids) == 1, f"{host.name}: dockerd processes {pids}"
    return pids[0]


def kill_ssh_sessions(host: Host) -> list[int]:
    """SIGKILL every sshd session process of `host` (not the listening daemon): what a dropped
    management connection does to the agent's session."""
    sshd = [p for p in _netns_pids(host.netns) if _comm(p).startswith("sshd")]
    sessions = [p for p in sshd if _ppid(p) in sshd]
    for pid in sessions:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return sessions


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """`pid` stopped (SIGSTOP) inside the block, continued whatever happens."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


class Watch:
    """Calls `action` once, as soon as `host`'s dockerd reports a `kind` `create` event for
    one of `names`, from a thread reading the daemon's event stream."""

    def __init__(self, host: Host, kind: str, names: set[str],
                 action: Callable[[], None]) -> None:
        self.api = docker.APIClient(base_url=f"unix://{host.docker_socket}", timeout=30)
        self.fired = threading.Event()
        self.error: BaseException | None = None
        self._events = self.api.events(decode=True,
                                       filters={"type": kind, "event": "create"})
        self._names = names
        self._action = action
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._events:
                name = (event.get("Actor") or {}).get("Attributes", {}).get("name")
                if name in self._names:
                    self.fired.set()
                    self._action()
                    return
        except BaseException as exc:
            self.error = exc

    def join(self, timeout: float) -> None:
        """Wait (at most `timeout` s) for the action to finish."""
        self._thread.join(timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._events.close()
        self.api.close()


class Run:
    """`pulumi ARGS` of `stack` in the background, in its own process group."""

    def __init__(self, stack: LabStack, *args: str) -> None:
        self.started = time.monotonic()
        engine: Engine = stack.engine
        self.proc = subprocess.Popen(
            ["pulumi", *args, "--non-interactive", "--stack", stack.name],
            cwd=stack.project, env=engine.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the CLI and everything it started: language host, program and the dynamic
        providers (which the engine starts in process groups of their own)."""
        doomed = _descendants(self.proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        for pid in doomed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def wait(self, bound: float = ENGINE_BOUND) -> tuple[int, str, float]:
        try:
            out, _ = self.proc.communicate(timeout=bound)
        except subprocess.TimeoutExpired:
            self.kill()
            out, _ = self.proc.communicate()
            pytest.fail(f"pulumi did not finish within {bound:.0f}s:\n{out[-3000:]}")
        return self.proc.returncode, out, time.monotonic() - self.started


def timed_changes(stack: LabStack, *args: str, bound: float = ENGINE_BOUND) -> dict[str, int]:
    start = time.monotonic()
    changes = stack.changes(*args)
    took = time.monotonic() - start
    assert took < bound, f"{args} took {took:.0f}s (bound {bound:.0f}s)"
    return changes


def ids(host: Host, *names: str) -> dict[str, str]:
    return {n: container_facts(host, n).get("id", "") for n in names}


def net_id(host: Host, name: str) -> str:
    return docker_cli(host, "network", "inspect", "-f", "{{.Id}}", name, check=False).strip()


def converged(stack: LabStack) -> None:
    """A refresh finds the state matching every host, and an up has nothing to do."""
    assert timed_changes(stack, "refresh", "--yes", "--skip-preview") == {"same": 11}
    assert timed_changes(stack, "up", "--yes") == {"same": 11}


# -- acceptance 2: the host's sshd session killed while the agent creates --------------------


def test_session_killed_during_container_create_then_up_adopts(lab_stack: LabStack) -> None:
    """Bound: the interrupted `up` ends within ENGINE_BOUND (it must not wait for the frozen
    daemon); the second `up` converges within ENGINE_BOUND."""
    h1 = lab_stack.host("h1")
    pid = dockerd_pid(h1)
    killed: list[int] = []

    def hold_and_cut() -> None:
        # dockerd made the container; freeze it so the agent's create op is still in flight
        # (its start call waits), then cut the agent's SSH session.
        os.kill(pid, signal.SIGSTOP)
        time.sleep(0.5)
        killed.extend(kill_ssh_sessions(h1))

    watch = Watch(h1, "container", {"web1", "web2"}, hold_and_cut)
    try:
        run = Run(lab_stack, "up", "--yes", "--skip-preview")
        code, out, took = run.wait()
    finally:
        watch.close()
        os.kill(pid, signal.SIGCONT)
    assert watch.fired.is_set() and watch.error is None, out[-3000:]
    assert killed, "no sshd session to kill on h1"
    assert code != 0, out[-3000:]
    assert "outcome unknown on h1" in out and "the next `pulumi up` (or `pulumi refresh`) " \
        "reconciles it" in out, out[-3000:]
    assert "nothing was left" not in out
    print(f"interrupted up: {took:.1f}s")
    # The agent finished what was in flight once dockerd went on: a container Pulumi never
    # recorded, with this stack's mark.
    deadline = time.monotonic() + 30
    while not all(ids(h1, "web1", "web2").values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {k: v for k, v in ids(h1, "web1", "web2").items() if v}
    assert left, "the interrupted create left nothing on h1"
    start = time.monotonic()
    changes = timed_changes(lab_stack, "up", "--yes", "--skip-preview")
    print(f"converging up: {time.monotonic() - start:.1f}s {changes}")
    assert changes.get("delete", 0) == 0 and changes.get("replace", 0) == 0, changes
    after = ids(h1, "web1", "web2")
    assert {k: after[k] for k in left} == left  # adopted, not re-created
    assert all(container_facts(h1, n).get("ip") for n in ("web1", "web2"))
    converged(lab_stack)


def test_shim_left_by_an_interrupted_ensure_is_adopted(lab_stack: LabStack) -> None:
    """What a session killed after the agent made the shim leaves: the link on the host with
    this stack's mark, nothing in state. Bound: the converging `up`, ENGINE_BOUND."""
    h1 = lab_stack.host("h1")
    state = json.loads(lab_stack.run("stack", "export"))
    urn = next(r["urn"] for r in state["deployment"]["resources"]
               if r.get("id") == f"h1/{SHIM}")
    index = ip_json(h1.netns, "link", "show", SHIM)[0]["ifindex"]
    lab_stack.run("state", "delete", urn, "--yes")
    changes = timed_changes(lab_stack, "up", "--yes", "--skip-preview")
    assert changes == {"create": 1, "same": 10}
    assert ip_json(h1.netns, "link", "show", SHIM)[0]["ifindex"] == index  # the same link
    converged(lab_stack)


def test_network_left_by_an_interrupted_create_is_adopted_with_its_containers(
        lab_stack: LabStack) -> None:
    """What a session killed after Docker made the network leaves (its create is too quick to
    hold in flight from outside: the agent's inspect follows within milliseconds): the network
    and its containers on the host with this stack's mark, nothing in state. Bound: the
    converging `up`, ENGINE_BOUND; nothing is re-created."""
    h1 = lab_stack.host("h1")
    state = json.loads(lab_stack.run("stack", "export"))
    urn = next(r["urn"] for r in state["deployment"]["resources"]
               if r["type"].endswith("DockerNetwork") and r["urn"].endswith("a-h1-pub_net"))
    made = {"net": net_id(h1, "pub_net"), **ids(h1, "web1", "web2")}
    lab_stack.run("state", "delete", urn, "--target-dependents", "--yes")
    start = time.monotonic()
    changes = timed_changes(lab_stack, "up", "--yes", "--skip-preview")
    print(f"converging up: {time.monotonic() - start:.1f}s {changes}")
    assert changes == {"create": 3, "same": 8}
    assert {"net": net_id(h1, "pub_net"), **ids(h1, "web1", "web2")} == made
    converged(lab_stack)


# -- acceptance 3 and 4b: the engine killed, dockerd restarted, between create and start -----


def _forget_containers(stack: LabStack, host: Host) -> None:
    """h1's containers gone from the host and from state (refresh), the rest in place."""
    docker_cli(host, "rm", "-f", "web1", "web2")
    timed_changes(stack, "refresh", "--yes", "--skip-preview")


def test_engine_killed_between_create_and_checkpoint_then_up_adopts(
        lab_stack: LabStack) -> None:
    """The whole engine (CLI, language host, providers) SIGKILLed the moment Docker made the
    container: the agent finishes the op, state keeps a pending create. Bound: the next
    `up` converges within ENGINE_BOUND with no manual step."""
    h1 = lab_stack.host("h1")
    _forget_containers(lab_stack, h1)
    run: list[Run] = []
    watch = Watch(h1, "container", {"web1", "web2"}, lambda: run[0].kill())
    try:
        run.append(Run(lab_stack, "up", "--yes", "--skip-preview"))
        code, out, _ = run[0].wait()
    finally:
        watch.close()
    assert watch.fired.is_set() and code == -signal.SIGKILL, out[-3000:]
    assert not [p for p in _descendants(1) if "pulumi.dynamic" in _cmdline(p)
                and str(lab_stack.project) in _cwd(p)], "a provider process survived the kill"
    deadline = time.monotonic() + 30
    while not any(ids(h1, "web1", "web2").values()) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = {k: v for k, v in ids(h1, "web1", "web2").items() if v}
    assert left, "the killed run left no container on h1"
    # The killed run's lock is stale (its process is gone): the engine helper clears it, the
    # engine drops the pending creates with a warning, the creates adopt the containers.
    assert lab_stack.engine.stale_locks(lab_stack.name)
    start = time.monotonic()
    out = lab_stack.run("up", "--yes", "--skip-preview")
    print(f"converging up: {time.monotonic() - start:.1f}s")
    assert time.monotonic() - start < ENGINE_BOUND
    assert "interrupted while creating" in out and not lab_stack.engine.stale_locks(
        lab_stack.name)
    after = ids(h1, "web1", "web2")
    assert {k: after[k] for k in left} == left
    converged(lab_stack)


# -- acceptance 10: name clashes refused or left alone, reported in preview -------------------


def test_shim_named_like_a_parent_is_refused_by_the_layout(lab_stack: LabStack) -> None:
    sites = lab_stack.sites()
    sites["a"]["networks"][0]["shim"]["name"] = "eth0"
    lab_stack.write(sites)
    before = lab_stack.state()
    try:
        out = lab_stack.engine.run(lab_stack.name, "preview", check=False,
                                   cwd=lab_stack.project)
        out += lab_stack.engine.run(lab_stack.name, "preview", "--json", check=False,
                                    cwd=lab_stack.project)
    finally:
        lab_stack.write(lab_stack.base_sites)
    assert "sites.a.networks[0].shim.name" in out and "shim name eth0 is parent eth0 of host" \
        in out, out[-3000:]
    assert lab_stack.state() == before


def test_unowned_container_with_a_planned_name_is_reported_in_preview(
        lab_stack: LabStack) -> None:
    h1 = lab_stack.host("h1")
    sites = lab_stack.sites()
    sites["a"]["containers"].append({"name": "web5", "host": "h1", "network": "pub_net",
                                     "image": h1.image})
    docker_cli(h1, "create", "--name", "web5", h1.image, "sleep", "60")
    foreign = ids(h1, "web5")
    lab_stack.write(sites)
    try:
        start = time.monotonic()
        out = lab_stack.engine.run(lab_stack.name, "preview", check=False,
                                   cwd=lab_stack.project)
        assert time.monotonic() - start < ENGINE_BOUND
        key = f"sites.a.containers[{len(sites['a']['containers']) - 1}]"
        assert f"{key}: container 'web5' on host h1" in out, out[-3000:]
        assert "exists and is not owned by vlaninfra" in out
        up = lab_stack.engine.run(lab_stack.name, "up", "--yes", check=False,
                                  cwd=lab_stack.project)
        assert "not owned by vlaninfra" in up
        assert ids(h1, "web5") == foreign  # left alone
        assert docker_cli(h1, "inspect", "-f", "{{.State.Status}}", "web5").strip() == "created"
    finally:
        lab_stack.write(lab_stack.base_sites)
        docker_cli(h1, "rm", "-f", "web5", check=False)
    converged(lab_stack)


# -- acceptance 12: two stacks on one host, different names -------------------------------------


def _other_stack_sites(h1: Host, base: dict[str, Any]) -> dict[str, Any]:
    """Stack B: its own macvlan network (198.18.50.0/24) on h1 with one container and a shim,
    on a second NIC of h1 (`vxb0`, made by the test: Docker 20.10 allows one macvlan network
    per parent)."""
    return {"a": {
        "inventory": "lab",
        "lan": copy.deepcopy(base["lan"]),
        "routers": copy.deepcopy(base["routers"]),
        "hosts": [{"name": "h1", "parents": ["vxb0"], "docker_version": "20.10"}],
        "networks": [{
            "name": "b_net", "driver": "macvlan", "mode": "bridge", "parent": "vxb0",
            "hosts": ["h1"], "subnets": [{"subnet": "198.18.50.0/24"}],
            "shim": {"name": "b-shim", "address_per_host": {"h1": "198.18.50.250"},
                     "routes": "per-container"},
        }],
        "containers": [{"name": "b-web1", "host": "h1", "network": "b_net",
                        "image": h1.image}],
    }}


def test_two_stacks_on_one_host_never_touch_each_other(lab_stack: LabStack) -> None:
    """Bound: each engine run within ENGINE_BOUND."""
    h1 = lab_stack.host("h1")
    base = lab_stack.base_sites["a"]
    b = LabStack(engine=lab_stack.engine, project=lab_stack.project, name="e2e-b",
                 inventory=lab_stack.inventory, base_sites=_other_stack_sites(h1, base))
    a_before = {"web1": ids(h1, "web1", "web2"), "net": net_id(h1, "pub_net"),
                "shim": ip_json(h1.netns, "link", "show", SHIM)[0]["ifindex"]}
    b.write(b.base_sites)
    b.engine.ensure_stack(b.name, cwd=b.project)
    sh("ip", "-n", h1.netns, "link", "add", "vxb0", "type", "veth", "peer", "name", "vxb0p")
    sh("ip", "-n", h1.netns, "link", "set", "vxb0", "up")
    try:
        assert timed_changes(b, "up", "--yes") == {"create": 6}  # with its site root
        # B's objects carry B's mark; A's stack sees nothing of B and changes nothing.
        labels = docker_cli(h1, "inspect", "-f", "{{json .Config.Labels}}", "b-web1")
        assert '"io.vlaninfra.owner":"vlaninfra/e2e-b"' in labels
        converged(lab_stack)
        # B asks for A's container name: refused at preview, A's container untouched.
        clash = _other_stack_sites(h1, base)
        clash["a"]["containers"].append({"name": "web1", "host": "h1", "network": "b_net",
                                         "image": h1.image})
        b.write(clash)
        out = b.engine.run(b.name, "preview", check=False, cwd=b.project)
        assert "container 'web1' on host h1" in out and "owned by stack 'vlaninfra/e2e'" \
            in out, out[-3000:]
        b.write(b.base_sites)
        assert timed_changes(b, "destroy", "--yes", "--skip-preview") == {"delete": 6}
        assert not container_facts(h1, "b-web1") and not net_id(h1, "b_net")
    finally:
        b.engine.run(b.name, "destroy", "--yes", "--skip-preview", check=False, cwd=b.project)
        b.engine.run(b.name, "stack", "rm", "--yes", "--force", check=False, cwd=b.project)
        sh("ip", "-n", h1.netns, "link", "del", "vxb0", check=False)
    assert {"web1": ids(h1, "web1", "web2"), "net": net_id(h1, "pub_net"),
            "shim": ip_json(h1.netns, "link", "show", SHIM)[0]["ifindex"]} == a_before
    converged(lab_stack)


# -- acceptance 4b: dockerd restarted between create and start --------------------------------


def _crash_docker(pid: int) -> None:
    """SIGKILL dockerd `pid` and its containerd (a crash of the whole Docker service)."""
    doomed = [pid, *(p for p in _descendants(pid) if _comm(p) == "containerd")]
    for victim in doomed:
        os.kill(victim, signal.SIGKILL)


def test_dockerd_restarted_between_create_and_start_then_up_adopts(
        lab_stack: LabStack) -> None:
    """Bound: the interrupted up ends within ENGINE_BOUND, dockerd is back within
    DOCKERD_BOUND, the converging up within ENGINE_BOUND."""
    h1 = lab_stack.host("h1")
    _forget_containers(lab_stack, h1)
    pid = dockerd_pid(h1)

    back: list[float] = []

    def crash_and_restart() -> None:
        # Held (the create is done, the start not yet), then the whole Docker service dies and
        # comes back the way `lab up` starts it (pid recorded: `lab down` ends it).
        os.kill(pid, signal.SIGSTOP)
        _crash_docker(pid)
        start = time.monotonic()
        ensure_dockerd(h1)
        back.append(time.monotonic() - start)

    watch = Watch(h1, "container", {"web1", "web2"}, crash_and_restart)
    try:
        code, out, took = Run(lab_stack, "up", "--yes", "--skip-preview").wait()
        watch.join(DOCKERD_BOUND)
    finally:
        watch.close()
    assert watch.fired.is_set() and watch.error is None, (watch.error, out[-3000:])
    print(f"interrupted up: {took:.1f}s; dockerd back after {back[0]:.1f}s")
    assert code != 0 and "outcome unknown on h1" in out, out[-3000:]
    assert "so it may be left created but not started (the next create adopts it)" in out
    assert back[0] < DOCKERD_BOUND
    assert dockerd_pid(h1) != pid
    left = {k: v for k, v in ids(h1, "web1", "web2").items() if v}
    assert left, "the interrupted create left no container on h1"
    start = time.monotonic()
    changes = timed_changes(lab_stack, "up", "--yes", "--skip-preview")
    print(f"converging up: {time.monotonic() - start:.1f}s {changes}")
    after = ids(h1, "web1", "web2")
    assert {k: after[k] for k in left} == left
    assert all(container_facts(h1, n).get("ip") for n in ("web1", "web2"))
    converged(lab_stack)
