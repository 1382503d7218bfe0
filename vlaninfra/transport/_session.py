"""One running agent process behind a byte channel: request ids, deadlines, dead peers.

A :class:`Channel` is whatever carries the agent's stdin/stdout/stderr (an SSH exec channel
or a local subprocess). A :class:`Session` owns one channel: callers from any thread send
requests (writes serialised by a lock), one reader thread matches responses to pending
calls by id, another drains stderr (a bounded tail, rate-limited logging).

Nothing waits without a bound:

- every call has a deadline; when it passes, the session is aborted (the channel and, over
  SSH, the whole connection are dropped, never reused) and every pending call fails with
  :class:`OutcomeUnknownError`;
- while calls are pending, a watchdog pings the agent whenever nothing was received for
  ``ping_interval`` seconds (the agent answers ``ping`` at once, outside its worker pool);
  when nothing at all arrives for ``peer_timeout`` seconds the peer is declared dead and
  the session aborted the same way;
- at most ``max_in_flight`` requests (the agent's pool size) are outstanding; further calls
  wait for a slot first, so a deadline counts from when the agent can start the op;
- a line longer than ``max_line``, or a line that is not protocol JSON, ends the session.
"""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Protocol

from vlaninfra.host import protocol
from vlaninfra.transport._errors import (
    AgentExitedError,
    HostError,
    OutcomeUnknownError,
    TransportError,
)

__all__ = ["Channel", "Session", "secs"]

log = logging.getLogger("vlaninfra.transport")
agent_log = logging.getLogger("vlaninfra.agent")

STDERR_LINE = 2048
"""Longest stderr line kept; longer lines are cut (stderr is only ever logged)."""
STDERR_LOG_BURST = 50
"""At most this many agent stderr lines are logged per 10 s; the rest are counted."""


def secs(seconds: float) -> str:
    """``"30s"``, ``"0.5s"``: seconds as messages show them."""
    return f"{seconds:.0f}s" if seconds >= 10 or seconds == int(seconds) else f"{seconds:.1f}s"


class Channel(Protocol):
    """The byte pipes of one agent process."""

    def send(self, data: bytes) -> None:
        """Write all of ``data`` to the agent's stdin (raises OSError when closed or when
        the write does not complete within the channel's send timeout)."""

    def recv(self) -> bytes:
        """Block for the next stdout bytes; ``b""`` at EOF."""

    def recv_stderr(self) -> bytes:
        """Block for the next stderr bytes; ``b""`` at EOF."""

    def exit_status(self) -> int | None:
        """The process exit status if known (waits briefly), else None."""

    def close(self) -> None:
        """Close stdin (the agent then exits) and release the channel."""

    def abort(self) -> None:
        """Drop the channel at once without waiting for anything (SSH: the connection)."""


class Session:
    """Client side of the line-JSON protocol over one channel (thread-safe)."""

    def __init__(self, channel: Channel, label: str, *, peer_timeout: float = 15.0,
                 ping_interval: float = 5.0, max_in_flight: int = 16,
                 max_line: int = protocol.MAX_LINE) -> None:
        self.label = label
        self.peer_timeout = peer_timeout
        self.ping_interval = ping_interval
        self._channel = channel
        self._max_line = max_line
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[str, Future[Any]]] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(max_in_flight)
        self._dead: str | None = None
        self.aborted = False
        """True when the session was dropped for a deadline, a silent peer or a broken
        stream: the connection under it must not be reused."""
        self.exit_status: int | None = None
        """The agent's exit status once it has exited (when the channel reports it)."""
        self._last_rx = time.monotonic()
        self._ping_out = False
        self._stderr_tail: collections.deque[str] = collections.deque(maxlen=20)
        self._stderr_done = threading.Event()
        self._ready: Future[Any] = Future()
        self._stop = threading.Event()
        for target, name in ((self._read_stdout, "out"), (self._read_stderr, "err"),
                             (self._watch, "watch")):
            threading.Thread(target=target, daemon=True,
                             name=f"vlaninfra-agent-{name} {label}").start()

    @property
    def alive(self) -> bool:
        """False once the channel has ended (or the session was closed or aborted)."""
        return self._dead is None

    def wait_ready(self, timeout: float) -> dict[str, Any]:
        """Wait for the agent's banner; raises AgentExitedError/TransportError otherwise."""
        try:
            banner: dict[str, Any] = self._ready.result(timeout)
        except FutureTimeout:
            self.abort(f"did not start within {secs(timeout)}")
            raise TransportError(
                f"agent on {self.label} did not start within {secs(timeout)}"
                f"{self.stderr_hint()}", host=self.label) from None
        if banner.get("protocol") != protocol.PROTOCOL_VERSION:
            self.close()
            raise TransportError(
                f"agent on {self.label} speaks protocol {banner.get('protocol')}, "
                f"expected {protocol.PROTOCOL_VERSION}", host=self.label)
        return banner

    def call(self, op: str, args: dict[str, Any], deadline: float) -> Any:
        """Send one request and wait up to ``deadline`` seconds for its response.

        Raises :class:`HostError` when the op failed on the host, ``AgentExitedError`` when
        the session was already gone (nothing was sent), ``TransportError`` when no slot
        freed up within the deadline (nothing was sent), and :class:`OutcomeUnknownError`
        once the request may have reached the agent without an answer coming back.
        """
        try:
            protocol.encode(protocol.request(0, op, args))  # fail before taking a slot
        except (TypeError, ValueError) as exc:
            raise TypeError(f"{op}: arguments are not JSON-serialisable: {exc}") from None
        if not self._slots.acquire(timeout=deadline):
            raise TransportError(
                f"{op} on {self.label}: the agent stayed busy with other ops for "
                f"{secs(deadline)}; nothing was sent", host=self.label)
        try:
            return self._call(op, args, deadline)
        finally:
            self._slots.release()

    def submit(self, op: str, args: dict[str, Any]) -> Future[Any]:
        """Send one request now (no slot, no deadline) and return the future of its raw
        response message (``{"id", "ok", "result" | "error"}``); it fails with
        :class:`OutcomeUnknownError` when the session ends first. Raises
        :class:`AgentExitedError` when the session had already ended (nothing was sent).
        The connection broker relays its clients' requests with it (they keep the deadlines)."""
        future: Future[Any] = Future()
        with self._lock:
            if self._dead is not None:
                raise AgentExitedError(self._dead, host=self.label)
            id_ = next(self._ids)
            if not self._pending:
                self._last_rx = time.monotonic()  # silence counts from when we wait
            self._pending[id_] = (op, future)
        self._send(protocol.encode(protocol.request(id_, op, args)))
        return future

    def _call(self, op: str, args: dict[str, Any], deadline: float) -> Any:
        future = self.submit(op, args)
        try:
            response = future.result(deadline)
        except FutureTimeout:
            self.abort(f"got no answer within {secs(deadline)}")
            response = future.result(0)  # raises the OutcomeUnknownError set by abort
        if response.get("ok"):
            return response.get("result")
        error = response.get("error") or {}
        raise HostError(str(error.get("message") or "unknown error"), op=op, host=self.label,
                        errno=error.get("errno"), details=error.get("details"))

    def _send(self, data: bytes) -> None:
        try:
            with self._send_lock:
                self._channel.send(data)
        except (OSError, EOFError) as exc:
            self.abort(f"could not be sent completely ({type(exc).__name__}: {exc})")

    def close(self) -> None:
        """Close the channel: the agent sees EOF on stdin and exits. Calls still pending
        fail with :class:`OutcomeUnknownError`."""
        self._stop.set()
        self._fail_all("was pending when the session was closed")
        try:
            self._channel.close()
        except Exception:  # closing a broken channel: nothing left to release
            log.debug("closing channel to %s failed", self.label, exc_info=True)

    def abort(self, why: str) -> None:
        """Drop the channel (and its connection) now; pending calls fail as outcome unknown.

        ``why`` completes "outcome unknown on HOST: OP ...", e.g. "got no answer within 30s".
        """
        with self._lock:
            first = not self.aborted and self._dead is None
            self.aborted = True
        if first:
            log.warning("dropping the agent session to %s: %s", self.label, why)
        self._stop.set()
        self._fail_all(why)
        try:
            self._channel.abort()
        except Exception:
            log.debug("aborting channel to %s failed", self.label, exc_info=True)

    def stderr_hint(self) -> str:
        """``": agent stderr: a | b"`` from the last stderr lines, or ``""``."""
        tail = list(self._stderr_tail)
        return (": agent stderr: " + " | ".join(tail[-5:])) if tail else ""

    def stderr_tail(self) -> list[str]:
        """The agent's last stderr lines (at most 20, each cut to 2 kB)."""
        return list(self._stderr_tail)

    # -- internals --------------------------------------------------------------------

    def _fail_all(self, why: str) -> None:
        with self._lock:
            if self._dead is None:
                self._dead = f"agent session to {self.label} ended: {why}"
            pending, self._pending = self._pending, {}
        if not self._ready.done():
            self._ready.set_exception(AgentExitedError(
                f"agent on {self.label} {why}", host=self.label))
        for op, future in pending.values():
            if not future.done():
                future.set_exception(OutcomeUnknownError.for_op(self.label, op, why))

    def _read_stdout(self) -> None:
        buf = protocol.LineBuffer(self._max_line)
        reason = "its output ended"
        try:
            while True:
                chunk = self._channel.recv()
                if not chunk:
                    break
                self._last_rx = time.monotonic()
                for line in buf.feed(chunk):
                    self._dispatch(line)
        except protocol.ProtocolError as exc:
            self.abort(f"failed: the agent's output broke the protocol ({exc})")
            return
        except Exception as exc:  # a broken channel ends the session
            reason = f"{type(exc).__name__}: {exc}"
        if self.aborted:
            return
        # Let stderr drain so the error can quote the agent's last words.
        self._stderr_done.wait(2.0)
        try:
            self.exit_status = self._channel.exit_status()
        except Exception:
            log.debug("no exit status from %s", self.label, exc_info=True)
        status = f" with status {self.exit_status}" if self.exit_status is not None else ""
        self._stop.set()
        self._fail_all(f"got no answer: the agent exited{status} ({reason})"
                       f"{self.stderr_hint()}")

    def _dispatch(self, line: bytes) -> None:
        try:
            message = protocol.decode(line)
        except protocol.ProtocolError:
            hint = ("" if self._ready.done() else
                    "; is something printing on login (e.g. ~/.bashrc output)?")
            raise protocol.ProtocolError(
                f"{self.label} wrote a non-protocol line {line[:80]!r}{hint}") from None
        if message["id"] == 0:
            if not self._ready.done():
                self._ready.set_result(message.get("result") or {})
            return
        with self._lock:
            entry = self._pending.pop(message["id"], None)
        if entry is None:
            log.warning("agent on %s answered unknown request %s; ignored", self.label,
                        message["id"])
        elif not entry[1].done():
            entry[1].set_result(message)

    def _read_stderr(self) -> None:
        pending = b""
        window_start, logged, dropped = time.monotonic(), 0, 0
        try:
            while True:
                chunk = self._channel.recv_stderr()
                if not chunk:
                    break
                *lines, pending = (pending + chunk).split(b"\n")
                pending = pending[-STDERR_LINE:]
                for raw in lines:
                    text = raw[:STDERR_LINE].decode("utf-8", "replace").rstrip()
                    if not text:
                        continue
                    self._stderr_tail.append(text)
                    now = time.monotonic()
                    if now - window_start > 10:
                        if dropped:
                            agent_log.warning("[%s] %d more stderr lines not logged",
                                              self.label, dropped)
                        window_start, logged, dropped = now, 0, 0
                    if logged < STDERR_LOG_BURST:
                        logged += 1
                        agent_log.info("[%s] %s", self.label, text)
                    else:
                        dropped += 1
            rest = pending.decode("utf-8", "replace").strip()
            if rest:
                self._stderr_tail.append(rest)
                agent_log.info("[%s] %s", self.label, rest)
        except Exception:
            log.debug("stderr of %s ended with an error", self.label, exc_info=True)
        finally:
            self._stderr_done.set()

    def _watch(self) -> None:
        """While calls are pending: ping when quiet, abort when silent too long."""
        step = max(0.05, min(1.0, self.ping_interval / 4))
        while not self._stop.wait(step):
            with self._lock:
                busy = bool(self._pending)
            quiet = time.monotonic() - self._last_rx
            if not busy:
                continue
            if quiet > self.peer_timeout:
                self.abort(f"got no answer: {self.label} went silent for {secs(quiet)} (no "
                           "reply to keepalive pings; network path or host down?)")
                return
            if quiet > self.ping_interval and not self._ping_out:
                self._ping_out = True
                threading.Thread(target=self._ping, daemon=True,
                                 name=f"vlaninfra-agent-ping {self.label}").start()

    def _ping(self) -> None:
        future: Future[Any] = Future()
        with self._lock:
            if self._dead is not None:
                return
            id_ = next(self._ids)
            self._pending[id_] = ("ping", future)
        try:
            self._send(protocol.encode(protocol.request(id_, "ping", {})))
            future.result(self.peer_timeout)
        except Exception:  # the watchdog decides from the silence, not from this
            log.debug("keepalive ping to %s failed", self.label, exc_info=True)
        finally:
            with self._lock:
                self._pending.pop(id_, None)
            self._ping_out = False
