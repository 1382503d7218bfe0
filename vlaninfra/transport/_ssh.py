"""Reaches a host over SSH (paramiko): pinned host key, key auth, SFTP upload, exec.

The remote command is built only from fixed words, the archive's hash and the configured
Python path, each quoted with :func:`shlex.quote`; nothing from the user is ever
interpreted by a shell.
"""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import os
import shlex
import threading
import time
import uuid
from typing import Any

import paramiko

from vlaninfra.transport._bootstrap import bootstrap_argv
from vlaninfra.transport._errors import AuthenticationError, HostKeyError, TransportError
from vlaninfra.transport._stats import bump, trace
from vlaninfra.transport._targets import SshTarget
from vlaninfra.transport._zipapp import Bundle

__all__ = ["REMOTE_DIR", "SshChannel", "SshConnector", "load_private_key", "remote_command"]

log = logging.getLogger("vlaninfra.transport.ssh")

REMOTE_DIR = ".cache/vlaninfra"
"""Where archives are stored on hosts, relative to the login user's home (created 0700)."""
CONNECT_TIMEOUT = 15.0
"""Seconds for TCP connect, SSH banner, authentication and opening a channel."""
IO_TIMEOUT = 20.0
"""Seconds one channel write (or one SFTP request) may block before the connection is
considered stuck; the whole agent start is bounded separately (``Agent.start_deadline``)."""


def remote_command(target: SshTarget, bundle: Bundle) -> str:
    """The exact command line run on the host: the fixed bootstrap (which checks the cached
    archive against ``bundle``'s sha256 and runs exactly the checked bytes), quoted word by
    word.

    Example: ``sudo -n python3 -I -c '<bootstrap>' .cache/vlaninfra/agent-3f2a9c81d0e4.pyz
    3f2a9c81…``
    """
    words = (["sudo", "-n"] if target.sudo else []) + bootstrap_argv(
        target.python, f"{REMOTE_DIR}/{bundle.name}", bundle.sha256)
    return " ".join(shlex.quote(w) for w in words)


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def pinned_key(target: SshTarget) -> paramiko.PKey:
    """The target's pinned host key as a paramiko key object."""
    keytype, b64 = target.host_key.split()[:2]
    try:
        return paramiko.PKey.from_type_string(keytype, base64.b64decode(b64))
    except Exception as exc:
        raise HostKeyError(f"host_key for {target.label} is not a usable {keytype!r} key "
                           f"({type(exc).__name__})", host=target.label) from None


def load_private_key(target: SshTarget) -> paramiko.PKey | None:
    """Parse the target's private key (ed25519, ECDSA, RSA); errors never quote the key.

    None when the target has no key: ssh-agent (``SSH_AUTH_SOCK``) then authenticates."""
    if target.private_key is None:
        if not os.environ.get("SSH_AUTH_SOCK"):
            raise AuthenticationError(
                f"no private key for {target.label} and no ssh-agent (SSH_AUTH_SOCK is not set): "
                "start ssh-agent and `ssh-add` the key, or give a key file", host=target.label)
        return None
    last: Exception | None = None
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            key: paramiko.PKey = cls.from_private_key(io.StringIO(target.private_key),
                                                      password=target.passphrase)
            return key
        except paramiko.PasswordRequiredException:
            raise AuthenticationError(
                f"private_key for {target.label} is encrypted: set passphrase",
                host=target.label) from None
        except (paramiko.SSHException, ValueError, TypeError, IndexError) as exc:
            last = exc
    reason = type(last).__name__ if last else "unknown"
    raise AuthenticationError(
        f"private_key for {target.label} could not be loaded as an ed25519, ECDSA or RSA key "
        f"({reason}; wrong passphrase or not a private key?)", host=target.label) from None


def _update_hint(target: SshTarget) -> str:
    key = target.config_key or "host_key"
    return (f"If the host was reinstalled (or its key rotated), update {key} to the new key "
            f"(e.g. `ssh-keyscan -p {target.port} -t ed25519 {target.host}`, checked out of "
            "band)")


class _PinnedPolicy(paramiko.MissingHostKeyPolicy):
    """Refuses any host key other than the pinned one, naming what the server offered."""

    def __init__(self, target: SshTarget, pinned: paramiko.PKey) -> None:
        self._target = target
        self._pinned = pinned

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str,
                         key: paramiko.PKey) -> None:
        raise HostKeyError(
            f"host key of {self._target.label} is not the pinned one: the server offered "
            f"{_fingerprint(key)}, host_key pins {_fingerprint(self._pinned)}; refusing to "
            f"connect. {_update_hint(self._target)}", host=self._target.label)


class SshChannel:
    """An exec channel's stdin/stdout/stderr; writes time out after ``IO_TIMEOUT``."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._chan = channel
        channel.settimeout(IO_TIMEOUT)

    def send(self, data: bytes) -> None:
        if self._chan.closed:
            raise OSError("the SSH channel is closed")
        self._chan.sendall(data)  # raises socket.timeout (an OSError) when stuck

    def _recv(self, read: Any) -> bytes:
        while True:
            try:
                return bytes(read(65536))
            except TimeoutError:
                if self._chan.closed:
                    return b""

    def recv(self) -> bytes:
        return self._recv(self._chan.recv)

    def recv_stderr(self) -> bytes:
        return self._recv(self._chan.recv_stderr)

    def exit_status(self) -> int | None:
        deadline = time.monotonic() + 2.0
        while not self._chan.exit_status_ready():
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)
        status = self._chan.recv_exit_status()
        return status if status >= 0 else None

    def close(self) -> None:
        try:
            self._chan.shutdown_write()
        finally:
            self._chan.close()

    def abort(self) -> None:
        """Drop the whole SSH connection (one agent per connection): never reused."""
        transport = self._chan.get_transport()
        if transport is not None:
            transport.close()


class SshConnector:
    """One SSH connection to one host, reused for every agent start on it."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._lock = threading.Lock()
        self.step = "connecting"
        """What the connector is doing (for messages when a start does not finish)."""

    def _connected(self) -> paramiko.SSHClient:
        client = self._client
        transport = client.get_transport() if client is not None else None
        if client is not None and transport is not None and transport.is_active():
            return client
        if client is not None:
            client.close()
        self._client = None
        self.step = "connecting"
        self._client = self._connect()
        return self._client

    def _connect(self) -> paramiko.SSHClient:
        target = self.target
        pinned = pinned_key(target)
        pkey = load_private_key(target)
        client = paramiko.SSHClient()
        entry = target.host if target.port == 22 else f"[{target.host}]:{target.port}"
        client.get_host_keys().add(entry, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(_PinnedPolicy(target, pinned))
        started = time.monotonic()
        try:
            client.connect(
                target.host,
                port=target.port,
                username=target.user,
                pkey=pkey,
                allow_agent=pkey is None,
                look_for_keys=False,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                channel_timeout=CONNECT_TIMEOUT,
            )
        except TransportError:
            client.close()
            raise
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyError(
                f"host key of {target.label} changed: the server offered "
                f"{_fingerprint(exc.key)}, host_key pins {_fingerprint(exc.expected_key)}; "
                f"refusing to connect. {_update_hint(target)}", host=target.label) from None
        except paramiko.AuthenticationException:
            client.close()
            raise AuthenticationError(
                f"{target.label} rejected the private key"
                f"{' (ssh-agent)' if pkey is None else ''}: check that its public key is in "
                f"~{target.user}/.ssh/authorized_keys there and that user is right",
                host=target.label) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            client.close()
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if isinstance(exc, TimeoutError):
                reason = f"timed out after {CONNECT_TIMEOUT:.0f}s"
            raise TransportError(f"cannot connect to {target.label}: {reason}; check host, "
                                 "port and that sshd runs there", host=target.label) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        bump("ssh_connections")
        trace(target.label, "connect", "", started)
        log.info("connected to %s", target.label)
        return client

    def upload(self, bundle: Bundle) -> None:
        """Upload ``bundle`` to ``~/.cache/vlaninfra`` (dirs created 0700), atomically."""
        with self._lock:
            client = self._connected()
            self.step = "uploading the agent"
            path = f"{REMOTE_DIR}/{bundle.name}"
            where = f"~{self.target.user}/{path} on {self.target.label}"
            tmp = f"{REMOTE_DIR}/.{bundle.name}.{uuid.uuid4().hex[:8]}.tmp"
            try:
                with client.open_sftp() as sftp:
                    sftp.get_channel().settimeout(IO_TIMEOUT)  # type: ignore[union-attr]
                    for directory in (".cache", REMOTE_DIR):
                        try:
                            sftp.mkdir(directory, mode=0o700)
                        except OSError as exc:
                            try:
                                sftp.stat(directory)  # already there
                            except OSError:
                                raise exc from None
                    try:
                        sftp.putfo(io.BytesIO(bundle.data), tmp, file_size=len(bundle.data))
                        sftp.posix_rename(tmp, path)
                    except BaseException:
                        with contextlib.suppress(Exception):
                            sftp.remove(tmp)
                        raise
            except (OSError, EOFError, paramiko.SSHException) as exc:
                reason = str(exc) or type(exc).__name__
                raise TransportError(
                    f"cannot upload the agent to {where}: {reason}. A full or read-only file "
                    f"system (or a home not writable by {self.target.user}) is the usual "
                    f"cause: free space or make ~{self.target.user}/.cache writable, then run "
                    "again (nothing was started)", host=self.target.label) from None
            bump("uploads")
            log.info("uploaded %s (%d bytes) to %s", bundle.name, len(bundle.data),
                     self.target.label)

    def start(self, bundle: Bundle) -> SshChannel:
        """Connect (or reuse the connection) and exec the bootstrap, which runs the cached
        archive only if it has ``bundle``'s sha256 (see ``_bootstrap``)."""
        with self._lock:
            client = self._connected()
            self.step = "starting the agent"
            transport = client.get_transport()
            assert transport is not None
            try:
                chan = transport.open_session(timeout=CONNECT_TIMEOUT)
                chan.exec_command(remote_command(self.target, bundle))
            except (paramiko.SSHException, OSError, EOFError) as exc:
                raise TransportError(f"cannot start the agent on {self.target.label}: {exc}",
                                     host=self.target.label) from None
            bump("agent_starts")
            return SshChannel(chan)

    def abort(self) -> None:
        """Drop the connection now, from any thread (a stuck upload or start fails)."""
        client = self._client
        if client is not None:
            client.close()

    def close(self) -> None:
        """Close the SSH connection."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None

    def debug_info(self) -> dict[str, Any]:
        """Connection facts for tests: whether it is up."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        return {"connected": bool(transport is not None and transport.is_active())}
