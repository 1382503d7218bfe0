"""Dual stack end to end (issue 11, acceptance 2) on the shared session lab: the
`lab-dualstack` stack through the real engine and `vlaninfra up`, plus what the lab's Docker
20.10 does with IPv6 (measured here, the README's table).

The tests run in file order on one stack: each starts from what the previous one left. LAN
addresses come from the stack config and the lab inventory.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from tests.e2e.observe import LabStack, destroy_at_teardown, docker, ip_json, sh
from vlaninfra.doctor import doctor
from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Inventory, http_ok
from vlaninfra.layout import load_config
from vlaninfra.program import hosts_of
from vlaninfra.rollout import up

pytestmark = [pytest.mark.lab, pytest.mark.engine]

SHIM = "dual-shim"
FORWARDING = ("net.ipv4.ip_forward", "net.ipv6.conf.all.forwarding")
"""The tenant's host routes it (the stack's comment says so): on for the module, then reset."""


def _sysctl(netns: str, key: str, value: str | None = None) -> str:
    argv = ["ip", "netns", "exec", netns, "sysctl", "-n"]
    if value is None:
        return sh(*argv, key).strip()
    return sh(*argv[:-1], "-q", "-w", f"{key}={value}")


def _site(sites: dict[str, Any]) -> dict[str, Any]:
    return next(iter(sites.values()))


@pytest.fixture(scope="module")
def dual(lab_inventory: Inventory, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[LabStack]:
    """The `lab-dualstack` stack in a scratch project with its own backend; destroyed at the
    end of the module whatever happened, with h2's forwarding reset."""
    work = tmp_path_factory.mktemp("dualstack")
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    config = yaml.safe_load(
        (project_root() / "stacks" / "Pulumi.lab-dualstack.yaml").read_text())
    stack = LabStack(
        engine=Engine(project_root(), backend=work / "backend", passphrase=LAB_PASSPHRASE),
        project=project, name="e2e-dual", inventory=lab_inventory,
        base_sites=config["config"]["vlaninfra:sites"])
    tenant_host = stack.host(_site(stack.base_sites)["tenants"][0]["subnets"][0]["host"])
    saved = {k: _sysctl(tenant_host.netns, k) for k in FORWARDING}
    stack.write(stack.base_sites)
    stack.engine.ensure_stack(stack.name, cwd=project)
    try:
        for key in FORWARDING:
            _sysctl(tenant_host.netns, key, "1")
        yield stack
    finally:
        try:
            destroy_at_teardown(stack.engine, stack.name, project)
        finally:
            for key, value in saved.items():
                _sysctl(tenant_host.netns, key, value)
            # The lab as found: the next stack gives these addresses other MACs, and a stale
            # neighbour entry would hide its containers for seconds.
            for site in lab_inventory.sites:
                for ns in (site.peer.netns, site.router.netns, *(h.netns for h in site.hosts)):
                    sh("ip", "-n", ns, "neigh", "flush", "all", check=False)
                    sh("ip", "-n", ns, "-6", "neigh", "flush", "all", check=False)


@pytest.fixture(scope="module")
def baseline(dual: LabStack) -> dict[str, Any]:
    """Every host's and the router's state before the first `up`."""
    return {**dual.state(), "router": _router_routes(dual)}


def _router_routes(stack: LabStack) -> list[str]:
    router = stack.inventory.sites[0].router.netns
    return sorted(json.dumps(r, sort_keys=True) for family in ("-4", "-6")
                  for r in ip_json(router, family, "route", "show"))


def _containers(stack: LabStack) -> dict[str, dict[str, str]]:
    """IPv4 and IPv6 address of every container, by `host/name`."""
    out = {}
    for h in stack.hosts:
        for name in docker(h, "ps", "-a", "--format", "{{.Names}}").split():
            doc = json.loads(docker(h, "inspect", name))[0]
            net = next(iter(doc["NetworkSettings"]["Networks"].values()))
            out[f"{h.name}/{name}"] = {"ipv4": net["IPAddress"], "ipv6": net["GlobalIPv6Address"]}
    return out


# -- Docker 20.10's IPv6 behaviour, measured on the lab's daemon --------------------------------

def _quirks(stack: LabStack) -> dict[str, Any]:
    site = stack.inventory.sites[0]
    h1 = stack.host("h1")
    lan4, lan6 = ipaddress.ip_network(site.lan), ipaddress.ip_network(site.lan6)
    ip4, ip6 = str(lan4[230]), str(lan6[0x1E0])
    gw4, gw6 = site.gateway, site.gateway6
    seen: dict[str, Any] = {"version": docker(h1, "version", "-f", "{{.Server.Version}}").strip()}

    def net(name: str, *args: str) -> tuple[bool, dict[str, Any]]:
        ok = bool(sh("docker", "-H", f"unix://{h1.docker_socket}", "network", "create", "-d",
                     "macvlan", "-o", "parent=eth0", *args, name, check=False).strip())
        doc = json.loads(docker(h1, "network", "inspect", name, check=False) or "[{}]")[0]
        return ok, doc

    def run(name: str, network: str, *args: str) -> dict[str, Any]:
        out = sh("docker", "-H", f"unix://{h1.docker_socket}", "run", "-d", "--name", name,
                 "--network", network, *args, h1.image, check=False)
        doc = json.loads(docker(h1, "inspect", name, check=False) or "[{}]")[0]
        ep = (doc.get("NetworkSettings") or {}).get("Networks", {}).get(network) or {}
        running = bool((doc.get("State") or {}).get("Running"))
        return {"started": running and bool(out.strip()), "ipv4": ep.get("IPAddress"),
                "ipv6": ep.get("GlobalIPv6Address"), "pid": (doc.get("State") or {}).get("Pid")}

    def clean(*names: str) -> None:
        for name in names:
            docker(h1, "rm", "-f", name, check=False)
        docker(h1, "network", "rm", "q6", check=False)

    try:
        # 1. An IPv6 subnet without --ipv6: accepted, but is it used?
        created, doc = net("q6", "--subnet", str(lan4), "--gateway", gw4, "--subnet", str(lan6),
                           "--gateway", gw6)
        seen["no --ipv6: network created"] = created
        seen["no --ipv6: EnableIPv6"] = doc.get("EnableIPv6")
        seen["no --ipv6: IPv6 pool kept"] = any(":" in c.get("Subnet", "")
                                               for c in doc.get("IPAM", {}).get("Config") or [])
        c = run("q6a", "q6", "--ip", ip4)
        seen["no --ipv6: container gets IPv6"] = bool(c["ipv6"])
        c = run("q6b", "q6", "--ip6", ip6)
        seen["no --ipv6: --ip6 starts a container"] = c["started"]
        seen["no --ipv6: --ip6 gives IPv6"] = bool(c["ipv6"])
        clean("q6a", "q6b")
        # 2. --ipv6 with no IPv6 gateway: which one does Docker record?
        _, doc = net("q6", "--ipv6", "--subnet", str(lan4), "--gateway", gw4, "--subnet",
                     str(lan6))
        seen["--ipv6 without gateway: recorded gateway"] = next(
            (cfg.get("Gateway") for cfg in doc["IPAM"]["Config"] if ":" in cfg["Subnet"]), None)
        clean()
        # 3. IPv6 only: does Docker add an IPv4 pool of its own?
        _, doc = net("q6", "--ipv6", "--subnet", str(lan6), "--gateway", gw6)
        seen["IPv6 only: IPv4 pool added"] = next(
            (cfg["Subnet"] for cfg in doc["IPAM"]["Config"] if ":" not in cfg["Subnet"]), None)
        c = run("q6c", "q6", "--ip6", ip6)
        seen["IPv6 only: container gets IPv4"] = c["ipv4"] or None
        clean("q6c")
        # 4. A dual-stack container: its IPv6 address's flags and default route.
        net("q6", "--ipv6", "--subnet", str(lan4), "--gateway", gw4, "--subnet", str(lan6),
            "--gateway", gw6)
        c = run("q6d", "q6", "--ip", ip4, "--ip6", ip6)
        inside = ["nsenter", "-t", str(c["pid"]), "-n", "ip", "-6"]
        addr = sh(*inside, "addr", "show", "dev", "eth0")
        seen["container IPv6 address nodad"] = "nodad" in addr
        seen["container IPv6 default route"] = sh(*inside, "route", "show", "default").split()[:3]
    finally:
        clean("q6a", "q6b", "q6c", "q6d")
    return seen


def test_docker_ipv6_behaviour_measured(dual: LabStack, baseline: dict[str, Any]) -> None:
    """Prints every observation (the README's table); asserts the ones the plan relies on."""
    site = dual.inventory.sites[0]
    seen = _quirks(dual)
    print(json.dumps(seen, indent=1))
    assert seen["version"].startswith("20.10")
    measured = {
        "no --ipv6: network created": True, "no --ipv6: EnableIPv6": False,
        "no --ipv6: IPv6 pool kept": True, "no --ipv6: container gets IPv6": False,
        # --ip6 is silently ignored: the container runs without IPv6 (the plan sets --ipv6).
        "no --ipv6: --ip6 starts a container": True, "no --ipv6: --ip6 gives IPv6": False,
        "--ipv6 without gateway: recorded gateway": None,
        "container IPv6 address nodad": True,
        "container IPv6 default route": ["default", "via", site.gateway6],
    }
    assert {k: seen[k] for k in measured} == measured
    # An IPv6-only network still gets an IPv4 pool of the daemon's, and containers an IPv4
    # address from it (on the LAN): the layout refuses IPv6-only networks.
    assert seen["IPv6 only: IPv4 pool added"] and seen["IPv6 only: container gets IPv4"]
    assert dual.state() == {k: v for k, v in baseline.items() if k != "router"}


# -- the stack ------------------------------------------------------------------------------------

def test_up_is_verified_and_reaches_every_container_over_both_families(
        dual: LabStack, baseline: dict[str, Any]) -> None:
    report = up(dual.name, engine=dual.engine, cwd=dual.project)
    print(report.text())
    assert report.ok, report.text()
    site = _site(dual.base_sites)
    routed = [ipaddress.ip_network(s["subnet"]) for t in site["tenants"] for s in t["subnets"]]
    found = _containers(dual)
    assert sorted(found) == sorted(f"{c['host']}/{c['name']}" for c in site["containers"])
    for key, addresses in found.items():
        host = dual.host(key.split("/")[0])
        for family, address in addresses.items():
            assert address, f"{key} has no {family} address"
            where = "through the router" if any(ipaddress.ip_address(address) in p
                                                for p in routed) else "on the LAN"
            assert http_ok(dual.peer_netns, address), f"peer cannot reach {key} {address} {where}"
            assert http_ok(host.netns, address), f"{host.name} cannot reach {key} {address}"
    # The router's IPv6 route to the tenant goes to its host's IPv6 LAN address, proto 57.
    tenant_host = next(h for h in site["hosts"] if h["name"] == site["tenants"][0]["subnets"][0][
        "host"])
    router = dual.inventory.sites[0].router.netns
    six = ip_json(router, "-6", "route", "show", "proto", "57")
    assert [(r["dst"], r["gateway"]) for r in six] == [
        (str(p), tenant_host["lan_address6"]) for p in routed if p.version == 6]


def test_a_second_up_changes_nothing(dual: LabStack) -> None:
    changes = dual.changes("up", "--yes")
    assert set(changes) == {"same"}, changes


def test_refresh_sees_a_lost_ipv6_shim_route_and_up_repairs_it(dual: LabStack) -> None:
    h1 = dual.host("h1")
    web1 = _containers(dual)["h1/web1"]["ipv6"]
    sh("ip", "-n", h1.netns, "-6", "route", "del", f"{web1}/128", "dev", SHIM)
    refreshed = dual.changes("refresh", "--yes", "--skip-preview")
    assert refreshed.get("update") == 1 and set(refreshed) == {"update", "same"}, refreshed
    repaired = dual.changes("up", "--yes", "--skip-preview")
    assert repaired.get("update") == 1 and set(repaired) == {"update", "same"}, repaired
    assert ip_json(h1.netns, "-6", "route", "show", f"{web1}/128", "dev", SHIM)
    assert http_ok(h1.netns, web1)
    assert set(dual.changes("refresh", "--yes", "--skip-preview")) == {"same"}


def test_doctor_and_preview_find_an_ipv6_address_already_on_the_lan(dual: LabStack) -> None:
    sites = dual.sites()
    name, site = next(iter(sites.items()))
    pool = next(s for s in site["networks"][0]["subnets"] if ":" in s["subnet"])
    planted = str(ipaddress.ip_network(pool["ip_range"])[0xF0])
    prefix = ipaddress.ip_network(pool["subnet"]).prefixlen
    site["containers"].append({"name": "web9", "host": "h1", "network": "dual_net",
                              "image": site["containers"][0]["image"], "ipv6": planted})
    key = f"sites.{name}.containers[{len(site['containers']) - 1}].ipv6"
    peer = dual.peer_netns
    sh("ip", "-n", peer, "addr", "add", f"{planted}/{prefix}", "dev", "eth0", "nodad")
    try:
        layout = load_config({"sites": sites})
        report = doctor(layout, hosts_of(layout), f"vlaninfra/{dual.name}")
        print(report.text())
        errors = [f for f in report.findings if f.severity == "error"]
        assert [f.key for f in errors] == [key], report.text()
        assert f"the planned address {planted} already answers on the LAN" in errors[0].message
        assert "(NDP probe on eth0)" in errors[0].message
        dual.write(sites)
        out = dual.run("preview", check=False)
        assert f"{key}: container 'web9' would get {planted}" in out, out
        assert "(NDP probe on eth0): another device holds it" in out
    finally:
        sh("ip", "-n", peer, "addr", "del", f"{planted}/{prefix}", "dev", "eth0", check=False)
        dual.write(dual.base_sites)
    assert set(dual.changes("preview")) == {"same"}


def test_destroy_leaves_the_hosts_and_the_router_clean(
        dual: LabStack, baseline: dict[str, Any]) -> None:
    dual.changes("destroy", "--yes", "--skip-preview")
    assert dual.state() == {k: v for k, v in baseline.items() if k != "router"}
    assert _router_routes(dual) == baseline["router"]
