"""Preview refuses to assign an address that another LAN device already answers for (the
Container provider's check sends the verification's ARP probe from the host), naming the
container and its config key, and changes nothing anywhere."""

from __future__ import annotations

import ipaddress
import time

import pytest

from tests.e2e.observe import LabStack, sh

pytestmark = [pytest.mark.lab, pytest.mark.engine]


def test_preview_refuses_an_address_already_answering_on_the_lan(lab_stack: LabStack) -> None:
    sites = lab_stack.sites()
    site = sites["a"]
    pool = ipaddress.ip_network(site["networks"][0]["subnets"][0]["ip_range"])
    taken = str(pool.network_address + 12)
    web1 = next(i for i, c in enumerate(site["containers"]) if c["name"] == "web1")
    site["containers"][web1]["ipv4"] = taken
    lab_stack.write(sites)
    before = lab_stack.state()
    sh("ip", "-n", lab_stack.peer_netns, "addr", "add", f"{taken}/32", "dev", "eth0")
    try:
        started = time.monotonic()
        out = lab_stack.run("preview", check=False)
        seconds = time.monotonic() - started
    finally:
        sh("ip", "-n", lab_stack.peer_netns, "addr", "del", f"{taken}/32", "dev", "eth0")
        lab_stack.write(lab_stack.base_sites)
    assert f"sites.a.containers[{web1}].ipv4: container 'web1' would get {taken}" in out, out
    assert "already answers on the LAN from MAC" in out
    assert "give the container another address" in out
    assert lab_stack.state() == before, "preview changed a host"
    print(f"preview with the ARP check: {seconds:.1f}s")
