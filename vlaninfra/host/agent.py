"""The agent process: reads requests from stdin, runs ops, writes responses to stdout.

Started by the transport's bootstrap (``python3 -I -c <bootstrap> <archive> <sha256>``, over
SSH or locally), which runs this archive's checked bytes. Requests run concurrently on a
pool of ``MAX_WORKERS`` threads (Docker container creation is slow, and many provider
threads call at once); more requests queue, ``ping`` is answered at once; responses carry
the request id and are written whole, one line each, under a lock. stdout carries only
protocol lines: the real stdout is kept for the protocol and fd 1 is pointed at stderr, so
a stray ``print`` or a child process cannot corrupt the stream. stderr carries logs. The
agent exits when stdin closes, after the ops in flight have finished (an op is never cut in
half).

Which function serves which op is :mod:`vlaninfra.host.dispatch`; the agent's own ops
(``ping``, ``hello``, ``host.snapshot``...) are :mod:`vlaninfra.host.agent_ops`.

Example: ``printf '{"id":1,"op":"ping","args":{}}\\n' | python3 agent.pyz``
"""

from __future__ import annotations

import errno as _errno
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

from vlaninfra.host import oplock, persist, protocol
from vlaninfra.host.context import Context, warm_up
from vlaninfra.host.dispatch import (
    OPS,
    TYPED,
    Answer,
    batch,
    describe_error,
    errored,
    handle,
    run_request,
)
from vlaninfra.host.errors import OpError
from vlaninfra.host.untyped import JsonObject

__all__ = [
    "OPS",
    "TYPED",
    "batch",
    "describe_error",
    "handle",
    "main",
    "run_request",
    "serve",
]

log = logging.getLogger("vlaninfra.host.agent")
MAX_WORKERS = 16


class _Writer:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def write(self, message: Answer) -> None:
        try:
            data = protocol.encode(message)
        except (TypeError, ValueError) as exc:
            data = protocol.encode(errored(message["id"], OpError(
                _errno.EIO, f"result is not JSON-serialisable: {exc}")))
        if len(data) > protocol.MAX_LINE:
            data = protocol.encode(errored(message["id"], OpError(
                _errno.EMSGSIZE, f"result is {len(data)} bytes, more than the "
                f"protocol's {protocol.MAX_LINE}")))
        with self._lock:
            try:
                self._stream.write(data)
                self._stream.flush()
            except (BrokenPipeError, ValueError):
                pass  # the transport is gone; the op's effect stands, nobody listens


def _respond(ctx: Context, writer: _Writer, message: JsonObject, arrived: float) -> None:
    with oplock.counted_from(arrived):
        writer.write(run_request(ctx, message))


def serve(ctx: Context, stdin: BinaryIO, stdout: BinaryIO, workers: int = MAX_WORKERS,
          max_line: int = protocol.MAX_LINE) -> None:
    """Serve requests from ``stdin`` until EOF; responses go to ``stdout``.

    Ops run on a pool of ``workers`` threads; more requests queue in order. ``ping`` is
    answered at once by the reading thread (the transport's dead-peer check), never queued.
    A request line longer than ``max_line`` ends the agent (memory stays bounded).
    """
    writer = _Writer(stdout)
    writer.write(protocol.success(0, {"ready": True, "protocol": protocol.PROTOCOL_VERSION,
                                      "pid": os.getpid()}))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="op") as pool:
        while line := stdin.readline(max_line + 1):
            if len(line) > max_line:
                log.error("request line longer than %d bytes; exiting", max_line)
                break
            if not line.strip():
                continue
            try:
                message = protocol.decode(line)
            except protocol.ProtocolError as exc:
                log.error("dropping malformed request: %s", exc)
                continue
            if message.get("op") == "ping":
                _respond(ctx, writer, message, time.monotonic())
            else:
                pool.submit(_respond, ctx, writer, message, time.monotonic())
    log.info("stdin closed; exiting")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the zipapp / ``python -m vlaninfra.host``; ``restore`` runs the boot
    hook's restore (:func:`vlaninfra.host.persist.restore_main`) instead of serving."""
    if (sys.argv[1:] if argv is None else argv)[:1] == ["restore"]:
        return persist.restore_main()
    proto_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(
        stream=sys.stderr,
        level=os.environ.get("VLANINFRA_AGENT_LOG", "INFO"),
        format=f"vlaninfra-agent[{os.getpid()}] %(levelname)s %(name)s: %(message)s",
    )
    warm_up()  # while the controller says hello; netlink ops wait for it
    serve(Context(), sys.stdin.buffer, proto_out)
    return 0
