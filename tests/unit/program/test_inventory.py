"""Inventories: `inventory: NAME` sites resolve through what is registered under NAME (the lab
registers `lab` by entry point), and the production path never loads the test bed."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from tests.hostkeys import fake_host_key
from vlaninfra import program
from vlaninfra.errors import VlanInfraError
from vlaninfra.inventory import ENTRY_POINT_GROUP, register_inventory
from vlaninfra.layout import SshTarget, load_config


def _layout(inventory: str | None, ssh: dict[str, Any] | None = None) -> Any:
    host: dict[str, Any] = {"name": "h1", "lan_address": "192.0.2.11"}
    if ssh:
        host["ssh"] = ssh
    site: dict[str, Any] = {"lan": {"subnet": "192.0.2.0/24"}, "hosts": [host]}
    if inventory:
        site["inventory"] = inventory
    return load_config({"sites": {"a": site}})


def test_a_registered_inventory_resolves_hosts(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, str, str]] = []

    def resolve(site: str, role: str, name: str) -> SshTarget | None:
        asked.append((site, role, name))
        return SshTarget(address="203.0.113.7", host_key=fake_host_key("x"),
                         private_key_file="/keys/id")

    from vlaninfra import inventory
    monkeypatch.setattr(inventory, "_REGISTERED", {})
    register_inventory("lab", lambda: resolve)
    h1 = program.hosts_of(_layout("lab"))[("a", "h1")]
    assert asked == [("a", "host", "h1")]
    assert (h1.address, h1.key_path, h1.host_key) == ("203.0.113.7", "/keys/id",
                                                      fake_host_key("x"))


def test_a_member_the_inventory_lacks_names_its_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from vlaninfra import inventory
    monkeypatch.setitem(inventory._REGISTERED, "lab", lambda: lambda s, r, n: None)
    with pytest.raises(VlanInfraError, match=r"sites\.a\.hosts\[0\]\.ssh: 'h1' is not in the lab"):
        program.hosts_of(_layout("lab"))


def test_a_failing_resolver_is_one_message_naming_the_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vlaninfra import inventory
    rows: dict[tuple[str, str], SshTarget] = {}
    monkeypatch.setitem(inventory._REGISTERED, "lab", lambda: lambda s, r, n: rows[s, n])
    with pytest.raises(VlanInfraError, match=r"sites\.a\.hosts\[0\]\.ssh: inventory 'lab' "
                       r"failed to resolve 'h1': KeyError"):
        program.hosts_of(_layout("lab"))


def test_the_lab_registers_itself_by_entry_point() -> None:
    from importlib.metadata import entry_points
    (ep,) = [e for e in entry_points(group=ENTRY_POINT_GROUP) if e.name == "lab"]
    assert ep.value == "vlaninfra.lab._resolver:open_lab"


def test_the_production_path_never_imports_the_lab_or_yaml_into_layout() -> None:
    code = ("import sys, vlaninfra.program, vlaninfra.layout as L; "
            "from vlaninfra.program import hosts_of; "
            "hosts_of(L.load_config({'sites': {'a': {'lan': {'subnet': '192.0.2.0/24'}, "
            "'hosts': [{'name': 'h1', 'ssh': {'address': '203.0.113.1', "
            f"'host_key': '{fake_host_key('h1')}'}}}}]}}}}}})); "
            "print(sorted(m for m in sys.modules if m.startswith('vlaninfra.lab')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
