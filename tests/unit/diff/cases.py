"""Realistic changes of the project's own stack configs, as (deployed, configured) plans, the way
`vlaninfra diff` plans them: the configured layout with the deployed allocations pinned."""

from __future__ import annotations

import copy
from collections.abc import Callable
from ipaddress import ip_network
from typing import Any

from vlaninfra.engine import project_root
from vlaninfra.layout import Plan, load_config, plan
from vlaninfra.loader import read_stack_config
from vlaninfra.review import Diff, compare

Config = dict[str, Any]
BASE = "version 3 (verified, 2026-11-29T09:00:00Z, by ci@runner)"


def stack_config(stack: str) -> Config:
    return read_stack_config(project_root() / "stacks" / f"Pulumi.{stack}.yaml")


def _site(cfg: Config) -> Any:
    return next(iter(cfg["sites"].values()))


def _pool(cfg: Config) -> Any:
    """The first macvlan network's first subnet as written."""
    return _site(cfg)["networks"][0]["subnets"][0]


def add_container(cfg: Config) -> None:
    site = _site(cfg)
    last = site["containers"][-1]
    site["containers"].append({**last, "name": "web5"})


def move_container(cfg: Config) -> None:
    site = _site(cfg)
    hosts = [h["name"] for h in site["hosts"]]
    moved = site["containers"][1]
    moved["host"] = next(h for h in hosts if h != moved["host"])


def aux_address(cfg: Config) -> None:
    pool = _pool(cfg)
    free = list(ip_network(pool["subnet"]).hosts())[60]  # below the ip_range, no one's
    pool["aux_addresses"] = {"printer": str(free)}


def aux_takes_address(cfg: Config) -> None:
    """An aux address on the address web1 was allocated: web1 gets a new one (a warning)."""
    before = plan(load_config(stack_config("lab")))
    web1 = next(c for s in before.sites for h in s.hosts for c in h.containers
                if c.name == "web1")
    _pool(cfg)["aux_addresses"] = {"printer": str(web1.ipv4)}


def add_tenant(cfg: Config) -> None:
    site = _site(cfg)
    last = site["tenants"][-1]
    subnet = ip_network(last["subnets"][0]["subnet"])
    new = ip_network((int(subnet.network_address) + subnet.num_addresses, subnet.prefixlen))
    site["tenants"].append({"name": "tenant_c",
                            "subnets": [{**last["subnets"][0], "subnet": str(new)}]})
    app = site["containers"][-1]
    site["containers"].append({**app, "name": "app3", "tenant": "tenant_c",
                               "ipv4": str(new.network_address + 5)})


def remove_shim_route(cfg: Config) -> None:
    """The last container goes, and with it its /32 route through its host's shim."""
    _site(cfg)["containers"].pop()


def shim_ip_range(cfg: Config) -> None:
    _site(cfg)["networks"][0]["shim"]["routes"] = "ip-range"


CASES: dict[str, tuple[str, Callable[[Config], None]]] = {
    "add-container": ("lab", add_container),
    "move-container": ("lab", move_container),
    "aux-address-replaces-network": ("lab", aux_address),
    "aux-address-takes-a-containers-address": ("lab", aux_takes_address),
    "add-tenant": ("lab-ipvlan", add_tenant),
    "remove-shim-route": ("lab", remove_shim_route),
    "shim-routes-ip-range": ("lab", shim_ip_range),
}


def plans(case: str) -> tuple[Plan, Plan]:
    """(deployed, configured) for `case`."""
    stack, change = CASES[case]
    before = stack_config(stack)
    after = copy.deepcopy(before)
    change(after)
    old = plan(load_config(before))
    return old, plan(load_config(after), previous=old.allocations)


def diff(case: str) -> tuple[Diff, Plan]:
    """The case's diff and its configured plan (for the markdown's topology)."""
    old, new = plans(case)
    return compare(old, new, stack=CASES[case][0], base=BASE, base_version=3), new


def big_layout(hosts: int = 3, containers: int = 60) -> Config:
    """A generated `hosts`-host, `containers`-container macvlan layout with a shim and two
    tenants' ipvlan L3 subnets, on the lab stack's LAN."""
    cfg = stack_config("lab")
    site = _site(cfg)
    lan = ip_network(site["lan"]["subnet"])
    names = [f"h{i + 1}" for i in range(hosts)]
    site["hosts"] = [{"name": n, "lan_address": str(lan.network_address + 11 + i),
                      "parents": ["eth0"], "docker_version": "20.10"}
                     for i, n in enumerate(names)]
    net = site["networks"][0]
    net["hosts"] = names
    net["shim"]["address_per_host"] = {n: str(lan.network_address + 250 - i)
                                       for i, n in enumerate(names)}
    net["shim"]["routes"] = "ip-range"
    site["networks"].append({"name": "tenants_l3", "driver": "ipvlan", "mode": "l3",
                             "parent": "eth1", "hosts": [names[0]]})
    for h in site["hosts"]:
        h["parents"] = ["eth0", "eth1"]
    site["tenants"] = [{"name": t, "subnets": [{"subnet": f"198.18.{i + 1}.0/24",
                                                "network": "tenants_l3"}]}
                       for i, t in enumerate(("tenant_a", "tenant_b"))]
    site["containers"] = [
        {"name": f"app{i}", "host": names[0], "network": "tenants_l3",
         "tenant": "tenant_a" if i % 2 else "tenant_b", "image": "vlaninfra/busybox:lab"}
        for i in range(6)
    ] + [
        {"name": f"web{i}", "host": names[i % hosts], "network": net["name"],
         "image": "vlaninfra/busybox:lab"}
        for i in range(containers - 6)
    ]
    return cfg
