"""Times loading and planning a generated config: by default 3 sites, 10 hosts per site and
100 containers per host (3,000 containers); the issue's scale is ``--hosts 100`` (300 hosts,
30,000 containers).

Run: ``.venv/bin/python tools/bench_layout.py [--sites 3] [--hosts 100] [--containers 100]``
(the goal at 300 hosts / 30,000 containers is under 1 s). Addresses come from the
benchmarking range 198.18.0.0/15; nothing is applied.
"""

from __future__ import annotations

import argparse
import ipaddress
import time
from typing import Any

from vlaninfra.layout import load_config, plan, render_plan

_BASE = ipaddress.IPv4Address("198.18.0.0")


def _net(block: int, third: int, fourth: int = 0) -> str:
    """An address in 198.18.0.0/15, which is split into four /17 blocks (0-2 for sites,
    3 for tenant subnets): ``third`` counts /24s inside the block."""
    return str(_BASE + (block * 128 + third) * 256 + fourth)


def _ssh(n: int) -> str:
    """The management address of the ``n``-th host (documentation ranges, 500 of them)."""
    return f"203.0.113.{n + 1}" if n < 250 else f"198.51.100.{n - 249}"


def build(sites_n: int = 3, hosts_per_site: int = 10,
          containers_per_host: int = 100) -> dict[str, Any]:
    """The benchmark config: per site one macvlan LAN network (a /17, its upper half the pool
    of allocated addresses: at most a quarter of it taken) with shims on every host,
    and one ipvlan l3 network on an 802.1Q parent carrying one tenant /26 per host. 70% of each
    host's containers are on the LAN, every other one with a fixed address; the rest are on
    its tenant."""
    if not (1 <= sites_n <= 3 and 1 <= hosts_per_site <= 100 and 1 <= containers_per_host
            <= 100):
        raise SystemExit("sizes: 1-3 sites, 1-100 hosts per site, 1-100 containers per host")
    sites: dict[str, Any] = {}
    lan_share = containers_per_host * 7 // 10
    for s in range(sites_n):
        hosts = [f"s{s}h{h}" for h in range(hosts_per_site)]
        containers: list[dict[str, Any]] = []
        for h, host in enumerate(hosts):
            for c in range(containers_per_host):
                name = f"{host}c{c}"
                if c < lan_share:
                    ctr: dict[str, Any] = {"name": name, "host": host, "network": "lan_net",
                                           "image": "vlaninfra/busybox:lab"}
                    if c % 2:
                        ctr["ipv4"] = _net(s, 8 + h // 2, h % 2 * 128 + c + 10)
                else:
                    ctr = {"name": name, "host": host, "network": "tenants",
                           "tenant": f"t{h}", "image": "vlaninfra/busybox:lab"}
                containers.append(ctr)
        gateway = _net(s, 0, 1)
        sites[f"site{s}"] = {
            "lan": {"subnet": f"{_net(s, 0)}/17", "gateway": gateway,
                    "dhcp_pool": f"{_net(s, 0, 100)}-{_net(s, 0, 200)}"},
            "routers": [{"name": "gw", "address": gateway, "managed": True,
                         "ssh": {"address": f"198.51.100.{250 + s}"}}],
            "hosts": [{"name": host, "ssh": {"address": _ssh(s * hosts_per_site + h)},
                       "lan_address": _net(s, 1, h + 10), "parents": ["eth0"],
                       "docker_version": "20.10"} for h, host in enumerate(hosts)],
            "networks": [
                {"name": "lan_net", "driver": "macvlan", "parent": "eth0", "hosts": hosts,
                 "subnets": [{"subnet": f"{_net(s, 0)}/17", "gateway": gateway,
                              "ip_range": f"{_net(s, 64)}/18"}],
                 "shim": {"name": "lan-shim", "routes": "per-container",
                          "address_per_host": {host: _net(s, 2, h + 10)
                                               for h, host in enumerate(hosts)}}},
                {"name": "tenants", "driver": "ipvlan", "mode": "l3", "parent": "eth0.100",
                 "hosts": hosts},
            ],
            "tenants": [{"name": f"t{h}", "subnets": [
                {"subnet": f"{_net(3, 0, (s * hosts_per_site + h) * 64)}/26",
                 "network": "tenants", "host": host}]} for h, host in enumerate(hosts)],
            "containers": containers,
        }
    return {"sites": sites}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sites", type=int, default=3)
    ap.add_argument("--hosts", type=int, default=10, help="hosts per site")
    ap.add_argument("--containers", type=int, default=100, help="containers per host")
    ap.add_argument("--rounds", type=int, default=5)
    a = ap.parse_args()
    data = build(a.sites, a.hosts, a.containers)
    best = cpu = float("inf")
    for _ in range(a.rounds):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = plan(load_config(data))
        best = min(best, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    containers = sum(len(h.containers) for s in result.sites for h in s.hosts)
    hosts = sum(len(s.hosts) for s in result.sites)
    start = time.perf_counter()
    text = render_plan(result)
    rendered = time.perf_counter() - start
    print(f"{len(result.sites)} sites, {hosts} hosts, {containers} containers, "
          f"{len(result.warnings)} warnings")
    print(f"load + plan: {best:.3f} s (best of {a.rounds}; {cpu:.3f} s of CPU); render: "
          f"{rendered:.3f} s, "
          f"{len(text.splitlines())} lines")


if __name__ == "__main__":
    main()
