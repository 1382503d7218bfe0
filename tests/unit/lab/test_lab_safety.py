"""Lab safety (issue 8, acceptance case 14), the pure part: lab ranges never overlap this
machine's own addresses and routes, the lab's locks live in a root-only directory and time out,
and only recorded processes and their descendants count as the lab's own. No root needed: the
lock tests use a directory of their own, the process tests their own sleepers.
The lab part is tests/lab/test_lab_safety.py.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlaninfra.lab import LabError, _lock
from vlaninfra.lab._daemons import kill_processes, start_detached
from vlaninfra.lab._procs import own_processes, process_info, recorded_pid
from vlaninfra.lab._ranges import (
    LabRange,
    RootEntry,
    check_ranges,
    lab_ranges,
    overlaps,
    own_links,
    parse_root_table,
    read_root_table,
)
from vlaninfra.lab._topology import MAX_HOSTS_2_SITES, MAX_SITES, MAX_SLOTS, plan, plan_vms

POOL = "198.19.128.0/17"
INSTANCES = ["default", "t1", "t2", "t3"]


def _entry(text: str, cidr: str, dev: str = "eth0") -> RootEntry:
    return RootEntry(text, ipaddress.IPv4Interface(cidr).network, dev)


# --- pure: the overlap logic --------------------------------------------------------------------


def test_the_ranges_of_all_slots_are_disjoint_and_off_this_machines_network() -> None:
    machine = ipaddress.IPv4Network("192.0.2.0/24")  # this machine's eth0
    seen: list[LabRange] = []
    for slot in range(MAX_SLOTS):
        p = plan(INSTANCES[slot], slot, sites=MAX_SITES, hosts=MAX_HOSTS_2_SITES)
        vms = plan_vms(p, 2)
        mine = [x for x in lab_ranges(p, vms, POOL) if x.network != ipaddress.ip_network(POOL)]
        for x in mine:
            assert not x.network.overlaps(machine), x
            assert not x.network.overlaps(ipaddress.ip_network(POOL)), x
            clash = [y for y in seen if y.network.overlaps(x.network)]
            assert not clash, (x, clash)
        seen += mine


def test_a_route_or_address_in_a_lab_range_is_refused_naming_both() -> None:
    p = plan("default", 0, sites=2)
    lan_a = p.sites[0].lan
    table = [
        _entry("address 192.0.2.2/24 on eth0", "192.0.2.2/24"),
        _entry(f"route {lan_a} via 192.0.2.9 dev eth0", lan_a),
        _entry("address 198.19.200.1/32 on dummy9", "198.19.200.1/32", "dummy9"),
    ]
    with pytest.raises(LabError) as err:
        check_ranges("default", lab_ranges(p, (), POOL), table)
    text = str(err.value)
    assert f"site a LAN {lan_a} overlaps route {lan_a} via 192.0.2.9 dev eth0" in text
    assert "Docker default address pool 198.19.128.0/17 overlaps address 198.19.200.1/32" in text
    assert "192.0.2.2" not in text  # the machine's own LAN is not the lab's
    assert "--instance NAME" in text and "Nothing was built" in text


def test_ipv6_lans_use_the_documentation_prefix_and_are_checked_against_the_root() -> None:
    doc = ipaddress.IPv6Network("2001:db8::/32")
    for slot in range(MAX_SLOTS):
        for site in plan(INSTANCES[slot], slot, sites=MAX_SITES).sites:
            assert ipaddress.IPv6Network(site.lan6).subnet_of(doc)
    addrs = [{"ifname": "eth0", "addr_info": [
        {"family": "inet6", "local": "fd00::2", "prefixlen": 64},  # this machine's eth0
        {"family": "inet6", "local": "fe80::1", "prefixlen": 64}]}]
    routes = [{"dst": "2001:db8::/32", "gateway": "fd00::1", "dev": "eth0"},
              {"dst": "ff00::/8", "dev": "eth0", "table": "local", "type": "multicast"}]
    table = parse_root_table(json.dumps(addrs), json.dumps(routes))
    assert [e.text for e in table] == ["address fd00::2/64 on eth0",
                                       "route 2001:db8::/32 via fd00::1 dev eth0"]
    found = overlaps(lab_ranges(plan("default", 0), (), POOL), table)
    assert [(r.what, str(r.network), e.text) for r, e in found] == [
        ("site a IPv6 LAN", "2001:db8:1::/64", "route 2001:db8::/32 via fd00::1 dev eth0")]


def test_a_wider_route_overlaps_too() -> None:
    p = plan("default", 0)
    table = [_entry("route 198.51.0.0/16 via 192.0.2.9 dev eth0", "198.51.0.0/16")]
    assert [r.what for r, _ in overlaps(lab_ranges(p, (), POOL), table)] == ["site a LAN"]


def test_the_default_route_and_local_routes_do_not_count() -> None:
    addrs = [{"ifname": "eth0", "addr_info": [{"family": "inet", "local": "192.0.2.2",
                                               "prefixlen": 24}]}]  # fmt: skip
    routes = [
        {"dst": "default", "gateway": "192.0.2.1", "dev": "eth0"},
        {"type": "local", "dst": "198.51.100.7", "dev": "eth0", "table": "local"},
        {"type": "broadcast", "dst": "198.51.100.255", "dev": "eth0", "table": "local"},
        {"dst": "198.18.255.0/31", "gateway": "192.0.2.1", "dev": "eth0", "protocol": "static"},
    ]
    table = parse_root_table(json.dumps(addrs), json.dumps(routes))
    assert [e.text for e in table] == [
        "address 192.0.2.2/24 on eth0",
        "route 198.18.255.0/31 via 192.0.2.1 dev eth0 proto static",
    ]
    found = overlaps(lab_ranges(plan("default", 0, sites=2), (), POOL), table)
    assert [(r.what, e.text) for r, e in found] == [
        ("router-to-router link", "route 198.18.255.0/31 via 192.0.2.1 dev eth0 proto static")
    ]


def test_the_instances_own_links_are_its_own_and_no_others() -> None:
    p = plan("t1", 1)
    vms = plan_vms(p, 1)
    h1 = p.sites[0].hosts[0]
    tap = f"vt-{vms[0].vm_name}-m"
    table = [
        _entry(f"address {h1.mgmt_root_address}/31 on {h1.netns}", f"{h1.mgmt_root_address}/31",
               h1.netns),
        _entry(f"address {vms[0].mgmt_root_address}/31 on {tap}",
               f"{vms[0].mgmt_root_address}/31", tap),
        _entry(f"address {h1.mgmt_root_address}/31 on eth1", f"{h1.mgmt_root_address}/31",
               "eth1"),
    ]  # fmt: skip
    own = own_links("t1", [e.dev for e in table] + ["vl-a-h1", "vt-vl-a-v1-m"])
    assert own == {h1.netns, tap}
    found = overlaps(lab_ranges(p, vms, POOL), table, own)
    assert [(r.what, e.dev) for r, e in found] == [(f"management of {h1.netns}", "eth1")]


# --- real parts: this machine's table -----------------------------------------------------------


def test_this_machines_table_is_read_and_the_default_lab_fits_it() -> None:
    table = read_root_table()
    shown = "".join(subprocess.run(["ip", "-o", family, "addr", "show"], capture_output=True,
                                   text=True, check=True).stdout for family in ("-4", "-6"))
    expected = {f"address {f[3]} on {f[1]}" for f in (x.split() for x in shown.splitlines())
                if not f[3].startswith("fe80:")}
    assert {e.text for e in table if e.text.startswith("address ")} == expected
    # On the machine this was written on, eth0 is 192.0.2.2/24: the old default site a LAN.
    assert not any(e.text.startswith("route default") for e in table)
    p = plan("default", 0, sites=2)
    own = own_links("default", {e.dev for e in table})
    assert overlaps(lab_ranges(p, plan_vms(p, 2), POOL), table, own) == []


# --- the locks ----------------------------------------------------------------------------------


@pytest.fixture
def lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private lock directory (the real one is shared by every lab run of the machine)."""
    where = tmp_path / "locks"
    monkeypatch.setattr(_lock, "LOCK_DIR", where)
    return where


@contextlib.contextmanager
def foreign_holder(path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Another process holding an exclusive flock on `path` (flock(1) running sleep)."""
    path.parent.mkdir(mode=0o700, exist_ok=True)
    proc = subprocess.Popen(["flock", "-x", str(path), "sleep", "300"], start_new_session=True)
    try:
        deadline = time.monotonic() + 5
        while not _lock.lock_holders(path):
            assert time.monotonic() < deadline, "flock(1) did not take the lock"
            time.sleep(0.05)
        yield proc
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # flock(1) and its sleep, which shares the lock
        proc.wait()


def test_a_held_lock_fails_after_the_timeout_naming_the_holder(lock_dir: Path) -> None:
    # Bound: the timeout (1 s) plus one poll.
    with foreign_holder(lock_dir / "machine.lock") as holder:
        t0 = time.monotonic()
        with pytest.raises(LabError) as err, _lock.lab_lock("machine", timeout=1.0):
            pass
        took = time.monotonic() - t0
    assert 1.0 <= took < 1.5, took
    assert f"held by pid {holder.pid} (flock -x {lock_dir}/machine.lock sleep 300)" in str(
        err.value
    )
    assert "VLANINFRA_LAB_LOCK_TIMEOUT" in str(err.value)
    with _lock.lab_lock("machine", timeout=1.0):  # free again once the holder is gone
        pass


def test_the_lock_directory_is_made_closed_and_refused_when_open(lock_dir: Path) -> None:
    with _lock.lab_lock("machine", timeout=0):
        pass
    assert stat.S_IMODE(lock_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((lock_dir / "machine.lock").stat().st_mode) == 0o600
    lock_dir.chmod(0o1777)
    with pytest.raises(LabError, match="has mode 1777, others may change it"):
        _lock.lab_lock("machine", timeout=0).__enter__()
    lock_dir.chmod(0o700)
    (lock_dir / "machine.lock").unlink()
    (lock_dir / "machine.lock").symlink_to(lock_dir.parent / "elsewhere")
    with pytest.raises(LabError, match="a symlink"):
        _lock.lab_lock("machine", timeout=0).__enter__()
    assert not (lock_dir.parent / "elsewhere").exists()


def test_a_symlinked_lock_directory_is_refused(lock_dir: Path) -> None:
    real = lock_dir.parent / "real"
    real.mkdir(mode=0o700)
    lock_dir.symlink_to(real)
    with pytest.raises(LabError, match="is not a directory"):
        _lock.lab_lock("machine", timeout=0).__enter__()
    assert list(real.iterdir()) == []


# --- recorded processes ------------------------------------------------------------------------


def test_a_pid_counts_only_while_its_process_is_not_younger_than_the_pidfile(
    tmp_path: Path,
) -> None:
    pidfile = tmp_path / "x.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    assert recorded_pid(pidfile) == os.getpid()
    hour_ago = time.time() - 3600  # a pidfile older than the process: the pid was reused
    os.utime(pidfile, (hour_ago, hour_ago))
    if process_info(os.getpid()).start > hour_ago + 5:  # type: ignore[union-attr]
        assert recorded_pid(pidfile) is None
    pidfile.write_text("garbage\n")
    assert recorded_pid(pidfile) is None


def test_own_processes_are_the_recorded_ones_and_their_descendants_only(tmp_path: Path) -> None:
    # A daemon started the lab's way (pid recorded before it runs) with a child; a foreign
    # process naming the pidfile and the daemon's paths on its command line.
    pidfile = tmp_path / "d.lab.pid"
    log = tmp_path / "d.log"
    pid = start_detached(["sh", "-c", "sleep 300 & wait", str(tmp_path)], log, pidfile)
    foreign = subprocess.Popen(
        ["sh", "-c", "sleep 300; : " + f"{pidfile} {tmp_path}"], start_new_session=True
    )
    try:
        deadline = time.monotonic() + 5
        while len(found := own_processes([pidfile], [])) < 2:
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        assert found[0].pid == pid and found[1].ppid == pid and len(found) == 2
        assert foreign.pid not in {p.pid for p in found}
        killed = kill_processes(lambda: own_processes([pidfile], []))
        assert {p.pid for p in killed} == {p.pid for p in found}
        assert foreign.poll() is None
    finally:
        for p in own_processes([pidfile], []):
            os.kill(p.pid, signal.SIGKILL)
        os.killpg(foreign.pid, signal.SIGKILL)  # sh and its sleep
        foreign.wait()
