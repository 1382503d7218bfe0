"""The change locks (`vlaninfra.host.oplock`): real `flock`s in a temporary directory
(tests/unit/conftest.py points `LOCK_DIR` there), between threads and between processes."""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.host.test_docker_ops_fake import _LAN, Ctx, FakeApi, _found, _net
from vlaninfra.host import docker_ops, oplock
from vlaninfra.host.errors import OpError


def _ctx(socket: str = "/run/a/docker.sock", timeout: float = 120) -> Any:
    ctx = Ctx()
    ctx.docker_socket, ctx.docker_timeout = socket, timeout
    return ctx


def _held_elsewhere(ctx: Any, kind: str, name: str, seconds: float) -> threading.Thread:
    """Another change of ``kind`` ``name``, for ``seconds``, once it holds the lock."""
    holding = threading.Event()

    def hold() -> None:
        with oplock.changing(ctx, kind, name):
            holding.set()
            time.sleep(seconds)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(5)
    return t


def test_a_change_of_the_same_object_waits_for_the_one_under_way() -> None:
    ctx = _ctx()
    other = _held_elsewhere(ctx, "container", "web", 0.4)
    started = time.monotonic()
    with oplock.changing(ctx, "container", "web"):
        waited = time.monotonic() - started
    other.join()
    assert waited >= 0.3


def test_other_objects_and_other_dockers_do_not_wait() -> None:
    ctx = _ctx()
    other = _held_elsewhere(ctx, "container", "web", 0.5)
    started = time.monotonic()
    for c, kind, name in [(ctx, "container", "web2"), (ctx, "network", "web"),
                          (_ctx("/run/b/docker.sock"), "container", "web")]:
        with oplock.changing(c, kind, name):
            pass
    assert time.monotonic() - started < 0.3
    other.join()


def test_a_change_that_stays_under_way_is_ebusy_after_half_the_docker_deadline() -> None:
    ctx = _ctx(timeout=0.4)
    other = _held_elsewhere(ctx, "container", "web", 1.0)
    ran = []
    started = time.monotonic()
    with pytest.raises(OpError) as info, oplock.changing(ctx, "container", "web"):
        ran.append(True)
    assert 0.2 <= time.monotonic() - started < 0.8
    other.join()
    assert not ran
    assert info.value.code == errno.EBUSY
    assert info.value.message.startswith("container 'web': another change of it is still under")
    assert "run this again once it is done" in info.value.message


def test_the_lock_file_goes_with_its_holder_and_the_directory_is_private() -> None:
    with oplock.changing(_ctx(), "network", "lan"):
        files = list(oplock.LOCK_DIR.iterdir())
        assert len(files) == 1 and files[0].name.startswith("network-")
    assert list(oplock.LOCK_DIR.iterdir()) == []
    assert stat.S_IMODE(oplock.LOCK_DIR.stat().st_mode) == 0o700


def test_another_process_holding_the_lock_is_waited_for(tmp_path: Path) -> None:
    """What two agents do: the lock is an flock on a file, not a lock of this process."""
    ctx = _ctx()
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from vlaninfra.host import oplock\n"
        "from tests.unit.host.test_oplock import _ctx\n"
        "oplock.LOCK_DIR = Path(sys.argv[1])\n"
        "with oplock.changing(_ctx(), 'container', 'web'):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(0.6)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script, str(oplock.LOCK_DIR)],
                          stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).parents[3]) as child:
        assert child.stdout is not None and child.stdout.readline() == "held\n"
        started = time.monotonic()
        with oplock.changing(ctx, "container", "web"):
            waited = time.monotonic() - started
    assert waited >= 0.4
    assert child.returncode == 0


def test_without_a_lock_directory_changes_go_on_unlocked(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(oplock, "LOCK_DIR", tmp_path / "file" / "locks")
    monkeypatch.setattr(oplock, "_unlocked", threading.Event())
    with caplog.at_level(logging.WARNING, "vlaninfra.host.oplock"):
        for _ in range(2):
            with oplock.changing(_ctx(), "container", "web"), \
                    oplock.changing(_ctx(), "container", "web"):
                pass
    assert [r.message.startswith("changing Docker objects without change locks")
            for r in caplog.records] == [True]  # said once


def test_a_network_waits_for_a_change_of_an_attached_container_then_removes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An earlier run's create of "web" is being rolled back by its agent: the network
    removal waits for it, looks again, and finds the network empty."""
    ctx = _ctx()
    other = _held_elsewhere(ctx, "container", "web", 0.3)
    _found(monkeypatch, _net({"web": {}}), _net())
    ctx.api = FakeApi()
    assert docker_ops.network_remove(ctx, _LAN).removed is True
    other.join()
    assert ctx.api.calls == ["rm-net n1"]


def test_a_network_names_containers_still_attached_once_their_changes_ended(
        monkeypatch: pytest.MonkeyPatch) -> None:
    _found(monkeypatch, _net({"web": {}}))
    ctx = _ctx()
    with pytest.raises(OpError) as info:
        docker_ops.network_remove(ctx, _LAN)
    assert info.value.code == errno.EBUSY and info.value.details["containers"] == ["web"]
    assert ctx.api.calls == []
    assert os.listdir(oplock.LOCK_DIR) == []


def test_sweep_removes_the_lock_files_nobody_holds() -> None:
    ctx = _ctx()
    with oplock.changing(ctx, "network", "lan"):
        oplock.LOCK_DIR.joinpath("container-left-by-a-killed-agent.lock").write_text("")
        assert oplock.sweep() == 1
        assert [p.name.split("-")[0] for p in oplock.LOCK_DIR.iterdir()] == ["network"]
    assert oplock.sweep() == 0 and list(oplock.LOCK_DIR.iterdir()) == []
