"""The dynamic-provider launcher: Pulumi's server, with a wider request pool."""

from __future__ import annotations

import concurrent.futures
import subprocess
import sys
from typing import Any

import pytest

from vlaninfra.providers import serve


def test_the_server_pool_gets_the_workers_and_later_pools_are_left_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []

    def fake_run(name: str, **kw: Any) -> None:  # what pulumi.dynamic's main() does first
        assert name == "pulumi.dynamic" and kw["run_name"] == "__main__"
        made.append(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        made.append(concurrent.futures.ThreadPoolExecutor(max_workers=2))

    monkeypatch.setattr("runpy.run_module", fake_run)
    serve.main(watch_parent=False)  # not pytest's parent
    assert [p._max_workers for p in made] == [serve.WORKERS, 2]
    assert concurrent.futures.ThreadPoolExecutor is type(made[1])
    for p in made:
        p.shutdown()


def test_the_server_starts_and_says_its_port() -> None:
    proc = subprocess.Popen([sys.executable, "-u", "-m", "vlaninfra.providers.serve"],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert int(proc.stdout.readline()) > 0
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_vlaninfra_error_reaches_the_engine_as_its_message_not_a_traceback() -> None:
    """Through the server the engine starts (the launcher's own import line): a provider's
    `VlanInfraError` comes back as its message; the full traceback is kept for bugs."""
    import grpc  # type: ignore[import-untyped]
    from pulumi.dynamic.dynamic import serialize_provider
    from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

    from vlaninfra.providers import ContainerProvider

    launch = "from vlaninfra.providers.serve import main\nmain()\n"
    proc = subprocess.Popen([sys.executable, "-u", "-c", launch], stdout=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        props = {"__provider": serialize_provider(ContainerProvider()), "host": "h1",
                 "name": "web", "owner": "p/s", "config_path": "sites.a.containers[0]",
                 "connection": {"kind": "ssh", "address": "192.0.2.10", "port": 22,
                                "user": "root", "host_key": "ssh-ed25519 AAAA",
                                "key_path": "/nonexistent/id_key", "sudo": False,
                                "python": "python3", "docker_socket": "/run/docker.sock"}}
        struct = provider_pb2.DeleteRequest().properties
        struct.update(props)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provider_pb2_grpc.ResourceProviderStub(channel)
            with pytest.raises(grpc.RpcError) as err:
                stub.Delete(provider_pb2.DeleteRequest(id="x", urn="urn:x", properties=struct),
                            timeout=30)
        details = err.value.details()
        assert "Traceback" not in details
        assert details.startswith("ProviderError: ") and "/nonexistent/id_key" in details
    finally:
        proc.kill()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
