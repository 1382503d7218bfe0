"""sshd and dockerd inside lab namespaces; finding and ending lab processes and mounts."""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from vlaninfra.host.docker_api import UnixConnection
from vlaninfra.lab._errors import LabError
from vlaninfra.lab._netns import nsenter, run
from vlaninfra.lab._procs import LabProcess, processes, recorded_pid

__all__ = [
    "LabProcess",
    "Waiter",
    "docker_api",
    "docker_ping",
    "ensure_keypair",
    "kill_processes",
    "lab_mounts",
    "log_tail",
    "processes_named",
    "reload_sshd",
    "ssh_answers",
    "start_detached",
    "start_dockerd",
    "start_sshd",
    "unmount",
    "wait_for",
    "write_sshd_config",
]

SSHD = "/usr/sbin/sshd"


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return f"({path} does not exist)"
    return "\n".join(text[-lines:]) or f"({path} is empty)"


@dataclass(frozen=True)
class Waiter:
    """How to tell that a daemon we started is ready, or has died."""

    what: str
    ready: Callable[[], bool]
    pidfile: Path
    """Where `start_detached` recorded the daemon's pid (to tell whether it still runs)."""
    log: Path
    timeout: float
    running: Callable[[], bool] | None = None
    """Whether it still runs, when its pidfile cannot tell (not written before it starts)."""

    def alive(self) -> bool:
        return self.running() if self.running else recorded_pid(self.pidfile) is not None


def wait_for(waiter: Waiter) -> None:
    """Poll until the daemon is ready; raise with its log's tail if it dies or times out."""
    deadline = time.monotonic() + waiter.timeout
    polls = 0
    while not waiter.ready():
        polls += 1
        dead = polls % 10 == 0 and not waiter.alive()
        if dead or time.monotonic() > deadline:
            why = "exited" if dead else f"did not answer within {waiter.timeout:.0f} s"
            raise LabError(f"{waiter.what} {why}; {waiter.log}:\n{log_tail(waiter.log)}")
        time.sleep(0.05)


# The daemon's pid is written (atomically) before it execs: a `lab up` killed at any point
# leaves no lab process that `lab down` cannot find.
_RECORD_PID = 'echo $$ > "$0.new" && mv -f "$0.new" "$0" && exec "$@"'


def start_detached(argv: list[str], log: Path, pidfile: Path, timeout: float = 5.0) -> int:
    """Start a daemon that is not our child (``setsid -f``): init reaps it, never we.
    Its pid goes to `pidfile` before it runs; return that pid.

    A daemon that stays our child would linger as a zombie after `lab down` kills it
    while this (test) process still runs.
    """
    pidfile.unlink(missing_ok=True)
    with log.open("ab") as out:
        subprocess.run(
            ["setsid", "-f", "sh", "-c", _RECORD_PID, str(pidfile), *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            check=True,
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while (pid := recorded_pid(pidfile)) is None:
        if time.monotonic() > deadline:
            raise LabError(f"{argv[-1]}: no pid in {pidfile} within {timeout:.0f} s; see {log}")
        time.sleep(0.01)
    return pid


# --- keys -------------------------------------------------------------------------------------


def ensure_keypair(path: Path, comment: str, kind: str = "ed25519") -> str:
    """Generate a key pair (no passphrase) at `path` once, kept until `lab down`; return the
    public key. Example: ``ensure_keypair(state / "id_lab", "lab")`` → ``"ssh-ed25519 AAAA…"``
    """
    public = Path(f"{path}.pub")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        public.unlink(missing_ok=True)
        run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", comment, "-f", str(path)])
    path.chmod(0o600)
    key_type, key, *_ = public.read_text().split()
    return f"{key_type} {key}"


# --- sshd -------------------------------------------------------------------------------------


def write_sshd_config(
    state: Path, listen: str, authorized_keys: Path, docker_socket: str | None
) -> tuple[Path, bool]:
    """Writes the sshd_config of one namespace (`state`: its state dir); returns its path and
    whether it differs from the one there before (a running sshd must then read it again)."""
    lines = [
        f"ListenAddress {listen}",
        "Port 22",
        f"HostKey {state / 'ssh_host_ed25519_key'}",
        f"PidFile {state / 'sshd.pid'}",
        f"AuthorizedKeysFile {authorized_keys}",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        # The state dir lives in a checkout whose owner and modes we do not control.
        "StrictModes no",
        # VERBOSE logs one "Accepted publickey" line per connection: tests count them.
        "LogLevel VERBOSE",
        "Subsystem sftp internal-sftp",
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "UseDNS no",
        "PrintMotd no",
        # A lab host is reached for its shell, SFTP and the agent: no forwarding of any kind,
        # so a lab key never opens a path into the lab's (or this machine's) networks.
        "DisableForwarding yes",
        "AllowTcpForwarding no",
        "AllowStreamLocalForwarding no",
        "AllowAgentForwarding no",
        "X11Forwarding no",
        "PermitTunnel no",
        "GatewayPorts no",
        "PermitUserEnvironment no",
        "ClientAliveInterval 0",
    ]
    # The namespaces share this machine's filesystem: what the host agent keeps to survive a
    # reboot (vlaninfra.host.persist) goes below a root of this namespace's own.
    # They share this machine's home directories too, and Debian's bash sources ~/.bashrc for
    # a command run over SSH when its shell level is below 2: this machine's (pyenv's init,
    # its python3 shim: about 0.2 s of CPU per session) is not the host's. Bash raises an
    # inherited SHLVL=1 to 2, so a lab session sources nothing and runs with sshd's PATH and
    # /usr/bin/python3, as on a host whose ~/.bashrc leaves PATH alone.
    env = [f"VLANINFRA_HOST_ROOT={state / 'root'}", "SHLVL=1"]
    if docker_socket:
        # `docker` in an SSH session talks to this host's own daemon.
        env.insert(0, f"DOCKER_HOST=unix://{docker_socket}")
    lines.append("SetEnv " + " ".join(env))
    path, text = state / "sshd_config", "\n".join(lines) + "\n"
    if path.is_file() and path.read_text() == text:
        return path, False
    path.write_text(text)
    return path, True


def ssh_answers(address: str, port: int = 22, timeout: float = 0.5) -> bool:
    """True if an SSH server banner comes back from address:port."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def start_sshd(ns: str, config: Path, log: Path, pidfile: Path) -> None:
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    run([SSHD, "-t", "-f", str(config)])
    # -D keeps sshd in the foreground of its own session; setsid -f detaches it from us.
    start_detached([*nsenter(ns), SSHD, "-D", "-f", str(config), "-E", str(log)], log, pidfile)


def reload_sshd(pidfile: Path, config: Path) -> None:
    """Has the running sshd of `pidfile` read `config` again when it is the one started with
    it (SIGHUP: sshd executes itself anew with the same arguments, in the same process; open
    sessions stay). It listens again within milliseconds; the caller waits for its banner."""
    pid = recorded_pid(pidfile)
    if pid is None:
        return
    with contextlib.suppress(OSError):
        # sshd sets its title ("sshd: /usr/sbin/sshd -D -f CONFIG -E LOG [listener] ..."):
        # its arguments are words of one string there.
        words = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").split()
        if str(config).encode() in words:
            os.kill(pid, signal.SIGHUP)
            time.sleep(0.2)  # past the moment its listener closes for the new one


# --- dockerd ----------------------------------------------------------------------------------


def docker_api(sock: str, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    """GET `path` from the Docker Engine API on unix socket `sock`."""
    conn = UnixConnection(sock, timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def docker_ping(sock: str) -> bool:
    try:
        return docker_api(sock, "/_ping", timeout=1.0) == (200, b"OK")
    except OSError:
        return False


def docker_version(sock: str) -> str:
    status, body = docker_api(sock, "/version")
    if status != 200:
        raise LabError(f"GET /version on {sock} returned {status}")
    return str(json.loads(body)["Version"])


def start_dockerd(
    ns: str, *, state: Path, run_dir: Path, storage_driver: str, address_pool: str, pidfile: Path
) -> None:
    """Start this namespace's dockerd (with its own containerd, state and socket)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "docker.sock").unlink(missing_ok=True)
    (run_dir / "docker.pid").unlink(missing_ok=True)  # left by a killed daemon
    config = state / "daemon.json"
    config.write_text("{}\n")  # never pick up /etc/docker/daemon.json
    argv = [
        *nsenter(ns),
        "dockerd",
        f"--config-file={config}",
        f"--data-root={state / 'docker'}",
        f"--exec-root={run_dir / 'exec'}",
        f"--pidfile={run_dir / 'docker.pid'}",
        f"--host=unix://{run_dir / 'docker.sock'}",
        f"--storage-driver={storage_driver}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--userland-proxy=false",
        "--shutdown-timeout=2",
        f"--default-address-pool=base={address_pool},size=24",
        "--log-level=warn",
    ]
    start_detached(argv, state / "dockerd.log", pidfile)


# --- processes and mounts ---------------------------------------------------------------------


def kill_processes(
    find: Callable[[], list[LabProcess]], timeout: float = 10.0, *, grace: float = 0.0
) -> list[LabProcess]:
    """SIGKILL everything `find` returns until it returns nothing; return what was killed.

    With `grace`, SIGTERM first and SIGKILL only what is left after `grace` seconds. Without
    (the lab's daemons): the lab's state is deleted right after, and whatever dockerd would
    have unmounted is unmounted by `unmount`.
    """
    killed: dict[int, LabProcess] = {}
    if grace > 0:
        for p in find():
            killed.setdefault(p.pid, p)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while find() and time.monotonic() < deadline:
            time.sleep(0.1)
    deadline = time.monotonic() + timeout
    while procs := find():
        if time.monotonic() > deadline:
            left = "\n".join(f"  {p.pid} {p.cmdline}" for p in procs)
            raise LabError(f"lab processes survived SIGKILL for {timeout:.0f} s:\n{left}")
        for p in procs:
            killed.setdefault(p.pid, p)
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
        time.sleep(0.05)
    # Dead daemons are init's zombies until it reaps them (here about once a second); wait,
    # so that right after `lab down` no lab process shows up in `ps` at all.
    reap_deadline = time.monotonic() + 5.0
    while time.monotonic() < reap_deadline and any(
        os.path.exists(f"/proc/{pid}") for pid in killed
    ):
        time.sleep(0.05)
    return list(killed.values())


def processes_named(comm: str) -> list[int]:
    """Pids of live processes whose command name is `comm`."""
    return [pid for pid, info in processes().items() if info.comm == comm]


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \ooo
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def lab_mounts(prefixes: Iterable[str]) -> list[str]:
    """Mount points at or below any of the directory `prefixes`, deepest first."""
    dirs = tuple(p.rstrip("/") for p in prefixes)
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = _unescape(line.split()[4])
            if any(point == d or point.startswith(d + "/") for d in dirs):
                found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


_MNT_DETACH = 2
_libc = ctypes.CDLL(None, use_errno=True)


def unmount(prefixes: Iterable[str]) -> list[str]:
    """Lazily unmount everything at or below `prefixes` (repeated for stacked mounts)."""
    prefixes = list(prefixes)
    done: list[str] = []
    for _ in range(20):
        points = lab_mounts(prefixes)
        if not points:
            return done
        for point in points:
            if _libc.umount2(point.encode(), _MNT_DETACH) == 0:
                done.append(point)
    raise LabError(f"could not unmount: {', '.join(lab_mounts(prefixes))}")
