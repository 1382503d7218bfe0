"""Protocol framing and the agent loop, without privileges or a host."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from vlaninfra.host import agent, protocol
from vlaninfra.host.context import Context
from vlaninfra.host.errors import OpError


def test_encode_decode_roundtrip_is_one_ascii_line() -> None:
    msg = protocol.request(7, "link.get", {"name": "shim0\nx", "note": "é"})
    line = protocol.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    line.decode("ascii")
    assert protocol.decode(line) == msg


@pytest.mark.parametrize("bad", [b"not json", b"[1,2]", b'{"op":"x"}', b'{"id":"1"}',
                                 b"\xff\xfe"])
def test_decode_rejects_non_messages(bad: bytes) -> None:
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(bad)


def test_encode_refuses_nan() -> None:
    with pytest.raises(ValueError):
        protocol.encode({"id": 1, "x": float("nan")})


def test_line_buffer_reassembles_chunks() -> None:
    buf = protocol.LineBuffer()
    data = protocol.encode({"id": 1}) + protocol.encode({"id": 2}) + b'{"id":'
    out: list[bytes] = []
    for i in range(len(data)):
        out += buf.feed(data[i:i + 1])
    assert [protocol.decode(x)["id"] for x in out] == [1, 2]
    assert buf.pending == b'{"id":'
    assert buf.feed(b"3}\n\n") == [b'{"id":3}']


def test_line_buffer_limits_line_length() -> None:
    buf = protocol.LineBuffer(max_line=10)
    with pytest.raises(protocol.ProtocolError):
        buf.feed(b"x" * 11)


class NetlinkError(Exception):
    """Looks like pyroute2's (the agent matches it by name and ``code``)."""

    def __init__(self, code: int) -> None:
        super().__init__(code, "msg")
        self.code = code


def test_describe_error_maps_errnos() -> None:
    from vlaninfra.host.docker_api import DockerError, DockerUnreachable, NotFound

    d = agent.describe_error(OpError(errno.EBUSY, "busy", containers=["a"]))
    assert (d["errno"], d["errname"], d["message"], d["details"]) == (
        errno.EBUSY, "EBUSY", "busy", {"containers": ["a"]})
    assert agent.describe_error(NetlinkError(errno.EEXIST))["errno"] == errno.EEXIST
    d = agent.describe_error(DockerError(409, "in use", "POST /networks/create"))
    assert d["errno"] == errno.EEXIST and d["details"] == {"http_status": 409}
    assert "in use" in d["message"]
    assert agent.describe_error(NotFound(404, "no such"))["errno"] == errno.ENOENT
    d = agent.describe_error(DockerUnreachable(errno.ENOENT, "/run/docker.sock: no such file"))
    assert d["errno"] == errno.ECONNREFUSED and "docker daemon not reachable" in d["message"]
    assert agent.describe_error(FileNotFoundError(errno.ENOENT, "x"))["errno"] == errno.ENOENT
    d = agent.describe_error(RuntimeError("boom"))
    assert d["errno"] == errno.EIO and "RuntimeError" in d["message"]


def _serve(lines: list[Mapping[str, object] | bytes], ctx: Context | None = None) -> list[Any]:
    raw = b"".join(x if isinstance(x, bytes) else protocol.encode(x) for x in lines)
    out = io.BytesIO()
    agent.serve(ctx or Context(docker_socket="/nonexistent.sock"), io.BytesIO(raw), out,
                workers=4)
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_serve_banner_then_responses_by_id() -> None:
    out = _serve([
        protocol.request(1, "ping", {}),
        b"garbage line\n",
        protocol.request(2, "no.such.op", {}),
        protocol.request(3, "ping", {"extra": 1}),
        protocol.request(4, "debug.sleep", {"seconds": 0.01}),
        protocol.request(5, "ping", []),  # type: ignore[arg-type]
    ])
    assert out[0]["id"] == 0 and out[0]["result"]["ready"] is True
    assert out[0]["result"]["protocol"] == protocol.PROTOCOL_VERSION
    by_id = {m["id"]: m for m in out[1:]}
    assert sorted(by_id) == [1, 2, 3, 4, 5]
    assert by_id[1]["ok"] is True and {"pid", "python", "kernel", "hostname"} <= set(
        by_id[1]["result"])
    assert by_id[2]["error"]["errno"] == errno.EOPNOTSUPP
    assert by_id[3]["error"]["errno"] == errno.EINVAL
    assert by_id[4]["result"] == 0.01
    assert by_id[5]["error"]["errno"] == errno.EINVAL


def test_hello_sets_docker_socket_and_checks_it() -> None:
    ctx = Context()
    out = _serve([protocol.request(1, "hello", {"docker_socket": "/run/x/docker.sock"}),
                  protocol.request(2, "hello", {"docker_socket": "relative"})], ctx)
    by_id = {m["id"]: m for m in out[1:]}
    assert by_id[1]["result"]["protocol"] == protocol.PROTOCOL_VERSION
    assert ctx.docker_socket == "/run/x/docker.sock"
    assert by_id[2]["error"]["errno"] == errno.EINVAL


def test_hello_sets_the_docker_timeout_to_the_controllers_deadline() -> None:
    ctx = Context()
    out = _serve([protocol.request(1, "hello", {"docker_timeout": 120}),
                  protocol.request(2, "hello", {"docker_timeout": 0})], ctx)
    by_id = {m["id"]: m for m in out[1:]}
    assert "result" in by_id[1] and ctx.docker_timeout == 120
    assert by_id[2]["error"]["errno"] == errno.EINVAL


def test_a_later_hello_bounds_the_docker_client_a_thread_already_has() -> None:
    """A broker's agent serves one controller after another: the second one's Docker deadline
    bounds the calls of worker threads that made their client under the first."""
    ctx = Context(docker_socket="/nonexistent.sock")
    _serve([protocol.request(1, "hello", {"docker_timeout": 120})], ctx)
    client = ctx.docker()
    _serve([protocol.request(2, "hello", {"docker_timeout": 360})], ctx)
    assert ctx.docker() is client and getattr(client, "timeout", None) == 360


def test_batch_runs_each_entry_and_reports_errors_inline() -> None:
    ctx = Context(docker_socket="/nonexistent.sock")
    out = agent.batch(ctx, [{"op": "ping", "args": {}}, {"op": "nope"},
                            {"op": "batch", "args": {"calls": []}}, "x"])
    assert out[0]["ok"] is True
    assert [o["error"]["errno"] for o in out[1:]] == [errno.EOPNOTSUPP, errno.EINVAL,
                                                      errno.EINVAL]


def test_a_parallel_batch_runs_entries_at_once_and_answers_in_order() -> None:
    ctx = Context(docker_socket="/nonexistent.sock")
    calls = [{"op": "debug.sleep", "args": {"seconds": 0.3}} for _ in range(6)]
    began = time.monotonic()
    out = agent.batch(ctx, [*calls, {"op": "check.facts", "args": {}}, {"op": "nope"}],
                      parallel=True)
    assert time.monotonic() - began < 6 * 0.3  # not one after another
    assert [o.get("result") for o in out[:6]] == [0.3] * 6
    assert [o["error"]["errno"] for o in out[6:]] == [errno.EINVAL, errno.EOPNOTSUPP]


def test_unserialisable_result_becomes_an_error() -> None:
    agent.OPS["test.weird"] = lambda ctx: {1, 2}
    try:
        out = _serve([protocol.request(1, "test.weird", {})])
    finally:
        del agent.OPS["test.weird"]
    assert out[1]["error"]["errno"] == errno.EIO


def test_ops_registry_has_the_documented_names() -> None:
    assert {*agent.OPS, *agent.TYPED} == {
        "ping", "hello", "batch", "debug.sleep", "link.get", "link.exists", "route.list",
        "route.get", "route.ensure", "route.delete", "host.snapshot", "check.facts", "shim.ensure",
        "shim.read", "shim.delete", "vlan.ensure", "vlan.read", "route.read",
        "vlan.delete", "docker.version", "docker.image.exists", "docker.network.inspect",
        "docker.network.create", "docker.network.remove", "docker.network.connect",
        "docker.network.disconnect", "docker.container.inspect", "docker.container.create",
        "docker.container.remove", "docker.container.update", "docker.container.start",
        "probe.run", "doctor.facts", "guard.arm", "guard.disarm", "guard.status"}


def test_ping_is_answered_while_every_worker_is_busy() -> None:
    import os
    import threading
    import time

    r, w = os.pipe()
    out = io.BytesIO()
    stdin = os.fdopen(r, "rb")
    t = threading.Thread(target=agent.serve, args=(
        Context(docker_socket="/nonexistent.sock"), stdin, out), kwargs={"workers": 2})
    t.start()
    reqs = [protocol.request(i, "debug.sleep", {"seconds": 1}) for i in (1, 2, 3)]
    os.write(w, b"".join(map(protocol.encode, [*reqs, protocol.request(9, "ping", {})])))
    time.sleep(0.3)
    ids = [json.loads(x)["id"] for x in out.getvalue().splitlines()]
    assert ids == [0, 9]  # ping answered at once; the sleeps queue behind 2 workers
    os.close(w)
    t.join(10)
    stdin.close()
    assert sorted(json.loads(x)["id"] for x in out.getvalue().splitlines()) == [0, 1, 2, 3, 9]


def test_oversized_request_line_ends_the_agent_and_big_results_are_refused() -> None:
    out = io.BytesIO()
    raw = protocol.encode(protocol.request(1, "ping", {})) + b"x" * 5000 + b"\n" + (
        protocol.encode(protocol.request(2, "ping", {})))
    agent.serve(Context(), io.BytesIO(raw), out, max_line=1000)
    assert [json.loads(x)["id"] for x in out.getvalue().splitlines()] == [0, 1]  # 2 unread
    agent.OPS["test.big"] = lambda ctx: "y" * (protocol.MAX_LINE + 1)
    try:
        reply = _serve([protocol.request(1, "test.big", {})])
    finally:
        del agent.OPS["test.big"]
    assert reply[1]["error"]["errno"] == errno.EMSGSIZE


def test_hello_and_docker_ops_answer_during_the_warm_up_netlink_and_forks_wait(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    from vlaninfra.host import context, guard

    monkeypatch.setattr(context, "_imported", threading.Event())  # a warm-up under way
    out = _serve([protocol.request(1, "hello", {"docker_socket": "/nonexistent/docker.sock"}),
                  protocol.request(2, "docker.image.exists", {"name": "busybox"})], Context())
    by_id = {m["id"]: m for m in out[1:]}
    assert by_id[1]["result"]["protocol"] == protocol.PROTOCOL_VERSION
    assert by_id[2]["error"]["errno"] == errno.ECONNREFUSED  # the Docker client ran

    ctx, reached = Context(), {"netlink": threading.Event(), "fork": threading.Event()}

    def use_netlink() -> None:
        with ctx.netlink() as ipr:
            reached["netlink"].set()
            ipr.close()

    def fork_past_the_wait() -> tuple[int, int]:
        reached["fork"].set()
        raise OSError(errno.EAGAIN, "stopped before the fork")

    def spawn_a_restorer() -> None:
        with contextlib.suppress(OSError):
            guard._spawn(Path("/nonexistent"), "t", -1)

    monkeypatch.setattr(os, "pipe", fork_past_the_wait)
    threads = [threading.Thread(target=use_netlink, daemon=True),
               threading.Thread(target=spawn_a_restorer, daemon=True)]
    for t in threads:
        t.start()
    assert not any(e.wait(0.3) for e in reached.values())  # both wait for the import
    context._imported.set()
    assert all(e.wait(10) for e in reached.values())
    for t in threads:
        t.join(10)
