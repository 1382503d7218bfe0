"""A real guest reboot after `up` (issue 11, acceptance 1): the real engine on a VM lab host.

The `lab-vlan` layout: an 802.1Q parent vlaninfra creates (`eth0.50`), a macvlan network on
it, a shim with an address and routes to the containers, two containers. After `up` the guest
runs its own `reboot` (QEMU keeps the same overlay disk); its init runs vlaninfra's boot hook
before dockerd, Docker's restart policy brings the containers back, and everything is
reachable again from the VLAN's peer and from the host through the shim; `refresh` finds no
drift; `destroy` removes the live objects and every file persistence made.

One lab instance of its own (`rb`: LAN, router, peer, VM host v1 and a VLAN 50 peer), brought
down at the end also on failure: the reboot changes the host, so no other module shares it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.observe import LabStack, destroy_at_teardown
from tests.e2e.vm_observe import ok, ssh, stack_file_sites, vm_stack, vm_state
from vlaninfra.lab import Host, Inventory, lab_down, lab_up
from vlaninfra.lab._vm import reboot_vm, vm_unavailable_reason

pytestmark = [pytest.mark.lab, pytest.mark.engine, pytest.mark.vm]

INSTANCE = "rb"
VLAN_PEER = (50, "198.18.50.2/24")
PERSIST = "/etc/vlaninfra/persist/vlaninfra--reboot"  # project `vlaninfra`, stack `reboot`
LEFT = "/etc/vlaninfra /usr/local/sbin/vlaninfra-restore /usr/local/lib/vlaninfra"


@pytest.fixture(scope="module")
def vm_lab() -> Iterator[Inventory]:
    reason = vm_unavailable_reason()
    if reason is not None:
        pytest.skip(f"VM lab hosts unavailable: {reason}")
    lab_down(INSTANCE)
    try:
        yield lab_up(hosts=1, vm_hosts=1, vlan_peers=[VLAN_PEER], instance=INSTANCE)
    finally:
        lab_down(INSTANCE)


@pytest.fixture(scope="module")
def stack(vm_lab: Inventory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabStack]:
    sites = stack_file_sites("lab-vlan", vm_lab)
    s = vm_stack(vm_lab, tmp_path_factory.mktemp("reboot"), "reboot", sites)
    try:
        yield s
    finally:
        destroy_at_teardown(s.engine, s.name, s.project)


@pytest.fixture(scope="module")
def baseline(stack: LabStack) -> dict[str, Any]:
    return vm_state(stack.inventory, _v1(stack.inventory).mgmt_address)


def _v1(inv: Inventory) -> Host:
    return next(h for h in inv.sites[0].hosts if h.name == "v1")


def _live(inv: Inventory, address: str) -> dict[str, str]:
    """What a reboot loses, as `ip` shows it (marks included), and the containers' state."""
    return {
        "vlan": ssh(inv, address, "ip -d -o link show eth0.50 | grep -o 'vlan protocol 802.1Q id "
                                  "50'; ip -o link show eth0.50 | grep -o 'state UP'"),
        "alias": ssh(inv, address, "cat /sys/class/net/eth0.50/ifalias "
                                   "/sys/class/net/shim-v50/ifalias"),
        "shim": ssh(inv, address, "ip -d -o link show shim-v50 | grep -o 'macvlan mode bridge'; "
                                  "ip -o -4 addr show dev shim-v50 | awk '{print $4}'"),
        "routes": ssh(inv, address, "ip route show dev shim-v50 proto 57 | sort"),
        "containers": ssh(inv, address, "docker ps --format '{{.Names}} {{.Status}}' | "
                                        "awk '{print $1, $2}' | sort"),
        "policy": ssh(inv, address, "docker inspect -f '{{.HostConfig.RestartPolicy.Name}}' "
                                    "tagged1 tagged2"),
    }


def _reachable(inv: Inventory, timeout: float = 60.0) -> list[str]:
    """What does not answer (retried until `timeout`: containers start after dockerd)."""
    peer, v1 = inv.sites[0].vlan_peers[0].mgmt_address, _v1(inv).mgmt_address
    checks = {"peer -> tagged1": (peer, "curl -sf -m 3 http://198.18.50.130/"),
              "v1 shim -> tagged2": (v1, "curl -sf -m 3 http://198.18.50.131/")}
    deadline = time.monotonic() + timeout
    while True:
        failing = [k for k, (addr, cmd) in checks.items() if not ok(inv, addr, cmd)]
        if not failing or time.monotonic() > deadline:
            return failing
        time.sleep(2)


def test_a_real_reboot_brings_parent_shim_routes_and_containers_back(
    stack: LabStack, baseline: dict[str, Any]
) -> None:
    inv = stack.inventory
    v1 = _v1(inv)
    # stack, Site, SiteVlanParents, VlanParent, SiteNetwork, network, shim, 2 containers
    assert stack.changes("up", "--yes") == {"create": 9}
    files = ssh(inv, v1.mgmt_address, f"stat -c '%a %n' {PERSIST} {PERSIST}/*")
    assert files.split("\n")[:3] == [
        f"700 {PERSIST}", f"600 {PERSIST}/shim--shim-v50.json",
        f"600 {PERSIST}/vlan--eth0.50.json"], files
    before = _live(inv, v1.mgmt_address)
    assert before["policy"].split() == ["unless-stopped", "unless-stopped"]
    assert len(before["containers"].splitlines()) == 2
    assert _reachable(inv, timeout=10) == []

    assert v1.console_log is not None
    console = Path(v1.console_log)
    offset = console.stat().st_size
    seconds = reboot_vm(console.parent, v1.mgmt_address, Path(inv.key_path))
    boot = console.read_bytes()[offset:].decode(errors="replace")
    assert "=== LAB REBOOTING" in boot and "=== LAB RESTORED" in boot, boot[-3000:]
    for line in ("vlan eth0.50 (stack vlaninfra/reboot): ok",
                 "shim shim-v50 (stack vlaninfra/reboot): ok"):
        assert line in boot, boot[-3000:]
    # the hook ran before dockerd, which then restarted the containers on the restored links
    assert boot.index("=== LAB RESTORED") < boot.index("=== LAB DOCKER READY")
    assert _reachable(inv) == []
    after = _live(inv, v1.mgmt_address)
    assert after == before
    print(f"\nreboot (guest `reboot` to docker ready and ssh): {seconds} s")
    stack.run("refresh", "--yes", "--skip-preview", "--expect-no-changes")


def test_destroy_removes_the_live_objects_and_every_persistence_file(
    stack: LabStack, baseline: dict[str, Any]
) -> None:
    inv = stack.inventory
    v1 = _v1(inv).mgmt_address
    assert set(stack.changes("destroy", "--yes")) == {"delete"}
    after = vm_state(inv, v1)
    for part in ("addresses", "networks", "containers"):
        assert after[part] == baseline[part], f"v1 {part} differs after destroy"
    assert [link[0] for link in after["links"]] == [link[0] for link in baseline["links"]]
    assert ssh(inv, v1, f"ls -d {LEFT} 2>/dev/null; true") == ""
