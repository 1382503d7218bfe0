"""Self-contained real-parts fixtures for the agent tests: namespaces, sshd, dockerd.

Built from the lab's own parts (`vlaninfra.lab`: its command runner, key pairs, rootfs image,
unmounting and readiness waits). Everything is named after this test run's pid
(`vlaninfra.lab._scratch`: ``vxa-<label>-<pid>`` namespaces, ``/run/vxa-<pid>``, temp dirs
``vxa-sshd-<pid>-…`` and ``vxa-docker-<pid>-…``), so it never collides with the full lab or
another run, and is removed again in ``finally`` blocks, also when a test fails; what a killed
run leaves, `vlaninfra lab down` removes. Addresses: 192.0.2.0/24 (LAN inside a namespace),
203.0.113.0/24 (management veth from the root namespace).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vlaninfra.lab._daemons import Waiter, docker_ping, ensure_keypair, unmount, wait_for
from vlaninfra.lab._daemons import ssh_answers as _ssh_answers
from vlaninfra.lab._image import IMAGE, build_rootfs
from vlaninfra.lab._inventory import cache_dir
from vlaninfra.lab._netns import nsenter, run_process
from vlaninfra.lab._scratch import (
    PREFIX,
    mgmt_link_name,
    scratch_name,
    temp_prefix,
)
from vlaninfra.lab._scratch import (
    exec_root as _exec_root,
)

root_only = pytest.mark.lab
"""The `lab` marker, whose tests tests/conftest.py skips without root: mark tests
`pytest.mark.lab` directly; this name stays for the modules that still import it."""


def stop(proc: subprocess.Popen[bytes] | subprocess.Popen[str], grace: float) -> None:
    """Ends a daemon a fixture started: SIGTERM, then SIGKILL after `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (no shell); raise `LabError` with its stderr when it fails."""
    return run_process(argv, check=check)


def _kill_netns_pids(name: str) -> None:
    proc = sh("ip", "netns", "pids", name, check=False)
    for pid in proc.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def netns(label: str) -> Iterator[str]:
    """A throw-away namespace with ``lo`` up and ``eth0`` (a veth whose peer ``eth0p`` is in
    the same namespace, both up): a parent NIC for macvlan that touches nothing outside."""
    name = scratch_name(label)
    sh("ip", "netns", "add", name)
    try:
        sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", name, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0p")
        sh("ip", "-n", name, "link", "set", "eth0", "up")
        sh("ip", "-n", name, "link", "set", "eth0p", "up")
        yield name
    finally:
        _kill_netns_pids(name)
        sh("ip", "netns", "del", name, check=False)


def _free_mgmt_net() -> ipaddress.IPv4Network:
    used = sh("ip", "-4", "-o", "addr", "show").stdout
    for third in range(248, 128, -4):
        net = ipaddress.IPv4Network(f"203.0.113.{third}/30")
        if not any(str(host) + "/" in used for host in net):
            return net
    raise RuntimeError("no free /30 in 203.0.113.128/25 for a management link")


@contextlib.contextmanager
def mgmt_link(ns: str) -> Iterator[str]:
    """A veth from the root namespace into ``ns`` (``mgmt0``); yields the ns-side address."""
    net = _free_mgmt_net()
    root_ip, ns_ip = (str(h) for h in net.hosts())
    root_if = mgmt_link_name()
    sh("ip", "link", "add", root_if, "type", "veth", "peer", "name", "mgmt0", "netns", ns)
    try:
        sh("ip", "addr", "add", f"{root_ip}/30", "dev", root_if)
        sh("ip", "link", "set", root_if, "up")
        sh("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", "mgmt0")
        sh("ip", "-n", ns, "link", "set", "mgmt0", "up")
        yield ns_ip
    finally:
        sh("ip", "link", "del", root_if, check=False)


@dataclass
class Sshd:
    """A running throw-away sshd."""

    host: str
    port: int
    host_key: str
    client_key: str
    log: Path
    dir: Path
    proc: subprocess.Popen[bytes]

    def accepted(self) -> int:
        """How many ``Accepted publickey`` lines the log has (one per SSH connection)."""
        try:
            return self.log.read_text(errors="replace").count("Accepted publickey")
        except FileNotFoundError:
            return 0


def keygen(path: Path, kind: str = "ed25519") -> tuple[str, str]:
    """A fresh key pair; returns (private text, 'type base64' public)."""
    public = ensure_keypair(path, "vxa-test", kind)
    return path.read_text(), public


@contextlib.contextmanager
def sshd(ns: str, listen: str, port: int = 22) -> Iterator[Sshd]:
    """sshd in ``ns`` listening on ``listen``: own host key, key-only root login, sftp.

    It runs in a private mount namespace whose ``/root`` is an empty temp dir, so uploads to
    ``~/.cache/vlaninfra`` start from nothing and never touch the machine's real /root.
    """
    prefix, parent = temp_prefix("sshd")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    proc: subprocess.Popen[bytes] | None = None
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    try:
        home = tmp / "home"
        home.mkdir(mode=0o700)
        _, host_pub = keygen(tmp / "ssh_host_ed25519_key")
        client_priv, client_pub = keygen(tmp / "client_key")
        (tmp / "authorized_keys").write_text(client_pub + "\n")
        log = tmp / "sshd.log"
        config = tmp / "sshd_config"
        config.write_text(
            f"ListenAddress {listen}:{port}\n"
            f"HostKey {tmp / 'ssh_host_ed25519_key'}\n"
            f"PidFile {tmp / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {tmp / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
            "LogLevel VERBOSE\n"
            "MaxSessions 50\n"
        )
        inner = (f"mount --bind {shlex.quote(str(home))} /root && exec /usr/sbin/sshd -D "
                 f"-f {shlex.quote(str(config))} -E {shlex.quote(str(log))}")
        proc = subprocess.Popen(
            [*nsenter(ns), "unshare", "--mount",
             "--propagation", "private", "--", "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        running = proc.poll
        wait_for(Waiter(f"sshd in {ns} at {listen}:{port}", lambda: _ssh_answers(listen, port),
                        tmp / "sshd.pid", log, 15.0, lambda: running() is None))
        yield Sshd(listen, port, host_pub, client_priv, log, tmp, proc)
    finally:
        if proc is not None:
            stop(proc, 10)
        _kill_netns_pids(ns)  # per-connection sshd children and agents
        shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class Dockerd:
    """A running throw-away dockerd."""

    socket: str
    exec_root: Path
    data_root: Path
    image: str
    proc: subprocess.Popen[bytes]

    def api(self) -> object:
        """A Docker SDK low-level client on this daemon (for test-side checks)."""
        import docker

        return docker.APIClient(base_url=f"unix://{self.socket}", version="auto")


@contextlib.contextmanager
def dockerd(ns: str) -> Iterator[Dockerd]:
    """dockerd in ``ns`` (own data-root, exec-root, socket; no bridge, no iptables) with
    the busybox-static image ``vxa-busybox:lab`` imported. Containers are force-removed and
    the daemon stopped afterwards; leftover mounts are unmounted and the dirs deleted."""
    exec_root = _exec_root()
    prefix, parent = temp_prefix("docker")
    data_root = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    exec_root.mkdir(mode=0o700)
    socket_path = str(exec_root / "docker.sock")
    log = data_root.parent / f"{data_root.name}.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [*nsenter(ns), "dockerd",
                 "--data-root", str(data_root / "data"), "--exec-root", str(exec_root / "exec"),
                 "--pidfile", str(exec_root / "docker.pid"), "-H", f"unix://{socket_path}",
                 "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
                 "--ip-masq=false", "--userland-proxy=false", "--log-level=warn"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            )
        running = proc.poll
        wait_for(Waiter(f"dockerd in {ns} at {socket_path}", lambda: docker_ping(socket_path),
                        exec_root / "docker.pid", log, 60.0, lambda: running() is None))
        # The lab's rootfs, imported without the lab's label and default command: the tests
        # compare a container's labels and always give its command.
        sh("docker", "-H", f"unix://{socket_path}", "import", str(build_rootfs(cache_dir())[0]),
           IMAGE)
        yield Dockerd(socket_path, exec_root, data_root, IMAGE, proc)
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):
                api: Any = Dockerd(socket_path, exec_root, data_root, IMAGE, proc).api()
                for c in api.containers(all=True):
                    api.remove_container(c["Id"], force=True)
            stop(proc, 30)
        unmount([str(exec_root), str(data_root)])
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)
        log.unlink(missing_ok=True)


def leftovers() -> list[str]:
    """Anything of ours still around: namespaces, processes, /run dirs (for final checks)."""
    out = [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(PREFIX)]
    ps = sh("pgrep", "-af", f"{PREFIX}-", check=False).stdout.splitlines()
    out += [p for p in ps if "pgrep" not in p and "pytest" not in p]
    out += [str(p) for p in Path("/run").glob(f"{PREFIX}-*")]
    return out
