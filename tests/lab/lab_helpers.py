"""Helpers of the lab tests: commands in lab namespaces and on lab dockerds."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def in_netns(netns: str, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command in a lab namespace (network only)."""
    return subprocess.run(
        ["nsenter", f"--net=/run/netns/{netns}", "--", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def docker(sock: str, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["docker", "-H", f"unix://{sock}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def http_get(netns: str, url: str, timeout: float = 10) -> str:
    """GET `url` from inside a lab namespace, retrying until the server listens.

    (busybox wget's own -T timeout segfaults on a failed connection in busybox 1.35.)
    """
    deadline = time.monotonic() + timeout
    while True:
        r = in_netns(netns, "busybox", "wget", "-qO-", url, timeout=timeout)
        if r.returncode == 0 or time.monotonic() > deadline:
            return r.stdout
        time.sleep(0.2)


def leftovers(instance: str) -> list[str]:
    """Everything of `instance` still on this machine: namespaces, links, processes, mounts, dirs.

    Found independently of the lab's code: by name, by path and by namespace.
    """
    from vlaninfra.lab._inventory import RUN_DIR, state_dir
    from vlaninfra.lab._topology import instance_of

    state = str(state_dir(instance))
    netns = [n for n in _listdir("/run/netns") if instance_of(n) == instance]
    runs = [n for n in _listdir(str(RUN_DIR)) if instance_of(n) == instance]
    found = [f"netns {n}" for n in netns] + [f"run dir {n}" for n in runs]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    for line in links.splitlines():
        name = line.split(":")[1].strip().split("@")[0]
        if instance_of(name) == instance:
            found.append(f"link {name}")
    paths = [f"{state}/", *(f"{RUN_DIR}/{n}/" for n in runs)]
    prefix = f"{RUN_DIR}/" + ("vl-" if instance == "default" else f"vl{instance}-")
    for pid in _listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(p in cmd for p in paths) or prefix in cmd:
            found.append(f"process {pid} {cmd}")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(state) or point.startswith(prefix):
                found.append(f"mount {point}")
    if Path(state).exists():
        found.append(f"state dir {state}")
    return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
