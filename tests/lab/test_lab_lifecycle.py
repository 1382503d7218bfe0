"""`lab up` twice is harmless; `lab down` leaves nothing behind, even after a crashed up."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.vm_observe import ssh
from tests.lab.lab_helpers import docker, in_netns, leftovers
from vlaninfra.lab import inventory_path, lab_down, lab_up
from vlaninfra.lab._daemons import docker_ping, reload_sshd, ssh_answers
from vlaninfra.lab._inventory import RUN_DIR, state_dir
from vlaninfra.lab._lab import SSHD_PID
from vlaninfra.lab.cli import main

pytestmark = pytest.mark.lab


@pytest.fixture
def instance(request: pytest.FixtureRequest) -> Iterator[str]:
    """A throw-away lab instance name (``t2`` …), removed after the test whatever happens."""
    name: str = request.param if hasattr(request, "param") else "t2"
    lab_down(name)
    try:
        yield name
    finally:
        lab_down(name)


def _sshd_pids(netns: str) -> set[int]:
    out = subprocess.run(["pgrep", "-f", f"{netns}/sshd_config"], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()}


def _dockerd_pid(netns: str) -> int:
    return int((RUN_DIR / netns / "docker.pid").read_text())


def test_up_twice_is_harmless_and_repairs(instance: str) -> None:
    inv = lab_up(hosts=2, instance=instance)
    before = inventory_path(instance).read_text()
    h1, h2 = inv.hosts
    pids = {h.netns: (_dockerd_pid(h.netns), _sshd_pids(h.netns)) for h in inv.hosts}

    again = lab_up(hosts=2, instance=instance)
    assert again == inv
    assert inventory_path(instance).read_text() == before
    assert {h.netns: (_dockerd_pid(h.netns), _sshd_pids(h.netns)) for h in inv.hosts} == pids

    # A session runs sshd's PATH, not this machine's ~/.bashrc (its pyenv or cargo PATH);
    # an sshd still running an older vlaninfra's config is made to read the new one.
    def session() -> str:
        return ssh(inv, h1.mgmt_address, "echo $SHLVL $PATH").strip()

    assert session() == "2 /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    cfg = state_dir(instance) / h1.netns / "sshd_config"
    cfg.write_text(cfg.read_text().replace(" SHLVL=1", ""))
    reload_sshd(state_dir(instance) / h1.netns / SSHD_PID, cfg)
    assert session().startswith("1 ")  # as an older lab's: bash at level 1 would source it
    assert lab_up(hosts=2, instance=instance) == inv
    assert session().startswith("2 /usr/local/sbin:")
    assert _sshd_pids(h1.netns) == pids[h1.netns][1]  # read again in place, not restarted

    # A dead sshd and a dead dockerd are brought back; host keys stay the same.
    for pid in pids[h1.netns][1] | {pids[h2.netns][0]}:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while (ssh_answers(h1.mgmt_address) or docker_ping(h2.docker_socket)) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.05)
    repaired = lab_up(hosts=2, instance=instance)
    assert repaired == inv
    assert ssh_answers(h1.mgmt_address) and docker_ping(h2.docker_socket)

    # Fewer hosts: the extra host goes away completely.
    smaller = lab_up(hosts=1, instance=instance)
    assert [h.name for h in smaller.hosts] == ["h1"]
    assert h2.netns not in os.listdir("/run/netns")
    assert not (RUN_DIR / h2.netns).exists()
    assert docker_ping(h1.docker_socket)


def test_down_leaves_nothing_behind(instance: str) -> None:
    inv = lab_up(hosts=2, instance=instance)
    site = inv.sites[0]
    for i, host in enumerate(inv.hosts):
        # Running containers, a macvlan network and an SSH session: mounts, shims, netns.
        r = docker(
            host.docker_socket,
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            site.lan,
            "-o",
            "parent=eth0",
            "mv",
        )
        assert r.returncode == 0, r.stderr
        r = docker(host.docker_socket, "run", "-d", "--network", "mv", host.image)
        assert r.returncode == 0, r.stderr
        r = docker(
            host.docker_socket, "run", "-d", "--network", "none", host.image, "sleep", "1000"
        )
        assert r.returncode == 0, r.stderr
        assert i == 0 or in_netns(host.netns, "true").returncode == 0
    session = subprocess.Popen(
        [
            "ssh",
            "-i",
            inv.key_path,
            "-o",
            f"UserKnownHostsFile={inv.known_hosts}",
            "-o",
            "BatchMode=yes",
            f"root@{inv.hosts[0].mgmt_address}",
            "sleep",
            "1000",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert leftovers(instance)  # the check finds a running lab
        start = time.monotonic()
        lab_down(instance)
        took = time.monotonic() - start
        assert leftovers(instance) == []
        assert took < 20
    finally:
        session.kill()
        session.wait()


def test_down_cleans_a_crashed_up(instance: str) -> None:
    # Kill an up half-way: namespaces, daemons and mounts exist, but no inventory.
    code = f"from vlaninfra.lab import lab_up; lab_up(hosts=2, instance={instance!r})"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 30
    while not list(RUN_DIR.glob(f"vl{instance}-a-h*/docker.pid")) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    assert leftovers(instance)
    lab_down(instance)
    assert leftovers(instance) == []


def test_down_cleans_leftovers_it_has_no_record_of(instance: str) -> None:
    # What a crash before any state was written could leave, made by hand.
    ns, foreign = f"vl{instance}-a-h1", "labtest-foreign"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    sleepers: list[subprocess.Popen[bytes]] = []
    try:
        subprocess.run(
            ["ip", "link", "add", ns, "type", "veth", "peer", "name", "mgmt0", "netns", ns],
            check=True,
        )
        run_dir = RUN_DIR / ns / "exec"
        run_dir.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "labtest", str(run_dir)], check=True)
        for netns in (ns, foreign):
            sleepers.append(
                subprocess.Popen(["nsenter", f"--net=/run/netns/{netns}", "--", "sleep", "1000"])
            )
        time.sleep(0.2)
        assert len(leftovers(instance)) >= 4
        lab_down(instance)
        assert leftovers(instance) == []
        # Processes the lab did not start are never ended, not even inside a lab namespace
        # (removing the namespace's name kills nothing); nothing that does not follow the
        # lab's naming is touched.
        assert sleepers[0].poll() is None
        assert sleepers[1].poll() is None
        assert foreign in os.listdir("/run/netns")
    finally:
        for p in sleepers:
            p.kill()
            p.wait()
        subprocess.run(["ip", "netns", "delete", foreign], check=False)


def test_down_is_safe_when_nothing_exists(instance: str) -> None:
    lab_down(instance)
    lab_down(instance)
    assert main(["down", "--instance", instance]) == 0
    assert leftovers(instance) == []


def test_cli_up_status_down(instance: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--instance", instance, "--hosts", "1"]) == 0
    inv = json.loads(Path(inventory_path(instance)).read_text())
    assert inv["instance"] == instance and len(inv["sites"][0]["hosts"]) == 1
    assert main(["status", "--instance", instance]) == 0
    out = capsys.readouterr().out
    assert f"vl{instance}-a-h1" in out and "dockerd up" in out
    assert main(["down", "--instance", instance]) == 0
    assert main(["status", "--instance", instance]) == 0
    assert "not up" in capsys.readouterr().out
    assert main(["up", "--instance", "toolong"]) == 1
