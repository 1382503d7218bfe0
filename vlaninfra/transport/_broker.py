"""A short-lived local connection broker: one SSH connection and one agent per host per run.

The engine starts a new provider process for each phase of a run (preview, then update) and
for every later command; without a broker each of them logs in to every host and starts an
agent again. With it (as OpenSSH's ControlPersist), the first process that needs a host spawns
a broker process (:func:`main`), which connects, starts the agent and then relays
the line-JSON requests of every local client (request ids rewritten) to that one agent. Later
processes with the same target attach to it. It exits :data:`IDLE` seconds after its last
client left, and at once when its agent or connection ends or when a client gives up on a
call (a deadline or a silent peer: that connection is never reused).

Identity: the socket is named by a hash of everything that makes the connection trustworthy and
equal (host, port, user, the pinned host key, a digest of the client key, sudo, python, Docker
socket, the agent archive's sha256, the Docker deadline each client's ``hello`` gives the
agent, this relay's protocol): a target whose pinned host key changed in the config never
reaches a broker whose connection was verified with the old one. The attaching client repeats
the identity and the broker checks it.

Security: sockets live in a 0700 directory owned by the user (``$XDG_RUNTIME_DIR/vlaninfra``,
``/run/vlaninfra`` for root, else ``/tmp/vlaninfra-broker-<uid>``; refused when it is a
symlink, owned by another uid or open to others), both ends check the peer's uid
(``SO_PEERCRED``), and the private key and passphrase reach the broker only over its stdin
pipe (never argv, environment, disk or logs; the broker gets a short allow-listed
environment). A socket left by a crashed broker (connection refused) is replaced. When no
broker can be used (no safe directory, spawn failed, a broker that does not answer) the
provider connects directly: correctness never depends on the broker.

Relay stream (client <-> broker): protocol lines as the agent speaks them, plus control lines
starting with ``#``: ``#attach <identity>`` (client, first line), ``#abort`` (client: drop the
agent and its connection), ``#stderr <line>``, ``#exit <status>``, ``#why <reason>`` (broker,
just before it closes the stream because the agent session ended).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import queue
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from vlaninfra._env import env_seconds
from vlaninfra.host import protocol
from vlaninfra.host.rundir import try_lock
from vlaninfra.transport import _errors
from vlaninfra.transport._errors import TransportError
from vlaninfra.transport._stats import bump
from vlaninfra.transport._targets import SshTarget
from vlaninfra.transport._zipapp import Bundle

__all__ = ["IDLE", "BrokerChannel", "BrokerConnector", "brokering", "identity",
           "running_brokers", "runtime_dir", "stop_brokers", "use_broker"]

log = logging.getLogger("vlaninfra.transport")

RELAY_VERSION = 1
"""Version of the relay stream; part of the identity (an older broker is never attached)."""
IDLE = 5.0
"""Default seconds a broker stays up after its last client left (``VLANINFRA_BROKER_IDLE``):
the engine's next phase (its program and provider restart) attaches within ~1-2 s on a busy
2-core machine, a command run right after the last within a few; any longer only keeps a
logged-in connection around for nothing."""
ATTACH_TIMEOUT = 5.0
"""Seconds a client waits for a running broker's banner before connecting directly."""
SEND_TIMEOUT = 20.0
"""Seconds a write on a relay socket may block (a client that stops reading is dropped)."""
_ENV_KEEP = ("PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "VIRTUAL_ENV", "SSH_AUTH_SOCK",
             "XDG_RUNTIME_DIR", "XDG_CACHE_HOME", "TMPDIR")
_default = [False]


class BrokerUnavailable(Exception):
    """No broker could be used; the caller connects directly."""


def use_broker(on: bool = True) -> None:
    """Make this process reach SSH hosts through brokers (the provider server does) unless
    ``VLANINFRA_BROKER=0``; ``VLANINFRA_BROKER=1`` turns them on anywhere."""
    _default[0] = on


def brokering() -> bool:
    """Whether new SSH agents of this process go through a broker."""
    value = os.environ.get("VLANINFRA_BROKER", "")
    return value == "1" if value in ("0", "1") else _default[0]


def runtime_dir() -> Path | None:
    """The user's private socket directory (created 0700), or None when none is safe."""
    uid = os.getuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and _private(Path(xdg), uid):  # not another user's (`sudo -E` keeps theirs)
        path = Path(xdg, "vlaninfra")
    elif uid == 0:
        path = Path("/run/vlaninfra")
    else:
        path = Path(f"/tmp/vlaninfra-broker-{uid}")
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o077:
        log.warning("not using a connection broker: %s is not a private directory of uid %d",
                    path, uid)
        return None
    return path


def _private(path: Path, uid: int) -> bool:
    """Whether ``path`` is a real directory of ``uid`` that no one else may write to."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == uid and not st.st_mode & 0o022


def identity(target: SshTarget, bundle_sha256: str, docker_deadline: float) -> str:
    """The hex digest naming the broker of ``target`` running archive ``bundle_sha256`` for
    clients whose Docker deadline is ``docker_deadline`` (each client's ``hello`` sets the
    agent's Docker timeout: clients with another deadline get an agent of their own).

    The client key enters only as a digest of the key text (never the key); with ssh-agent
    authentication the agent socket's path stands for it."""
    if target.private_key is not None:
        key = hashlib.sha256(b"\0".join([b"vlaninfra-client-key", target.private_key.encode(),
                                         (target.passphrase or "").encode()])).hexdigest()
    else:
        key = "ssh-agent:" + os.environ.get("SSH_AUTH_SOCK", "")
    fields = [RELAY_VERSION, protocol.PROTOCOL_VERSION, target.host, target.port, target.user,
              target.host_key.split()[:2], key, target.sudo, target.python,
              target.docker_socket, bundle_sha256, docker_deadline]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def _unlink_if(path: Path, ino: int) -> None:
    """Remove ``path`` if it is still the socket with inode ``ino`` (not a successor's)."""
    with contextlib.suppress(OSError):
        if os.lstat(path).st_ino == ino:
            path.unlink()


# -- client side -------------------------------------------------------------------------


class BrokerChannel:
    """The agent's pipes as relayed by a broker (the :class:`~._session.Channel` protocol)."""

    def __init__(self, sock: socket.socket, path: Path, ino: int, buffered: bytes) -> None:
        self._sock = sock
        self._path = path
        self._ino = ino
        self._buf = buffered
        self._stderr: queue.Queue[bytes] = queue.Queue()
        self._status: int | None = None
        self._why: str | None = None
        self._eof = False
        sock.settimeout(SEND_TIMEOUT)

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def recv(self) -> bytes:
        """The next protocol bytes (whole lines); control lines are taken out."""
        while True:
            cut = self._buf.rfind(b"\n") + 1
            lines, self._buf = self._buf[:cut], self._buf[cut:]
            out = b"".join(self._route(line) for line in lines.splitlines(keepends=True))
            if out:
                return out
            if self._eof:
                return self._ended()
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                self._eof = True
                self._buf += b"\n" if self._buf else b""
            self._buf += chunk

    def _route(self, line: bytes) -> bytes:
        if not line.startswith(b"#"):
            return line
        kind, _, rest = line.rstrip(b"\n").partition(b" ")
        if kind == b"#stderr":
            self._stderr.put(rest + b"\n")
        elif kind == b"#exit":
            with contextlib.suppress(ValueError):
                self._status = int(rest)
        elif kind == b"#why":
            self._why = rest.decode("utf-8", "replace")
        return b""

    def _ended(self) -> bytes:
        self._stderr.put(b"")
        if self._why:
            raise ConnectionAbortedError(self._why)
        return b""

    def recv_stderr(self) -> bytes:
        return self._stderr.get()

    def exit_status(self) -> int | None:
        return self._status

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    def abort(self) -> None:
        """Make the broker drop the agent and its connection (never reused), and make sure no
        later client attaches to it meanwhile."""
        _unlink_if(self._path, self._ino)
        with contextlib.suppress(OSError):
            self._sock.setblocking(False)
            self._sock.send(b"#abort\n")
        self.close()


class BrokerConnector:
    """Starts agents through the target's broker (spawning one when none runs); falls back
    to a direct :class:`~._ssh.SshConnector` when no broker can be used."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self.step = "starting the local connection broker"
        self._direct: Any = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._aborted = False
        self.idle = env_seconds("VLANINFRA_BROKER_IDLE", IDLE, most=600.0)

    def _direct_connector(self) -> Any:
        if self._direct is None:
            from vlaninfra.transport._ssh import SshConnector

            self._direct = SshConnector(self.target)
        return self._direct

    def start(self, bundle: Bundle) -> Any:
        if self._direct is None:
            self._aborted = False
            try:
                return self._brokered(bundle)
            except BrokerUnavailable as exc:
                if self._aborted:
                    raise TransportError("the start was aborted", host=self.target.label
                                         ) from None
                log.warning("connecting to %s directly: no connection broker (%s)",
                            self.target.label, exc)
        self.step = "connecting directly (no connection broker)"
        return self._direct_connector().start(bundle)

    def upload(self, bundle: Bundle) -> None:
        self._direct_connector().upload(bundle)  # only a direct start reports a stale archive

    def abort(self) -> None:
        self._aborted = True
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
        if self._direct is not None:
            self._direct.abort()

    def close(self) -> None:
        if self._direct is not None:
            self._direct.close()

    def _brokered(self, bundle: Bundle) -> BrokerChannel:
        where = runtime_dir()
        if where is None:
            raise BrokerUnavailable("no private runtime directory")
        from vlaninfra.transport._agent import docker_deadline

        ident = identity(self.target, bundle.sha256, docker_deadline())
        path = where / f"{ident[:32]}.sock"
        fd = self._lock(where / f"{ident[:32]}.lock")
        try:
            channel = self._attach(path, ident)
            if channel is None:
                self._spawn(path, ident)
                channel = self._attach(path, ident)
            if channel is None:
                raise BrokerUnavailable("the new broker did not accept the connection")
            return channel
        finally:
            if not path.exists():  # no broker came of it (a refused key, no route...)
                with contextlib.suppress(OSError):
                    (where / f"{ident[:32]}.lock").unlink()
            os.close(fd)  # releases the lock

    def _lock(self, lock: Path) -> int:
        """Hold ``lock`` (one process starts a target's broker at a time): wait, abortably;
        a lock file removed meanwhile (its broker left) is locked anew (`try_lock`)."""
        while (fd := try_lock(lock)) is None:
            if self._aborted:
                raise BrokerUnavailable("aborted")
            time.sleep(0.05)
        return fd

    def _attach(self, path: Path, ident: str) -> BrokerChannel | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(ATTACH_TIMEOUT)
            try:
                sock.connect(str(path))
                ino = os.lstat(path).st_ino
            except (FileNotFoundError, ConnectionRefusedError):
                with contextlib.suppress(OSError):
                    path.unlink()  # a crashed broker's socket: replaced below
                sock.close()
                return None
            if _peer_uid(sock) != os.getuid():
                raise BrokerUnavailable(f"{path} is served by another user")
            sock.sendall(f"#attach {ident}\n".encode())
            buf = b""
            while b"\n" not in buf:
                try:
                    chunk = sock.recv(65536)
                except ConnectionResetError:
                    chunk = b""  # closed while on its way out
                if not chunk:
                    sock.close()
                    return None  # it was shutting down
                buf += chunk
            if not buf.startswith(b"{"):  # refused: on its way out (or not this target)
                sock.close()
                return None
        except BrokerUnavailable:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            raise BrokerUnavailable(f"attaching failed: {exc}") from None
        return BrokerChannel(sock, path, ino, buf)

    def _spawn(self, path: Path, ident: str) -> None:
        config = {"socket": str(path), "identity": ident, "idle": self.idle,
                  "target": dataclasses.asdict(self.target)}
        env = {k: v for k, v in os.environ.items()
               if k in _ENV_KEEP or k.startswith("VLANINFRA_")}
        try:
            proc = subprocess.Popen(
                [sys.executable, "-c", _BROKER_MAIN], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd="/", env=env,
                start_new_session=True, close_fds=True)
        except OSError as exc:
            raise BrokerUnavailable(f"cannot start it: {exc}") from None
        self._proc = proc
        threading.Thread(target=proc.wait, daemon=True, name="vlaninfra-broker-reap").start()
        assert proc.stdin is not None and proc.stdout is not None
        try:
            with proc.stdin:
                proc.stdin.write(json.dumps(config).encode() + b"\n")
            with proc.stdout:
                line = proc.stdout.readline()  # bounded by the agent's start deadline
        except OSError:
            line = b""
        finally:
            self._proc = None
        if not line:
            raise BrokerUnavailable("it exited before it was ready")
        answer = json.loads(line)
        for key, n in (answer.get("stats") or {}).items():
            bump(key, int(n))
        if answer.get("ok"):
            return
        kind = getattr(_errors, str(answer.get("error")), None)
        if not (isinstance(kind, type) and issubclass(kind, TransportError)):
            kind = TransportError
        raise kind(str(answer.get("message")), host=self.target.label)


def running_brokers() -> dict[Path, int]:
    """The live brokers of this user: socket path -> broker pid (from its peer credentials)."""
    where = runtime_dir()
    found: dict[Path, int] = {}
    for path in sorted(where.glob("*.sock")) if where is not None else []:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(str(path))
                creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED,
                                        struct.calcsize("3i"))
            except OSError:
                continue
            pid, uid, _ = struct.unpack("3i", creds)
            if uid == os.getuid():
                found[path] = pid
    return found


def stop_brokers(timeout: float = 10.0) -> None:
    """Ask every live broker of this user to leave now (SIGTERM: as when idle; its agent
    exits) and wait until their sockets are gone (tests that count logins per command, and
    their clean-up)."""
    brokers = running_brokers()
    for pid in brokers.values():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(p.exists() for p in brokers) and time.monotonic() < deadline:
        time.sleep(0.05)
    from vlaninfra.transport._runmemo import sweep

    sweep()  # and the memo files of runs that have ended
    where = runtime_dir()
    for lock in where.glob("*.lock") if where is not None else []:
        if not lock.with_suffix(".sock").exists():
            with contextlib.suppress(OSError):
                lock.unlink()


# -- the broker process -------------------------------------------------------------------


class _Broker:
    def __init__(self, agent: Any, path: Path, ident: str, idle: float) -> None:
        self.agent = agent
        self.session = agent._session  # started: the broker owns it
        self.path = path
        self.ident = ident.encode()
        self.idle = idle
        self.clients: dict[socket.socket, threading.Lock] = {}
        """Attached clients and the lock that keeps each one's lines whole."""
        self.lock = threading.Lock()
        self.last_left = time.monotonic()
        self.pending = 0
        """Connections accepted whose attach line is still to come (they count as clients)."""
        self.closing = False
        """Set, under ``lock``, when the broker decided to leave: no client attaches after."""
        self.ino = 0
        self.stop = threading.Event()
        """Set by SIGTERM: leave as when idle."""

    def run(self, ready: Any) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        listener.bind(str(tmp))
        os.chmod(tmp, 0o600)
        listener.listen(64)
        os.replace(tmp, self.path)
        self.ino = os.lstat(self.path).st_ino
        listener.settimeout(0.2)
        relay = _StderrRelay(self)
        logging.getLogger("vlaninfra.agent").addHandler(relay)
        from vlaninfra.transport._stats import stats

        ready.write(json.dumps({"ok": True, "stats": _start_stats(stats())}).encode() + b"\n")
        ready.close()
        while self.session.alive and not self.stop.is_set():
            with self.lock:
                if (not self.clients and not self.pending
                        and time.monotonic() - self.last_left > self.idle):
                    self.closing = True
                    break
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with self.lock:
                self.pending += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()
        with self.lock:
            self.closing = True  # also when the session ended or SIGTERM came
        # First: nobody attaches to a broker on its way out. Its lock file stays (empty, on
        # the runtime tmpfs): a spawner may hold it now, and a new file of the same name
        # would let a second spawner start a second broker meanwhile.
        _unlink_if(self.path, self.ino)
        listener.close()
        self.finish()
        logging.getLogger("vlaninfra.agent").removeHandler(relay)

    def send(self, conn: socket.socket, data: bytes) -> None:
        """Send whole lines to one client; a client that stops reading is dropped."""
        with self.lock:
            lock = self.clients.get(conn)
        if lock is None:
            return
        try:
            with lock:
                conn.sendall(data)
        except OSError:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def broadcast(self, data: bytes) -> None:
        with self.lock:
            clients = list(self.clients)
        for conn in clients:
            self.send(conn, data)

    def finish(self) -> None:
        """Tell the clients why their stream ends, then close everything."""
        session = self.session
        if session.aborted:  # (the agent's stderr went to the clients as it came)
            self.broadcast(b"#why " + (session._dead or "").encode("utf-8", "replace")
                           .replace(b"\n", b" ") + b"\n")
        elif not session.alive and session.exit_status is not None:
            self.broadcast(b"#exit %d\n" % session.exit_status)
        with self.lock:
            clients = list(self.clients)
        for conn in clients:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self.agent.close()

    def serve(self, conn: socket.socket) -> None:
        def send(data: bytes) -> None:
            self.send(conn, data)

        def reply(client_id: int, future: Any) -> None:
            try:
                message = dict(future.result())
            except Exception:
                return  # the session ended: finish() tells every client
            message["id"] = client_id
            send(protocol.encode(message))

        first = True
        try:
            if _peer_uid(conn) != os.getuid():
                return
            conn.settimeout(SEND_TIMEOUT)
            lines = protocol.LineBuffer(protocol.MAX_LINE)
            while True:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                for line in lines.feed(chunk):
                    if first:
                        first = False
                        with self.lock:
                            self.pending -= 1
                            attach = (line.strip() == b"#attach " + self.ident
                                      and self.session.alive and not self.closing)
                            if attach:
                                self.clients[conn] = threading.Lock()
                        if not attach:
                            with contextlib.suppress(OSError):
                                conn.sendall(b"#refused\n")
                            return
                        send(protocol.encode(protocol.success(0, {
                            "ready": True, "protocol": protocol.PROTOCOL_VERSION,
                            "pid": self.agent.info.get("pid"), "broker": os.getpid()})))
                    elif line.startswith(b"#abort"):
                        self.session.abort("was pending when a client of the shared "
                                           "connection gave up waiting (its deadline passed "
                                           "or the host went silent)")
                        return
                    else:
                        message = protocol.decode(line)
                        future = self.session.submit(str(message.get("op")),
                                                     message.get("args") or {})
                        future.add_done_callback(
                            lambda f, i=message["id"]: reply(i, f))
        except (OSError, protocol.ProtocolError, _errors.AgentExitedError):
            return
        finally:
            with self.lock:
                if first:  # it left (or failed) before its attach line
                    self.pending -= 1
                if self.clients.pop(conn, None):  # one that never attached is no client
                    self.last_left = time.monotonic()
            conn.close()


class _StderrRelay(logging.Handler):
    """Passes the agent's stderr lines (as its session logs them) to every client."""

    def __init__(self, broker: _Broker) -> None:
        super().__init__(logging.INFO)
        self.broker = broker

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args
        if (record.msg == "[%s] %s" and isinstance(args, tuple) and len(args) == 2
                and args[0] == self.broker.session.label):
            text = str(args[1]).replace("\n", " ")
            self.broker.broadcast(b"#stderr " + text.encode("utf-8", "replace") + b"\n")


_BROKER_MAIN = ("import sys; sys.modules['invoke'] = None; "
                "from vlaninfra.transport._broker import main; sys.exit(main())")
"""The broker process's program. paramiko imports ``invoke`` (about 30 ms of CPU, a third of
the broker's imports) only for ssh_config's ``Match exec``, which vlaninfra never reads: a
``None`` entry makes that import fail, as paramiko expects when invoke is not installed."""


def _start_stats(counts: dict[str, int]) -> dict[str, int]:
    return {k: counts[k] for k in ("ssh_connections", "agent_starts", "uploads")}


def main() -> int:
    """The broker process: reads its config (with the key) from stdin, starts the agent,
    answers ``{"ok": ...}`` on stdout, then relays until idle or the agent ends."""
    from vlaninfra.transport._agent import Agent, docker_deadline
    from vlaninfra.transport._ssh import SshConnector
    from vlaninfra.transport._stats import stats

    logging.getLogger("vlaninfra.agent").setLevel(logging.INFO)  # relayed to the clients
    logging.getLogger("vlaninfra.agent").propagate = False  # the broker's stderr is /dev/null
    config = json.loads(sys.stdin.buffer.readline())
    sys.stdin.close()
    target = SshTarget(**config["target"])
    from vlaninfra.transport._zipapp import build_bundle

    # the client's VLANINFRA_ settings reach this process: its Docker deadline too
    if identity(target, build_bundle().sha256, docker_deadline()) != config["identity"]:
        return 2  # it would run another archive than its name says: the client goes direct
    ready = sys.stdout.buffer
    agent = Agent(target, SshConnector(target))
    agent.peer_timeout = 24 * 3600.0  # the clients ping through the relay and judge silence
    try:
        agent.start()
    except TransportError as exc:
        ready.write(json.dumps({"ok": False, "error": type(exc).__name__,
                                "message": exc.message,
                                "stats": _start_stats(stats())}).encode() + b"\n")
        return 1
    broker = _Broker(agent, Path(config["socket"]), config["identity"], float(config["idle"]))
    signal.signal(signal.SIGTERM, lambda *_: broker.stop.set())
    try:
        broker.run(ready)
    finally:
        agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
