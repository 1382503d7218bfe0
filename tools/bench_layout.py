"""Times loading and planning a 3-site, 30-host, 3,000-container config.

Run: ``.venv/bin/python tools/bench_layout.py`` (the goal is well under 2 s).
Addresses come from the benchmarking range 198.18.0.0/15; nothing is applied.
"""

from __future__ import annotations

import time
from typing import Any

from vlaninfra.layout import load_config, plan, render_plan

SITES, HOSTS_PER_SITE, CONTAINERS_PER_HOST = 3, 10, 100


def build() -> dict[str, Any]:
    """The benchmark config: per site one macvlan LAN network with shims on every host,
    and one ipvlan l3 network on an 802.1Q parent carrying one tenant subnet per host."""
    sites: dict[str, Any] = {}
    for s in range(SITES):
        lan = f"198.18.{s * 64}"
        hosts = [f"s{s}h{h}" for h in range(HOSTS_PER_SITE)]
        containers: list[dict[str, Any]] = []
        for h, host in enumerate(hosts):
            for c in range(CONTAINERS_PER_HOST):
                name = f"{host}c{c}"
                if c < 70:
                    ctr: dict[str, Any] = {"name": name, "host": host, "network": "lan_net",
                                           "image": "vlaninfra/busybox:lab"}
                    if c % 2:
                        ctr["ipv4"] = f"198.18.{s * 64 + 16 + h}.{c + 10}"
                else:
                    ctr = {"name": name, "host": host, "network": "tenants",
                           "tenant": f"t{h}", "image": "vlaninfra/busybox:lab"}
                containers.append(ctr)
        sites[f"site{s}"] = {
            "lan": {"subnet": f"{lan}.0/18", "gateway": f"{lan}.1",
                    "dhcp_pool": f"{lan}.100-{lan}.200"},
            "routers": [{"name": "gw", "address": f"{lan}.1", "managed": True,
                         "ssh": {"address": f"203.0.113.{s * 16 + 15}"}}],
            "hosts": [{"name": host, "ssh": {"address": f"203.0.113.{s * 16 + h + 1}"},
                       "lan_address": f"{lan}.{h + 10}", "parents": ["eth0"],
                       "docker_version": "20.10"} for h, host in enumerate(hosts)],
            "networks": [
                {"name": "lan_net", "driver": "macvlan", "parent": "eth0", "hosts": hosts,
                 "subnets": [{"subnet": f"{lan}.0/18", "gateway": f"{lan}.1",
                              "ip_range": f"198.18.{s * 64 + 32}.0/19"}],
                 "shim": {"name": "lan-shim", "routes": "per-container",
                          "address_per_host": {host: f"{lan}.{h + 30}"
                                               for h, host in enumerate(hosts)}}},
                {"name": "tenants", "driver": "ipvlan", "mode": "l3", "parent": "eth0.100",
                 "hosts": hosts},
            ],
            "tenants": [{"name": f"t{h}", "subnets": [
                {"subnet": f"198.19.{s * 16 + h}.0/24", "network": "tenants", "host": host}]}
                for h, host in enumerate(hosts)],
            "containers": containers,
        }
    return {"sites": sites}


def main() -> None:
    data = build()
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        result = plan(load_config(data))
        best = min(best, time.perf_counter() - start)
    containers = sum(len(h.containers) for s in result.sites for h in s.hosts)
    hosts = sum(len(s.hosts) for s in result.sites)
    start = time.perf_counter()
    text = render_plan(result)
    rendered = time.perf_counter() - start
    print(f"{len(result.sites)} sites, {hosts} hosts, {containers} containers, "
          f"{len(result.warnings)} warnings")
    print(f"load + plan: {best:.3f} s (best of 5); render: {rendered:.3f} s, "
          f"{len(text.splitlines())} lines")


if __name__ == "__main__":
    main()
