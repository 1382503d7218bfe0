"""Rules of the ipvlan/router half: managed routers need a way in, what Docker 20.10's ipvlan
driver does with mode l3s and ipvlan_flag (measured on a VM: refused / ignored), shims only
where the host cannot route to its containers."""

from __future__ import annotations

import copy
from typing import Any

from tests.hostkeys import fake_host_key
from tests.unit.layout.layout_helpers import config, errors_of, site

S = "sites.paris"


def _l3(**over: Any) -> dict[str, Any]:
    s = site(containers=[], tenants=[{"name": "ta", "subnets": [
        {"subnet": "198.18.1.0/24", "network": "t3"}]}])
    net: dict[str, Any] = {"name": "t3", "driver": "ipvlan", "mode": "l3", "parent": "eth0",
                           "hosts": ["h1"]}
    net.update(over)
    s["networks"] = [{k: v for k, v in net.items() if v is not None}]
    return s


def test_a_managed_router_needs_ssh_outside_the_lab() -> None:
    s = _l3()
    s["routers"] = [{"name": "gw", "address": "192.0.2.1", "managed": True}]
    assert errors_of(config(paris=s)) == [(
        f"{S}.routers[0].ssh",
        "required: a managed router gets the upstream routes over SSH; give its ssh settings "
        "(or set managed: false and add the plan's routes by hand)")]
    with_ssh = copy.deepcopy(s)
    with_ssh["routers"][0]["ssh"] = {"address": "203.0.113.1", "host_key": fake_host_key("gw")}
    assert errors_of(config(paris=with_ssh)) == []
    lab = copy.deepcopy(s)
    lab["inventory"] = "lab"
    assert errors_of(config(paris=lab)) == []


def test_docker_20_10_refuses_l3s_and_ignores_the_ipvlan_flag() -> None:
    errs = errors_of(config(paris=_l3(mode="l3s", flag="private")))
    assert [e[0] for e in errs] == [f"{S}.networks[0].mode", f"{S}.networks[0].flag"]
    assert "Docker before 23.0 refuses ipvlan mode l3s" in errs[0][1]
    assert "accepts ipvlan_flag private and ignores it" in errs[1][1]
    newer = _l3(mode="l3s", flag="private")
    newer["hosts"][0]["docker_version"] = "24.0.7"
    assert errors_of(config(paris=newer)) == []


def test_no_shim_on_ipvlan_l3() -> None:
    shim = {"address_per_host": {"h1": "198.18.1.250"}}
    errs = errors_of(config(paris=_l3(shim=shim)))
    assert (f"{S}.networks[0].shim",
            "ipvlan l3 needs no shim: the host reaches the containers by routing (through the "
            "upstream route to its own subnet); drop the shim") in errs
