"""Starts the agent on this machine (optionally inside a network namespace)."""

from __future__ import annotations

import contextlib
import os
import select
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from vlaninfra.transport._bootstrap import bootstrap_argv
from vlaninfra.transport._stats import bump
from vlaninfra.transport._targets import LocalTarget
from vlaninfra.transport._zipapp import Bundle

__all__ = ["LocalConnector", "ProcessChannel", "local_cache_dir"]

SEND_TIMEOUT = 20.0
"""Seconds a write to a local agent's stdin may take (as the SSH channel's ``IO_TIMEOUT``)."""


def local_cache_dir() -> Path:
    """Where local agent archives live: ``$XDG_CACHE_HOME/vlaninfra`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base, "vlaninfra")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return path
    except OSError:
        path = Path(tempfile.gettempdir(), f"vlaninfra-{os.getuid()}")
        path.mkdir(mode=0o700, exist_ok=True)
        return path


def write_bundle(directory: Path, bundle: Bundle) -> Path:
    """Write ``bundle`` into ``directory`` (atomically, mode 0600); the bootstrap checks it."""
    path = directory / bundle.name
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".agent-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(bundle.data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    bump("uploads")
    return path


class ProcessChannel:
    """A local agent subprocess's pipes; a write that the agent does not take within
    ``send_timeout`` seconds fails (``TimeoutError``)."""

    def __init__(self, proc: subprocess.Popen[bytes], send_timeout: float = SEND_TIMEOUT) -> None:
        assert proc.stdin and proc.stdout and proc.stderr
        self._proc = proc
        self._stdin = proc.stdin  # written through its raw fd (non-blocking), never buffered
        self._stdin_fd = proc.stdin.fileno()
        os.set_blocking(self._stdin_fd, False)
        self._stdout = proc.stdout.fileno()
        self._stderr = proc.stderr.fileno()
        self._send_timeout = send_timeout
        self._state = threading.Lock()
        self._sending = False
        self._closing = False

    def send(self, data: bytes) -> None:
        with self._state:
            if self._closing:
                raise BrokenPipeError("the agent's stdin is closed")
            self._sending = True
        try:
            self._write(memoryview(data))
        finally:
            with self._state:
                self._sending = False
                close = self._closing
            if close:  # abort() came while this write held the fd
                self._close_stdin()

    def _write(self, view: memoryview) -> None:
        deadline = time.monotonic() + self._send_timeout
        while view:
            if self._closing:
                raise BrokenPipeError("the agent's stdin was closed (session aborted)")
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"the agent took no input for {self._send_timeout:g}s")
            # short slices: an abort() is noticed within 0.2 s
            _, ready, _ = select.select([], [self._stdin_fd], [], min(left, 0.2))
            if ready:
                try:
                    view = view[os.write(self._stdin_fd, view):]
                except BlockingIOError:
                    continue

    def recv(self) -> bytes:
        return os.read(self._stdout, 65536)

    def recv_stderr(self) -> bytes:
        return os.read(self._stderr, 65536)

    def exit_status(self) -> int | None:
        try:
            return self._proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None

    def abort(self) -> None:
        """Close the agent's stdin without waiting (it exits after the ops in flight); a
        write in progress stops within 0.2 s and closes it on its way out."""
        with self._state:
            self._closing = True
            sending = self._sending
        if not sending:
            self._close_stdin()

    def _close_stdin(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()

    def close(self) -> None:
        self.abort()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for pipe in (self._proc.stdout, self._proc.stderr):
            if pipe is not None:
                pipe.close()

    @property
    def pid(self) -> int:
        """The agent (or nsenter/sudo wrapper) process id."""
        return self._proc.pid


class LocalConnector:
    """Writes the archive to the local cache and runs it as a subprocess."""

    def __init__(self, target: LocalTarget) -> None:
        self.target = target
        self.step = "starting the agent"
        """What the connector is doing (for messages)."""

    def command(self, archive: Path, sha256: str) -> list[str]:
        """The agent's argv (a list: no shell involved), through the trusted bootstrap."""
        argv: list[str] = ["sudo", "-n"] if self.target.sudo else []
        if self.target.netns is not None:
            argv += ["nsenter", f"--net=/run/netns/{self.target.netns}", "--"]
        return [*argv, *bootstrap_argv(self.target.python, str(archive), sha256)]

    def upload(self, bundle: Bundle) -> None:
        """Write the archive into the local cache directory."""
        write_bundle(local_cache_dir(), bundle)

    def start(self, bundle: Bundle) -> ProcessChannel:
        proc = subprocess.Popen(
            self.command(local_cache_dir() / bundle.name, bundle.sha256),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            cwd="/",
        )
        bump("agent_starts")
        return ProcessChannel(proc)

    def abort(self) -> None:
        """Nothing to drop: no connection (the session aborts its process's pipes)."""

    def close(self) -> None:
        """Nothing to release besides the agent process (closed with its session)."""
