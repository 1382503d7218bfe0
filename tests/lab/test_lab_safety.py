"""Lab safety (issue 8, acceptance case 14), on the lab: `lab up` refuses ranges that overlap
the root namespace, a foreign lock holder makes it time out, `lab down` ends only the lab's own
processes, and the lab's sshd forwards nothing. The pure checks (ranges, locks, recorded
processes) are tests/unit/lab/test_lab_safety.py.

Each builds a one-host instance of its own (``sf``), removed at the end even on failure.
Addresses come from the plan or the inventory, never typed.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.unit.lab.test_lab_safety import foreign_holder
from vlaninfra.lab import Inventory, LabError, _lock, _ranges, lab_down, lab_up
from vlaninfra.lab._inventory import RUN_DIR, state_dir
from vlaninfra.lab._procs import own_processes
from vlaninfra.lab._ranges import RootEntry, read_root_table

# --- on the lab (root): acceptance case 14 ------------------------------------------------------

SAFE = "sf"  # instance up for the process and sshd cases


def _sh(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=False)


def _nothing_of(instance: str) -> None:
    assert not [x for x in _sh("ip", "netns", "list").stdout.split() if f"vl{instance}-" in x]
    assert not state_dir(instance).exists()


@pytest.mark.lab
def test_lab_up_refuses_ranges_that_overlap_the_root_namespace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Bound: 10 s (the check runs before anything is built). The root namespace's real table
    # plus one route into the lab's Docker address pool (no dummy links on this kernel, and
    # the root namespace's real links are never touched).
    instance = "sr"
    lab_down(instance)
    fake = RootEntry(
        "route 198.19.200.0/24 via 192.0.2.1 dev eth0 proto static",
        ipaddress.IPv4Network("198.19.200.0/24"),
        "eth0",
    )
    monkeypatch.setattr(_ranges, "read_root_table", lambda: [*read_root_table(), fake])
    try:
        t0 = time.monotonic()
        with pytest.raises(LabError) as err:
            lab_up(hosts=1, instance=instance)
        took = time.monotonic() - t0
        print(f"refused in {took:.2f} s")
        assert took < 10, took
        assert f"Docker default address pool 198.19.128.0/17 overlaps {fake.text}" in str(err.value)
        assert "--instance NAME" in str(err.value) and "Nothing was built" in str(err.value)
        _nothing_of(instance)
    finally:
        lab_down(instance)


@pytest.mark.lab
def test_a_foreign_lock_holder_makes_lab_up_fail_after_the_timeout() -> None:
    # Bound: the timeout (2 s) plus the CLI's start, 10 s in all.
    instance = "sl"
    lab_down(instance)
    lock = _lock._checked_dir() / f"instance-{instance}.lock"
    try:
        with foreign_holder(lock) as holder:
            t0 = time.monotonic()
            proc = subprocess.run(
                [
                    str(Path(sys.executable).parent / "vlaninfra"),
                    "lab",
                    "up",
                    "--instance",
                    instance,
                ],
                capture_output=True,
                text=True,
                timeout=60,
                env={**os.environ, "VLANINFRA_LAB_LOCK_TIMEOUT": "2"},
                check=False,
            )
            took = time.monotonic() - t0
        print(f"failed in {took:.2f} s: {proc.stderr.strip()}")
        assert proc.returncode != 0 and 2 <= took < 10, (took, proc.stdout, proc.stderr)
        assert f"lab lock {lock} is still held by pid {holder.pid}" in proc.stderr
        assert "Traceback" not in proc.stderr
        _nothing_of(instance)
    finally:
        lab_down(instance)


@pytest.fixture(scope="module")
def safe_lab() -> Iterator[Inventory]:
    lab_down(SAFE)
    try:
        yield lab_up(hosts=1, instance=SAFE)
    finally:
        lab_down(SAFE)


def _lab_pids(inv: Inventory) -> set[int]:
    h = inv.sites[0].hosts[0]
    ino = os.stat(f"/run/netns/{h.netns}").st_ino
    state = state_dir(inv.instance)
    files = [p for p in state.glob("*/*.pid")] + list(RUN_DIR.glob(f"{h.netns}/**/*.pid"))
    return {p.pid for p in own_processes(files, [ino])}


@pytest.mark.lab
def test_sshd_refuses_every_forwarding(safe_lab: Inventory) -> None:
    # Bound: 15 s.
    t0 = time.monotonic()
    h = safe_lab.sites[0].hosts[0]
    cfg = state_dir(SAFE) / h.netns / "sshd_config"
    effective = _sh("/usr/sbin/sshd", "-T", "-f", str(cfg)).stdout.lower().splitlines()
    for line in (
        "allowtcpforwarding no",
        "allowstreamlocalforwarding no",
        "allowagentforwarding no",
        "x11forwarding no",
        "permittunnel no",
        "disableforwarding yes",
        "passwordauthentication no",
        "kbdinteractiveauthentication no",
        "permitrootlogin without-password",
    ):
        assert line in effective, line
    client = paramiko.SSHClient()
    client.load_host_keys(safe_lab.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(
            h.mgmt_address,
            username="root",
            key_filename=safe_lab.key_path,
            look_for_keys=False,
            allow_agent=False,
            timeout=5,
        )
        transport = client.get_transport()
        assert transport is not None
        _, out, _ = client.exec_command("echo shell-ok", timeout=5)
        assert out.read().strip() == b"shell-ok"  # the login itself works
        with pytest.raises(paramiko.ChannelException, match="prohibited"):
            transport.open_channel(
                "direct-tcpip", (h.mgmt_address, 22), ("127.0.0.1", 4242), timeout=5
            )
        with pytest.raises(paramiko.SSHException):
            transport.request_port_forward("127.0.0.1", 0)
    finally:
        client.close()
    assert time.monotonic() - t0 < 15


@pytest.mark.lab
def test_lab_down_ends_only_the_labs_own_processes(safe_lab: Inventory) -> None:
    # Bound: 30 s for `lab down`.
    h = safe_lab.sites[0].hosts[0]
    state = state_dir(SAFE)
    docker = ["docker", "-H", f"unix://{h.docker_socket}"]
    run = [*docker, "run", "-d", "--network", "none", "--name", "c1", h.image, "sleep", "300"]
    assert _sh(*run).returncode == 0
    ours = _lab_pids(safe_lab)
    assert len(ours) >= 5, ours  # sshd x2 (gw, h1), dockerd, containerd, shim, container
    # Unrelated processes: one naming the lab's paths on its command line, one (as nobody)
    # naming them too, one running inside the lab host's namespace.
    names = [str(state / h.netns / "sshd_config"), f"--exec-root={RUN_DIR / h.netns / 'exec'}"]
    sleeper = "import time; time.sleep(300)"
    foreign = [
        subprocess.Popen([sys.executable, "-c", sleeper, *names], start_new_session=True),
        subprocess.Popen(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "/usr/bin/python3",  # the venv may be closed to nobody
                "-c",
                sleeper,
                *names,
            ],
            start_new_session=True,
        ),
        subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{h.netns}", "--", sys.executable, "-c", sleeper],
            start_new_session=True,
        ),
    ]
    try:
        time.sleep(0.2)
        assert all(p.poll() is None for p in foreign)
        assert not {p.pid for p in foreign} & ours
        t0 = time.monotonic()
        report = lab_down(SAFE)
        took = time.monotonic() - t0
        print(f"lab down in {took:.2f} s")
        assert took < 30, took
        assert all(p.poll() is None for p in foreign), "lab down ended a foreign process"
        # The one in the lab host's namespace keeps it alive: reported, not ended.
        assert [line for line in report if line.startswith(f"process {foreign[2].pid} ")], report
        assert h.netns in report[0] and "left running" in report[0], report
        assert not [pid for pid in ours if Path(f"/proc/{pid}").exists()]
        _nothing_of(SAFE)
    finally:
        for p in foreign:
            p.kill()
            p.wait()
