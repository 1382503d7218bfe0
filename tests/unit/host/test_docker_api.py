"""The agent's Engine API client against a small HTTP server on a unix socket (the real
daemon: tests/lab/test_agent_docker.py)."""

from __future__ import annotations

import errno
import json
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from vlaninfra.host.docker_api import (
    DockerClient,
    DockerError,
    DockerIOError,
    DockerUnreachable,
    NotFound,
    version_gte,
)


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    seen: list[tuple[str, str, Any]]
    connections: int


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.connections += 1

    def log_message(self, *_args: object) -> None:
        pass

    def address_string(self) -> str:
        return "unix"

    def _answer(self, status: int, body: bytes, kind: str = "application/json",
                length: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self, method: str) -> None:
        size = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(size)) if size else None
        self.server.seen.append((method, self.path, body))
        if self.path == "/version":
            self._answer(200, b'{"ApiVersion": "1.41", "Version": "20.10.24"}')
        elif self.path.startswith("/v1.41/networks/gone"):
            self._answer(404, b'{"message": "network gone not found"}')
        elif self.path.startswith("/v1.41/networks/busy"):
            self._answer(403, b'{"message": "error while removing network: network busy id '
                              b'n1 has active endpoints"}')
        elif self.path.startswith("/v1.41/exec/e1/start"):
            frames = b"\x01\x00\x00\x00\x00\x00\x00\x03out\x02\x00\x00\x00\x00\x00\x00\x04err!"
            self._answer(200, frames, "application/vnd.docker.raw-stream", length=False)
            self.close_connection = True
        elif self.path == "/v1.41/slow":
            time.sleep(1.5)
            self._answer(200, b"{}")
        elif self.path == "/v1.41/bye":  # answers, then goes away (a restarted dockerd)
            self._answer(200, b'{"Id": "bye"}')
            self.close_connection = True
        elif method == "DELETE":
            self._answer(204, b"")
        else:
            self._answer(200, json.dumps({"Id": "x1", "path": self.path}).encode())

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


@pytest.fixture
def dockerd(tmp_path: Path) -> Iterator[tuple[_Server, Callable[[], DockerClient]]]:
    """The server, and a maker of clients of it (closed at the end)."""
    path = str(tmp_path / "docker.sock")
    server = _Server(path, _Handler)
    server.seen, server.connections = [], 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clients: list[DockerClient] = []

    def client() -> DockerClient:
        clients.append(DockerClient(path, 5))
        return clients[-1]

    try:
        yield server, client
    finally:
        for c in clients:
            c.close()
        server.shutdown()
        server.server_close()


Dockerd = tuple[_Server, "Callable[[], DockerClient]"]


def test_calls_speak_the_daemons_api_version_on_one_kept_connection(
        dockerd: Dockerd) -> None:
    server, client = dockerd
    api = client()
    assert api.api_version == "1.41"
    api.create_container("busybox:lab", command=["sleep", "1"], name="web",
                         labels={"a": "b"}, host_config=api.create_host_config(
                             {"Name": "always"}, "lan"),
                         networking_config=api.create_networking_config(
                             {"lan": api.create_endpoint_config("192.0.2.130")}))
    api.remove_container("web", force=True)
    api.stop("web", timeout=0)
    assert server.seen[1:] == [
        ("POST", "/v1.41/containers/create?name=web",
         {"Image": "busybox:lab", "Cmd": ["sleep", "1"], "Labels": {"a": "b"},
          "HostConfig": {"NetworkMode": "lan", "RestartPolicy": {"Name": "always"}},
          "NetworkingConfig": {"EndpointsConfig": {
              "lan": {"IPAMConfig": {"IPv4Address": "192.0.2.130"}}}}}),
        ("DELETE", "/v1.41/containers/web?force=1", None),
        ("POST", "/v1.41/containers/web/stop?t=0", None),
    ]
    assert server.connections == 1


def test_errors_carry_the_status_and_dockers_sentence(dockerd: Dockerd) -> None:
    _, client = dockerd
    api = client()
    with pytest.raises(NotFound) as gone:
        api.inspect_network("gone")
    assert gone.value.status_code == 404 and gone.value.explanation == "network gone not found"
    with pytest.raises(DockerError) as busy:
        api.remove_network("busy")
    assert not isinstance(busy.value, NotFound) and busy.value.status_code == 403
    assert "has active endpoints" in busy.value.explanation


def test_exec_output_is_taken_out_of_dockers_frames_and_the_connection_renewed(
        dockerd: Dockerd) -> None:
    server, client = dockerd
    api = client()
    assert api.exec_start("e1") == b"outerr!"
    assert api.exec_inspect("e1")["Id"] == "x1"  # on a new connection: the stream closed it
    assert server.connections == 2


def test_a_connection_the_daemon_closed_is_not_reused(dockerd: Dockerd) -> None:
    server, client = dockerd
    api = client()
    assert api._call("GET", "/bye")["Id"] == "bye"  # kept alive as far as HTTP goes
    time.sleep(0.2)  # the daemon is gone by the next call
    assert api.version()["Id"] == "x1"
    assert server.connections == 2


def test_a_call_cut_short_names_the_call_and_its_timeout(dockerd: Dockerd) -> None:
    from vlaninfra.host.dispatch import describe_error

    _, client = dockerd
    api = client()
    api.version()
    api.timeout = 0.3
    with pytest.raises(DockerIOError) as info:
        api._call("GET", "/slow")
    assert info.value.errno == errno.ETIMEDOUT
    said = describe_error(info.value)
    assert (said["errno"], said["message"]) == (
        errno.ETIMEDOUT, "docker: GET /slow: timed out (timeout 0.3s)")
    assert api._conn is None  # never reused


def test_a_missing_socket_is_unreachable(tmp_path: Path) -> None:
    with pytest.raises(DockerUnreachable) as info:
        DockerClient(str(tmp_path / "none.sock"), 5).version()
    assert info.value.errno == errno.ENOENT


def test_version_gte() -> None:
    assert version_gte("1.44", "1.44") and version_gte("1.45", "1.44")
    assert not version_gte("1.41", "1.44") and version_gte("1.100", "1.44")
