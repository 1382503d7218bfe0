"""The seed's switch facts in the plan: MACs per switch port and promiscuous mode."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.layout.layout_helpers import (
    Config,
    config,
    errors_of,
    plan_of,
    site,
    warnings_of,
)
from vlaninfra.errors import LayoutError
from vlaninfra.layout import load_config
from vlaninfra.layout._switch import ADVICE, port_macs

S = "sites.paris"


def _many(driver: str, n: int = 30, switch: dict[str, Any] | None = None,
          shim: bool = False) -> Config:
    net: dict[str, Any] = {"name": "pub_net", "driver": driver, "parent": "eth0",
                           "hosts": ["h1"], "subnets": [{"subnet": "192.0.2.0/24",
                                                         "gateway": "192.0.2.1",
                                                         "ip_range": "192.0.2.128/26"}]}
    net["mode"] = "l2" if driver == "ipvlan" else "bridge"
    if shim:
        net["shim"] = {"address_per_host": {"h1": "192.0.2.250"}}
    s = site(networks=[net], containers=[
        {"name": f"c{i}", "host": "h1", "network": "pub_net", "image": "i"} for i in range(n)])
    s["switch"] = switch if switch is not None else {"mac_limit_per_port": 16}
    return config(paris=s)


def test_thirty_macvlan_containers_exceed_a_16_mac_port_with_count_and_advice() -> None:
    errors = errors_of(_many("macvlan", shim=True))
    assert errors == [(f"{S}.switch.mac_limit_per_port", (
        f"host h1 presents 32 MACs on eth0 (its own 1, network pub_net ({S}.networks[0]) 31; "
        "macvlan gives each container and shim a MAC) but the switch port allows 16: "
        f"{ADVICE}, or raise the port's limit"))]
    assert "ipvlan l2" in ADVICE
    with pytest.raises(LayoutError, match="presents 32 MACs"):
        plan_of(_many("macvlan", shim=True))


def test_the_same_layout_as_ipvlan_l2_passes() -> None:
    cfg = _many("ipvlan", shim=True)
    assert errors_of(cfg) == []
    assert len(plan_of(cfg).sites[0].hosts[0].containers) == 30
    assert [p.count for p in port_macs(load_config(cfg).sites[0])] == [1]


def test_the_limit_counts_host_shim_and_containers_exactly() -> None:
    # 14 containers + shim + the host's own = 16: allowed; one more is refused.
    assert errors_of(_many("macvlan", 14, shim=True)) == []
    assert [p for p, _ in errors_of(_many("macvlan", 15, shim=True))] == [
        f"{S}.switch.mac_limit_per_port"]


def test_a_host_parent_overrides_the_site_and_vlan_parents_share_the_trunk_port() -> None:
    cfg = _many("macvlan", 10, switch={"mac_limit_per_port": 100})
    s = cfg["sites"]["paris"]
    s["networks"][0]["parent"] = "eth0.50"
    s["hosts"][0]["switch_per_parent"] = {"eth0": {"mac_limit_per_port": 4}}
    assert errors_of(cfg) == [(f"{S}.hosts[0].switch_per_parent.eth0.mac_limit_per_port", (
        f"host h1 presents 11 MACs on eth0 (its own 1, network pub_net ({S}.networks[0]) 10; "
        "macvlan gives each container and shim a MAC) but the switch port allows 4: "
        f"{ADVICE}, or raise the port's limit"))]


def test_promiscuous_denied_refuses_macvlan_and_names_both_keys() -> None:
    errors = errors_of(_many("macvlan", 2, switch={"promiscuous": "denied"}))
    assert errors == [(f"{S}.networks[0].driver", (
        f"the switch port behind eth0 of host h1 denies promiscuous operation "
        f"({S}.switch.promiscuous: denied), so it drops the frames of macvlan's extra MACs: "
        f"{ADVICE}"))]
    assert errors_of(_many("ipvlan", 2, switch={"promiscuous": "denied"})) == []
    assert errors_of(_many("macvlan", 2, switch={"promiscuous": "allowed"})) == []


def test_switch_per_parent_must_name_a_parent_and_values_are_typed() -> None:
    cfg = _many("ipvlan", 1)
    cfg["sites"]["paris"]["hosts"][0]["switch_per_parent"] = {"eth9": {"promiscuous": "denied"}}
    assert errors_of(cfg) == [(f"{S}.hosts[0].switch_per_parent.eth9",
                               "eth9 is not a parent of host h1 (eth0): name one of them")]
    bad = _many("ipvlan", 1, switch={"mac_limit_per_port": 0, "promiscuous": "maybe"})
    assert errors_of(bad) == [
        (f"{S}.switch.mac_limit_per_port", "expected 1 to 1000000"),
        (f"{S}.switch.promiscuous", "expected one of allowed, denied")]


# -- macvlan modes, as measured on the lab (tests/lab/test_macvlan_modes.py) -----------

def _mode(mode: str, n: int, shim: bool) -> Config:
    cfg = _many("macvlan", n, switch={}, shim=shim)
    cfg["sites"]["paris"]["networks"][0]["mode"] = mode
    return cfg


def test_vepa_warns_that_it_needs_a_hairpin_switch_port() -> None:
    assert [p for p, _ in errors_of(_mode("private", 2, shim=True))] == [
        f"{S}.networks[0].mode"]  # the shim cannot reach the containers (measured)
    assert errors_of(_mode("vepa", 2, shim=True)) == []
    assert warnings_of(_mode("vepa", 2, shim=False)) == [(f"{S}.networks[0].mode", (
        "with macvlan vepa, containers on one host (h1) reach each other only if the switch "
        "port sends frames back out the port they came in (hairpin / reflective relay); "
        "enable it on the switch, or use mode bridge"))]
    assert warnings_of(_mode("vepa", 1, shim=False)) == []


def test_passthru_holds_one_container_and_no_shim() -> None:
    assert [p for p, _ in errors_of(_mode("passthru", 2, shim=False))] == [
        f"{S}.containers[1].network"]
    assert [p for p, _ in errors_of(_mode("passthru", 1, shim=True))] == [
        f"{S}.networks[0].shim"]
    assert errors_of(_mode("passthru", 1, shim=False)) == []
