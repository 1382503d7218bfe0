"""One running agent process behind a byte channel: request ids, pending calls, EOF.

A :class:`Channel` is whatever carries the agent's stdin/stdout/stderr (an SSH exec channel
or a local subprocess). A :class:`Session` owns one channel: callers from any thread send
requests (writes serialised by a lock), one reader thread matches responses to pending
calls by id, another drains stderr into logging. When the channel ends, every pending call
fails at once with :class:`AgentExitedError` carrying the agent's last stderr lines.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from vlaninfra.host import protocol
from vlaninfra.transport._errors import AgentExitedError, HostError, TransportError

__all__ = ["Channel", "Session"]

log = logging.getLogger("vlaninfra.transport")
agent_log = logging.getLogger("vlaninfra.agent")


class Channel(Protocol):
    """The byte pipes of one agent process."""

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the agent's stdin (raises OSError when closed)."""

    def recv(self) -> bytes:
        """Block for the next stdout bytes; ``b""`` at EOF."""

    def recv_stderr(self) -> bytes:
        """Block for the next stderr bytes; ``b""`` at EOF."""

    def exit_status(self) -> int | None:
        """The process exit status if known (waits briefly), else None."""

    def close(self) -> None:
        """Close stdin (the agent then exits) and release the channel."""


class Session:
    """Client side of the line-JSON protocol over one channel (thread-safe)."""

    def __init__(self, channel: Channel, label: str) -> None:
        self.label = label
        self._channel = channel
        self._ids = itertools.count(1)
        self._pending: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._dead: str | None = None
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_done = threading.Event()
        self._ready: Future[Any] = Future()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True,
                                        name=f"vlaninfra-agent-out {label}")
        self._err_reader = threading.Thread(target=self._read_stderr, daemon=True,
                                            name=f"vlaninfra-agent-err {label}")
        self._reader.start()
        self._err_reader.start()

    @property
    def alive(self) -> bool:
        """False once the channel has ended (or the session was closed)."""
        return self._dead is None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Wait for the agent's banner; raises AgentExitedError/TransportError otherwise."""
        try:
            banner: dict[str, Any] = self._ready.result(timeout)
        except FutureTimeout:
            self.close()
            raise TransportError(
                f"agent on {self.label} did not start within {timeout:.0f}s"
                f"{self._stderr_hint()}", host=self.label) from None
        if banner.get("protocol") != protocol.PROTOCOL_VERSION:
            self.close()
            raise TransportError(
                f"agent on {self.label} speaks protocol {banner.get('protocol')}, "
                f"expected {protocol.PROTOCOL_VERSION}", host=self.label)
        return banner

    def call(self, op: str, args: dict[str, Any], timeout: float | None) -> Any:
        """Send one request and wait for its response."""
        future: Future[Any] = Future()
        with self._lock:
            if self._dead is not None:
                raise AgentExitedError(self._dead, host=self.label)
            id_ = next(self._ids)
            self._pending[id_] = future
        try:
            data = protocol.encode(protocol.request(id_, op, args))
        except (TypeError, ValueError) as exc:
            with self._lock:
                self._pending.pop(id_, None)
            raise TypeError(f"{op}: arguments are not JSON-serialisable: {exc}") from None
        try:
            with self._send_lock:
                self._channel.send(data)
        except OSError as exc:
            self._fail_all(f"cannot write to agent on {self.label}: {exc}")
        try:
            response = future.result(timeout)
        except FutureTimeout:
            with self._lock:
                self._pending.pop(id_, None)
            raise TransportError(
                f"{op} on {self.label}: no answer within {timeout:.0f}s (the agent is still "
                "running it; check the host)", host=self.label) from None
        if response.get("ok"):
            return response.get("result")
        error = response.get("error") or {}
        raise HostError(str(error.get("message") or "unknown error"), op=op, host=self.label,
                        errno=error.get("errno"), details=error.get("details"))

    def close(self) -> None:
        """Close the channel: the agent sees EOF on stdin and exits."""
        self._fail_all(f"agent session to {self.label} was closed")
        try:
            self._channel.close()
        except Exception:  # closing a broken channel: nothing left to release
            log.debug("closing channel to %s failed", self.label, exc_info=True)

    # -- internals --------------------------------------------------------------------

    def _stderr_hint(self) -> str:
        tail = list(self._stderr_tail)
        return (": agent stderr: " + " | ".join(tail[-5:])) if tail else ""

    def _fail_all(self, reason: str) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = reason
            pending, self._pending = self._pending, {}
        exc = AgentExitedError(reason, host=self.label)
        if not self._ready.done():
            self._ready.set_exception(exc)
        for future in pending.values():
            if not future.done():
                future.set_exception(exc)

    def _read_stdout(self) -> None:
        buf = protocol.LineBuffer()
        reason = "stdout closed"
        try:
            while True:
                chunk = self._channel.recv()
                if not chunk:
                    break
                for line in buf.feed(chunk):
                    self._dispatch(line)
        except Exception as exc:  # a broken channel or a corrupt stream ends the session
            reason = f"{type(exc).__name__}: {exc}"
        # Let stderr drain so the error can quote the agent's last words.
        self._stderr_done.wait(2.0)
        status = None
        try:
            status = self._channel.exit_status()
        except Exception:
            log.debug("no exit status from %s", self.label, exc_info=True)
        status_text = f" with status {status}" if status is not None else ""
        self._fail_all(f"agent on {self.label} exited{status_text} ({reason})"
                       f"{self._stderr_hint()}")

    def _dispatch(self, line: bytes) -> None:
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError as exc:
            log.warning("agent on %s wrote a non-protocol line: %s", self.label, exc)
            return
        if message["id"] == 0:
            if not self._ready.done():
                self._ready.set_result(message.get("result") or {})
            return
        with self._lock:
            future = self._pending.pop(message["id"], None)
        if future is None:
            log.warning("agent on %s answered unknown request %s", self.label, message["id"])
        elif not future.done():
            future.set_result(message)

    def _read_stderr(self) -> None:
        buf = protocol.LineBuffer()
        try:
            while True:
                chunk = self._channel.recv_stderr()
                if not chunk:
                    break
                for line in buf.feed(chunk):
                    text = line.decode("utf-8", "replace").rstrip()
                    self._stderr_tail.append(text)
                    agent_log.info("[%s] %s", self.label, text)
            rest = buf.pending.decode("utf-8", "replace").strip()
            if rest:
                self._stderr_tail.append(rest)
                agent_log.info("[%s] %s", self.label, rest)
        except Exception:
            log.debug("stderr of %s ended with an error", self.label, exc_info=True)
        finally:
            self._stderr_done.set()
