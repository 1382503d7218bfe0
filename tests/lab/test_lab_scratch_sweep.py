"""`lab down` removes what a killed agent-test run left (its scratch hosts), never a live run's."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vlaninfra.lab import _netns as n
from vlaninfra.lab._procs import alive, processes_in

pytestmark = pytest.mark.lab


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert not alive(proc.pid)
    return proc.pid


def _names(pid: int) -> dict[str, Path | str]:
    docker_dir = Path(f"/var/tmp/vxa-docker-{pid}-sweep")
    return {"netns": f"vxa-swp-{pid}", "link": f"vxa{pid}m", "run": Path(f"/run/vxa-{pid}"),
            "sshd": Path(f"/tmp/vxa-sshd-{pid}-sweep"), "docker": docker_dir,
            "log": docker_dir.with_name(docker_dir.name + ".log")}


def _make(items: dict[str, Path | str]) -> None:
    """Leftovers shaped like tests/lab/_agent_fixtures.py's: a namespace with a process in it
    and a management veth, dockerd's exec root with a pidfile, sshd's and dockerd's temp dirs
    (a mount in the latter), dockerd's log."""
    ns, link = str(items["netns"]), str(items["link"])
    n.run(["ip", "netns", "add", ns])
    n.run(["ip", "link", "add", link, "type", "veth", "peer", "name", "mgmt0", "netns", ns])
    subprocess.run(["setsid", "-f", *n.nsenter(ns), "sleep", "600"], check=True)
    for key in ("run", "sshd", "docker"):
        Path(items[key]).mkdir(parents=True)
    Path(items["run"], "docker.pid").write_text("1\n")  # pid 1 is never anyone's daemon
    (Path(items["docker"]) / "data").mkdir()
    n.run(["mount", "-t", "tmpfs", "tmpfs", str(Path(items["docker"]) / "data")])
    Path(items["log"]).write_text("log\n")


def _present(items: dict[str, Path | str]) -> dict[str, bool]:
    links = n.link_names(None)
    return {
        k: (v in n.list_netns() if k == "netns" else v in links if k == "link"
            else Path(v).exists())
        for k, v in items.items()
    }


def _remove(items: dict[str, Path | str]) -> None:
    ino = n.netns_inode(str(items["netns"]))
    for p in processes_in(ino) if ino is not None else []:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, 9)
    subprocess.run(["umount", "-l", str(Path(items["docker"]) / "data")], capture_output=True)
    subprocess.run(["ip", "link", "del", str(items["link"])], capture_output=True)
    subprocess.run(["ip", "netns", "del", str(items["netns"])], capture_output=True)
    for k in ("run", "sshd", "docker"):
        shutil.rmtree(items[k], ignore_errors=True)
    Path(items["log"]).unlink(missing_ok=True)


def test_lab_down_sweeps_a_killed_runs_scratch_hosts_and_keeps_a_live_ones() -> None:
    dead, live = _dead_pid(), os.getpid()
    dead_items, live_items = _names(dead), _names(live)
    # Anyone can write to /tmp: a dead run's name on a directory others may write to, with a
    # pidfile naming a process outside any scratch namespace, must make `lab down` neither
    # end that process nor delete the directory.
    planted = Path(f"/tmp/vxa-sshd-{dead}-planted")
    bystander = subprocess.Popen(["sleep", "600"])
    try:
        planted.mkdir()
        planted.chmod(0o777)
        (planted / "sshd.pid").write_text(f"{bystander.pid}\n")
        _make(dead_items)
        _make(live_items)
        sleeper = [p.pid for p in processes_in(n.netns_inode(f"vxa-swp-{dead}") or 0)]
        assert sleeper
        t0 = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-c", "from vlaninfra.cli import main; raise SystemExit(main())",
             "lab", "down", "--instance", "swp"],
            capture_output=True, text=True, timeout=120,
        )
        seconds = time.monotonic() - t0
        assert proc.returncode == 0, proc.stderr
        assert f"removed namespace vxa-swp-{dead} of a killed test run" in proc.stderr
        assert _present(dead_items) == dict.fromkeys(dead_items, False)
        assert planted.is_dir() and bystander.poll() is None
        assert not any(alive(pid) for pid in sleeper)
        assert _present(live_items) == dict.fromkeys(live_items, True)
        assert processes_in(n.netns_inode(f"vxa-swp-{live}") or 0)  # its process still runs
        assert seconds < 30
    finally:
        bystander.kill()
        bystander.wait()
        shutil.rmtree(planted, ignore_errors=True)
        for items in (dead_items, live_items):
            _remove(items)
