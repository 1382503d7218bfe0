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
import contextlib
import ipaddress
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _bench import lab_sites, scratch_stack

from vlaninfra.engine import LAB_PASSPHRASE, Engine, project_root
from vlaninfra.lab import Host, Inventory, lab_up
from vlaninfra.transport.testing import stop_brokers

NETWORK, SHIM = "bench_net", "bench-shim"
BIG_SUBNET = "198.18.160.0/21"
"""The benchmark network's subnet when the lab LAN's cannot hold the containers asked for."""


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
    if hosts * (per_host + 1) > ipaddress.ip_network(pool_net).num_addresses - 16:
        # too many for the LAN's upper half: a benchmark subnet of its own on the same parent
        # (198.18.0.0/15, reachable only on the lab's LAN segment)
        big = ipaddress.ip_network(BIG_SUBNET)
        net = {**net, "subnets": [{"subnet": str(big), "gateway": str(big[1])}]}
        pool_net = str(list(big.subnets(1))[1])
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


COMMANDS = [
    ("preview", ("preview",)),
    ("up", ("up", "--yes")),
    ("no-change up", ("up", "--yes")),
    ("up --refresh", ("up", "--yes", "--refresh")),
    ("refresh", ("refresh", "--yes")),
    ("destroy", ("destroy", "--yes")),
    ("up --skip-preview", ("up", "--yes", "--skip-preview")),
    ("destroy --skip-preview", ("destroy", "--yes", "--skip-preview")),
]
"""The vlaninfra side of a round, in order (labels as `--commands` takes them): `preview`
runs on the empty stack."""

ROWS = [
    ("preview from empty", "preview", None),
    ("apply: `up` (preview + update)", "up", "raw apply"),
    ("apply: `up --skip-preview`", "up --skip-preview", "raw apply"),
    ("no-change `up`", "no-change up", None),
    ("drift check: `up --refresh`", "up --refresh", None),
    ("`refresh`", "refresh", None),
    ("teardown: `destroy`", "destroy", "raw teardown"),
    ("teardown: `destroy --skip-preview`", "destroy --skip-preview", "raw teardown"),
]


class Peaks:
    """While entered, samples every 0.2 s the peak resident memory (VmHWM, MiB) of each
    provider process, broker and agent on this machine (the lab's hosts are namespaces of
    it); `.peak` holds the largest single process of each kind."""

    KINDS = (("provider", "vlaninfra.providers.serve"), ("broker", "vlaninfra.transport._broker"),
             ("agent", "vlaninfra bootstrap"))

    def __init__(self) -> None:
        self.peak: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Peaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while True:
            for proc in Path("/proc").glob("[0-9]*"):
                try:
                    cmd = (proc / "cmdline").read_bytes()
                    kind = next((k for k, word in self.KINDS if word.encode() in cmd), None)
                    if kind is None:
                        continue
                    status = (proc / "status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        mib = int(line.split()[1]) / 1024
                        self.peak[kind] = max(self.peak.get(kind, 0.0), mib)
            if self._stop.wait(0.2):
                return


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
    ap.add_argument("--commands", default=",".join(label for label, _ in COMMANDS),
                    help="the vlaninfra commands of a round, in their fixed order (default: "
                    "all of %(default)s)")
    ap.add_argument("--raw", action=argparse.BooleanOptionalAction, default=True,
                    help="run the raw script too (--no-raw: vlaninfra only, no ratios)")
    ap.add_argument("--memory", action="store_true", help="also report the peak resident "
                    "memory (VmHWM) of the provider processes, brokers and agents per command")
    a = ap.parse_args()
    wanted = set(a.commands.split(","))
    if wanted - {label for label, _ in COMMANDS}:
        raise SystemExit(f"unknown --commands {sorted(wanted - {x for x, _ in COMMANDS})}")
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
    peaks: dict[str, dict[str, float]] = {}

    def logins() -> list[int]:
        return [Path(h.sshd_log).read_text().count("Accepted publickey") for h in hosts]

    def timed(label: str, run: Callable[[], Any]) -> None:
        stop_brokers()  # each command as if run on its own
        before, start, wall = logins(), time.monotonic(), time.time()
        with Peaks() if a.memory else contextlib.nullcontext() as mem:
            run()
        times.setdefault(label, []).append(time.monotonic() - start)
        if mem is not None:
            for kind, mib in mem.peak.items():
                peaks.setdefault(label, {})[kind] = max(peaks.get(label, {}).get(kind, 0), mib)
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
            for label, args in COMMANDS:
                if label in wanted:
                    timed(label, lambda args=args: s.run(*args))  # type: ignore[misc]

        if a.trace:
            vlaninfra()
            profile(a.trace, spans)
            return
        for r in range(a.rounds):
            for side in (raw, vlaninfra) if r % 2 == 0 else (vlaninfra, raw):
                if a.raw or side is vlaninfra:
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
        if key not in med:
            continue
        base = base if base in med else None
        ratio = f"{med[key] / med[base]:.2f}x" if base else ""
        raw_s = f"{med[base]:.2f}" if base else ""
        if a.markdown:
            print(f"| {title} | {med[key]:.2f} | {raw_s} | {ratio} |")
        else:
            print(f"{title:<38}{med[key]:>7.2f} s {raw_s:>7} {ratio:>7}  "
                  f"ssh connections per host {conns[key]}")
    for label, kinds in peaks.items():
        print(f"peak memory during {label}: " + ", ".join(
            f"{kind} {mib:.0f} MiB" for kind, mib in sorted(kinds.items())))


if __name__ == "__main__":
    main()
