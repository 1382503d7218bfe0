"""Per-agent context handed to every op: how to reach netlink and the Docker daemon.

Ops take the context as their first argument instead of opening sockets themselves, so unit
tests can pass a fake (``FakeContext`` with a fake IPRoute or Docker API) and the agent can
decide the lifetime of clients: one netlink socket and one Docker API client per worker thread
(an ``http.client`` connection carries one request at a time).
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator

from vlaninfra.host.untyped import DockerApi, Netlink

__all__ = ["Context", "warm_up", "warmed_up"]

# Set while no warm-up import of pyroute2 runs. Netlink waits for it: two threads importing
# pyroute2 at once can see a partly initialised module (ImportError), so only one imports.
_imported = threading.Event()
_imported.set()


def warm_up() -> None:
    """Import pyroute2 (about 0.1 s of CPU) on a thread of its own, so the agent answers
    ``hello`` and Docker ops meanwhile; :meth:`Context.netlink` waits until it is done."""
    def run() -> None:
        try:
            import pyroute2  # noqa: F401
        except Exception:  # the op that needs netlink reports it
            logging.getLogger(__name__).debug("warm-up import failed", exc_info=True)
        finally:
            _imported.set()

    _imported.clear()
    threading.Thread(target=run, daemon=True, name="warm-up").start()


def warmed_up() -> None:
    """Waits for :func:`warm_up`'s import: before netlink, and before a fork (a child forked
    mid-import would find pyroute2 half initialised, its import lock held by no thread)."""
    _imported.wait()


def _is_op_error(exc: BaseException) -> bool:
    from vlaninfra.host.errors import OpError

    return isinstance(exc, OpError)


class Context:
    """What ops need to reach the kernel and the Docker daemon on this host.

    Example: ``ctx = Context(docker_socket="/run/docker.sock"); facts.link_get(ctx, "eth0")``
    """

    def __init__(self, docker_socket: str = "/var/run/docker.sock") -> None:
        self.docker_socket = docker_socket
        """Path of the Docker Engine API unix socket on this host."""
        self.docker_timeout = 300
        """Seconds a Docker API request may take; ``hello`` sets it to the controller's
        Docker deadline so an op the controller gave up on does not run on for minutes."""
        self._local = threading.local()

    @contextlib.contextmanager
    def netlink(self) -> Iterator[Netlink]:
        """This thread's ``pyroute2.IPRoute`` (opening one costs milliseconds in pyroute2
        0.9, so each worker thread keeps its own; one that raised anything but a
        ``NetlinkError`` is closed and replaced, in case the socket is out of step)."""
        ipr = getattr(self._local, "ipr", None)
        if ipr is None:
            warmed_up()
            from pyroute2 import IPRoute

            ipr = self._local.ipr = IPRoute()
        try:
            yield ipr
        except BaseException as exc:
            if type(exc).__name__ != "NetlinkError" and not _is_op_error(exc):
                self._local.ipr = None
                with contextlib.suppress(Exception):
                    ipr.close()
            raise

    def docker(self) -> DockerApi:
        """This thread's Docker Engine API client (:class:`~vlaninfra.host.docker_api.
        DockerClient`, the daemon's API version), bounded by the current ``docker_timeout``
        (a later ``hello``, e.g. another controller through a broker, may have changed it)."""
        client = getattr(self._local, "docker", None)
        if client is None:
            from vlaninfra.host.docker_api import DockerClient

            client = DockerClient(os.path.abspath(self.docker_socket), self.docker_timeout)
            self._local.docker = client
        client.timeout = self.docker_timeout
        return client

    def docker_available(self) -> bool:
        """Whether the configured Docker socket exists (cheap, no API call)."""
        return os.path.exists(self.docker_socket)
