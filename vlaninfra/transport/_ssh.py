"""Reaches a host over SSH (paramiko): pinned host key, key auth, SFTP upload, exec.

The remote command is built only from fixed words, the archive's hash and the configured
Python path, each quoted with :func:`shlex.quote`; nothing from the user is ever
interpreted by a shell.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shlex
import socket
import stat
import threading
import time
import uuid
from typing import Any

import paramiko

from vlaninfra.transport._errors import AuthenticationError, HostKeyError, TransportError
from vlaninfra.transport._stats import bump
from vlaninfra.transport._targets import SshTarget
from vlaninfra.transport._zipapp import Bundle

__all__ = ["REMOTE_DIR", "SshChannel", "SshConnector", "load_private_key", "remote_command"]

log = logging.getLogger("vlaninfra.transport.ssh")

REMOTE_DIR = ".cache/vlaninfra"
"""Where archives are stored on hosts, relative to the login user's home (mode 0700)."""
CONNECT_TIMEOUT = 15.0


def remote_command(target: SshTarget, bundle: Bundle) -> str:
    """The exact command line run on the host.

    Example: ``sudo -n python3 -I .cache/vlaninfra/agent-3f2a9c81d0e4.pyz``
    """
    words = (["sudo", "-n"] if target.sudo else []) + [
        target.python, "-I", f"{REMOTE_DIR}/{bundle.name}"]
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
            "connect. If the host was reinstalled, update host_key", host=self._target.label)


class SshChannel:
    """An exec channel's stdin/stdout/stderr."""

    def __init__(self, channel: paramiko.Channel) -> None:
        self._chan = channel

    def send(self, data: bytes) -> None:
        self._chan.sendall(data)

    def recv(self) -> bytes:
        return bytes(self._chan.recv(65536))

    def recv_stderr(self) -> bytes:
        return bytes(self._chan.recv_stderr(65536))

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


class SshConnector:
    """One SSH connection to one host, reused for every agent start on it."""

    def __init__(self, target: SshTarget) -> None:
        self.target = target
        self._client: paramiko.SSHClient | None = None
        self._uploaded: str | None = None
        self._lock = threading.Lock()

    def _connected(self) -> paramiko.SSHClient:
        client = self._client
        transport = client.get_transport() if client is not None else None
        if client is not None and transport is not None and transport.is_active():
            return client
        if client is not None:
            client.close()
        self._client = None
        self._uploaded = None
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
                "refusing to connect. If the host was reinstalled, update host_key",
                host=target.label) from None
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
            if isinstance(exc, socket.timeout):
                reason = f"timed out after {CONNECT_TIMEOUT:.0f}s"
            raise TransportError(f"cannot connect to {target.label}: {reason}; check host, "
                                 "port and that sshd runs there", host=target.label) from None
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(30)
        bump("ssh_connections")
        log.info("connected to %s", target.label)
        return client

    def _upload(self, client: paramiko.SSHClient, bundle: Bundle, force: bool) -> None:
        if self._uploaded == bundle.sha256 and not force:
            return
        path = f"{REMOTE_DIR}/{bundle.name}"
        try:
            with client.open_sftp() as sftp:
                if not force:
                    try:
                        st = sftp.stat(path)
                        if st.st_size == len(bundle.data) and stat.S_ISREG(st.st_mode or 0):
                            self._uploaded = bundle.sha256
                            return
                    except FileNotFoundError:
                        pass
                for directory in (".cache", REMOTE_DIR):
                    try:
                        sftp.mkdir(directory, mode=0o700)
                    except OSError:
                        sftp.stat(directory)  # already there (else this raises)
                tmp = f"{REMOTE_DIR}/.{bundle.name}.{uuid.uuid4().hex[:8]}.tmp"
                sftp.putfo(io.BytesIO(bundle.data), tmp, file_size=len(bundle.data))
                try:
                    sftp.posix_rename(tmp, path)
                except OSError:
                    sftp.remove(tmp)
                    raise
        except (OSError, paramiko.SSHException) as exc:
            raise TransportError(f"cannot upload the agent to ~{self.target.user}/{path} on "
                                 f"{self.target.label}: {exc}", host=self.target.label) from None
        bump("uploads")
        log.info("uploaded %s (%d bytes) to %s", bundle.name, len(bundle.data),
                 self.target.label)
        self._uploaded = bundle.sha256

    def start(self, bundle: Bundle, force_upload: bool = False) -> SshChannel:
        """Connect (or reuse the connection), upload if needed, exec the agent."""
        with self._lock:
            client = self._connected()
            self._upload(client, bundle, force_upload)
            transport = client.get_transport()
            assert transport is not None
            try:
                chan = transport.open_session(timeout=CONNECT_TIMEOUT)
                chan.exec_command(remote_command(self.target, bundle))
            except (paramiko.SSHException, OSError) as exc:
                raise TransportError(f"cannot start the agent on {self.target.label}: {exc}",
                                     host=self.target.label) from None
            return SshChannel(chan)

    def close(self) -> None:
        """Close the SSH connection."""
        with self._lock:
            if self._client is not None:
                self._client.close()
            self._client = None
            self._uploaded = None

    def debug_info(self) -> dict[str, Any]:
        """Connection facts for tests: whether it is up."""
        client = self._client
        transport = client.get_transport() if client is not None else None
        return {"connected": bool(transport is not None and transport.is_active())}
