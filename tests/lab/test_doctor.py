"""`vlaninfra doctor` on the shared namespace lab: clean hosts pass with zero findings, and
each planted problem is found with its key and the seed's advice; the hosts are left exactly
as they were (doctor is read-only).

Covered on namespace hosts (no VM): a planted address conflict on the LAN (the LAN peer holds
a planned address), a missing parent NIC, an ipvlan layout on a kernel without ipvlan, a
cloud VM (DMI files faked through ``dmi_dir``, read by the agent on the host), and a second
macvlan network on one parent under Docker 20.10.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.lab.conftest import SHARED
from tests.lab.lab_helpers import docker, in_netns
from vlaninfra.cli import main
from vlaninfra.doctor import CLOUD_ADVICE, Report, doctor
from vlaninfra.lab import LAB_INSTANCE_ENV, Inventory
from vlaninfra.layout import Layout, load_config
from vlaninfra.program import hosts_of
from vlaninfra.transport import LocalTarget, agent_for, close_all

pytestmark = pytest.mark.lab

OWNER = "vlaninfra/doctor"


def _sites(lab: Inventory, **site_over: Any) -> dict[str, Any]:
    """A clean layout of the lab's first site: one macvlan network on both hosts' eth0 with
    a shim, one fixed-address container per host; addresses from the lab inventory."""
    site = lab.sites[0]
    lan = ipaddress.ip_network(site.lan)

    def at(n: int) -> str:
        return str(lan.network_address + n)

    h1, h2 = site.hosts[:2]
    body: dict[str, Any] = {
        "inventory": "lab",
        "lan": {"subnet": site.lan, "gateway": site.gateway},
        "hosts": [{"name": h.name, "lan_address": h.lan_address.split("/")[0],
                   "parents": [h.parent], "docker_version": "20.10"} for h in (h1, h2)],
        "networks": [{"name": "doc_net", "driver": "macvlan", "mode": "bridge",
                      "parent": h1.parent, "hosts": [h1.name, h2.name],
                      "subnets": [{"subnet": site.lan, "gateway": site.gateway,
                                   "ip_range": f"{at(128)}/26"}],
                      "shim": {"name": "doc-shim",
                               "address_per_host": {h1.name: at(250), h2.name: at(251)}}}],
        "containers": [{"name": f"doc{i + 1}", "host": h.name, "network": "doc_net",
                        "image": h.image, "ipv4": at(140 + i)} for i, h in enumerate((h1, h2))],
    }
    body.update(site_over)
    return {site.name: body}


def _layout(sites: dict[str, Any]) -> Layout:
    return load_config({"sites": sites})


def _run(layout: Layout, dmi_dir: str | None = None) -> Report:
    report = doctor(layout, hosts_of(layout), OWNER, dmi_dir=dmi_dir)
    print(report.text())
    return report


def _snapshots(lab: Inventory) -> list[Any]:
    out = []
    for h in lab.sites[0].hosts[:2]:
        a = agent_for(LocalTarget(netns=h.netns, docker_socket=h.docker_socket))
        out.append(a.call("host.snapshot"))
    return out


@pytest.fixture(scope="module")
def on_lab(lab: Inventory) -> Iterator[Inventory]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(LAB_INSTANCE_ENV, SHARED)
        try:
            yield lab
        finally:
            close_all()


def _keys(report: Report) -> list[tuple[str, str]]:
    return [(f.severity, f.key) for f in report.findings]


def test_clean_hosts_pass_with_zero_findings_and_nothing_changes(on_lab: Inventory) -> None:
    before = _snapshots(on_lab)
    report = _run(_layout(_sites(on_lab)))
    assert report.findings == () and report.ok
    assert _snapshots(on_lab) == before
    assert report.seconds < 10


def test_planted_problems_are_found_with_their_keys(on_lab: Inventory) -> None:
    site = on_lab.sites[0]
    h1, h2 = site.hosts[:2]
    sites = _sites(on_lab)
    body = sites[site.name]
    taken = body["containers"][0]["ipv4"]
    # h2 names a parent NIC it does not have, and carries a second network on it.
    body["hosts"][1]["parents"] = [h2.parent, "eth9"]
    body["networks"].append({"name": "side", "driver": "macvlan", "parent": "eth9",
                             "hosts": [h2.name], "subnets": [{"subnet": "198.18.77.0/24"}]})
    planted = in_netns(site.peer.netns, "ip", "addr", "add", f"{taken}/32", "dev", "eth0")
    assert planted.returncode == 0, planted.stderr
    r = docker(h2.docker_socket, "network", "create", "-d", "macvlan", "-o",
               f"parent={h2.parent}", "--subnet", "198.18.78.0/24", "planted")
    assert r.returncode == 0, r.stderr
    try:
        report = _run(_layout(sites))
    finally:
        in_netns(site.peer.netns, "ip", "addr", "del", f"{taken}/32", "dev", "eth0")
        docker(h2.docker_socket, "network", "rm", "planted")
    assert _keys(report) == [
        ("error", f"sites.{site.name}.containers[0].ipv4"),
        ("error", f"sites.{site.name}.hosts[1].parents[1]"),
        ("error", f"sites.{site.name}.networks[0].parent"),
    ]
    conflict, nic, second = (f.message for f in report.findings)
    assert f"host {h1.name}: the planned address {taken} already answers on the LAN from " \
           "MAC" in conflict and "give the container another address" in conflict
    assert f"host {h2.name}: parent NIC eth9 does not exist" in nic
    assert "Docker 20.10" in second and "allows one macvlan network per parent" in second
    assert "network planted (not in this plan) already uses eth0" in second
    assert not report.ok
    # Removed again: the same hosts pass.
    assert _run(_layout(_sites(on_lab))).findings == ()


def test_ipvlan_on_a_kernel_without_ipvlan(on_lab: Inventory) -> None:
    site = on_lab.sites[0]
    sites = _sites(on_lab)
    net = sites[site.name]["networks"][0]
    net.update(driver="ipvlan", mode="l2")
    net.pop("shim")
    report = _run(_layout(sites))
    key = f"sites.{site.name}.networks[0].driver"
    assert _keys(report) == [("error", key), ("error", key)]  # both hosts
    for f, h in zip(report.findings, site.hosts, strict=False):
        assert f.message.startswith(f"host {h.name}: its kernel (")
        assert "has no ipvlan driver (not built in, no module), so network doc_net cannot be " \
               "made there: use macvlan, or a host whose kernel has ipvlan" in f.message


def test_a_cloud_vm_gets_the_seeds_advice(on_lab: Inventory, tmp_path: Path) -> None:
    site = on_lab.sites[0]
    (tmp_path / "sys_vendor").write_text("Amazon EC2\n")
    (tmp_path / "product_name").write_text("t3.large\n")
    report = _run(_layout(_sites(on_lab)), dmi_dir=str(tmp_path))
    key = f"sites.{site.name}.networks[0].driver"
    assert _keys(report) == [("error", key), ("error", key)]  # both hosts
    assert all("runs on a cloud VM (Amazon EC2; DMI sys_vendor 'Amazon EC2', product_name "
               f"'t3.large'): {CLOUD_ADVICE}" in f.message for f in report.findings)


def test_the_command_prints_one_line_per_finding_and_exits_by_severity(
        on_lab: Inventory, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "Pulumi.doctor.yaml"
    path.write_text(yaml.safe_dump({"config": {"vlaninfra:sites": _sites(on_lab)}}))
    assert main(["doctor", str(path)]) == 0
    assert capsys.readouterr().out.startswith("doctor: 0 error(s), 0 warning(s), 0 info")
    sites = _sites(on_lab)
    sites[on_lab.sites[0].name]["hosts"][0]["parents"] = ["eth7"]
    sites[on_lab.sites[0].name]["networks"][0]["parent_per_host"] = {
        on_lab.sites[0].hosts[0].name: "eth7"}
    path.write_text(yaml.safe_dump({"config": {"vlaninfra:sites": sites}}))
    assert main(["doctor", str(path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"error: sites.{on_lab.sites[0].name}.hosts[0].parents[0]: ")
    assert lines[-1].startswith("doctor: 1 error(s)")
