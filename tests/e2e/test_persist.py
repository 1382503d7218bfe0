"""Persistence files of the `lab` stack on the namespace hosts, through the real engine: written
with the shims, a file edited or removed by hand is drift `refresh` reports and `up` repairs,
the boot hook re-creates a lost shim with its marks, and `destroy` leaves no file behind.

Namespace hosts cannot reboot (tests/e2e/test_reboot_vm.py reboots a VM host); they share this
machine's filesystem, so each keeps its files below its own root in the lab's state
(`VLANINFRA_HOST_ROOT`, set by the lab's sshd). The tests run in file order on one stack.
"""

from __future__ import annotations

import ipaddress
import json
import re
import stat
from pathlib import Path

import pytest

from tests.e2e.observe import LabStack, container_facts, ip_json, sh
from vlaninfra.host import marks
from vlaninfra.lab import Host, http_ok

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SHIM = "macvlan-shim"
OWNER_DIR = "vlaninfra--e2e"  # project `vlaninfra`, stack `e2e` (the lab_stack fixture's)


def _root(host: Host) -> Path:
    return Path(host.sshd_log).parent / "root"


def _file(host: Host) -> Path:
    return _root(host) / "etc/vlaninfra/persist" / OWNER_DIR / f"shim--{SHIM}.json"


def _shim(host: Host) -> dict[str, object]:
    """The live shim: alias, addresses, vlaninfra's routes through it."""
    link = ip_json(host.netns, "-d", "addr", "show", "dev", SHIM)
    routes = ip_json(host.netns, "route", "show", "dev", SHIM, "proto", "57")
    addrs = link[0]["addr_info"] if link else []
    return {
        "alias": link[0].get("ifalias") if link else None,
        "addresses": sorted(f"{a['local']}/{a['prefixlen']}" for a in addrs
                            if a["family"] == "inet"),
        "routes": sorted(str(ipaddress.ip_network(r["dst"])) for r in routes),
    }


def test_up_keeps_a_root_only_file_per_shim_marked_like_the_link(lab_stack: LabStack) -> None:
    assert set(lab_stack.changes("up", "--yes")) == {"create"}
    for host in lab_stack.hosts:
        path = _file(host)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        entry = json.loads(path.read_text())
        live = _shim(host)
        mark = marks.of_alias(str(live["alias"]))
        assert mark is not None and (entry["owner"], entry["spec"]) == mark
        assert [entry["args"]["address"]] == live["addresses"]
        assert sorted(entry["args"]["routes"]) == live["routes"]
        hook = _root(host) / "usr/local/sbin/vlaninfra-restore"
        assert hook.stat().st_mode & 0o777 == 0o700
        assert "restore" in hook.read_text()


def test_a_hand_edited_or_removed_file_is_drift_that_up_repairs(lab_stack: LabStack) -> None:
    h1, h2 = lab_stack.host("h1"), lab_stack.host("h2")
    kept = {h.name: _file(h).read_text() for h in (h1, h2)}
    entry = json.loads(kept["h1"])
    entry["args"]["address"] = entry["args"]["address"].replace(".250/", ".249/")
    _file(h1).write_text(json.dumps(entry))
    _file(h2).unlink()
    assert lab_stack.changes("refresh", "--yes", "--skip-preview") == {"update": 2, "same": 9}
    preview = lab_stack.run("preview", "--diff")
    assert re.search(r"persist\s*:\s*false\s*=>\s*true", preview), preview
    assert lab_stack.changes("up", "--yes") == {"update": 2, "same": 9}
    for h in (h1, h2):
        assert json.loads(_file(h).read_text()) == json.loads(kept[h.name])
    assert lab_stack.changes("up", "--yes") == {"same": 11}


def test_the_boot_hook_brings_a_lost_shim_back_with_its_marks(lab_stack: LabStack) -> None:
    h1 = lab_stack.host("h1")
    before = _shim(h1)
    ip = container_facts(h1, "web1")["ip"]
    sh("ip", "-n", h1.netns, "link", "del", SHIM)  # what a reboot does to it
    assert not http_ok(h1.netns, ip)
    hook = _root(h1) / "usr/local/sbin/vlaninfra-restore"
    out = sh("ip", "netns", "exec", h1.netns, str(hook))
    assert f"shim {SHIM} (stack vlaninfra/e2e): ok" in out, out
    assert _shim(h1) == before
    assert http_ok(h1.netns, ip)
    lab_stack.run("refresh", "--yes", "--skip-preview", "--expect-no-changes")


def test_destroy_leaves_no_file_behind(lab_stack: LabStack) -> None:
    assert set(lab_stack.changes("destroy", "--yes")) == {"delete"}
    for host in lab_stack.hosts:
        left = [str(p.relative_to(_root(host))) for p in _root(host).rglob("*") if p.is_file()]
        assert left == [], f"{host.name} keeps {left}"
        assert not (_root(host) / "etc/vlaninfra").exists()
