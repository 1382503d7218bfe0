"""VM hosts and VLAN peers as lab members: ``lab_up(vm_hosts=…, vlan_peers=…)``.

The pure tests of addressing, inventory format and CLI parsing are
tests/unit/lab/test_lab_vm_plan.py. The lab tests use
the session's shared VM lab (`vm_lab`, instance ``iv``: one namespace host, VM host ``v1``,
VLAN peer ``p1`` on VLAN 50: two QEMU guests); the last of them takes it down and checks that
nothing is left. They skip, with the reason, when QEMU cannot run here.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import VM_LAB, VM_LAB_VLAN_PEER, VmLabBoot, up_vm_lab
from tests.lab.lab_helpers import in_netns, leftovers
from vlaninfra.lab import Inventory, LabError, _vm, lab_down, lab_status, lab_up
from vlaninfra.lab._labvm import vm_leftovers
from vlaninfra.lab._topology import vm_instance_of

INSTANCE = VM_LAB
(VLAN, PEER_ADDR), HOST_VLAN_ADDR = VM_LAB_VLAN_PEER, "198.18.50.1/24"


# --- pure (the VM cache; the other pure tests are tests/unit/lab/test_lab_vm_plan.py) ---


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
        (_vm.arg_after(argv, "-name") or "")[3:]: pid
        for pid, argv in _vm.qemu_pids().items()
        if vm_instance_of((_vm.arg_after(argv, "-name") or "")[3:]) == instance
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
