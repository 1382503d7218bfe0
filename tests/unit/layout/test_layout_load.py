"""Loading stack config into the typed model: structure errors, all at once, with paths."""

from __future__ import annotations

import json
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

import vlaninfra.layout as layout_pkg
from tests.unit.layout.layout_helpers import config, problems_of, site
from vlaninfra.cli_plan import SCHEMA_PATH, schema_text
from vlaninfra.errors import LayoutError, Problem, VlanInfraError
from vlaninfra.host.contract import Driver
from vlaninfra.layout import (
    Container,
    IpvlanNetwork,
    Layout,
    MacvlanNetwork,
    load_config,
)
from vlaninfra.loader import load_stack_file, read_stack_config

ROOT = Path(__file__).resolve().parents[3]


def test_public_names_are_exactly_these() -> None:
    assert sorted(layout_pkg.__all__) == sorted([
        "AddressRange", "Container", "ContainerPlan", "Host", "HostPlan", "HostRoute",
        "IPAddress", "IPNetwork", "IpvlanFlag", "IpvlanMode", "IpvlanNetwork", "Lan",
        "Layout", "MacvlanMode", "MacvlanNetwork", "Network", "NetworkPlan", "Plan",
        "Probe", "ProbeExpect", "ProbePlan", "RestartPolicy", "Router", "Shim", "ShimPlan",
        "ShimRoutes", "Site", "SitePlan", "Switch",
        "SshTarget", "Subnet", "SubnetPlan", "Tenant", "TenantSubnet", "UpstreamRoute",
        "VlanParentPlan", "config_schema", "derive_mac", "load_config", "plan",
        "render_plan", "validate",
    ])
    for name in layout_pkg.__all__:
        assert getattr(layout_pkg, name) is not None


def test_loads_typed_frozen_model() -> None:
    layout = load_config(config())
    assert isinstance(layout, Layout)
    paris = layout.sites[0]
    assert paris.name == "paris"
    assert paris.lan.subnet == IPv4Network("192.0.2.0/24")
    net = paris.networks[0]
    assert isinstance(net, MacvlanNetwork) and net.driver is Driver.MACVLAN
    assert net.subnets[0].ip_range == IPv4Network("192.0.2.128/26")
    assert paris.containers[0] == Container(
        name="web1", host="h1", network="pub_net", image="vlaninfra/busybox:lab",
        ipv4=IPv4Address("192.0.2.130"))
    assert paris.hosts[0].ssh is not None and paris.hosts[0].ssh.port == 22
    with pytest.raises(AttributeError):
        paris.name = "x"  # type: ignore[misc]


def test_ipvlan_network_defaults() -> None:
    cfg = config(paris=site(networks=[{
        "name": "n", "driver": "ipvlan", "parent": "eth0", "hosts": ["h1"],
        "subnets": [{"subnet": "192.0.2.0/24"}]}], containers=[]))
    net = load_config(cfg).sites[0].networks[0]
    assert isinstance(net, IpvlanNetwork)
    assert (net.driver, net.mode, net.flag) == ("ipvlan", "l2", "bridge")


def test_every_structural_error_at_once_with_paths() -> None:
    s = site()
    s["hosts"][1]["parents"] = "eth0"
    s["hosts"][0]["lan_address"] = "192.0.2.300"
    s["networks"][0]["mode"] = "bridged"
    s["containers"][0]["ipv4"] = 7
    s["containers"].append({"name": "x"})
    s["colour"] = "blue"
    found = [(p.path, p.value, p.message) for p in problems_of(config(paris=s))]
    assert found == [
        ("sites.paris.colour", "blue",
         "unknown key 'colour'; expected one of: inventory, lan, routers, hosts, networks, "
         "tenants, containers, probes, switch"),
        ("sites.paris.hosts[0].lan_address", "192.0.2.300",
         "expected an IPv4 address, e.g. 192.0.2.10"),
        ("sites.paris.hosts[1].parents", "eth0", "expected a list, got a string"),
        ("sites.paris.networks[0].mode", "bridged",
         "expected one of bridge, private, vepa, passthru"),
        ("sites.paris.containers[0].ipv4", 7,
         'expected an IPv4 address, got a number; quote it: "7"'),
        ("sites.paris.containers[1].host", None, "required: Host it runs on."),
        ("sites.paris.containers[1].network", None, "required: Network it attaches to."),
        ("sites.paris.containers[1].image", None, "required: Image reference."),
    ]


def test_layout_error_str_lists_every_problem() -> None:
    with pytest.raises(LayoutError) as info:
        load_config({"sites": {"paris": {"lan": {"subnet": "192.0.2.0/24"}, "hosts": []}}})
    err = info.value
    assert isinstance(err, VlanInfraError) and isinstance(err, ValueError)
    assert str(err) == "sites.paris.hosts: expected at least 1 item(s) (value: [])"
    assert str(Problem("a.b", "x", "bad")) == "a.b: bad (value: 'x')"
    assert str(Problem("a.b", IPv4Address("192.0.2.1"), "bad")) == "a.b: bad (value: 192.0.2.1)"


@pytest.mark.parametrize(("value", "message"), [
    (20.1, 'expected a string, got a number; quote it: "20.1"'),
    (True, "expected a string, got a boolean; YAML reads yes/no/on/off as booleans: quote it"),
])
def test_yaml_typing_hints(value: object, message: str) -> None:
    s = site()
    s["hosts"][0]["docker_version"] = value
    assert [(p.path, p.message) for p in problems_of(config(paris=s))] == [
        ("sites.paris.hosts[0].docker_version", message)]


def test_prefix_with_host_bits_is_refused_with_the_fix() -> None:
    s = site()
    s["networks"][0]["subnets"][0]["subnet"] = "192.0.2.7/24"
    assert [(p.path, p.message) for p in problems_of(config(paris=s))] == [
        ("sites.paris.networks[0].subnets[0].subnet", "host bits are set: write 192.0.2.0/24")]


def test_secrets_inside_sites_are_refused_not_read() -> None:
    s = site()
    s["hosts"][0]["ssh"]["user"] = {"secure": "v1:abc"}
    [problem] = problems_of(config(paris=s))
    assert (problem.path, problem.value) == ("sites.paris.hosts[0].ssh.user", "<secure>")
    assert "v1:abc" not in str(problem)


def test_top_level_must_hold_sites_and_other_keys_are_left_alone() -> None:
    with pytest.raises(LayoutError, match="required: vlaninfra:sites"):
        load_config({})
    layout = load_config({**config(), "sshPrivateKey": {"secure": "v1:abc"}})
    assert layout.sites[0].name == "paris"


def test_site_names_must_be_path_safe() -> None:
    assert [(p.path, p.message) for p in problems_of({"sites": {"a.b": site()}})] == [
        ("sites.a.b", "expected a site name: letters, digits, _ -")]


def test_stack_file_passes_secrets_through_untouched(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text(
        "config:\n"
        "  vlaninfra:sshPrivateKey: {secure: v1:AAAA}\n"
        "  aws:region: eu-west-3\n"
        "  vlaninfra:sites:\n"
        "    paris:\n"
        "      inventory: lab\n"
        "      lan: {subnet: 192.0.2.0/24}\n"
        "      hosts: [{name: h1}]\n")
    raw = read_stack_config(path)
    assert raw["sshPrivateKey"] == {"secure": "v1:AAAA"}
    assert raw["aws:region"] == "eu-west-3"
    assert load_stack_file(path).sites[0].hosts[0].ssh is None


def test_stack_file_yaml_errors_are_layout_errors(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.t.yaml"
    path.write_text("config: [unclosed\n")
    with pytest.raises(LayoutError, match="not valid YAML"):
        load_stack_file(path)
    path.write_text("nothing: here\n")
    with pytest.raises(LayoutError, match="expected a mapping under config:"):
        load_stack_file(path)


def test_a_stack_file_that_is_not_utf8_is_a_layout_error(tmp_path: Path) -> None:
    path = tmp_path / "Pulumi.x.yaml"
    path.write_text("config:\n  vlaninfra:sites: {}\n", encoding="utf-16")
    with pytest.raises(LayoutError, match=r"not UTF-8 text .*: save it as UTF-8"):
        load_stack_file(path)


def test_committed_schema_is_current() -> None:
    assert SCHEMA_PATH.read_text(encoding="utf-8") == schema_text(), (
        "regenerate: .venv/bin/python -m vlaninfra.cli_plan --write-schema")


def test_schema_describes_every_key_the_loader_reads() -> None:
    schema = json.loads(schema_text())
    site_def = schema["$defs"]["site"]
    assert set(site_def["properties"]) == {
        "inventory", "lan", "routers", "hosts", "networks", "tenants", "containers",
        "probes", "switch"}
    assert site_def["additionalProperties"] is False
    assert schema["$defs"]["macvlan_network"]["properties"]["mode"]["enum"] == [
        "bridge", "private", "vepa", "passthru"]
    assert schema["properties"]["config"]["required"] == ["vlaninfra:sites"]


def test_stack_files_point_editors_at_the_schema() -> None:
    for name in ("static-pool", "ipvlan-l2", "ipvlan-l3", "macvlan-shim"):
        first = (ROOT / "stacks" / f"Pulumi.{name}.yaml").read_text().splitlines()[0]
        assert first == "# yaml-language-server: $schema=../vlaninfra/schema/config.schema.json"
