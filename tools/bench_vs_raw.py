"""vlaninfra against a hand-written script of plain `docker`/`ip` commands, on the same lab.

The layout: N hosts (default 2), each with one macvlan network on its LAN parent, a shim with
one /32 route per container, and C fixed-IP busybox httpd containers (default 20). The raw
side runs one `ssh host bash -se` session per host, hosts one after another (as a script
would), every command one CLI process after another. The vlaninfra side runs the engine on a
scratch project and backend: `up` from empty, a no-change `up`, `up --refresh`, `refresh`,
`destroy`, then `up --skip-preview` and `destroy --skip-preview`. Rounds alternate which side
goes first; medians of the paired rounds and the ratios to the raw script are printed (with
`--markdown`, as the README's table), plus the engine's floor: a no-change `up` of an empty
Python program.

Run as root after set-up, under the lab lock (a benchmark, not a test):
`flock /tmp/vlaninfra-lab.lock .venv/bin/python tools/bench_vs_raw.py --rounds 3`
"""

from __future__ import annotations

import argparse
import collections
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _bench import lab_sites, scratch_stack

from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Host, Inventory, lab_up
from vlaninfra.transport.testing import stop_brokers

NETWORK, SHIM = "bench_net", "bench-shim"


def layout(inv: Inventory, hosts: int, per_host: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `sites` config and, per host name, its shim address and [(container, address)].

    Addresses come from the lab stack's LAN subnet (its upper half), skipping every address
    the inventory gives a lab device.
    """
    sites = lab_sites()
    site = sites["a"]
    lab_hosts = inv.sites[0].hosts[:hosts]
    if len(lab_hosts) < hosts:
        raise SystemExit(f"the lab has {len(lab_hosts)} hosts, not {hosts}")
    net = site["networks"][0]
    subnet = ipaddress.ip_network(net["subnets"][0]["subnet"])
    pool_net = str(list(subnet.subnets(1))[1])
    taken = {str(ipaddress.ip_interface(a).ip) for a in (
        inv.sites[0].gateway, inv.sites[0].router.lan_address, inv.sites[0].peer.address,
        *(h.lan_address for h in inv.sites[0].hosts))}
    pool = iter(a for a in map(str, ipaddress.ip_network(pool_net).hosts()) if a not in taken)
    plan: dict[str, Any] = {}
    containers = []
    for h in lab_hosts:
        shim = next(pool)
        mine = [(f"b{h.name}-{i}", next(pool)) for i in range(per_host)]
        plan[h.name] = {"shim": shim, "containers": mine}
        containers += [{"name": n, "host": h.name, "network": NETWORK, "ipv4": a,
                        "image": h.image} for n, a in mine]
    site["hosts"] = [{"name": h.name, "lan_address": str(ipaddress.ip_interface(
        h.lan_address).ip), "parents": [h.parent], "docker_version": h.docker_version}
        for h in lab_hosts]
    site["networks"] = [{
        "name": NETWORK, "driver": "macvlan", "mode": "bridge", "parent": lab_hosts[0].parent,
        "hosts": [h.name for h in lab_hosts],
        "subnets": [{**net["subnets"][0], "ip_range": pool_net}],
        "shim": {"name": SHIM, "routes": "per-container",
                 "address_per_host": {h: p["shim"] for h, p in plan.items()}},
    }]
    site["containers"] = containers
    site.pop("probes", None)
    return sites, plan


def raw_apply(h: Host, p: dict[str, Any], subnet: dict[str, Any], pool: str) -> str:
    lines = [
        f"docker network create -d macvlan --subnet {subnet['subnet']} "
        f"--gateway {subnet['gateway']} --ip-range {pool} -o parent={h.parent} "
        f"-o macvlan_mode=bridge {NETWORK} >/dev/null",
        f"ip link add {SHIM} link {h.parent} type macvlan mode bridge",
        f"ip addr add {p['shim']}/32 dev {SHIM}",
        f"ip link set {SHIM} up",
    ]
    lines += [f"ip route add {a}/32 dev {SHIM}" for _, a in p["containers"]]
    lines += [f"docker run -d --name {n} --network {NETWORK} --ip {a} "
              f"--restart unless-stopped {h.image} >/dev/null" for n, a in p["containers"]]
    return "\n".join(lines)


def raw_teardown(p: dict[str, Any]) -> str:
    names = " ".join(n for n, _ in p["containers"])
    return "\n".join([f"docker rm -f {names} >/dev/null", f"docker network rm {NETWORK} "
                      ">/dev/null", f"ip link del {SHIM}"])


def ssh(inv: Inventory, h: Host, script: str) -> None:
    """Run `script` in one SSH session on `h` (stops at the first failing command)."""
    cmd = ["ssh", "-i", inv.key_path, "-o", f"UserKnownHostsFile={inv.known_hosts}",
           "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(h.ssh_port),
           f"{h.user}@{h.mgmt_address}", "bash", "-se"]
    env = f"export DOCKER_HOST=unix://{h.docker_socket}\n"
    subprocess.run(cmd, input=env + script, text=True, check=True, capture_output=True)


def floor_up() -> float:
    """Seconds of a no-change `up` of an empty Python program (the engine's own floor)."""
    work = Path(tempfile.mkdtemp(prefix="vlaninfra-bench-floor-"))
    try:
        (work / "Pulumi.yaml").write_text("name: floor\nruntime: python\n")
        (work / "__main__.py").write_text("")
        engine = Engine(project_root(), backend=work / "backend", passphrase=LAB_PASSPHRASE)
        engine.ensure_stack("floor", cwd=work)
        engine.run("floor", "up", "--yes", cwd=work)
        start = time.monotonic()
        engine.run("floor", "up", "--yes", cwd=work)
        return time.monotonic() - start
    finally:
        shutil.rmtree(work, ignore_errors=True)


ROWS = [
    ("apply: `up` (preview + update)", "up", "raw apply"),
    ("apply: `up --skip-preview`", "up --skip-preview", "raw apply"),
    ("no-change `up`", "no-change up", None),
    ("drift check: `up --refresh`", "up --refresh", None),
    ("`refresh`", "refresh", None),
    ("teardown: `destroy`", "destroy", "raw teardown"),
    ("teardown: `destroy --skip-preview`", "destroy --skip-preview", "raw teardown"),
]


def profile(path: Path, spans: list[tuple[str, float, float]]) -> None:
    """Where each run's time went, from the transport's trace (`VLANINFRA_TRACE`): per
    provider process (one per engine phase) when it first reached a host, its SSH connects
    and agent starts, and its agent calls by op (count, summed seconds)."""
    events = [json.loads(line) for line in path.read_text().splitlines()]
    for label, t0, t1 in spans:
        print(f"\n{label}: {t1 - t0:.2f} s")
        mine = [e for e in events if t0 <= e["t"] <= t1]
        for pid in dict.fromkeys(e["pid"] for e in mine):
            ev = [e for e in mine if e["pid"] == pid]
            first, last = min(e["t"] for e in ev), max(e["t"] + e["s"] for e in ev)
            starts = [e["s"] for e in ev if e["what"] in ("connect", "start")]
            ops: collections.Counter[str] = collections.Counter()
            secs: collections.Counter[str] = collections.Counter()
            for e in ev:
                if e["what"] == "call":
                    ops[e["op"]] += 1
                    secs[e["op"]] += e["s"]
            print(f"  process {pid}: first host contact at +{first - t0:.2f} s, last answer "
                  f"at +{last - t0:.2f} s; connect+start {' '.join(f'{x:.2f}' for x in starts)}")
            for op, n in ops.most_common():
                print(f"    {op:<28}{n:>4} calls {secs[op]:>7.2f} s summed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--containers", type=int, default=20, help="containers per host")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--markdown", action="store_true", help="print the README table")
    ap.add_argument("--broker", choices=("on", "off"), default="on", help="off: every engine "
                    "phase logs in and starts an agent itself (VLANINFRA_BROKER=0), as before "
                    "the connection broker; on: phases share one per host. Brokers are stopped "
                    "before each command, so no command inherits the previous one's login")
    ap.add_argument("--trace", type=Path, help="profile one vlaninfra round instead (the "
                    "transport's timing trace goes to this file)")
    a = ap.parse_args()
    spans: list[tuple[str, float, float]] = []
    if a.broker == "off":
        os.environ["VLANINFRA_BROKER"] = "0"
    if a.trace:
        a.trace.unlink(missing_ok=True)
        os.environ["VLANINFRA_TRACE"] = str(a.trace.resolve())
    inv = lab_up(hosts=max(2, a.hosts))
    sites, plan = layout(inv, a.hosts, a.containers)
    hosts = [h for h in inv.sites[0].hosts if h.name in plan]
    net = sites["a"]["networks"][0]
    subnet, pool = net["subnets"][0], net["subnets"][0]["ip_range"]
    times: dict[str, list[float]] = {}
    conns: dict[str, list[int]] = {}

    def logins() -> list[int]:
        return [Path(h.sshd_log).read_text().count("Accepted publickey") for h in hosts]

    def timed(label: str, run: Callable[[], Any]) -> None:
        stop_brokers()  # each command as if run on its own
        before, start, wall = logins(), time.monotonic(), time.time()
        run()
        times.setdefault(label, []).append(time.monotonic() - start)
        spans.append((label, wall, time.time()))
        conns[label] = [x - y for x, y in zip(logins(), before, strict=True)]

    def on_each(script: Callable[[Host], str]) -> None:
        for h in hosts:
            ssh(inv, h, script(h))

    def raw() -> None:
        timed("raw apply", lambda: on_each(lambda h: raw_apply(h, plan[h.name], subnet, pool)))
        timed("raw teardown", lambda: on_each(lambda h: raw_teardown(plan[h.name])))

    with scratch_stack(sites) as s:
        def vlaninfra() -> None:
            timed("up", lambda: s.run("up", "--yes"))
            timed("no-change up", lambda: s.run("up", "--yes"))
            timed("up --refresh", lambda: s.run("up", "--yes", "--refresh"))
            timed("refresh", lambda: s.run("refresh", "--yes"))
            timed("destroy", lambda: s.run("destroy", "--yes"))
            timed("up --skip-preview", lambda: s.run("up", "--yes", "--skip-preview"))
            timed("destroy --skip-preview", lambda: s.run("destroy", "--yes", "--skip-preview"))

        if a.trace:
            vlaninfra()
            profile(a.trace, spans)
            return
        for r in range(a.rounds):
            for side in (raw, vlaninfra) if r % 2 == 0 else (vlaninfra, raw):
                side()
            times.setdefault("engine floor", []).append(floor_up())
            print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in times.items()),
                  flush=True)

    med = {k: statistics.median(v) for k, v in times.items()}
    n = a.hosts * a.containers
    print(f"\n{a.hosts} hosts x {a.containers} containers ({n}), broker {a.broker}, medians "
          f"of {a.rounds} paired rounds; engine floor (no-change `up` of an empty program) "
          f"{med['engine floor']:.2f} s")
    if a.markdown:
        print("\n| run | vlaninfra (s) | raw script (s) | ratio |\n|---|---:|---:|---:|")
    for title, key, base in ROWS:
        ratio = f"{med[key] / med[base]:.2f}x" if base else ""
        raw_s = f"{med[base]:.2f}" if base else ""
        if a.markdown:
            print(f"| {title} | {med[key]:.2f} | {raw_s} | {ratio} |")
        else:
            print(f"{title:<38}{med[key]:>7.2f} s {raw_s:>7} {ratio:>7}  "
                  f"ssh connections per host {conns[key]}")


if __name__ == "__main__":
    main()
