"""The change locks (`vlaninfra.host.oplock`): real `flock`s in a temporary directory
(tests/unit/conftest.py points `LOCK_DIR` there), between threads and between processes."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host.test_docker_ops_fake import _LAN, _WEB, Ctx, _container, _net
from vlaninfra.host import agent, docker_ops, oplock, protocol
from vlaninfra.host.context import Context
from vlaninfra.host.contract import NetworkDisconnect
from vlaninfra.host.errors import OpError


def _ctx(socket: str = "/run/a/docker.sock", timeout: float = 120) -> Any:
    ctx = Ctx()
    ctx.docker_socket, ctx.docker_timeout = socket, timeout
    return ctx


class _Elsewhere:
    """Another change of ``kind`` ``name`` on a thread of its own, holding the lock until
    `release` (or ``seconds``); ``released`` is set just before it lets go."""

    def __init__(self, ctx: Any, kind: str, name: str, seconds: float = 10.0,
                 then: Callable[[], None] = lambda: None) -> None:
        self.released = threading.Event()
        self._go = threading.Event()
        holding = threading.Event()

        def hold() -> None:
            with oplock.changing(ctx, kind, name):
                holding.set()
                self._go.wait(seconds)
                then()
                self.released.set()

        self._thread = threading.Thread(target=hold)
        self._thread.start()
        assert holding.wait(5)

    def release(self, after: float = 0.0) -> None:
        threading.Timer(after, self._go.set).start()

    def join(self) -> None:
        self._go.set()
        self._thread.join()


def test_a_change_of_the_same_object_waits_for_the_one_under_way() -> None:
    ctx = _ctx()
    other = _Elsewhere(ctx, "container", "web")
    other.release(after=0.2)
    with oplock.changing(ctx, "container", "web"):
        assert other.released.is_set()
    other.join()


def test_other_objects_and_other_dockers_do_not_wait() -> None:
    ctx = _ctx()
    other = _Elsewhere(ctx, "container", "web")
    for c, kind, name in [(ctx, "container", "web2"), (ctx, "network", "web"),
                          (_ctx("/run/b/docker.sock"), "container", "web")]:
        with oplock.changing(c, kind, name):
            assert not other.released.is_set()
    other.join()


def test_a_change_that_stays_under_way_is_ebusy_after_half_the_docker_deadline() -> None:
    ctx = _ctx(timeout=0.4)
    other = _Elsewhere(ctx, "container", "web")
    ran = []
    started = time.monotonic()
    with pytest.raises(OpError) as info, oplock.changing(ctx, "container", "web"):
        ran.append(True)
    assert time.monotonic() - started >= 0.2
    other.join()
    assert not ran
    assert info.value.code == errno.EBUSY
    assert re.match(rf"container 'web': another change of it \(by process {os.getpid()} on this "
                    r"host\) is still under way after 0\.[2-9] s", info.value.message)
    assert "nothing was changed: run this again once it is done" in info.value.message


def test_the_lock_file_names_its_holder_goes_with_it_and_the_directory_is_private() -> None:
    with oplock.changing(_ctx(), "network", "lan"):
        files = list(oplock.LOCK_DIR.iterdir())
        assert [f.name.split("-")[0] for f in files] == ["network"]
        assert files[0].read_text() == f"{os.getpid()}\n"
    assert list(oplock.LOCK_DIR.iterdir()) == []
    assert stat.S_IMODE(oplock.LOCK_DIR.stat().st_mode) == 0o700


def _python(script: str, *args: str) -> subprocess.Popen[str]:
    prelude = ("import sys, time\nfrom pathlib import Path\nfrom vlaninfra.host import oplock\n"
               "from tests.unit.host.test_oplock import _ctx\n"
               "oplock.LOCK_DIR = Path(sys.argv[1])\n")
    return subprocess.Popen([sys.executable, "-c", prelude + script, str(oplock.LOCK_DIR),
                             *args], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).parents[3])


def test_another_process_holding_the_lock_is_waited_for(tmp_path: Path) -> None:
    """What two agents do: the lock is an flock on a file, not a lock of this process."""
    done = tmp_path / "done"
    with _python("with oplock.changing(_ctx(), 'container', 'web'):\n"
                 "    print('held', flush=True)\n"
                 "    time.sleep(0.3)\n"
                 "    Path(sys.argv[2]).touch()\n", str(done)) as child:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        with oplock.changing(_ctx(), "container", "web"):
            assert done.exists()
    assert child.returncode == 0


def test_a_killed_holder_that_had_forked_a_child_leaves_no_lock_held() -> None:
    """The agent forks the guard's restorer, which lives on: it must not keep the agent's
    locks, or a killed agent's change would block every later one for the restorer's life."""
    script = ("import os, signal\n"
              "with oplock.changing(_ctx(), 'container', 'web'):\n"
              "    if os.fork() == 0:\n"
              "        time.sleep(30)\n"
              "        os._exit(0)\n"
              "    print('held', flush=True)\n"
              "    time.sleep(30)\n")
    with _python(script) as child:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        forked = [int(p) for p in Path(f"/proc/{child.pid}/task/{child.pid}/children")
                  .read_text().split()]
        child.kill()
    try:
        with oplock.changing(_ctx(timeout=1), "container", "web"):
            pass
    finally:
        for pid in forked:
            os.kill(pid, signal.SIGKILL)


def test_without_root_changes_go_on_unlocked_and_say_so_once(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A Docker-group agent: /run/vlaninfra may even be root's already (no EPERM then)."""
    monkeypatch.setattr(oplock, "_as_root", lambda: False)
    monkeypatch.setattr(oplock, "_warned", threading.Lock())
    monkeypatch.setattr(oplock, "LOCK_DIR", Path("/nonexistent/locks"))
    with caplog.at_level(logging.WARNING, "vlaninfra.host.oplock"):
        for _ in range(2):
            with oplock.changing(_ctx(), "container", "web"), \
                    oplock.changing(_ctx(), "container", "web"):
                pass
    assert [r.message for r in caplog.records] == [
        "changing Docker objects without change locks: the agent does not run as root (give "
        "the host `sudo: true` in its ssh settings)"]


def test_a_lock_directory_open_to_others_is_an_error_not_a_silent_unlock() -> None:
    oplock.LOCK_DIR.mkdir(parents=True, mode=0o777)
    oplock.LOCK_DIR.chmod(0o777)
    with pytest.raises(OpError) as info, oplock.changing(_ctx(), "container", "web"):
        pass
    assert info.value.code == errno.EPERM and str(oplock.LOCK_DIR) in info.value.message


def _inspected(monkeypatch: pytest.MonkeyPatch, *found: dict[str, Any]) -> list[str]:
    """`network_inspect` answers `found` in turn (the last one from then on); returns the
    log of events the test asserts the order of."""
    answers, events = list(found), list[str]()

    def inspect(_ctx: object, _name: str) -> dict[str, Any]:
        events.append("inspect")
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(docker_ops, "network_inspect", inspect)
    return events


def test_a_network_waits_for_a_change_of_an_attached_container_then_removes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier run's create of "web" is being rolled back by its agent: the network
    removal waits for it, looks again, and finds the network empty."""
    ctx = _ctx()
    events = _inspected(monkeypatch, _net({"web": {}}), _net())
    other = _Elsewhere(ctx, "container", "web", then=lambda: events.append("rolled back"))
    other.release(after=0.2)
    assert docker_ops.network_remove(ctx, _LAN).removed is True
    other.join()
    assert events == ["inspect", "rolled back", "inspect"]
    assert ctx.api.calls == ["rm-net n1"]


def test_a_networks_waits_share_half_the_docker_deadline(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The wait for the network's own lock and for its containers' count together: the
    controller (which gives the op the whole deadline) hears EBUSY, not outcome unknown."""
    ctx = _ctx(timeout=1.0)
    _inspected(monkeypatch, _net({"web": {}}))
    net = _Elsewhere(ctx, "network", "lan")
    web = _Elsewhere(ctx, "container", "web")
    net.release(after=0.45)
    started = time.monotonic()
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(ctx, _LAN)
    took = time.monotonic() - started
    net.join()
    web.join()
    assert info.value.code == errno.EBUSY and info.value.message.startswith("container 'web'")
    assert 0.5 <= took < 0.85  # apart: 0.45 s, then 0.5 s more


def test_a_network_names_containers_still_attached_once_their_changes_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _inspected(monkeypatch, _net({"web": {}}))
    ctx = _ctx()
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(ctx, _LAN)
    assert info.value.code == errno.EBUSY and info.value.details["containers"] == ["web"]
    assert ctx.api.calls == []
    assert os.listdir(oplock.LOCK_DIR) == []


def test_a_container_leaves_its_network_only_while_no_other_agent_leaves_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another agent (an interrupted run's, finishing its removals) is disconnecting a
    container of "lan": this one's disconnect waits for it (moby/moby#43286), on another
    network it does not."""
    _container(monkeypatch)
    ctx = _ctx()
    other = _Elsewhere(ctx, "endpoints", "lan",
                       then=lambda: ctx.api.calls.append("other left lan"))
    other.release(after=0.3)
    assert docker_ops.container_remove(ctx, _WEB).removed is True
    other.join()
    assert ctx.api.calls == ["other left lan", "disconnect c1 lan", "stop c1 t=0", "rm c1"]
    ctx.api.calls.clear()
    other = _Elsewhere(ctx, "endpoints", "wan")
    assert docker_ops.network_disconnect(ctx, NetworkDisconnect("lan", "web", owner="infra/prod")
                                         ) is not None
    assert not other.released.is_set()
    other.join()
    assert ctx.api.calls == ["disconnect c1 lan"]


def test_a_leave_waits_a_little_even_once_its_budget_is_spent(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another agent's container is leaving "lan" (a fraction of a second) when an op whose
    wait budget its queue spent must leave it too: it waits `LEAVE_GRACE` rather than fail;
    past that it fails EBUSY, saying which networks the container has left already."""
    ctx = _ctx(timeout=1.0)
    other = _Elsewhere(ctx, "endpoints", "lan")
    other.release(after=0.3)
    with oplock.counted_from(time.monotonic() - 100):
        docker_ops._leave(ctx, "c1", "lan")
    other.join()
    assert ctx.api.calls == ["disconnect c1 lan"]
    monkeypatch.setattr(docker_ops, "LEAVE_GRACE", 0.2)
    _container(monkeypatch, ("a", "lan"))
    other = _Elsewhere(ctx, "endpoints", "lan")
    with oplock.counted_from(time.monotonic() - 100), pytest.raises(OpError) as info:
        docker_ops.container_remove(ctx, _WEB)
    other.join()
    assert info.value.code == errno.EBUSY
    assert info.value.message.startswith("network 'lan' (its containers leave it one at a time)")
    assert "the container has left a already" in info.value.message
    assert "nothing was changed" not in info.value.message


def test_an_ops_budget_counts_the_time_it_queued_behind_busy_workers() -> None:
    """The controller's deadline runs from when it sent the request: an op that queued 0.6 s
    behind the agent's one busy worker has spent 0.6 s of its 0.5 s budget (half a 1 s
    deadline) and fails EBUSY at its first wait, instead of waiting 0.5 s more."""
    ctx = Context(docker_socket="/nonexistent.sock")
    ctx.docker_timeout = 1
    other = _Elsewhere(ctx, "container", "web")
    out = io.BytesIO()
    agent.serve(ctx, io.BytesIO(b"".join(map(protocol.encode, [
        protocol.request(1, "debug.sleep", {"seconds": 0.6}),
        protocol.request(2, "docker.container.remove", {"name": "web"})]))), out, workers=1)
    other.join()
    answer = json.loads(out.getvalue().splitlines()[-1])
    assert answer["id"] == 2 and answer["error"]["errno"] == errno.EBUSY
    assert "was spent while it queued behind the agent's other ops" in answer["error"]["message"]


def test_every_docker_change_op_holds_its_objects_lock() -> None:
    ops = [docker_ops.network_create, docker_ops.network_remove, docker_ops.container_create,
           docker_ops.container_remove, docker_ops.container_update, docker_ops.container_start,
           docker_ops.network_connect, docker_ops.network_disconnect]
    assert all(getattr(op, "__wrapped__", None) for op in ops)


def test_sweep_removes_the_lock_files_nobody_holds() -> None:
    ctx = _ctx()
    with oplock.changing(ctx, "network", "lan"):
        oplock.LOCK_DIR.joinpath("container-left-by-a-killed-agent.lock").write_text("")
        assert oplock.sweep() == 1
        assert [p.name.split("-")[0] for p in oplock.LOCK_DIR.iterdir()] == ["network"]
    assert oplock.sweep() == 0 and list(oplock.LOCK_DIR.iterdir()) == []
