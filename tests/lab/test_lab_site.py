"""One lab instance (two sites, two hosts each): the switch, the daemons, the image."""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path

import pytest

from tests.lab.lab_helpers import docker, http_get, in_netns
from vlaninfra.lab import Inventory, lab_status

pytestmark = pytest.mark.lab


def _ping(netns: str, address: str) -> None:
    r = in_netns(netns, "ping", "-c", "1", "-W", "2", address.split("/")[0])
    assert r.returncode == 0, f"{netns} cannot ping {address}: {r.stdout}{r.stderr}"


def test_switch_carries_traffic_between_hosts_peer_and_router(lab: Inventory) -> None:
    for site in lab.sites:
        for host in site.hosts:
            _ping(host.netns, site.peer.address)
            _ping(host.netns, site.router.lan_address)
            _ping(site.peer.netns, host.lan_address)
            for other in site.hosts:
                _ping(host.netns, other.lan_address)


def test_sites_route_to_each_other_through_their_routers(lab: Inventory) -> None:
    a, b = lab.sites
    _ping(a.hosts[0].netns, b.hosts[-1].lan_address)
    _ping(b.peer.netns, a.peer.address)
    r = in_netns(a.hosts[0].netns, "ip", "route", "get", b.peer.address.split("/")[0])
    assert f"via {a.gateway}" in r.stdout


def test_lan_namespaces_have_no_way_out_of_the_lab(lab: Inventory) -> None:
    for site in lab.sites:
        r = in_netns(site.router.netns, "ip", "route", "show", "default")
        assert r.stdout == "", "a router with a default route could leak traffic"


def test_each_dockerd_answers_and_runs_the_local_image(lab: Inventory) -> None:
    for host in lab.hosts:
        assert host.docker_version.startswith("20.")
        r = docker(
            host.docker_socket,
            "run",
            "--rm",
            "--network",
            "none",
            host.image,
            "sh",
            "-c",
            "ping -c 1 127.0.0.1 >/dev/null && cat /www/index.html",
        )
        assert r.returncode == 0, r.stderr
        assert "vlaninfra lab" in r.stdout


def test_a_macvlan_container_serves_http_to_the_peer(lab: Inventory) -> None:
    site = lab.sites[0]
    host = site.hosts[0]
    sock = host.docker_socket
    net = "labtest-mv"
    ip = str(ipaddress.ip_network(site.lan).network_address + 200)
    try:
        r = docker(
            sock,
            "network",
            "create",
            "-d",
            "macvlan",
            "--subnet",
            site.lan,
            "--gateway",
            site.gateway,
            "-o",
            f"parent={host.parent}",
            net,
        )
        assert r.returncode == 0, r.stderr
        r = docker(
            sock, "run", "-d", "--name", "labtest-web", "--network", net, "--ip", ip, host.image
        )
        assert r.returncode == 0, r.stderr
        _ping(site.peer.netns, ip)
        # The image's default command serves its hostname and addresses.
        assert f"{ip}/" in http_get(site.hosts[1].netns, f"http://{ip}/")
        assert f"{ip}/" in http_get(site.peer.netns, f"http://{ip}/")
        assert "labtest-web" in lab_status(lab.instance)
    finally:
        docker(sock, "rm", "-f", "labtest-web")
        docker(sock, "network", "rm", net)


def _known_hosts(lab: Inventory, tmp_path: Path) -> Path:
    """Built from the inventory's pinned keys, not from the lab's own file."""
    path = tmp_path / "known_hosts"
    nodes = [s.router for s in lab.sites] + list(lab.hosts)
    path.write_text("".join(f"{n.mgmt_address} {n.host_key}\n" for n in nodes))
    return path


def _ssh(
    lab: Inventory, known: Path, address: str, *command: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            "ssh",
            "-i",
            lab.key_path,
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=5",
            "-o",
            "GlobalKnownHostsFile=/dev/null",
            f"root@{address}",
            *command,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_each_sshd_accepts_the_lab_key_with_pinned_host_keys(
    lab: Inventory, tmp_path: Path
) -> None:
    known = _known_hosts(lab, tmp_path)
    for site in lab.sites:
        r = _ssh(lab, known, site.router.mgmt_address, "ip", "-o", "-4", "addr", "show", "eth0")
        assert r.returncode == 0, r.stderr
        assert site.router.lan_address in r.stdout
    for host in lab.hosts:
        before = Path(host.sshd_log).read_text().count("Accepted publickey")
        # The session runs in the host's namespace and talks to the host's own dockerd.
        r = _ssh(
            lab, known, host.mgmt_address, "ip -o -4 addr show eth0; docker info -f {{.OSType}}"
        )
        assert r.returncode == 0, r.stderr
        assert host.lan_address in r.stdout and "linux" in r.stdout
        after = Path(host.sshd_log).read_text().count("Accepted publickey")
        assert after == before + 1


def test_sftp_works_for_the_agent_upload(lab: Inventory, tmp_path: Path) -> None:
    known = _known_hosts(lab, tmp_path)
    host = lab.hosts[0]
    r = subprocess.run(
        [
            "sftp",
            "-i",
            lab.key_path,
            "-o",
            f"UserKnownHostsFile={known}",
            "-o",
            "StrictHostKeyChecking=yes",
            "-b",
            "-",
            f"root@{host.mgmt_address}",
        ],
        input="pwd\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 0, r.stderr


def test_a_wrong_host_key_is_refused(lab: Inventory, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    h1, h2 = lab.sites[0].hosts
    known.write_text(f"{h1.mgmt_address} {h2.host_key}\n")
    r = _ssh(lab, known, h1.mgmt_address, "true")
    assert r.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in r.stderr


def test_status_shows_hosts_and_daemons(lab: Inventory) -> None:
    text = lab_status(lab.instance)
    for host in lab.hosts:
        assert host.netns in text
    assert "DOWN" not in text
    assert text.count("dockerd up") == len(lab.hosts)
