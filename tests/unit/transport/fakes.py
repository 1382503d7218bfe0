"""Fakes for transport unit tests: an in-memory channel with a scripted agent thread."""

from __future__ import annotations

import queue
import threading
from typing import Any

from vlaninfra.host import protocol


class FakeChannel:
    """In-memory channel; a scripted 'agent' thread answers requests."""

    def __init__(self, answer: Any = None, banner: dict[str, Any] | None = None) -> None:
        self.to_agent: queue.Queue[bytes | None] = queue.Queue()
        self.out: queue.Queue[bytes] = queue.Queue()
        self.err: queue.Queue[bytes] = queue.Queue()
        self.closed = False
        self.aborted = False
        self.out.put(protocol.encode(protocol.success(0, banner or {
            "ready": True, "protocol": protocol.PROTOCOL_VERSION})))
        if answer is not None:
            threading.Thread(target=answer, args=(self,), daemon=True).start()

    def requests(self) -> Any:
        buf = protocol.LineBuffer()
        while (chunk := self.to_agent.get()) is not None:
            for line in buf.feed(chunk):
                yield protocol.decode(line)

    def send(self, data: bytes) -> None:
        if self.closed:
            raise OSError("closed")
        self.to_agent.put(data)

    def recv(self) -> bytes:
        return self.out.get()

    def recv_stderr(self) -> bytes:
        return self.err.get()

    def exit_status(self) -> int | None:
        return 3

    def die(self, stderr: bytes = b"") -> None:
        self.err.put(stderr)
        self.err.put(b"")
        self.out.put(b"")

    def abort(self) -> None:
        self.aborted = True
        self.close()

    def close(self) -> None:
        self.closed = True
        self.to_agent.put(None)
        self.out.put(b"")
        self.err.put(b"")
