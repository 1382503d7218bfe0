"""Builders for layout tests: a small valid config that each test bends one way."""

from __future__ import annotations

import copy
from typing import Any

from vlaninfra.errors import LayoutError, Problem
from vlaninfra.layout import Plan, load_config, plan, validate

Config = dict[str, Any]

BASE_SITE: Config = {
    "lan": {"subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
            "dhcp_pool": "192.0.2.200-192.0.2.220"},
    "routers": [{"name": "gw", "address": "192.0.2.1"}],
    "hosts": [
        {"name": "h1", "ssh": {"address": "203.0.113.2"}, "lan_address": "192.0.2.11",
         "parents": ["eth0"]},
        {"name": "h2", "ssh": {"address": "203.0.113.3"}, "lan_address": "192.0.2.12",
         "parents": ["eth0"]},
    ],
    "networks": [
        {"name": "pub_net", "driver": "macvlan", "mode": "bridge", "parent": "eth0",
         "hosts": ["h1", "h2"],
         "subnets": [{"subnet": "192.0.2.0/24", "gateway": "192.0.2.1",
                      "ip_range": "192.0.2.128/26"}]},
    ],
    "containers": [
        {"name": "web1", "host": "h1", "network": "pub_net", "image": "vlaninfra/busybox:lab",
         "ipv4": "192.0.2.130"},
    ],
}


def site(**changes: Any) -> Config:
    """A copy of BASE_SITE with top-level keys replaced (None deletes)."""
    result = copy.deepcopy(BASE_SITE)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def config(**sites: Config) -> Config:
    return {"sites": sites or {"paris": site()}}


def problems_of(cfg: Config) -> list[Problem]:
    """Every problem: the loader's if it refuses, else validation's."""
    try:
        layout = load_config(cfg)
    except LayoutError as err:
        return list(err.problems)
    return list(validate(layout))


def errors_of(cfg: Config) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in problems_of(cfg) if p.severity == "error"]


def warnings_of(cfg: Config) -> list[tuple[str, str]]:
    return [(p.path, p.message) for p in problems_of(cfg) if p.severity == "warning"]


def plan_of(cfg: Config) -> Plan:
    return plan(load_config(cfg))
