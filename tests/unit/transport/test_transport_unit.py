"""Transport without a host: targets, errors, sessions over fake channels, the zipapp."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import importlib.metadata
import io
import json
import pickle
import shlex
import subprocess
import sys
import threading
import time
import zipfile
from typing import Any

import pytest

import vlaninfra.transport as transport
from tests.unit.transport.fakes import FakeChannel
from vlaninfra.errors import VlanInfraError
from vlaninfra.host import protocol
from vlaninfra.transport import (
    AgentExitedError,
    HostError,
    LocalTarget,
    OutcomeUnknownError,
    SshTarget,
    TransportError,
    agent_for,
    build_bundle,
)
from vlaninfra.transport._bootstrap import BOOTSTRAP, bootstrap_argv
from vlaninfra.transport._session import Session
from vlaninfra.transport._ssh import remote_command

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
SECRET = "-----BEGIN OPENSSH PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END"


def target(**kw: Any) -> SshTarget:
    base: dict[str, Any] = {"private_key": SECRET, "host_key": HOST_KEY}
    return SshTarget("192.0.2.10", **{**base, **kw})


def test_public_names() -> None:
    assert set(transport.__all__) == {
        "Agent", "AgentExitedError", "AuthenticationError", "Bundle", "HostError",
        "HostKeyError", "LocalTarget", "OutcomeUnknownError", "SshTarget", "Target", "TargetError",
        "TransportError", "agent_for",
        "build_bundle", "checking", "close_all", "reset_stats", "stats", "use_broker"}
    assert set(transport.stats()) == {"ssh_connections", "agent_starts", "uploads", "calls",
                                      "requests"}


def test_ssh_target_hides_secrets_and_pickles() -> None:
    t = target(passphrase="hunter2")
    assert "c2VjcmV0" not in repr(t) and "hunter2" not in repr(t)
    assert t.label == "root@192.0.2.10:22"
    assert pickle.loads(pickle.dumps(t)) == t
    assert SshTarget("2001:db8::1", private_key=SECRET, host_key=HOST_KEY).label == (
        "root@[2001:db8::1]:22")


@pytest.mark.parametrize("kw", [{"port": 0}, {"user": "a b"}, {"host_key": "ssh-ed25519"},
                                {"host_key": "ssh-ed25519 !!!"}, {"python": ""}])
def test_ssh_target_validation(kw: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        target(**kw)
    assert "c2VjcmV0" not in str(info.value)


def test_local_target_validation() -> None:
    assert LocalTarget(netns="vx-h1").label == "local netns vx-h1"
    with pytest.raises(ValueError):
        LocalTarget(netns="../etc")


def test_remote_command_is_fixed_words_and_quoted() -> None:
    bundle = build_bundle()
    boot = shlex.quote(BOOTSTRAP)
    assert remote_command(target(), bundle) == (
        f"python3 -I -c {boot} .cache/vlaninfra/{bundle.name} {bundle.sha256}")
    cmd = remote_command(target(sudo=True, python="/opt/my python/bin/python3; rm -rf /"),
                         bundle)
    assert cmd == (f"sudo -n '/opt/my python/bin/python3; rm -rf /' -I -c {boot} "
                   f".cache/vlaninfra/{bundle.name} {bundle.sha256}")
    assert shlex.split(cmd)[5] == BOOTSTRAP


def test_agent_for_caches_by_identity_without_connecting() -> None:
    a = agent_for(target())
    assert agent_for(target()) is a
    assert agent_for(target(port=2222)) is not a
    assert agent_for(target(private_key=SECRET + "x")) is a  # the key is not identity
    assert agent_for(LocalTarget(netns="x1")) is agent_for(LocalTarget(netns="x1"))
    transport.close_all()
    assert agent_for(target()) is not a


def test_errors_are_structured_and_catchable_as_builtins() -> None:
    e = HostError("network 'lan' already exists", op="docker.network.create",
                  host="root@192.0.2.10:22", errno=errno.EEXIST, details={"id": "abc"})
    assert isinstance(e, VlanInfraError) and isinstance(e, OSError)
    assert (e.errno, e.errname, e.op, e.details) == (errno.EEXIST, "EEXIST",
                                                      "docker.network.create", {"id": "abc"})
    assert str(e) == ("docker.network.create on root@192.0.2.10:22 failed: [EEXIST] "
                      "network 'lan' already exists")
    back = pickle.loads(pickle.dumps(e))
    assert (back.errno, back.op, back.host, back.details) == (e.errno, e.op, e.host, e.details)
    t = AgentExitedError("gone", host="h")
    assert isinstance(t, TransportError) and isinstance(t, ConnectionError)
    assert isinstance(pickle.loads(pickle.dumps(t)), AgentExitedError)


def test_session_matches_out_of_order_responses_by_id() -> None:
    def answer(ch: FakeChannel) -> None:
        held = []
        for req in ch.requests():
            held.append(req)
            if len(held) == 3:
                for r in reversed(held):  # answer in reverse order, in one chunk
                    ch.out.put(protocol.encode(protocol.success(r["id"], r["args"]["n"])))
                held = []

    ch = FakeChannel(answer)
    s = Session(ch, "fake")
    s.wait_ready(5)
    results: dict[int, Any] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(
        n, s.call("echo", {"n": n}, 5))) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n for n in range(6)}
    s.close()


def test_session_maps_error_responses_to_host_error() -> None:
    def answer(ch: FakeChannel) -> None:
        for req in ch.requests():
            ch.out.put(protocol.encode(protocol.failure(
                req["id"], errno.EBUSY, "EBUSY", "network 'lan' has containers attached: web",
                "OpError", {"containers": ["web"]})))

    s = Session(FakeChannel(answer), "root@192.0.2.10:22")
    s.wait_ready(5)
    with pytest.raises(HostError) as info:
        s.call("docker.network.remove", {"name": "lan"}, 5)
    e = info.value
    assert (e.errno, e.op, e.host, e.details) == (
        errno.EBUSY, "docker.network.remove", "root@192.0.2.10:22", {"containers": ["web"]})
    s.close()


def test_session_fails_pending_calls_when_the_agent_dies() -> None:
    ch = FakeChannel(lambda ch: None)
    s = Session(ch, "fake")
    s.wait_ready(5)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            s.call("slow", {}, 30)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.2)
    began = time.monotonic()
    ch.die(b"Traceback...\nMemoryError: boom\n")
    for t in threads:
        t.join(5)
    assert time.monotonic() - began < 5
    assert len(errors) == 3 and all(isinstance(e, OutcomeUnknownError) for e in errors)
    msg = str(errors[0])
    assert msg.startswith("outcome unknown on fake: slow got no answer: the agent exited")
    assert "status 3" in msg and "MemoryError: boom" in msg
    assert msg.endswith("the next `pulumi up` (or `pulumi refresh`) reconciles it")
    assert not s.alive
    with pytest.raises(AgentExitedError):
        s.call("ping", {}, 1)


def test_session_timeout_and_protocol_mismatch() -> None:
    s = Session(FakeChannel(lambda ch: None), "fake")
    s.wait_ready(5)
    with pytest.raises(TransportError, match="no answer within"):
        s.call("slow", {}, 0.2)
    s.close()
    bad = Session(FakeChannel(None, banner={"ready": True, "protocol": 99}), "fake")
    with pytest.raises(TransportError, match="protocol 99"):
        bad.wait_ready(5)


def test_session_rejects_unserialisable_args() -> None:
    s = Session(FakeChannel(lambda ch: None), "fake")
    s.wait_ready(5)
    with pytest.raises(TypeError):
        s.call("x", {"a": object()}, 1)
    s.close()


def test_zipapp_contents_and_determinism() -> None:
    bundle = build_bundle()
    build_bundle.cache_clear()
    again = build_bundle()
    assert again.sha256 == bundle.sha256 and again.data == bundle.data
    assert bundle.name == f"agent-{bundle.sha256[:12]}.pyz"
    names = zipfile.ZipFile(io.BytesIO(bundle.data)).namelist()
    for required in ("__main__.py", "vlaninfra/__init__.py", "vlaninfra/host/agent.py",
                     "vlaninfra/host/protocol.py", "vlaninfra/host/docker_api.py",
                     "pyroute2/__init__.py", "vlaninfra_agent_manifest.json"):
        assert required in names
    assert not [n for n in names if n.startswith(("docker/", "requests/", "urllib3/"))]
    assert not [n for n in names if n.endswith(".so") or "__pycache__" in n]
    # each module ships compiled (unchecked-hash pyc beside it: no compiling at agent start)
    assert {n + "c" for n in names if n.endswith(".py")} == {n for n in names if n.endswith(".pyc")}
    assert not [n for n in names if n.startswith(("vlaninfra/transport", "paramiko",
                                                  "pulumi"))]
    assert len(bundle.data) < 2_000_000


def test_zipapp_runs_on_the_system_python_outside_the_venv(tmp_path: Any) -> None:
    bundle = build_bundle()
    path = tmp_path / bundle.name
    path.write_bytes(bundle.data)
    requests = b"".join(protocol.encode(protocol.request(i, op, args)) for i, op, args in [
        (1, "hello", {"docker_socket": "/nonexistent/docker.sock"}),
        (2, "link.get", {"name": "lo"}),
        (3, "docker.image.exists", {"name": "busybox"}),  # the Engine API client ran
    ])
    proc = subprocess.run(bootstrap_argv("/usr/bin/python3", str(path), bundle.sha256),
                          input=requests, capture_output=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr.decode()
    out = {m["id"]: m for m in map(json.loads, proc.stdout.splitlines())}
    assert out[1]["result"]["protocol"] == protocol.PROTOCOL_VERSION
    assert out[2]["result"]["name"] == "lo" and "127.0.0.1/8" in out[2]["result"]["addresses"]
    assert out[3]["error"]["errno"] == errno.ECONNREFUSED  # no daemon at that socket
    assert b"Traceback" not in proc.stderr


def test_the_bundled_pyroute2_imports_only_iproute_and_gives_every_name_on_use(
        tmp_path: Any) -> None:
    bundle = build_bundle()
    path = tmp_path / bundle.name
    path.write_bytes(bundle.data)
    code = (f"import sys; sys.path.insert(0, {str(path)!r})\n"
            "from pyroute2 import IPRoute\n"
            "import pyroute2\n"
            "with IPRoute() as ipr:\n"
            "    print([x.get('ifname') for x in ipr.get_links(1)], len(ipr.get_routes()))\n"
            "print(sorted(m for m in sys.modules if m.startswith(('pyroute2.ndb', "
            "'pyroute2.ipdb', 'pyroute2.plan9', 'pyroute2._package_init'))))\n"
            "print(pyroute2.__version__, pyroute2.NDB.__module__, pyroute2.NetlinkError)\n"
            "try:\n    pyroute2.no_such_name\nexcept AttributeError as e:\n    print(e)\n")
    proc = subprocess.run(["/usr/bin/python3", "-I", "-c", code], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("['lo'] ")
    assert out[1] == "[]"  # netlink used, and still none of what the package's __init__ loads
    version, ndb, error = out[2].split(" ", 2)
    assert version == importlib.metadata.version("pyroute2") and ndb == "pyroute2.ndb.main"
    assert "NetlinkError" in error
    assert out[3] == "module 'pyroute2' has no attribute 'no_such_name'"


def test_local_agent_end_to_end_with_the_system_python() -> None:
    transport.reset_stats()
    agent = agent_for(LocalTarget(python="/usr/bin/python3"))
    try:
        assert agent.call("link.exists", name="lo") is True
        began = time.monotonic()
        threads = [threading.Thread(target=agent.call, args=("debug.sleep",),
                                    kwargs={"seconds": 0.5}) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert time.monotonic() - began < 2.5  # concurrent on the agent's thread pool
        # the first start finds no archive with this sha256 (bootstrap: stale), uploads, again
        assert transport.stats()["agent_starts"] == 1 + transport.stats()["uploads"]
        transport.close_all()
        transport.reset_stats()
        agent_for(LocalTarget(python="/usr/bin/python3")).call("ping")
        assert transport.stats()["agent_starts"] == 1 and transport.stats()["uploads"] == 0
    finally:
        transport.close_all()


def _sleeper() -> subprocess.Popen[bytes]:
    """A process that never reads its stdin."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def test_process_channel_send_times_out_and_abort_stops_a_stuck_write() -> None:
    from vlaninfra.transport._local import ProcessChannel

    proc = _sleeper()
    try:
        channel = ProcessChannel(proc, send_timeout=0.5)
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            channel.send(b"x" * 4_000_000)  # far more than a pipe buffer
        assert time.monotonic() - start < 2  # bound: timeout 0.5 s + slack
        errors: list[BaseException] = []
        channel = ProcessChannel(proc, send_timeout=60)  # its pipe is full already
        def send() -> None:
            try:
                channel.send(b"x" * 4_000_000)
            except OSError as exc:
                errors.append(exc)

        thread = threading.Thread(target=send)
        thread.start()
        time.sleep(0.3)
        start = time.monotonic()
        channel.abort()  # must not wait for the stuck write
        thread.join(2)
        assert not thread.is_alive() and time.monotonic() - start < 1  # bound: 0.2 s slices
        assert isinstance(errors[0], BrokenPipeError)
    finally:
        proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            with contextlib.suppress(OSError):
                pipe.close()  # type: ignore[union-attr]


def test_zipapp_cache_is_private_and_a_cut_archive_is_rebuilt(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = tmp_path / "vlaninfra" / "agent"

    def fresh() -> bytes:
        build_bundle.cache_clear()
        data = build_bundle().data
        assert zipfile.ZipFile(io.BytesIO(data)).testzip() is None
        return data

    try:
        first = fresh()
        [stored] = cache.glob("bundle-*.pyz")
        assert stored.read_bytes() == first and oct(cache.stat().st_mode)[-3:] == "700"
        assert stored.name.endswith(f"-{hashlib.sha256(first).hexdigest()[:16]}.pyz")
        stored.write_bytes(first[:1000])  # cut short (a crash while it was written)
        again = fresh()  # rebuilt, the cut one removed
        assert [p.read_bytes() for p in cache.glob("bundle-*.pyz")] == [again]
        # A planted archive under a valid name in a directory others may write to is unread.
        planted = b"planted"
        stored.with_name(stored.name.rsplit("-", 1)[0] + "-"
                         + hashlib.sha256(planted).hexdigest()[:16] + ".pyz").write_bytes(planted)
        for p in cache.glob("bundle-*.pyz"):
            if p.read_bytes() != planted:
                p.unlink()
        cache.chmod(0o777)
        fresh()
    finally:
        build_bundle.cache_clear()
