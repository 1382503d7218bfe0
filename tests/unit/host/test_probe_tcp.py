"""`probe.run`'s ``tcp`` check and ``expect: blocked``: a TCP connect to a listener on this
process's loopback (nothing leaves the machine), a closed port, and the one short attempt a
blocked check makes."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from vlaninfra.host import probe
from vlaninfra.host.errors import OpError


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield s.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nobody listens once it is closed


def tcp(port: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "tcp", "target": "127.0.0.1", "port": port, **extra}


def test_a_listening_port_is_reached(listener: int) -> None:
    [result] = probe.run(None, [tcp(listener)], timeout=5)  # type: ignore[arg-type]
    assert result["ok"] is True and result["detail"] == f"connected to 127.0.0.1:{listener}"


def test_a_closed_port_fails_with_the_reason_after_retrying_to_the_deadline(
        closed_port: int) -> None:
    started = time.monotonic()
    [result] = probe.run(None, [tcp(closed_port)], timeout=2.5)  # type: ignore[arg-type]
    assert result["ok"] is False
    assert result["detail"] == f"127.0.0.1:{closed_port}: connection refused"
    assert time.monotonic() - started < 5  # bounded by the deadline (2.5 s + 1 s grace)


def test_expect_blocked_passes_on_a_closed_port_and_fails_on_an_open_one(
        listener: int, closed_port: int) -> None:
    blocked, reached = probe.run(None, [tcp(closed_port, expect="blocked"),  # type: ignore[arg-type]
                                        tcp(listener, expect="blocked")], timeout=5)
    assert blocked["ok"] is True
    assert blocked["detail"] == f"blocked: 127.0.0.1:{closed_port}: connection refused"
    assert reached["ok"] is False
    assert reached["detail"] == f"answers, expected blocked: connected to 127.0.0.1:{listener}"


def test_expect_blocked_gives_up_after_its_short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []

    def silent(wait: float) -> probe.Result:
        waits.append(wait)
        return probe._result(False, time.monotonic(), "no answer")

    result = probe._until(silent, {"expect": "blocked"}, time.monotonic() + 10)
    assert waits == [probe.BLOCKED_TIMEOUT] and probe.BLOCKED_TIMEOUT == 2.0
    assert result["ok"] is True and result["detail"] == "blocked: no answer"
    late = probe._until(silent, {"expect": "blocked"}, time.monotonic() + 1)
    assert late["ok"] is False and late["detail"] == "not run: deadline passed"
    assert waits == [probe.BLOCKED_TIMEOUT]


@pytest.mark.root  # entering a network namespace, even our own, needs CAP_SYS_ADMIN
def test_a_socket_made_in_a_process_namespace_connects_there(listener: int) -> None:
    # Our own namespace stands in for a container's: the socket is made by a throw-away
    # thread that entered /proc/<pid>/ns/net.
    with probe._socket_in(os.getpid(), socket.AF_INET) as s:
        s.settimeout(2)
        s.connect(("127.0.0.1", listener))


def test_a_missing_process_namespace_is_an_error_not_a_hang() -> None:
    with pytest.raises(FileNotFoundError):
        probe._socket_in(2**22 + 1, socket.AF_INET)


@pytest.mark.parametrize(("check", "message"), [
    (tcp(0), "port is 1-65535"),
    (tcp(True), "port is 1-65535"),
    ({"kind": "tcp", "target": "127.0.0.1"}, "port is 1-65535"),
    (tcp(80, expect="maybe"), "expect is reach or blocked"),
    ({"kind": "ping", "target": "192.0.2.1", "expect": "never"}, "expect is reach or blocked"),
])
def test_malformed_checks_are_refused(check: dict[str, Any], message: str) -> None:
    with pytest.raises(OpError, match=message):
        probe.run(None, [check], timeout=1)  # type: ignore[arg-type]
