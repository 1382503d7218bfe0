"""VM hosts and VLAN peers as lab members, the pure part: their addressing, the arguments
`lab_up(vm_hosts=…, vlan_peers=…)` refuses, their names, the inventory format and the CLI's
``--vlan-peer`` parsing. The lab part is tests/lab/test_lab_vm.py.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from vlaninfra.lab import Inventory, LabError, VlanPeer
from vlaninfra.lab._topology import MAX_VMS, plan, plan_vms, vm_instance_of
from vlaninfra.lab.cli import _vlan_peer


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
    from tests.unit.lab.test_lab_api import EXAMPLE

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
