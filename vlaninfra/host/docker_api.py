"""A small client of the Docker Engine API over dockerd's unix socket, on the stdlib alone.

The agent used the Docker SDK (``docker.APIClient``), which brought requests, urllib3, idna,
certifi and charset_normalizer into the agent archive; importing it took about 0.2 s of CPU of
every agent start (on the lab's shared cores the agents' starts are CPU-bound). The agent
needs a score of Engine API calls, kept here under the SDK's names and arguments.

Errors: an error status is :class:`DockerError` (``status_code`` and Docker's own sentence,
``explanation``), 404 its subclass :class:`NotFound` (absence is decided by the status, never
by the sentence). A socket that cannot be reached is :class:`DockerUnreachable`; a call cut
short (a timeout, the daemon going away) :class:`DockerIOError`, naming the call. The API
version is the daemon's own (``GET /version``, once per client), as the SDK's ``"auto"``.

One difference from the SDK: a container gets no proxy variables from the agent user's
``~/.docker/config.json`` (the SDK's ``use_config_proxy``): its environment is its image's,
the same on every host whatever that file says.

Example: ``DockerClient("/run/docker.sock", 300).inspect_network("lan")["Id"]``
"""

from __future__ import annotations

import errno
import http.client
import json
import select
import socket
from typing import Any
from urllib.parse import quote, urlencode

__all__ = ["DockerClient", "DockerError", "DockerIOError", "DockerUnreachable", "NotFound",
           "UnixConnection", "version_gte"]

Json = Any
"""A decoded JSON answer of the Engine API (its shapes are Docker's)."""


class DockerError(Exception):
    """Docker answered ``status_code`` with ``explanation`` (its JSON ``message``)."""

    def __init__(self, status_code: int, explanation: str, what: str = "") -> None:
        super().__init__(f"{status_code} {what}: {explanation}" if what
                         else f"{status_code}: {explanation}")
        self.status_code = status_code
        self.explanation = explanation


class NotFound(DockerError):
    """Docker answered 404: no such object."""


class DockerUnreachable(OSError):
    """dockerd's socket cannot be connected to (missing, refused, not permitted)."""


class DockerIOError(OSError):
    """A call cut short after it reached dockerd (a timeout, the connection dropped): whether
    it took effect is unknown."""


def version_gte(version: str, other: str) -> bool:
    """Whether API version ``version`` is ``other`` or later (``"1.44"`` >= ``"1.41"``)."""
    return tuple(map(int, version.split("."))) >= tuple(map(int, other.split(".")))


class UnixConnection(http.client.HTTPConnection):
    """HTTP over dockerd's unix socket ``path`` (also the lab's readiness checks)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            raise DockerUnreachable(exc.errno, f"{self.path}: {exc.strerror or exc}") from None
        self.sock = sock

    def dropped(self) -> bool:
        """Whether this kept-alive connection cannot take another request: the daemon closed
        it (EOF), or stray bytes wait on it."""
        if self.sock is None:
            return False
        poller = select.poll()  # (select.select fails on descriptors past 1023)
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))


class DockerClient:
    """One thread's connection to dockerd (kept alive between calls); ``timeout`` bounds each
    socket operation, in seconds."""

    def __init__(self, socket_path: str, timeout: float) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._conn: UnixConnection | None = None
        self._version: str | None = None

    @property
    def api_version(self) -> str:
        """The daemon's API version (asked once)."""
        if self._version is None:
            self._version = str(self._call("GET", "/version", versioned=False)["ApiVersion"])
        return self._version

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _call(self, method: str, path: str, params: dict[str, object] | None = None,
              body: object = None, *, versioned: bool = True, raw: bool = False,
              wait: float = 0.0) -> Json:
        url = f"/v{self.api_version}{path}" if versioned else path
        if params:
            url += "?" + urlencode(params)
        data = None if body is None else json.dumps(body).encode()
        conn = self._conn
        if conn is None or conn.dropped():
            if conn is not None:
                conn.close()
            conn = self._conn = UnixConnection(self.socket_path, self.timeout)
        conn.timeout = self.timeout + wait
        if conn.sock is not None:
            conn.sock.settimeout(conn.timeout)
        try:
            conn.request(method, url, body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            payload = resp.read()
        except BaseException as exc:
            self.close()  # a request cut short leaves the connection unusable
            if isinstance(exc, DockerUnreachable) or not isinstance(
                    exc, (OSError, http.client.HTTPException)):
                raise
            code = errno.ETIMEDOUT if isinstance(exc, TimeoutError) else errno.EIO
            raise DockerIOError(code, f"{method} {path}: {exc or type(exc).__name__} "
                                      f"(timeout {conn.timeout:g}s)") from exc
        if resp.will_close:
            self.close()
        if resp.status >= 400:
            kind = NotFound if resp.status == 404 else DockerError
            raise kind(resp.status, _explanation(payload), f"{method} {path}")
        if raw:
            return payload
        return json.loads(payload) if payload.strip() else None

    # -- reads ---------------------------------------------------------------------------------
    def version(self) -> Json:
        return self._call("GET", "/version")

    def networks(self) -> Json:
        return self._call("GET", "/networks")

    def inspect_network(self, net_id: str) -> Json:
        return self._call("GET", f"/networks/{_q(net_id)}")

    def containers(self, all: bool = False) -> Json:
        return self._call("GET", "/containers/json", {"all": int(all)})

    def inspect_container(self, container: str) -> Json:
        return self._call("GET", f"/containers/{_q(container)}/json")

    def images(self) -> Json:
        return self._call("GET", "/images/json")

    def inspect_image(self, image: str) -> Json:
        return self._call("GET", f"/images/{_q(image)}/json")

    # -- networks ------------------------------------------------------------------------------
    def create_network(self, name: str, driver: str, options: dict[str, str] | None = None,
                       ipam: dict[str, Any] | None = None, check_duplicate: bool = True,
                       internal: bool = False, labels: dict[str, str] | None = None,
                       enable_ipv6: bool = False) -> Json:
        body: dict[str, Any] = {"Name": name, "Driver": driver, "Options": options or {},
                                "IPAM": ipam, "CheckDuplicate": check_duplicate,
                                "Labels": labels or {}}
        if internal:
            body["Internal"] = True
        if enable_ipv6:
            body["EnableIPv6"] = True
        return self._call("POST", "/networks/create", body=body)

    def remove_network(self, net_id: str) -> None:
        self._call("DELETE", f"/networks/{_q(net_id)}")

    def connect_container_to_network(self, container: str, net_id: str,
                                     ipv4_address: str | None = None,
                                     ipv6_address: str | None = None,
                                     mac_address: str | None = None) -> None:
        self._call("POST", f"/networks/{_q(net_id)}/connect", body={
            "Container": container,
            "EndpointConfig": self.create_endpoint_config(ipv4_address, ipv6_address,
                                                          mac_address)})

    def disconnect_container_from_network(self, container: str, net_id: str,
                                          force: bool = False) -> None:
        self._call("POST", f"/networks/{_q(net_id)}/disconnect",
                   body={"Container": container, "Force": force})

    # -- containers ----------------------------------------------------------------------------
    @staticmethod
    def create_endpoint_config(ipv4_address: str | None = None,
                               ipv6_address: str | None = None,
                               mac_address: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ipam = {k: v for k, v in (("IPv4Address", ipv4_address),
                                  ("IPv6Address", ipv6_address)) if v}
        if ipam:
            out["IPAMConfig"] = ipam
        if mac_address:
            out["MacAddress"] = mac_address
        return out

    @staticmethod
    def create_networking_config(endpoints: dict[str, Any]) -> dict[str, Any]:
        return {"EndpointsConfig": endpoints}

    @staticmethod
    def create_host_config(restart_policy: dict[str, Any] | None = None,
                           network_mode: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {"NetworkMode": network_mode or "default"}
        if restart_policy:
            out["RestartPolicy"] = restart_policy
        return out

    def create_container(self, image: str, command: list[str] | None = None,
                         name: str | None = None, hostname: str | None = None,
                         labels: dict[str, str] | None = None, mac_address: str | None = None,
                         host_config: dict[str, Any] | None = None,
                         networking_config: dict[str, Any] | None = None) -> Json:
        body = {"Image": image, "Cmd": command, "Hostname": hostname, "Labels": labels or {},
                "MacAddress": mac_address, "HostConfig": host_config or {},
                "NetworkingConfig": networking_config}
        return self._call("POST", "/containers/create", {"name": name} if name else None,
                          body={k: v for k, v in body.items() if v is not None})

    def start(self, container: str) -> None:
        self._call("POST", f"/containers/{_q(container)}/start")

    def stop(self, container: str, timeout: int = 10) -> None:
        self._call("POST", f"/containers/{_q(container)}/stop", {"t": timeout},
                   wait=float(timeout))

    def remove_container(self, container: str, force: bool = False) -> None:
        self._call("DELETE", f"/containers/{_q(container)}", {"force": int(force)})

    def update_container(self, container: str, restart_policy: dict[str, Any]) -> Json:
        return self._call("POST", f"/containers/{_q(container)}/update",
                          body={"RestartPolicy": restart_policy})

    # -- exec ----------------------------------------------------------------------------------
    def exec_create(self, container: str, cmd: list[str]) -> Json:
        return self._call("POST", f"/containers/{_q(container)}/exec", body={
            "AttachStdin": False, "AttachStdout": True, "AttachStderr": True, "Tty": False,
            "Cmd": cmd})

    def exec_start(self, exec_id: str) -> bytes:
        """The command's stdout and stderr as it wrote them (Docker's frames taken apart)."""
        stream: bytes = self._call("POST", f"/exec/{_q(exec_id)}/start",
                                   body={"Detach": False, "Tty": False}, raw=True)
        return _demux(stream)

    def exec_inspect(self, exec_id: str) -> Json:
        return self._call("GET", f"/exec/{_q(exec_id)}/json")


def _q(part: str) -> str:
    return quote(part, safe="/:")


def _explanation(payload: bytes) -> str:
    """Docker's sentence of an error answer (its JSON ``message``, else the body)."""
    text = payload.decode("utf-8", "replace").strip()
    try:
        message = json.loads(text).get("message")
    except (ValueError, AttributeError):
        return text
    return str(message) if message else text


def _demux(stream: bytes) -> bytes:
    """The payloads of Docker's multiplexed stream (frames of an 8-byte header: the stream,
    three zero bytes, the big-endian length), in order."""
    out, at = bytearray(), 0
    while at + 8 <= len(stream):
        size = int.from_bytes(stream[at + 4:at + 8], "big")
        out += stream[at + 8:at + 8 + size]
        at += 8 + size
    return bytes(out)
