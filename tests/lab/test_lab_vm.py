"""VM hosts and VLAN peers as lab members: ``lab_up(vm_hosts=…, vlan_peers=…)``.

The pure tests (addressing, inventory format, CLI parsing) need nothing. The lab tests use
the session's shared VM lab (`vm_lab`, instance ``iv``: one namespace host, VM host ``v1``,
VLAN peer ``p1`` on VLAN 50: two QEMU guests); the last of them takes it down and checks that
nothing is left. They skip, with the reason, when QEMU cannot run here.
"""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import VM_LAB, VM_LAB_VLAN_PEER, VmLabBoot, up_vm_lab
from tests.lab.lab_helpers import in_netns, leftovers
from vlaninfra.lab import Inventory, LabError, VlanPeer, _vm, lab_down, lab_status, lab_up
from vlaninfra.lab._labvm import vm_leftovers
from vlaninfra.lab._topology import MAX_VMS, plan, plan_vms, vm_instance_of
from vlaninfra.lab.cli import _vlan_peer

INSTANCE = VM_LAB
(VLAN, PEER_ADDR), HOST_VLAN_ADDR = VM_LAB_VLAN_PEER, "198.18.50.1/24"


# --- pure -------------------------------------------------------------------------------------


def test_vm_addressing_is_disjoint_from_the_namespace_lab_and_the_vm_unit_tests() -> None:
    ns_mgmt = ipaddress.IPv4Network("203.0.113.0/25")
    vm_unit = ipaddress.IPv4Network("203.0.113.240/28")
    seen: set[str] = set()
    for instance, slot in (("default", 0), ("abc", 1), ("t2", 2), ("9", 3)):
        p = plan(instance, slot, 1, 10)
        vms = plan_vms(p, 5, [(50, "198.18.50.2/24"), (60, "198.18.60.2/24"), (4094, "10.9.0.1/8")])
        assert len(vms) == MAX_VMS
        ns_lan = {h.lan_address for h in p.sites[0].hosts} | {p.sites[0].router.lan_address}
        for v in vms:
            for a in (v.mgmt_address, v.mgmt_root_address):
                ip = ipaddress.IPv4Address(a)
                assert ip in ipaddress.IPv4Network("203.0.113.128/26")
                assert ip not in ns_mgmt and ip not in vm_unit
                assert a not in seen
                seen.add(a)
            assert v.lan_address not in ns_lan
            # IPv6 beside IPv4: same host part, the site's documentation-prefix LAN
            assert ipaddress.IPv6Interface(v.lan_address6).network == ipaddress.IPv6Network(
                p.sites[0].lan6)
            assert v.lan_address6.split("/")[0].endswith(
                f"::{int(v.lan_address.split('/')[0].rsplit('.', 1)[1]):x}")
            assert len(f"vt-{v.vm_name}-l") <= 15 and vm_instance_of(v.vm_name) == instance
    d = plan_vms(plan("default", 0, 1, 2), 2, [(50, "198.18.50.2/24")])
    assert [(v.name, v.vm_name, v.lan_address, v.mgmt_address) for v in d] == [
        ("v1", "vl-a-v1", "198.51.100.21/24", "203.0.113.129"),
        ("v2", "vl-a-v2", "198.51.100.22/24", "203.0.113.131"),
        ("p1", "vl-a-p1", "198.51.100.31/24", "203.0.113.133"),
    ]
    assert (d[2].kind, d[2].vlan, d[2].vlan_address, d[2].gateway) == (
        "vlan-peer", 50, "198.18.50.2/24", "198.51.100.1",
    )  # fmt: skip
    assert len({v.mac_seed for v in d}) == 3
    assert (d[0].lan_address6, d[0].gateway6) == ("2001:db8:1::15/64", "2001:db8:1::1")


@pytest.mark.parametrize(
    ("vm_hosts", "peers", "hosts", "match"),
    [
        (9, [], 2, "0..8"),
        (4, [(50, "198.18.50.2/24")] * 5, 2, "0..8"),
        (1, [], 11, "at most 10"),
        (0, [(0, "198.18.50.2/24")], 2, "1..4094"),
        (0, [(50, "198.18.50.2")], 2, "with prefix"),
        (0, [(50, "198.51.100.99/24")], 2, "overlaps"),
        (0, [(50, "198.18.50.2/24"), (60, "198.18.50.2/24")], 2, "same address"),
    ],
)
def test_bad_vm_arguments_are_refused(
    vm_hosts: int, peers: list[tuple[int, str]], hosts: int, match: str
) -> None:
    with pytest.raises(LabError, match=match):
        plan_vms(plan("default", 0, 1, hosts), vm_hosts, peers)


def test_vm_names_belong_to_their_instance_only() -> None:
    assert vm_instance_of("vl-a-v1") == "default"
    assert vm_instance_of("vlt1-a-p2") == "t1"
    assert vm_instance_of("vmt1") is None and vm_instance_of("x1v1") is None


def test_inventory_with_vm_members_round_trips_and_old_files_still_load() -> None:
    from tests.lab.test_lab_api import EXAMPLE

    old = Inventory.from_json(json.loads(json.dumps(EXAMPLE)))
    assert old.sites[0].vlan_peers == () and old.hosts[0].sshd_log_remote is None
    assert not old.hosts[0].is_vm
    data = old.to_json()
    vm_host = dict(data["sites"][0]["hosts"][0])
    vm_host.update(
        name="v1", netns="", sshd_log="", kind="vm", docker_socket="/var/run/docker.sock",
        sshd_log_remote="/run/sshd.log", vm_name="vl-a-v1", console_log="/c.log",
    )  # fmt: skip
    data["sites"][0]["hosts"].append(vm_host)
    data["sites"][0]["vlan_peers"] = [
        {"name": "p1", "vlan": 50, "address": "198.18.50.2/24", "mgmt_address": "203.0.113.133",
         "ssh_port": 22, "user": "root", "host_key": "ssh-ed25519 AAAA3",
         "lan_address": "198.51.100.31/24", "vm_name": "vl-a-p1", "console_log": "/p.log"}
    ]  # fmt: skip
    inv = Inventory.from_json(data)
    assert inv.hosts[1].is_vm and inv.hosts[1].netns == ""
    assert inv.sites[0].vlan_peers[0] == VlanPeer(**data["sites"][0]["vlan_peers"][0])
    assert inv.to_json() == data


def test_cli_vlan_peer_argument() -> None:
    assert _vlan_peer("50=198.18.50.2/24") == (50, "198.18.50.2/24")
    for bad in ("50", "x=198.18.50.2/24", "50=198.18.50.2"):
        with pytest.raises(Exception, match="VID=ADDR/PREFIX"):
            _vlan_peer(bad)


def test_vm_cache_is_machine_wide_and_overridable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VLANINFRA_VM_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _vm.vm_cache_dir() == (tmp_path / "xdg" / "vlaninfra" / "vm").resolve()
    monkeypatch.setenv("VLANINFRA_VM_CACHE", str(tmp_path / "mine"))
    assert _vm.vm_cache_dir() == (tmp_path / "mine").resolve()


@pytest.mark.lab
def test_lab_up_with_vms_says_why_when_qemu_cannot_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_vm, "vm_unavailable_reason", lambda **_: "qemu-system-x86_64 not found")
    before = sorted(p.name for p in Path("/run/netns").iterdir())
    with pytest.raises(LabError, match="cannot run here: qemu-system-x86_64 not found"):
        lab_up(hosts=1, vm_hosts=1, instance="v9")
    assert sorted(p.name for p in Path("/run/netns").iterdir()) == before  # nothing built


# --- the lab instance ---------------------------------------------------------------------------


def _ssh(inv: Inventory, address: str, script: str, timeout: float = 60) -> str:
    """Run a shell script on a VM member with the inventory's key and pinned host keys."""
    argv = [
        "ssh", "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={inv.known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10", "-i", inv.key_path,
        f"root@{address}", script,
    ]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{address}: {script}: {proc.stderr.strip()}"
    return proc.stdout


def _qemu_pids(instance: str) -> dict[str, int]:
    return {
        (_vm._arg_after(argv, "-name") or "")[3:]: pid
        for pid, argv in _vm._qemu_pids().items()
        if vm_instance_of((_vm._arg_after(argv, "-name") or "")[3:]) == instance
    }


@pytest.mark.lab
@pytest.mark.vm
def test_vm_host_is_a_host_like_the_namespace_hosts(vm_lab: Inventory) -> None:
    inv = vm_lab
    site = inv.sites[0]
    ns_host, vm_host = site.hosts
    assert (ns_host.kind, vm_host.kind) == ("netns", "vm")
    assert vars(ns_host).keys() == vars(vm_host).keys()
    assert (vm_host.name, vm_host.parent, vm_host.user, vm_host.ssh_port) == (
        "v1",
        "eth0",
        "root",
        22,
    )
    assert vm_host.docker_socket == "/var/run/docker.sock" and vm_host.netns == ""
    lan = ipaddress.IPv4Network(site.lan)
    assert vm_host.lan_address == f"{lan.network_address + 21}/{lan.prefixlen}"
    known = Path(inv.known_hosts).read_text()
    assert f"{vm_host.mgmt_address} {vm_host.host_key}\n" in known
    # ssh with the inventory's key and pinned host key; docker answers with the lab image.
    out = _ssh(inv, vm_host.mgmt_address,
               "docker info --format '{{.ServerVersion}} {{.Driver}}' && "
               f"docker image inspect --format ok {vm_host.image} && hostname && "
               "ip route show default")  # fmt: skip
    info, image_ok, hostname, route = out.splitlines()[:4]
    assert (info.split(), image_ok) == ([vm_host.docker_version, "overlay2"], "ok")
    assert hostname == vm_host.vm_name and f"default via {site.gateway} dev eth0" in route
    served = _ssh(inv, vm_host.mgmt_address, "cat /etc/ssh/ssh_host_ed25519_key.pub").split()
    assert " ".join(served[:2]) == vm_host.host_key
    assert vm_host.sshd_log_remote and "Accepted publickey" in _ssh(
        inv, vm_host.mgmt_address, f"cat {vm_host.sshd_log_remote}"
    )
    # Key-only and no forwarding of any kind, as on the namespace hosts.
    effective = _ssh(inv, vm_host.mgmt_address, "sshd -T").lower().splitlines()
    for line in (
        "disableforwarding yes",
        "allowtcpforwarding no",
        "permittunnel no",
        "allowstreamlocalforwarding no",
        "passwordauthentication no",
    ):
        assert line in effective, line


@pytest.mark.lab
@pytest.mark.vm
def test_vm_host_shares_the_lan_with_namespace_members(vm_lab: Inventory) -> None:
    inv = vm_lab
    site = inv.sites[0]
    ns_host, vm_host = site.hosts
    ping = in_netns(
        site.peer.netns, "ping", "-c", "2", "-W", "3", vm_host.lan_address.split("/")[0]
    )
    assert ping.returncode == 0, ping.stdout + ping.stderr
    _ssh(inv, vm_host.mgmt_address, f"ping -c 2 -W 3 {ns_host.lan_address.split('/')[0]}")
    _ssh(inv, vm_host.mgmt_address, f"ping -c 1 -W 3 {site.gateway}")


@pytest.mark.lab
@pytest.mark.vm
def test_vlan_peer_answers_on_its_vlan_only(vm_lab: Inventory) -> None:
    inv = vm_lab
    site = inv.sites[0]
    vm_host = site.hosts[1]
    (peer,) = site.vlan_peers
    assert (peer.name, peer.vlan, peer.address, peer.user) == ("p1", VLAN, PEER_ADDR, "root")
    assert f"{peer.mgmt_address} {peer.host_key}\n" in Path(inv.known_hosts).read_text()
    detail = _ssh(inv, peer.mgmt_address, f"ip -d addr show eth0.{VLAN}")
    assert f"id {VLAN}" in detail and PEER_ADDR in detail, detail
    vif = f"eth0.{VLAN}"
    _ssh(inv, vm_host.mgmt_address,
         f"ip link add link eth0 name {vif} type vlan id {VLAN} && "
         f"ip addr add {HOST_VLAN_ADDR} dev {vif} && ip link set {vif} up")  # fmt: skip
    try:
        _ssh(inv, vm_host.mgmt_address, f"ping -c 3 -W 3 {PEER_ADDR.split('/')[0]}")
        _ssh(inv, peer.mgmt_address, f"ping -c 1 -W 3 {HOST_VLAN_ADDR.split('/')[0]}")
        # untagged, the LAN peer namespace cannot reach the VLAN address
        ping = in_netns(site.peer.netns, "ping", "-c", "1", "-W", "1", PEER_ADDR.split("/")[0])
        assert ping.returncode != 0
    finally:
        _ssh(inv, vm_host.mgmt_address, f"ip link del {vif}")
    assert vif not in _ssh(inv, vm_host.mgmt_address, "ip -o link show")


@pytest.mark.lab
@pytest.mark.vm
def test_status_shows_vm_members(vm_lab: Inventory) -> None:
    inv = vm_lab
    out = lab_status(INSTANCE)
    v1, p1 = inv.sites[0].hosts[1], inv.sites[0].vlan_peers[0]
    want = rf"host +v1 vm {v1.vm_name}: .*sshd up, dockerd up {re.escape(v1.docker_version)}"
    assert re.search(want, out), out
    assert f"vlan-peer p1 vm {p1.vm_name}: eth0.{VLAN} {PEER_ADDR}" in out, out
    assert out.rstrip().endswith(" up"), out


@pytest.mark.lab
@pytest.mark.vm
def test_lab_up_again_keeps_the_running_vms(vm_lab: Inventory, vm_lab_boot: VmLabBoot) -> None:
    inv, first = vm_lab, vm_lab_boot.seconds
    pids = _qemu_pids(INSTANCE)
    assert sorted(pids) == [f"vl{INSTANCE}-a-p1", f"vl{INSTANCE}-a-v1"]
    t0 = time.monotonic()
    again = up_vm_lab()
    took = time.monotonic() - t0
    assert _qemu_pids(INSTANCE) == pids
    assert again == inv
    assert took < first, (took, first)


@pytest.mark.lab
@pytest.mark.vm
def test_lab_down_leaves_nothing(vm_lab: Inventory) -> None:
    """Last user of the shared VM lab in this session's order (a later one brings it back)."""
    inv = vm_lab
    state = Path(inv.key_path).parent
    lab_down(INSTANCE)
    deadline = time.monotonic() + 10
    while (vm_leftovers(INSTANCE) or leftovers(INSTANCE)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not vm_leftovers(INSTANCE) and not leftovers(INSTANCE)
    assert not _qemu_pids(INSTANCE) and not state.exists()
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    assert f"vt-vl{INSTANCE}-" not in links
