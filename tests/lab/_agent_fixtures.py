"""Self-contained real-parts fixtures for the agent tests: namespaces, sshd, dockerd.

Everything is created under names starting with ``vxa`` (namespaces, links, /run dirs) so
it never collides with the full lab (``vlaninfra.lab``), and everything is removed again in
``finally`` blocks, also when a test fails. Addresses: 192.0.2.0/24 (LAN inside a
namespace), 203.0.113.0/24 (management veth from the root namespace).
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import os
import shlex
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PREFIX = "vxa"
IMAGE = "vxa-busybox:lab"

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
    """Run a command (no shell); raise with its stderr when it fails."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def _tag() -> str:
    return f"{os.getpid() % 100000}"


def _kill_netns_pids(name: str) -> None:
    proc = sh("ip", "netns", "pids", name, check=False)
    for pid in proc.stdout.split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@contextlib.contextmanager
def netns(label: str) -> Iterator[str]:
    """A throw-away namespace with ``lo`` up and ``eth0`` (a veth whose peer ``eth0p`` is in
    the same namespace, both up): a parent NIC for macvlan that touches nothing outside."""
    name = f"{PREFIX}-{label}-{_tag()}"
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
    root_if = f"{PREFIX}{_tag()}m"
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
    sh("ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "vxa-test", "-f", str(path))
    pub = path.with_suffix(".pub") if path.suffix else Path(f"{path}.pub")
    return path.read_text(), " ".join(pub.read_text().split()[:2])


def _wait_port(ns: str, host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"sshd exited: {log.read_text(errors='replace')}")
        out = sh("ip", "netns", "exec", ns, "ss", "-Htln", check=False).stdout
        if f"{host}:{port}" in out:
            return
        time.sleep(0.1)
    raise RuntimeError("sshd did not start listening")


@contextlib.contextmanager
def sshd(ns: str, listen: str, port: int = 22) -> Iterator[Sshd]:
    """sshd in ``ns`` listening on ``listen``: own host key, key-only root login, sftp.

    It runs in a private mount namespace whose ``/root`` is an empty temp dir, so uploads to
    ``~/.cache/vlaninfra`` start from nothing and never touch the machine's real /root.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-sshd-"))
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
            ["nsenter", f"--net=/run/netns/{ns}", "--", "unshare", "--mount",
             "--propagation", "private", "--", "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        _wait_port(ns, listen, port, proc, log)
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


def _busybox_rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "proc", "sys", "dev", "etc"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
        tar.add("/bin/busybox", arcname="bin/busybox")
        for applet in ("sh", "sleep", "ip", "ping"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
    return buf.getvalue()


def _unmount_under(*paths: Path) -> None:
    roots = tuple(str(p) for p in paths)
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mnt in sorted((m for m in mounts if m.startswith(roots)), key=len, reverse=True):
        sh("umount", "-l", mnt, check=False)


@contextlib.contextmanager
def dockerd(ns: str) -> Iterator[Dockerd]:
    """dockerd in ``ns`` (own data-root, exec-root, socket; no bridge, no iptables) with
    the busybox-static image ``vxa-busybox:lab`` imported. Containers are force-removed and
    the daemon stopped afterwards; leftover mounts are unmounted and the dirs deleted."""
    exec_root = Path(f"/run/{PREFIX}-{_tag()}")
    data_root = Path(tempfile.mkdtemp(prefix=f"{PREFIX}-docker-", dir="/var/tmp"))
    exec_root.mkdir(mode=0o700)
    socket_path = str(exec_root / "docker.sock")
    log = open(data_root.parent / f"{data_root.name}.log", "wb")  # noqa: SIM115
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc = subprocess.Popen(
            ["nsenter", f"--net=/run/netns/{ns}", "--", "dockerd",
             "--data-root", str(data_root / "data"), "--exec-root", str(exec_root / "exec"),
             "--pidfile", str(exec_root / "docker.pid"), "-H", f"unix://{socket_path}",
             "--bridge=none", "--iptables=false", "--ip6tables=false", "--ip-forward=false",
             "--ip-masq=false", "--userland-proxy=false", "--log-level=warn"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        )
        info = Dockerd(socket_path, exec_root, data_root, IMAGE, proc)
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError("dockerd exited; see " + log.name)
            if os.path.exists(socket_path):
                try:
                    api = info.api()
                    api.ping()  # type: ignore[attr-defined]
                    break
                except Exception:
                    pass
            if time.monotonic() > deadline:
                raise RuntimeError("dockerd did not come up; see " + log.name)
            time.sleep(0.2)
        repo, tag = IMAGE.split(":")
        api.import_image_from_data(_busybox_rootfs(), repository=repo, tag=tag)  # type: ignore[attr-defined]
        yield info
    finally:
        if proc is not None:
            with contextlib.suppress(Exception):
                api2 = Dockerd(socket_path, exec_root, data_root, IMAGE, proc).api()
                for c in api2.containers(all=True):  # type: ignore[attr-defined]
                    api2.remove_container(c["Id"], force=True)  # type: ignore[attr-defined]
            stop(proc, 30)
        log.close()
        _unmount_under(exec_root, data_root)
        shutil.rmtree(exec_root, ignore_errors=True)
        shutil.rmtree(data_root, ignore_errors=True)
        Path(log.name).unlink(missing_ok=True)


def leftovers() -> list[str]:
    """Anything of ours still around: namespaces, processes, /run dirs (for final checks)."""
    out = [n for n in sh("ip", "netns", "list").stdout.split() if n.startswith(PREFIX)]
    ps = sh("pgrep", "-af", f"{PREFIX}-", check=False).stdout.splitlines()
    out += [p for p in ps if "pgrep" not in p and "pytest" not in p]
    out += [str(p) for p in Path("/run").glob(f"{PREFIX}-*")]
    return out
