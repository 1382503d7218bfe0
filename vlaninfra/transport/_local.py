"""Starts the agent on this machine (optionally inside a network namespace)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import tempfile
from pathlib import Path

from vlaninfra.transport._bootstrap import bootstrap_argv
from vlaninfra.transport._stats import bump
from vlaninfra.transport._targets import LocalTarget
from vlaninfra.transport._zipapp import Bundle

__all__ = ["LocalConnector", "ProcessChannel", "local_cache_dir"]


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
    """A local agent subprocess's pipes."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdin and proc.stdout and proc.stderr
        self._proc = proc
        self._stdin = proc.stdin
        self._stdout = proc.stdout.fileno()
        self._stderr = proc.stderr.fileno()

    def send(self, data: bytes) -> None:
        self._stdin.write(data)
        self._stdin.flush()

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
        """Close the agent's stdin without waiting (it exits after the ops in flight)."""
        with contextlib.suppress(OSError, ValueError):
            self._stdin.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
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
        return ProcessChannel(proc)

    def abort(self) -> None:
        """Nothing to drop: no connection (the session aborts its process's pipes)."""

    def close(self) -> None:
        """Nothing to release besides the agent process (closed with its session)."""
