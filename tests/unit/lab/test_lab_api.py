"""The lab's public names and the inventory format stacks read (pure; no root needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import vlaninfra.lab
from vlaninfra.errors import VlanInfraError
from vlaninfra.lab import Inventory, LabError, inventory_path, load_inventory

EXAMPLE = {
    "version": 1,
    "instance": "default",
    "key_path": "/abs/.lab/default/id_lab",
    "known_hosts": "/abs/.lab/default/known_hosts",
    "sites": [
        {
            "name": "a",
            "lan": "198.51.100.0/24",
            "gateway": "198.51.100.1",
            "router": {
                "name": "gw",
                "netns": "vl-a-gw",
                "mgmt_address": "203.0.113.1",
                "ssh_port": 22,
                "user": "root",
                "host_key": "ssh-ed25519 AAAA1",
                "lan_address": "198.51.100.1/24",
            },
            "peer": {"netns": "vl-a-peer", "address": "198.51.100.2/24"},
            "hosts": [
                {
                    "name": "h1",
                    "netns": "vl-a-h1",
                    "mgmt_address": "203.0.113.3",
                    "ssh_port": 22,
                    "user": "root",
                    "host_key": "ssh-ed25519 AAAA2",
                    "docker_socket": "/run/vlaninfra-lab/vl-a-h1/docker.sock",
                    "parent": "eth0",
                    "lan_address": "198.51.100.11/24",
                    "sshd_log": "/abs/.lab/default/vl-a-h1/sshd.log",
                    "docker_version": "20.10.24",
                    "image": "vlaninfra/busybox:lab",
                    "kind": "netns",
                }
            ],
        }
    ],
}


def test_public_names() -> None:
    assert sorted(vlaninfra.lab.__all__) == [
        "Host",
        "Inventory",
        "LAB_INSTANCE_ENV",
        "LabError",
        "Peer",
        "Router",
        "Site",
        "VlanPeer",
        "ensure_dockerd",
        "http_ok",
        "inventory_path",
        "lab_down",
        "lab_instances",
        "lab_status",
        "lab_up",
        "load_inventory",
    ]
    assert issubclass(LabError, VlanInfraError)


def test_inventory_json_round_trip() -> None:
    inv = Inventory.from_json(EXAMPLE)
    assert inv.hosts[0].docker_socket == "/run/vlaninfra-lab/vl-a-h1/docker.sock"
    # Files without the VM members' or the IPv6 fields still load; writing adds them with their
    # defaults (no VM, no IPv6).
    written = inv.to_json()
    site = written["sites"][0]
    host = site["hosts"][0]
    assert (host["sshd_log_remote"], host["vm_name"], host["console_log"]) == (None, None, None)
    assert (site["vlan_peers"], site["lan6"], site["gateway6"]) == ([], "", "")
    assert (host["lan_address6"], site["router"]["lan_address6"], site["peer"]["address6"]) \
        == ("", "", "")
    for site in written["sites"]:
        del site["vlan_peers"], site["lan6"], site["gateway6"]
        del site["router"]["lan_address6"], site["peer"]["address6"]
        for h in site["hosts"]:
            del h["sshd_log_remote"], h["vm_name"], h["console_log"], h["lan_address6"]
    assert written == json.loads(json.dumps(EXAMPLE))
    assert Inventory.from_json(inv.to_json()) == inv


def test_state_dir_override_and_missing_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VLANINFRA_LAB_DIR", str(tmp_path))
    assert inventory_path("t7") == tmp_path / "t7" / "inventory.json"
    with pytest.raises(LabError, match="lab up --instance t7"):
        load_inventory("t7")
    (tmp_path / "t7").mkdir()
    inventory_path("t7").write_text(json.dumps(EXAMPLE))
    assert load_inventory("t7").sites[0].router.mgmt_address == "203.0.113.1"
