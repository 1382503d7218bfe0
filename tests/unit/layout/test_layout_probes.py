"""`sites.<site>.probes`: read, validated with the exact key, resolved to planned addresses."""

from __future__ import annotations

import json
from ipaddress import ip_address
from typing import Any

import pytest

from tests.unit.layout.layout_helpers import config, errors_of, plan_of, site
from vlaninfra.cli_plan import schema_text
from vlaninfra.layout import ProbePlan, render_plan

S = "sites.paris"
WEB2 = {"name": "web2", "host": "h2", "network": "pub_net", "image": "vlaninfra/busybox:lab"}


def with_probes(*probes: dict[str, Any], **changes: Any) -> dict[str, Any]:
    s = site(**changes)
    s["containers"] = [*s["containers"], WEB2]
    s["probes"] = list(probes)
    return config(paris=s)


def test_probes_resolve_to_the_member_that_runs_them_and_the_planned_address() -> None:
    s = site()
    s["routers"][0]["managed"] = True
    s["routers"][0]["ssh"] = {"address": "203.0.113.9"}
    s["containers"] = [*s["containers"], WEB2]
    s["probes"] = [
        {"from": "h1", "to": "web1", "port": 80},
        {"from": "web2", "to": "web1", "port": 80, "name": "lan-web"},
        {"from": "gw", "to": "198.18.0.9", "expect": "blocked"},
        {"from": "h1/web1", "to": "h2/web2"},
    ]
    the_plan = plan_of(config(paris=s))
    web2 = the_plan.sites[0].hosts[1].containers[0].ipv4
    assert web2 is not None
    assert the_plan.sites[0].probes == (
        ProbePlan("h1 -> web1:80", "h1", False, None, ip_address("192.0.2.130"), 80, "reach"),
        ProbePlan("lan-web: web2 -> web1:80", "h2", False, "web2", ip_address("192.0.2.130"),
                  80, "reach"),
        ProbePlan("gw -> 198.18.0.9 (expect blocked)", "gw", True, None,
                  ip_address("198.18.0.9"), None, "blocked"),
        ProbePlan("h1/web1 -> h2/web2", "h1", False, "web1", web2, None, "reach"),
    )


def test_a_layout_without_probes_plans_none() -> None:
    assert plan_of(config()).sites[0].probes == ()


@pytest.mark.parametrize(("probe", "key", "message"), [
    ({"from": "h1", "to": "web9", "port": 80}, "to",
     "no container 'web9' in site paris; known: web1, web2 (or give an IP address)"),
    ({"from": "h9", "to": "web1"}, "from",
     "no host, managed router or container 'h9' in site paris; known: h1, h2, web1, web2"),
    ({"from": "gw", "to": "web1"}, "from",
     "router gw is not managed: vlaninfra has no agent there; set managed: true (with its ssh "
     "settings) or probe from a host"),
    ({"from": "h1", "to": "h1/web2"}, "to",
     "no container 'web2' on host 'h1' in site paris; known: web1, web2 (or give an IP "
     "address)"),
    ({"from": "h1", "to": "web.example"}, "to",
     "no container 'web.example' in site paris; known: web1, web2 (or give an IP address)"),
])
def test_a_probe_that_cannot_run_names_its_key(probe: dict[str, Any], key: str,
                                                message: str) -> None:
    cfg = with_probes({"from": "h1", "to": "web1"}, probe)
    assert errors_of(cfg) == [(f"{S}.probes[1].{key}", message)]


def test_a_container_name_on_two_hosts_must_say_which() -> None:
    cfg = with_probes({"from": "web1", "to": "192.0.2.1"})
    cfg["sites"]["paris"]["containers"].append(
        {"name": "web1", "host": "h2", "network": "pub_net", "image": "x"})
    assert errors_of(cfg) == [(f"{S}.probes[0].from", (
        "container web1 runs on several hosts: write one of h1/web1, h2/web1"))]
    cfg["sites"]["paris"]["probes"] = [{"from": "h2/web1", "to": "h1/web1", "port": 80}]
    assert plan_of(cfg).sites[0].probes[0].container == "web1"


def test_a_name_of_both_a_host_and_a_container_is_refused() -> None:
    cfg = with_probes({"from": "h2", "to": "192.0.2.1"})
    cfg["sites"]["paris"]["containers"].append(
        {"name": "h2", "host": "h1", "network": "pub_net", "image": "x"})
    assert errors_of(cfg) == [(f"{S}.probes[0].from", (
        "h2 names more than one host, router or container of site paris: rename one, or "
        "write host/name for a container"))]


def test_a_container_on_a_network_the_source_cannot_reach_is_fine() -> None:
    # What the probe tests, not what validation decides: an address outside every subnet too.
    cfg = with_probes({"from": "web1", "to": "web2", "port": 22, "expect": "blocked"},
                      {"from": "h2", "to": "2001:db8::1"})
    assert errors_of(cfg) == []


def test_duplicate_names_and_bad_values_are_reported_with_their_keys() -> None:
    cfg = with_probes({"from": "h1", "to": "web1", "name": "a"},
                      {"from": "h2", "to": "web1", "name": "a"})
    assert errors_of(cfg) == [(f"{S}.probes[1].name",
                               f"duplicate probe name; first used at {S}.probes[0].name")]
    cfg = with_probes({"from": "h1", "to": "web1", "port": 0, "expect": "maybe", "via": "x"},
                      {"to": "web1"})
    assert sorted(errors_of(cfg)) == [
        (f"{S}.probes[0].expect", "expected one of reach, blocked"),
        (f"{S}.probes[0].port", "expected 1 to 65535"),
        (f"{S}.probes[0].via", "unknown key 'via'; expected one of: from, to, port, expect, "
                               "name"),
        (f"{S}.probes[1].from", "required: Where it runs: a host of the site (on the host, "
                                "through its shim where it has one), a container of the site "
                                "(inside it; host/name when the name is on several hosts) or "
                                "the site's managed router."),
    ]


def test_a_container_that_gets_no_address_cannot_be_a_target() -> None:
    cfg = with_probes({"from": "h1", "to": "web3"})
    s = cfg["sites"]["paris"]
    s["networks"].append({"name": "bare", "driver": "macvlan", "parent": "eth0.7",
                          "hosts": ["h1"]})
    s["containers"].append({"name": "web3", "host": "h1", "network": "bare", "image": "x"})
    assert (f"{S}.probes[0].to", "container web3 gets no address on host h1 (its network has "
                                 "no subnet there): probe an address instead") in errors_of(cfg)


def test_the_schema_describes_probes() -> None:
    schema = json.loads(schema_text())
    items = schema["$defs"]["site"]["properties"]["probes"]["items"]
    assert items == {"$ref": "#/$defs/probe"}
    probe = schema["$defs"]["probe"]
    assert probe["required"] == ["from", "to"]
    assert probe["properties"]["expect"]["enum"] == ["reach", "blocked"]


def test_the_plan_lists_the_probes_where_they_run() -> None:
    text = render_plan(plan_of(with_probes({"from": "web2", "to": "web1", "port": 80},
                                           {"from": "h1", "to": "192.0.2.1",
                                            "expect": "blocked"})))
    lines = text[text.index("  probes (run by verification)"):].splitlines()
    assert [line.split() for line in lines[1:4]] == [
        ["PROBE", "RUNS", "ON", "TARGET", "CHECK", "EXPECT"],
        ["web2", "->", "web1:80", "h2", "in", "web2", "192.0.2.130", "tcp", "80", "reach"],
        ["h1", "->", "192.0.2.1", "(expect", "blocked)", "h1", "192.0.2.1", "ping", "blocked"]]
