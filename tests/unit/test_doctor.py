"""`vlaninfra doctor`'s findings from fake host facts (pure `diagnose`)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.unit.layout.layout_helpers import config, site
from vlaninfra.doctor import CLOUD_ADVICE, Finding, HostFacts, Report, diagnose
from vlaninfra.layout import load_config

S = "sites.paris"
CLEAN: dict[str, Any] = {
    "kernel": "6.1.0-13-cloud-amd64",
    "kinds": {"macvlan": True, "ipvlan": True, "vlan": True},
    "dmi": {"sys_vendor": "QEMU", "product_name": "Standard PC (Q35 + ICH9, 2009)"},
    "ip_forward": False,
    "links": [{"name": "lo", "up": True}, {"name": "eth0", "up": True}],
    "docker": {"version": "20.10.24+dfsg1", "networks": []},
}


def _facts(**over: Any) -> dict[str, Any]:
    facts = copy.deepcopy(CLEAN)
    facts.update(over)
    return facts


def _find(cfg: dict[str, Any], h1: dict[str, Any] | HostFacts | None = None,
          h2: HostFacts | None = None) -> list[tuple[str, str, str]]:
    """Findings with h1's facts ``h1`` (clean by default) and h2's clean unless given."""
    layout = load_config(cfg)
    one = h1 if isinstance(h1, HostFacts) else HostFacts(h1 if h1 is not None else _facts())
    facts = {("paris", "h1"): one, ("paris", "h2"): h2 or HostFacts(_facts())}
    return [(f.severity, f.key, f.message) for f in diagnose(layout, facts)]


def _ipvlan(**net: Any) -> dict[str, Any]:
    s = site()
    s["networks"][0].update(driver="ipvlan", **net)
    del s["networks"][0]["mode"]
    s["networks"][0].update(net)
    return config(paris=s)


def test_clean_hosts_give_no_finding() -> None:
    assert _find(config()) == []


def test_a_kernel_without_ipvlan_or_8021q() -> None:
    no_ipvlan = _facts(kinds={"macvlan": True, "ipvlan": False, "vlan": False})
    found = _find(_ipvlan(mode="l2"), no_ipvlan)
    assert found == [("error", f"{S}.networks[0].driver", (
        "host h1: its kernel (6.1.0-13-cloud-amd64) has no ipvlan driver (not built in, no "
        "module), so network pub_net cannot be made there: use macvlan, or a host whose "
        "kernel has ipvlan"))]
    s = site()
    s["networks"][0]["parent"] = "eth0.50"
    found = _find(config(paris=s), no_ipvlan)
    assert [(sev, key) for sev, key, _ in found] == [("error", f"{S}.networks[0].parent")]
    assert "no 802.1Q (8021q) support" in found[0][2]


def test_parent_nic_missing_or_down() -> None:
    assert _find(config(), _facts(links=[{"name": "lo", "up": True}]))[0][:2] == (
        "error", f"{S}.hosts[0].parents[0]")
    down = _find(config(), _facts(links=[{"name": "eth0", "up": False}]))
    assert down == [("warning", f"{S}.hosts[0].parents[0]", (
        "host h1: parent NIC eth0 is down, so its containers are cut off: bring it up "
        "(ip link set eth0 up)"))]


def test_docker_version_and_its_limits() -> None:
    s = site()
    s["hosts"][0]["docker_version"] = "27.1"
    assert _find(config(paris=s))[0][:2] == ("error", f"{S}.hosts[0].docker_version")
    cfg = _ipvlan(mode="l2", flag="private")
    cfg["sites"]["paris"]["hosts"][0]["docker_version"] = "24.0"
    cfg["sites"]["paris"]["hosts"][1]["docker_version"] = "24.0"
    keys = [(sev, key) for sev, key, _ in _find(cfg)]
    assert ("error", f"{S}.networks[0].flag") in keys
    foreign = _facts(docker={"version": "20.10.24", "networks": [
        {"name": "legacy", "driver": "ipvlan", "parent": "eth0", "labels": {}}]})
    found = _find(config(), foreign)
    assert found == [("error", f"{S}.networks[0].parent", (
        "host h1: the kernel refuses macvlan and ipvlan on one parent: network legacy "
        "(ipvlan) already uses eth0, so network pub_net would be refused at apply: remove "
        "legacy, or give pub_net another parent (an 802.1Q parent such as eth0.50)"))]
    newer = _facts(docker={"version": "27.1.1", "networks": [
        {"name": "legacy", "driver": "macvlan", "parent": "eth0", "labels": {}}]})
    assert _find(config(), newer) == []
    assert _find(config(), _facts(docker=None))[0][:2] == (
        "error", f"{S}.hosts[0].ssh.docker_socket")


@pytest.mark.parametrize("dmi, cloud", [
    ({"sys_vendor": "Amazon EC2", "product_name": "m5.large"}, "Amazon EC2"),
    ({"sys_vendor": "Google", "product_name": "Google Compute Engine"}, "Google Compute Engine"),
    ({"sys_vendor": "Microsoft Corporation", "product_name": "Virtual Machine",
      "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77"}, "Microsoft Azure"),
    ({"sys_vendor": "Hetzner", "product_name": "vServer"}, "Hetzner Cloud"),
    ({"sys_vendor": "QEMU", "product_name": "Standard PC"}, None),
    ({"sys_vendor": None, "product_name": None}, None),
])
def test_cloud_vms_get_the_seeds_advice_for_macvlan_only(dmi: dict[str, Any],
                                                          cloud: str | None) -> None:
    found = _find(config(), _facts(dmi=dmi))
    if cloud is None:
        assert found == []
        return
    assert [(sev, key) for sev, key, _ in found] == [("error", f"{S}.networks[0].driver")]
    assert f"host h1 runs on a cloud VM ({cloud}; DMI" in found[0][2]
    assert found[0][2].endswith(CLOUD_ADVICE) and "use ipvlan" in CLOUD_ADVICE
    assert _find(_ipvlan(mode="l2"), _facts(dmi=dmi)) == []


def test_ip_forward_where_ipvlan_l3_routes_tenants() -> None:
    s = site(networks=[{"name": "t", "driver": "ipvlan", "mode": "l3", "parent": "eth0",
                        "hosts": ["h1"], "subnets": [{"subnet": "198.18.1.0/24"}]}],
             containers=[])
    found = _find(config(paris=s))
    assert [(sev, key) for sev, key, _ in found] == [
        ("warning", "host paris/h1: net.ipv4.ip_forward")]
    assert _find(config(paris=s), _facts(ip_forward=True)) == []


def test_ipv6_forwarding_where_the_host_routes_an_ipv6_tenant() -> None:
    s = site(containers=[])
    s["lan"]["subnet6"] = "2001:db8:1::/64"
    s["hosts"][0]["lan_address6"] = "2001:db8:1::11"
    s["networks"][0]["shim"] = {"address_per_host": {"h1": "192.0.2.250"}}
    s["tenants"] = [{"name": "t6", "subnets": [
        {"subnet": "2001:db8:ff06::/64", "network": "pub_net", "host": "h1"}]}]
    found = _find(config(paris=s), _facts(ip6_forward=False))
    assert [(sev, key) for sev, key, _ in found] == [
        ("warning", "host paris/h1: net.ipv6.conf.all.forwarding")]
    assert "routes the IPv6 tenant subnets of pub_net" in found[0][2]
    assert _find(config(paris=s), _facts(ip6_forward=True)) == []


def test_a_planted_ipv6_address_is_named_by_its_key() -> None:
    s = site()
    s["networks"][0]["subnets"].append({"subnet": "2001:db8:1::/64"})
    s["containers"][0]["ipv6"] = "2001:db8:1::5"
    answer = {"ok": False, "answered_by": "02:00:00:00:00:99", "address": "2001:db8:1::5",
              "device": "eth0"}
    found = _find(config(paris=s), HostFacts(_facts(), arp={f"{S}.containers[0].ipv6": answer}))
    assert found == [("error", f"{S}.containers[0].ipv6", (
        "host h1: the planned address 2001:db8:1::5 already answers on the LAN from MAC "
        "02:00:00:00:00:99 (NDP probe on eth0): another device holds it; free it there, or "
        "give the container another address"))]


def test_unreachable_hosts_clashes_and_addresses_on_the_lan() -> None:
    found = _find(config(), h2=HostFacts(error="connection refused"))
    assert found == [("error", f"{S}.hosts[1].ssh",
                      "host h2: not checked, the agent is not reachable: connection refused")]
    arp = {"ok": False, "answered_by": "aa:bb:cc:dd:ee:ff", "address": "192.0.2.130",
           "device": "eth0"}
    facts = HostFacts(_facts(), clashes={f"{S}.networks[0].name": "owned by stack 'x/y'"},
                      arp={f"{S}.containers[0].ipv4": arp})
    found = _find(config(), facts)
    assert [(sev, key) for sev, key, _ in found] == [
        ("error", f"{S}.networks[0].name"), ("error", f"{S}.containers[0].ipv4")]
    assert "already answers on the LAN from MAC aa:bb:cc:dd:ee:ff" in found[1][2]


def test_report_lines_and_exit_status() -> None:
    report = Report((Finding("warning", "k", "m"),), 1.25)
    assert report.ok and report.text() == (
        "warning: k: m\ndoctor: 0 error(s), 1 warning(s), 0 info in 1.2s\n")
    assert not Report((Finding("error", "k", "m"),), 0.0).ok


def test_the_layouts_switch_facts_are_findings_too() -> None:
    s = site()
    s["switch"] = {"promiscuous": "denied"}
    found = _find(config(paris=s))
    # h1 presents web1's MAC; h2 has the network but no container or shim on it.
    assert [(sev, key) for sev, key, _ in found] == [("error", f"{S}.networks[0].driver")]
    assert "denies promiscuous operation" in found[0][2] and "ipvlan l2" in found[0][2]
