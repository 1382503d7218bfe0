"""Line-delimited JSON framing between the transport and the agent (stdlib only).

One JSON object per line, ASCII only (``ensure_ascii``), so a line never contains a raw
newline and byte-level splitting is safe. Messages:

- request  ``{"id": 7, "op": "link.get", "args": {"name": "shim0"}}``
- success  ``{"id": 7, "ok": true, "result": ...}``
- failure  ``{"id": 7, "ok": false, "error": {"errno": 19, "errname": "ENODEV",
  "type": "OpError", "message": "...", "details": {...}}}``
- banner   ``{"id": 0, "ok": true, "result": {"ready": true, "protocol": 1, ...}}``, written
  once by the agent at start, before it reads anything.

Ids are chosen by the transport and echoed by the agent; responses may come back in any
order (the agent runs requests concurrently).

Example: ``encode(request(1, "ping", {}))`` → ``b'{"id":1,"op":"ping","args":{}}\\n'``
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, TypedDict

from vlaninfra.host.untyped import JsonObject

__all__ = [
    "MAX_LINE",
    "PROTOCOL_VERSION",
    "ErrorBody",
    "Failure",
    "LineBuffer",
    "ProtocolError",
    "Request",
    "Success",
    "decode",
    "encode",
    "failure",
    "request",
    "success",
]

PROTOCOL_VERSION = 2
"""2: ops of the typed contract (:mod:`vlaninfra.host.contract`) take its argument objects."""
MAX_LINE = 16 * 1024 * 1024
"""Longest line either side accepts (a host snapshot of a big host is a few hundred kB); a
longer line ends the session, so memory stays bounded."""


class ProtocolError(ValueError):
    """A line that is not a protocol message (bad JSON, wrong shape, too long)."""


class Request(TypedDict):
    """``{"id": 7, "op": "link.get", "args": {"name": "shim0"}}``"""

    id: int
    op: str
    args: Mapping[str, object]


class Success(TypedDict):
    """``{"id": 7, "ok": true, "result": ...}`` (``result``: the op's JSON answer)."""

    id: int
    ok: Literal[True]
    result: object


class ErrorBody(TypedDict):
    """What went wrong, errno first: ``{"errno": 19, "errname": "ENODEV", ...}``."""

    errno: int | None
    errname: str | None
    type: str
    message: str
    details: Mapping[str, object]


class Failure(TypedDict):
    """``{"id": 7, "ok": false, "error": {...}}``"""

    id: int
    ok: Literal[False]
    error: ErrorBody


def encode(message: Mapping[str, object]) -> bytes:
    """Serialise one message to one line (with the trailing newline)."""
    text = json.dumps(message, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return text.encode("ascii") + b"\n"


def decode(line: bytes) -> JsonObject:
    """Parse one line (with or without its newline) into a message dict."""
    try:
        message = json.loads(line.decode("ascii"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"not a protocol line: {line[:120]!r}") from exc
    if not isinstance(message, dict) or not isinstance(message.get("id"), int):
        raise ProtocolError(f"message without an integer id: {line[:120]!r}")
    return message


def request(id_: int, op: str, args: Mapping[str, object]) -> Request:
    """Build a request message."""
    return {"id": id_, "op": op, "args": args}


def success(id_: int, result: object) -> Success:
    """Build a success response."""
    return {"id": id_, "ok": True, "result": result}


def failure(
    id_: int,
    errno: int | None,
    errname: str | None,
    message: str,
    type_: str,
    details: Mapping[str, object] | None = None,
) -> Failure:
    """Build an error response."""
    return {
        "id": id_,
        "ok": False,
        "error": {
            "errno": errno,
            "errname": errname,
            "type": type_,
            "message": message,
            "details": details or {},
        },
    }


class LineBuffer:
    """Reassembles lines from arbitrary byte chunks (what a socket or channel returns).

    Example::

        buf = LineBuffer()
        buf.feed(b'{"id":1,')        # → []
        buf.feed(b'"ok":true}\\n')    # → [b'{"id":1,"ok":true}']
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self._pending = bytearray()
        self._max = max_line

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add a chunk; return the complete lines it finished (without newlines)."""
        self._pending += chunk
        if b"\n" not in chunk:
            if len(self._pending) > self._max:
                raise ProtocolError(f"line longer than {self._max} bytes")
            return []
        *lines, rest = bytes(self._pending).split(b"\n")
        self._pending = bytearray(rest)
        if len(self._pending) > self._max:
            raise ProtocolError(f"line longer than {self._max} bytes")
        return [line for line in lines if line.strip()]

    @property
    def pending(self) -> bytes:
        """Bytes received after the last newline (an unfinished line)."""
        return bytes(self._pending)
