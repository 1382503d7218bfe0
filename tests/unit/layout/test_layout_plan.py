"""The derived plan, the seed's recipes and numbers, and ``vlaninfra plan``."""

from __future__ import annotations

import argparse
import io
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Network
from pathlib import Path

import pytest

from tests.unit.layout.layout_helpers import config, plan_of, site
from vlaninfra import cli_plan
from vlaninfra.errors import LayoutError
from vlaninfra.layout import Plan, load_config, plan
from vlaninfra.loader import load_stack_file

ROOT = Path(__file__).resolve().parents[3]
STACKS = ROOT / "stacks"


def _stack(name: str) -> Plan:
    return plan(load_stack_file(STACKS / f"Pulumi.{name}.yaml"))


def _run(argv: list[str], cwd: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.chdir(cwd)
    parser = argparse.ArgumentParser()
    cli_plan.add_parser(parser.add_subparsers())
    args = parser.parse_args(["plan", *argv])
    out, err = io.StringIO(), io.StringIO()
    code = args.func(args, out, err)
    return code, out.getvalue(), err.getvalue()


def test_static_pool_has_the_seeds_62_usable_addresses() -> None:
    p = _stack("static-pool")
    assert p.warnings == ()
    [host] = p.sites[0].hosts
    [net] = host.networks
    [sub] = net.subnets
    assert (net.driver, net.mode, net.flag, net.parent) == ("macvlan", "bridge", None, "eth0")
    assert sub.ip_range == IPv4Network("192.168.1.128/26")
    assert sub.usable == 62
    assert sub.free == 60
    web, api = host.containers
    assert api.ipv4 == IPv4Address("192.168.1.130") and not api.allocated
    assert web.allocated and web.ipv4 is not None
    assert IPv4Address("192.168.1.129") <= web.ipv4 <= IPv4Address("192.168.1.190")
    assert p.allocations == {"home/docker1/containers_net/web": (web.ipv4,)}


def test_ipvlan_l2_gives_50_containers_their_own_ip_and_no_mac() -> None:
    p = _stack("ipvlan-l2")
    [host] = p.sites[0].hosts
    [net] = host.networks
    assert (net.driver, net.mode, net.flag) == ("ipvlan", "l2", "bridge")
    [sub] = net.subnets
    assert (sub.usable, sub.free) == (126, 76)
    addresses = {c.ipv4 for c in host.containers}
    assert len(host.containers) == 50 == len(addresses)
    assert all(a is not None and a in IPv4Network("192.168.1.128/25") for a in addresses)
    assert {c.mac for c in host.containers} == {None}


def test_ipvlan_l3_tenants_share_one_network_and_the_router_gets_routes() -> None:
    p = _stack("ipvlan-l3")
    routes = [(str(r.prefix), str(r.via), r.tenant, r.host) for r in p.sites[0].upstream_routes]
    assert routes == [("10.1.0.0/24", "192.168.1.10", "tenant_a", "docker1"),
                      ("10.2.0.0/24", "192.168.1.10", "tenant_b", "docker1")]
    [net] = p.sites[0].hosts[0].networks
    assert net.mode == "l3"
    assert [str(s.subnet) for s in net.subnets] == ["10.1.0.0/24", "10.2.0.0/24"]
    assert net.notes == (
        "carries tenants tenant_a, tenant_b in one ipvlan network: Docker 20.10 allows one "
        "ipvlan network per parent (eth0); the tenants reach each other inside the host "
        "(ipvlan flag bridge; Docker 20.10 ignores ipvlan_flag, 23.0+ honours private)",)
    assert [(c.name, str(c.ipv4), c.tenant) for c in p.sites[0].hosts[0].containers] == [
        ("app1", "10.1.0.5", "tenant_a"), ("app2", "10.2.0.5", "tenant_b")]


def test_the_seeds_literal_two_tenant_recipe_fails_on_docker_20_10() -> None:
    layout = load_stack_file(STACKS / "Pulumi.ipvlan-l3.yaml")
    assert layout.sites[0].hosts[0].docker_version == "20.10"
    s = site(containers=[], tenants=[])
    s["hosts"] = [s["hosts"][0]]
    s["networks"] = [
        {"name": n, "driver": "ipvlan", "mode": "l3", "parent": "eth0", "hosts": ["h1"],
         "subnets": [{"subnet": sub}]}
        for n, sub in (("tenant_a", "198.18.1.0/24"), ("tenant_b", "198.18.2.0/24"))]
    with pytest.raises(LayoutError) as info:
        plan_of(config(paris=s))
    [problem] = info.value.problems
    assert problem.path == "sites.paris.networks[1].parent"
    assert problem.message.startswith(
        "network tenant_b and network tenant_a both use parent eth0 on host h1; Docker 20.10 "
        "(assumed")


def test_macvlan_shim_reproduces_the_seed_workaround() -> None:
    p = _stack("macvlan-shim")
    host = p.sites[0].hosts[0]
    [shim] = host.shims
    assert (shim.name, shim.parent, shim.kind, shim.mode) == (
        "macvlan-shim", "eth0", "macvlan", "bridge")
    assert shim.address == IPv4Interface("192.168.1.250/24")
    assert shim.routes == (IPv4Network("192.168.1.100/32"),)
    assert [(str(r.destination), r.device) for r in host.routes] == [
        ("192.168.1.100/32", "macvlan-shim")]
    [sub] = host.networks[0].subnets
    assert sub.aux_addresses == {"host-docker1": IPv4Address("192.168.1.10"),
                                 "shim-docker1": IPv4Address("192.168.1.250")}
    assert sub.gateway == IPv4Address("192.168.1.1")


def test_shim_ip_range_routes_and_every_hosts_shim_reserved_everywhere() -> None:
    s = site()
    s["networks"][0]["shim"] = {"address_per_host": {"h1": "192.0.2.250", "h2": "192.0.2.251"},
                                "routes": "ip-range"}
    p = plan_of(config(paris=s))
    h1, h2 = p.sites[0].hosts
    assert h2.shims[0].routes == (IPv4Network("192.0.2.128/26"),)
    assert h2.shims[0].address == IPv4Interface("192.0.2.251/24")
    for h in (h1, h2):
        aux = h.networks[0].subnets[0].aux_addresses
        assert aux["shim-h1"] == IPv4Address("192.0.2.250")
        assert aux["shim-h2"] == IPv4Address("192.0.2.251")


def test_gateway_is_always_explicit_in_the_plan() -> None:
    s = site(containers=[])
    del s["networks"][0]["subnets"][0]["gateway"]
    p = plan_of(config(paris=s))
    assert p.sites[0].hosts[0].networks[0].subnets[0].gateway == IPv4Address("192.0.2.1")


def test_ipv6_subnets_enable_ipv6_and_allocate() -> None:
    s = site()
    s["networks"][0]["subnets"].append({"subnet": "2001:db8:1::/64"})
    s["containers"].append({"name": "c6", "host": "h2", "network": "pub_net", "image": "i",
                            "ipv6": "2001:db8:1::10"})
    p = plan_of(config(paris=s))
    net = p.sites[0].hosts[0].networks[0]
    assert net.enable_ipv6
    web1 = p.sites[0].hosts[0].containers[0]
    assert web1.ipv6 is not None and web1.ipv6 in IPv6Network("2001:db8:1::/64")
    assert web1.ipv6 != IPv6Address("2001:db8:1::1")  # the gateway
    c6 = p.sites[0].hosts[1].containers[0]
    assert c6.ipv6 == IPv6Address("2001:db8:1::10") and c6.ipv4 is not None


def test_cli_prints_tables_for_every_seed_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, err = _run(["--stack", "static-pool"], ROOT / "stacks", monkeypatch)
    assert (code, err) == (0, "")
    assert "containers_net  macvlan  bridge  eth0    192.168.1.0/24  192.168.1.1  " \
           "192.168.1.128/26  62" in out
    for name in ("ipvlan-l2", "ipvlan-l3", "macvlan-shim"):
        assert _run(["--stack", name], ROOT, monkeypatch)[0] == 0
    code, out, _ = _run(["--stack", "ipvlan-l3"], ROOT, monkeypatch)
    assert "10.1.0.0/24  192.168.1.10  tenant_a  docker1  tenants_l3" in out


def test_cli_lists_every_error_and_exits_1(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "Pulumi.bad.yaml"
    path.write_text(
        "config:\n  vlaninfra:sites:\n    paris:\n      lan: {subnet: 192.0.2.0/24}\n"
        "      hosts:\n        - {name: h1, parents: eth0}\n        - {name: h2, port: 2}\n")
    code, out, err = _run([str(path)], tmp_path, monkeypatch)
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"{path}: 2 error(s)",
        "  error: sites.paris.hosts[0].parents: expected a list, got a string (value: 'eth0')",
        "  error: sites.paris.hosts[1].port: unknown key 'port'; expected one of: name, ssh, "
        "lan_address, lan_address6, parents, docker_version, switch_per_parent (value: 2)",
    ]


def test_cli_outside_a_project_and_missing_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = _run(["--stack", "x"], tmp_path, monkeypatch)
    assert code == 1 and "no Pulumi.yaml here or above" in err
    code, _, err = _run([str(tmp_path / "nope.yaml")], tmp_path, monkeypatch)
    assert code == 1 and "cannot read" in err


def test_main_plan_entry_point(monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert cli_plan.main_plan(["--stack", "macvlan-shim"]) == 0
    assert "macvlan-shim  eth0    macvlan  bridge  192.168.1.250/24" in capsys.readouterr().out


def test_plan_raises_with_errors_and_keeps_warnings_in_the_plan() -> None:
    s = site()
    s["containers"][0]["mac"] = "00:16:3e:00:00:01"
    p = plan(load_config(config(paris=s)))
    assert [w.path for w in p.warnings] == ["sites.paris.containers[0].mac"]
    assert p.sites[0].hosts[0].containers[0].mac == "00:16:3e:00:00:01"


def test_parent_names_may_differ_per_host() -> None:
    s = site()
    s["hosts"][1]["parents"] = ["enp3s0"]
    s["networks"][0]["parent_per_host"] = {"h2": "enp3s0"}
    p = plan_of(config(paris=s))
    assert [h.networks[0].parent for h in p.sites[0].hosts] == ["eth0", "enp3s0"]


def test_the_layout_package_does_no_io_and_never_imports_pulumi() -> None:
    import subprocess
    import sys
    code = ("import sys, vlaninfra.layout; "
            "print(sorted(m for m in ('pulumi', 'yaml', 'vlaninfra.loader') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    assert out.strip() == "[]"
