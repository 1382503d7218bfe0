"""How the program reaches managed routers: their `ssh` settings, or the lab inventory of the
instance `VLANINFRA_LAB_INSTANCE` names."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from tests.hostkeys import fake_host_key
from vlaninfra import program
from vlaninfra.errors import VlanInfraError
from vlaninfra.layout import load_config

GW_KEY = fake_host_key("gw")


def _layout(router: dict[str, Any], inventory: str | None = None) -> Any:
    site: dict[str, Any] = {
        "lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1"},
        "routers": [router],
        "hosts": [{"name": "v1",
                   "ssh": {"address": "203.0.113.9", "host_key": fake_host_key("v1")},
                   "lan_address": "192.0.2.21"}],
        "networks": [{"name": "t3", "driver": "ipvlan", "mode": "l3", "parent": "eth0",
                      "hosts": ["v1"]}],
        "tenants": [{"name": "ta", "subnets": [{"subnet": "198.18.1.0/24", "network": "t3"}]}],
    }
    if inventory:
        site["inventory"] = inventory
    return load_config({"sites": {"a": site}})


def test_a_router_with_ssh_is_reached_like_a_host() -> None:
    layout = _layout({"name": "gw", "address": "192.0.2.1", "managed": True,
                      "ssh": {"address": "203.0.113.1", "host_key": GW_KEY}})
    gw = program.routers_of(layout)[("a", "gw")]
    assert (gw.name, gw.address, gw.host_key, gw.key_path, gw.key_config) == (
        "gw", "203.0.113.1", GW_KEY, None, None)  # no key source named: ssh-agent


def test_unmanaged_routers_are_not_contacted() -> None:
    assert program.routers_of(_layout({"name": "gw", "address": "192.0.2.1"})) == {}


def test_a_lab_router_comes_from_the_instance_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[str] = []
    router = SimpleNamespace(name="gw", mgmt_address="203.0.113.65", ssh_port=22, user="root",
                             host_key=GW_KEY)
    inv = SimpleNamespace(key_path="/lab/iv/id_lab",
                          sites=[SimpleNamespace(name="a", router=router)])

    def load(instance: str) -> Any:
        asked.append(instance)
        return inv

    import vlaninfra.lab

    monkeypatch.setattr(vlaninfra.lab, "load_inventory", load)
    monkeypatch.setenv(vlaninfra.lab.LAB_INSTANCE_ENV, "iv")
    layout = _layout({"name": "gw", "address": "192.0.2.1", "managed": True}, inventory="lab")
    gw = program.routers_of(layout)[("a", "gw")]
    assert asked == ["iv"]
    assert (gw.address, gw.key_path) == ("203.0.113.65", "/lab/iv/id_lab")


def test_a_managed_router_without_ssh_outside_the_lab_names_the_key() -> None:
    layout = _layout({"name": "gw", "address": "192.0.2.1", "managed": True})
    with pytest.raises(VlanInfraError, match=r"sites\.a\.routers\[0\]\.ssh: required"):
        program.routers_of(layout)
