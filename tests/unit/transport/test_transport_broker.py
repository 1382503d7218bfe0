"""The connection broker's relay, identity and safety checks, against a fake agent."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.hostkeys import fake_host_key
from tests.unit.transport.fakes import FakeChannel
from tests.unit.transport.test_transport_bounds import FakeConnector, hello_agent
from tests.unit.transport.test_transport_unit import SECRET, target
from vlaninfra.transport import AgentExitedError, LocalTarget, OutcomeUnknownError
from vlaninfra.transport._agent import Agent
from vlaninfra.transport._broker import (
    BrokerConnector,
    _Broker,
    brokering,
    identity,
    running_brokers,
    runtime_dir,
    use_broker,
)
from vlaninfra.transport._session import Session

SHA = "0" * 64


def test_identity_follows_everything_that_makes_a_connection_equal() -> None:
    base = identity(target(), SHA, 120.0)
    other_key = fake_host_key("other")
    for changed in (target(host_key=other_key), target(port=2222), target(user="deploy"),
                    target(private_key=SECRET + "x"), target(passphrase="p"),
                    target(sudo=True), target(docker_socket="/run/d.sock")):
        assert identity(changed, SHA, 120.0) != base
    assert identity(target(), "1" * 64, 120.0) != base  # another agent archive
    # the agent's Docker timeout is the last hello's: another deadline, another agent
    assert identity(target(), SHA, 300.0) != base
    assert identity(target(config_key="sites.a.hosts[0].ssh"), SHA, 120.0) == base
    assert "c2VjcmV0" not in base


def test_brokering_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLANINFRA_BROKER", raising=False)
    assert not brokering()
    use_broker()
    try:
        assert brokering()
        monkeypatch.setenv("VLANINFRA_BROKER", "0")
        assert not brokering()
    finally:
        use_broker(False)
    monkeypatch.setenv("VLANINFRA_BROKER", "1")
    assert brokering()


def test_runtime_dir_must_be_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    path = runtime_dir()
    assert path == tmp_path / "vlaninfra" and oct(path.stat().st_mode)[-3:] == "700"
    path.chmod(0o755)
    assert runtime_dir() is None
    path.rmdir()
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    path.symlink_to(tmp_path / "elsewhere")
    assert runtime_dir() is None


def test_no_safe_directory_means_a_direct_connection(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "vlaninfra").mkdir(mode=0o777)
    (tmp_path / "vlaninfra").chmod(0o777)
    connector = BrokerConnector(target())
    direct = FakeConnector(FakeChannel(hello_agent))
    connector._direct_connector = lambda: direct  # type: ignore[method-assign]
    agent = Agent(LocalTarget(), connector)
    assert agent.call("ping")["pid"] == 7 and direct.started == 1
    agent.close()


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[_Broker]:
    """A broker (in this process) relaying to a fake agent, and its socket."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    where = runtime_dir()
    assert where is not None
    channel = FakeChannel(hello_agent)
    agent = Agent(LocalTarget(), FakeConnector(channel))
    agent.start()
    b = _Broker(agent, where / "t.sock", "ident", idle=0.5)
    b.channel = channel  # type: ignore[attr-defined]
    ready = _Ready()
    t = threading.Thread(target=b.run, args=(ready,), daemon=True)
    t.start()
    ready.done.wait(5)
    yield b
    b.stop.set()
    t.join(5)


class _Ready:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.lines: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.lines.append(data)

    def close(self) -> None:
        self.done.set()


def client(b: _Broker, ident: str = "ident") -> Session | None:
    channel = BrokerConnector(target())._attach(b.path, ident)
    if channel is None:
        return None
    session = Session(channel, "root@192.0.2.10:22")
    session.wait_ready(5)
    return session


def test_clients_share_the_agent_with_their_own_ids(broker: _Broker) -> None:
    one, two = client(broker), client(broker)
    assert one is not None and two is not None
    results: list[Any] = []
    threads = [threading.Thread(target=lambda s=s: results.extend(
        s.call("ping", {}, 5) for _ in range(20))) for s in (one, two)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert results == [{"pid": 7, "python": "3.11"}] * 40
    one.close()
    assert two.call("hello", {}, 5)["pid"] == 7
    assert oct(broker.path.stat().st_mode)[-3:] == "600"
    two.close()


def test_another_identity_is_refused(broker: _Broker) -> None:
    assert client(broker, "other") is None


def test_a_client_that_gives_up_drops_the_agent_for_everyone(broker: _Broker) -> None:
    one, two = client(broker), client(broker)
    assert one is not None and two is not None
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            two.call("hang", {}, 10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    with pytest.raises(OutcomeUnknownError, match=r"got no answer within 0\.3s"):
        one.call("hang", {}, 0.3)
    t.join(5)
    assert not t.is_alive() and isinstance(errors[0], OutcomeUnknownError)
    assert "a client of the shared connection gave up waiting" in str(errors[0])
    deadline = time.monotonic() + 5
    while broker.path.exists():  # never attached again
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert broker.channel.aborted  # type: ignore[attr-defined]
    two.close()


def test_agent_exit_reaches_the_clients_with_its_last_words(
        broker: _Broker, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="vlaninfra.agent")  # as the broker process runs
    one = client(broker)
    assert one is not None
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            one.call("hang", {}, 10)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=wait)
    t.start()
    time.sleep(0.2)
    broker.channel.die(b"boom: out of memory\n")  # type: ignore[attr-defined]
    t.join(5)
    message = str(errors[0])
    assert "hang got no answer: the agent exited with status 3" in message
    assert "boom: out of memory" in message
    with pytest.raises(AgentExitedError):
        one.call("ping", {}, 1)
    one.close()


def test_idle_broker_leaves(broker: _Broker) -> None:
    one = client(broker)
    assert one is not None
    time.sleep(1.0)
    assert broker.path.exists()  # a client is attached: never idle
    one.close()
    deadline = time.monotonic() + 3
    while running_brokers():  # looking (connecting without attaching) keeps nothing alive
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert broker.channel.closed  # type: ignore[attr-defined]


def test_a_runtime_dir_others_may_write_to_is_not_used(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """`sudo -E` keeps the invoking user's XDG_RUNTIME_DIR: never put sockets under it."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(shared))
    assert runtime_dir() != shared / "vlaninfra" and not (shared / "vlaninfra").exists()


def test_a_connection_not_yet_attached_keeps_the_broker_and_none_attaches_once_it_leaves(
        broker: _Broker) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(str(broker.path))
    time.sleep(1.0)  # twice the idle time: the accepted connection counts as a client
    assert broker.path.exists() and not broker.closing
    sock.sendall(b"#attach ident\n")
    assert sock.recv(65536).startswith(b"{")  # attached, the agent still there
    with broker.lock:
        broker.closing = True  # as when it decided to leave
    assert client(broker) is None  # refused, never attached to an agent that is closing
    sock.close()
