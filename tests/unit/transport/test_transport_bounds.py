"""Bounded failure without a host: deadlines, dead peers, slots, protocol abuse, the
bootstrap's checks and the agent's start messages (fake channels and connectors)."""

from __future__ import annotations

import logging
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.unit.transport.fakes import FakeChannel
from vlaninfra.host import protocol
from vlaninfra.transport import (
    AgentExitedError,
    LocalTarget,
    OutcomeUnknownError,
    TransportError,
)
from vlaninfra.transport._agent import Agent
from vlaninfra.transport._bootstrap import REFUSED, STALE, bootstrap_argv
from vlaninfra.transport._session import STDERR_LINE, Session
from vlaninfra.transport._zipapp import Bundle, build_bundle

RECONCILE = "the next `pulumi up` (or `pulumi refresh`) reconciles it"


def until(condition: Any, bound: float = 5.0) -> None:
    """Waits for ``condition()`` (a step another thread takes), failing after ``bound`` s: a
    test never guesses how long a thread takes to get somewhere on a loaded machine."""
    end = time.monotonic() + bound
    while not condition():
        assert time.monotonic() < end, f"not within {bound}s: {condition}"
        time.sleep(0.005)


def test_deadline_aborts_the_session_and_every_pending_call_is_outcome_unknown() -> None:
    seen: list[str] = []

    def agent(ch: FakeChannel) -> None:
        for req in ch.requests():
            seen.append(req["op"])
            if req["op"] == "ping":
                ch.out.put(protocol.encode(protocol.success(req["id"], {"pid": 1})))

    ch = FakeChannel(agent)
    s = Session(ch, "root@h:22", peer_timeout=5, ping_interval=0.1)
    s.wait_ready(5)
    other: list[BaseException] = []

    def slow() -> None:
        try:
            s.call("docker.container.create", {}, 30)
        except BaseException as exc:
            other.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    until(lambda: "docker.container.create" in seen)  # pending when the deadline aborts
    began = time.monotonic()
    with pytest.raises(OutcomeUnknownError) as info:
        s.call("shim.ensure", {"name": "shim0"}, 0.5)
    assert 0.4 < time.monotonic() - began < 2
    assert str(info.value) == (
        f"outcome unknown on root@h:22: shim.ensure got no answer within 0.5s; {RECONCILE}")
    assert info.value.op == "shim.ensure"
    t.join(2)
    assert len(other) == 1 and isinstance(other[0], OutcomeUnknownError)
    assert "docker.container.create" in str(other[0])
    assert ch.aborted and s.aborted and not s.alive
    with pytest.raises(AgentExitedError):  # never reused; nothing sent
        s.call("ping", {}, 1)


def test_a_silent_peer_is_detected_within_the_bound_and_pinged_first() -> None:
    seen: list[str] = []

    def silent(ch: FakeChannel) -> None:
        for req in ch.requests():
            seen.append(req["op"])

    ch = FakeChannel(silent)
    s = Session(ch, "root@h:22", peer_timeout=0.8, ping_interval=0.2)
    s.wait_ready(5)
    time.sleep(1.0)  # idle: no calls pending, no pings, no verdict
    assert s.alive and seen == []
    began = time.monotonic()
    with pytest.raises(OutcomeUnknownError) as info:
        s.call("route.ensure", {}, 60)
    took = time.monotonic() - began
    assert took < 0.8 + 1.0, took
    assert "went silent" in str(info.value) and str(info.value).endswith(RECONCILE)
    assert "ping" in seen and ch.aborted


def test_pings_keep_a_long_op_alive() -> None:
    def slow_op(ch: FakeChannel) -> None:
        for req in ch.requests():
            if req["op"] == "ping":
                ch.out.put(protocol.encode(protocol.success(req["id"], {})))
            else:
                threading.Timer(1.5, lambda r=req: ch.out.put(protocol.encode(
                    protocol.success(r["id"], "done")))).start()

    # The op outlasts peer_timeout; a ping's round trip may take up to 0.75 s under load.
    s = Session(FakeChannel(slow_op), "h", peer_timeout=1.0, ping_interval=0.25)
    s.wait_ready(5)
    assert s.call("docker.container.start", {}, 10) == "done"
    assert s.alive
    s.close()


def test_more_calls_than_slots_queue_and_deadlines_start_with_the_slot() -> None:
    lock = threading.Lock()
    state = {"out": 0, "max": 0}
    hold = threading.Event()

    def agent(ch: FakeChannel) -> None:
        def run(req: dict[str, Any]) -> None:
            if req["args"].get("hold"):
                hold.wait(10)
            else:
                time.sleep(0.3)
            with lock:
                state["out"] -= 1
            ch.out.put(protocol.encode(protocol.success(req["id"], req["args"]["n"])))

        for req in ch.requests():
            with lock:
                state["out"] += 1
                state["max"] = max(state["max"], state["out"])
            threading.Thread(target=run, args=(req,)).start()

    s = Session(FakeChannel(agent), "h", max_in_flight=2)
    s.wait_ready(5)
    results: dict[int, Any] = {}
    threads = [threading.Thread(target=lambda n=n: results.__setitem__(
        n, s.call("debug.sleep", {"n": n}, 5.0))) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 6 calls of 0.3 s through 2 slots take ~0.9 s; a deadline also bounds the slot wait
    assert results == {n: n for n in range(6)} and state["max"] == 2
    busy = [threading.Thread(target=s.call, args=("debug.sleep", {"n": 0, "hold": True}, 10))
            for _ in "ab"]
    for t in busy:
        t.start()
    until(lambda: state["out"] == 2)  # both slots taken, held until `hold` is set
    try:
        with pytest.raises(TransportError, match=r"stayed busy with other ops for 0\.1s; "
                           "nothing was sent") as info:
            s.call("debug.sleep", {"n": 9}, 0.1)
    finally:
        hold.set()
    assert not isinstance(info.value, OutcomeUnknownError)
    for t in busy:
        t.join()
    s.close()


def test_non_json_before_the_banner_points_at_login_output() -> None:
    ch = FakeChannel(None, banner=None)
    ch.out = type(ch.out)()
    ch.out.put(b"Welcome to host1!\n")
    s = Session(ch, "deploy@h:22")
    with pytest.raises(AgentExitedError) as info:
        s.wait_ready(5)
    msg = str(info.value)
    assert "deploy@h:22 wrote a non-protocol line b'Welcome to host1!'" in msg
    assert "~/.bashrc" in msg


def test_non_json_or_an_oversized_line_ends_the_session() -> None:
    for junk, expect in ((b"garbage\n", "non-protocol line"),
                         (b"x" * 5000, "longer than 4096 bytes")):
        ch = FakeChannel(lambda ch: None)
        s = Session(ch, "h", max_line=4096)
        s.wait_ready(5)
        errors: list[BaseException] = []

        def call(s: Session = s, errors: list[BaseException] = errors) -> None:
            try:
                s.call("link.get", {}, 30)
            except OutcomeUnknownError as exc:
                errors.append(exc)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(0.1)
        ch.out.put(junk)
        t.join(5)
        assert expect in str(errors[0]) and ch.aborted


def test_unknown_ids_are_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    def agent(ch: FakeChannel) -> None:
        for req in ch.requests():
            ch.out.put(protocol.encode(protocol.success(req["id"] + 1000, "stray")))
            ch.out.put(protocol.encode(protocol.success(req["id"], "mine")))

    s = Session(FakeChannel(agent), "h")
    s.wait_ready(5)
    with caplog.at_level(logging.WARNING, "vlaninfra.transport"):
        assert s.call("ping", {}, 5) == "mine"
    assert "answered unknown request 1001; ignored" in caplog.text
    s.close()


def test_stderr_flood_keeps_a_bounded_tail_and_rate_limits_logging(
        caplog: pytest.LogCaptureFixture) -> None:
    ch = FakeChannel(lambda ch: None)
    with caplog.at_level(logging.INFO, "vlaninfra.agent"):
        s = Session(ch, "h")
        s.wait_ready(5)
        for i in range(2000):
            ch.err.put(f"noise {i}\n".encode())
        ch.err.put(b"y" * 3_000_000)  # one endless line, no newline
        ch.err.put(b"\nlast words\n")
        ch.die()
        until(lambda: s.stderr_tail()[-1:] == ["last words"])
    tail = s.stderr_tail()
    assert len(tail) <= 20 and all(len(line) <= STDERR_LINE for line in tail)
    assert tail[-1] == "last words"
    assert len([r for r in caplog.records if r.name == "vlaninfra.agent"]) <= 60


# -- the agent's start through a fake connector ---------------------------------------------


class ScriptedChannel(FakeChannel):
    def __init__(self, status: int | None, stderr: bytes = b"", **kw: Any) -> None:
        super().__init__(**kw)
        self.status = status
        if status is not None:  # exits at once, like a refusing bootstrap
            self.out = type(self.out)()
            self.die(stderr)

    def exit_status(self) -> int | None:
        return self.status


def hello_agent(ch: FakeChannel) -> None:
    for req in ch.requests():
        result = {"pid": 7, "python": "3.11"} if req["op"] in ("hello", "ping") else None
        if req["op"] == "hang":
            continue
        ch.out.put(protocol.encode(protocol.success(req["id"], result)))


class FakeConnector:
    def __init__(self, *channels: FakeChannel) -> None:
        self.channels = list(channels)
        self.started = 0
        self.uploads = 0
        self.closed = 0
        self.step = "starting the agent"

    def start(self, bundle: Bundle) -> FakeChannel:
        self.started += 1
        return self.channels.pop(0)

    def upload(self, bundle: Bundle) -> None:
        self.uploads += 1

    def abort(self) -> None:
        self.closed += 1

    def close(self) -> None:
        self.closed += 1


def test_stale_archive_is_uploaded_then_started() -> None:
    conn = FakeConnector(ScriptedChannel(STALE), FakeChannel(hello_agent))
    agent = Agent(LocalTarget(), conn)
    assert agent.call("ping") == {"pid": 7, "python": "3.11"}
    assert (conn.started, conn.uploads) == (2, 1)
    agent.close()


def test_outcome_unknown_drops_the_connection_and_the_next_call_reconnects() -> None:
    conn = FakeConnector(FakeChannel(hello_agent), FakeChannel(hello_agent))
    agent = Agent(LocalTarget(), conn)
    agent.call("ping")
    agent.op_deadline = 0.3  # for the hanging op only: the handshakes and pings get 30 s
    with pytest.raises(OutcomeUnknownError):
        agent.call("hang")
    agent.op_deadline = 30.0
    assert conn.closed >= 1
    assert agent.call("ping")["pid"] == 7 and conn.started == 2
    agent.close()


def test_a_session_that_ended_before_sending_is_retried_once_on_a_fresh_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    conn = FakeConnector(*(FakeChannel(hello_agent) for _ in range(4)))
    agent = Agent(LocalTarget(), conn)
    agent.call("ping")
    real = Session.call
    ended: set[int] = {id(agent._session)}  # sessions that die just before the next send

    def call(self: Session, op: str, args: Any, deadline: float) -> Any:
        if op != "hello" and (not ended or id(self) in ended):
            raise AgentExitedError("agent session to local ended: its output ended",
                                   host="local")
        return real(self, op, args, deadline)

    monkeypatch.setattr(Session, "call", call)
    assert agent.call("ping")["pid"] == 7 and conn.started == 2  # nothing was sent: retried
    ended.clear()  # now every session dies before the send
    with pytest.raises(AgentExitedError):
        agent.call("ping")
    assert conn.started == 3  # one retry, no more
    agent.close()


def test_close_aborts_a_start_under_way_instead_of_waiting_for_it() -> None:
    """A warm-up's start on a host the run never needed must not hold the provider's exit
    (`close_all` at exit) for a connect timeout."""
    aborted = threading.Event()

    class Stuck(FakeConnector):
        def start(self, bundle: Bundle) -> FakeChannel:
            self.started += 1
            aborted.wait(30)
            raise OSError("connection aborted")

        def abort(self) -> None:
            aborted.set()

    agent = Agent(LocalTarget(), Stuck())
    failed: list[BaseException] = []

    def start() -> None:
        try:
            agent.start()
        except BaseException as exc:
            failed.append(exc)

    starter = threading.Thread(target=start)
    starter.start()
    until(lambda: agent._starting)
    began = time.monotonic()
    agent.close()
    starter.join(5)
    assert time.monotonic() - began < 5 and aborted.is_set() and failed


def test_deadline_classes_and_env_knobs(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = Agent(LocalTarget(), FakeConnector())
    assert agent.deadline_for("link.get") == 30 and agent.deadline_for("batch") == 30
    assert agent.deadline_for("docker.container.create") == 120
    monkeypatch.setenv("VLANINFRA_DOCKER_DEADLINE", "7.5")
    monkeypatch.setenv("VLANINFRA_OP_DEADLINE", "3")
    agent = Agent(LocalTarget(), FakeConnector())
    assert (agent.deadline_for("docker.network.remove"), agent.deadline_for("ping")) == (7.5, 3)
    monkeypatch.setenv("VLANINFRA_PEER_TIMEOUT", "never")
    with pytest.raises(ValueError, match="VLANINFRA_PEER_TIMEOUT"):
        Agent(LocalTarget(), FakeConnector())


@pytest.mark.parametrize("sudo,status,stderr,expect", [
    (True, 1, b"sudo: a password is required\n",
     "sudo on local asks for a password (or refuses): allow passwordless sudo for python3"),
    (False, 127, b"bash: line 1: python3: command not found\n",
     "'python3' was not found on local's PATH: install Python >= 3.10"),
    (False, REFUSED, b"vlaninfra bootstrap: /h/.cache/vlaninfra is writable by group or "
     b"others (mode 0777); refusing\n",
     "refusing to start the agent on local: vlaninfra bootstrap: /h/.cache/vlaninfra is "
     "writable by group or others (mode 0777)"),
])
def test_start_errors_say_what_to_do(sudo: bool, status: int, stderr: bytes,
                                     expect: str) -> None:
    agent = Agent(LocalTarget(python="python3", sudo=sudo),
                  FakeConnector(ScriptedChannel(status, stderr)))
    with pytest.raises(AgentExitedError) as info:
        agent.call("ping")
    assert expect in str(info.value)


def test_a_stuck_start_is_bounded() -> None:
    class Stuck(FakeConnector):
        def __init__(self) -> None:
            super().__init__()
            self.gate = threading.Event()

        def start(self, bundle: Bundle) -> FakeChannel:
            self.step = "uploading the agent"
            self.gate.wait(10)
            raise TransportError("connection closed", host="local")

        def abort(self) -> None:
            self.gate.set()

    agent = Agent(LocalTarget(), Stuck())
    agent.start_deadline = 0.5
    began = time.monotonic()
    with pytest.raises(TransportError) as info:
        agent.call("ping")
    assert time.monotonic() - began < 2
    assert "within 0.5s (stuck while uploading the agent)" in str(info.value)


# -- the bootstrap, run for real on this machine ------------------------------------------


def tampered(size: int, mark: str | None = None) -> bytes:
    """A zipapp of exactly ``size`` bytes that writes ``mark`` (default: ``$MARK``) when it
    runs, and would then answer like an agent claiming any hash it likes."""
    import io
    import zipfile

    where = repr(mark) if mark else 'os.environ["MARK"]'
    main = f"import os\nopen({where}, 'w').write('ran')\n"

    def build(pad: int) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("__main__.py", main)
            zf.writestr("pad", b"p" * pad)
        return buf.getvalue()

    data = build(size - len(build(0)))
    assert len(data) == size
    return data


def _boot(path: Path, sha: str, mark: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "MARK": str(mark)}
    return subprocess.run(bootstrap_argv("python3", str(path), sha), input=b"",
                          capture_output=True, timeout=60, env=env, cwd="/")


def test_bootstrap_runs_only_the_checked_bytes(tmp_path: Path) -> None:
    bundle = build_bundle()
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    archive = cache / bundle.name
    mark = tmp_path / "mark"

    assert _boot(archive, bundle.sha256, mark).returncode == STALE  # missing

    bad = tampered(len(bundle.data))
    archive.write_bytes(bad)  # another archive (could claim any hash about itself)
    assert _boot(archive, bundle.sha256, mark).returncode == STALE and not mark.exists()
    import hashlib
    assert _boot(archive, hashlib.sha256(bad).hexdigest(), mark).returncode == 0
    assert mark.read_text() == "ran"  # the same bytes with their own hash do run
    mark.unlink()

    archive.unlink()
    real = tmp_path / "elsewhere.pyz"
    real.write_bytes(bad)
    archive.symlink_to(real)
    proc = _boot(archive, hashlib.sha256(bad).hexdigest(), mark)
    assert proc.returncode == REFUSED and not mark.exists()
    assert b"is a symlink; refusing to follow it" in proc.stderr
    archive.unlink()

    archive.write_bytes(bad)
    sha = hashlib.sha256(bad).hexdigest()
    cache.chmod(0o777)
    proc = _boot(archive, sha, mark)
    assert proc.returncode == REFUSED and not mark.exists()
    assert f"{cache} is writable by group or others (mode 0777)".encode() in proc.stderr
    cache.chmod(0o700)
    archive.chmod(0o666)
    assert _boot(archive, sha, mark).returncode == REFUSED
    archive.chmod(0o600)
    if os.geteuid() == 0:
        os.chown(cache, 65534, 65534)
        proc = _boot(archive, sha, mark)
        assert proc.returncode == REFUSED and not mark.exists()
        assert b"is owned by uid 65534, not by root or the login user" in proc.stderr
        os.chown(cache, 0, 0)
    assert _boot(archive, sha, mark).returncode == 0 and mark.exists()


def test_bootstrap_prunes_archives_no_start_used_for_days(tmp_path: Path) -> None:
    import hashlib

    from vlaninfra.transport._bootstrap import KEEP_DAYS

    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    old = time.time() - (KEEP_DAYS + 1) * 86400

    def archive(i: int) -> tuple[Path, str]:
        data = tampered(2000 + i)  # runs: writes $MARK
        sha = hashlib.sha256(data).hexdigest()
        path = cache / f"agent-{sha[:12]}.pyz"
        path.write_bytes(data)
        return path, sha

    def aged(path: Path, data: bytes | None = b"x") -> Path:
        if data is not None:
            path.write_bytes(data)
        os.utime(path, (old, old), follow_symlinks=False)
        return path

    current, sha = archive(0)
    aged(current, None)  # the one started is kept even if unused for long (and marked used)
    stale = [aged(archive(i)[0], None) for i in (1, 2)]
    upload = aged(cache / f".{stale[0].name}.0123abcd.tmp")  # an upload cut off long ago
    recent = archive(3)[0]  # another version's, started within the last days
    foreign = [aged(cache / "notes.pyz"), aged(cache / "agent-0123456789ab.pyz.bak")]
    link = cache / "agent-aaaaaaaaaaaa.pyz"
    link.symlink_to(recent)
    aged(link, None)
    mark = tmp_path / "mark"
    assert _boot(current, sha, mark).returncode == 0 and mark.exists()
    assert current.exists() and current.stat().st_mtime > time.time() - 60
    assert not any(p.exists() for p in [*stale, upload])
    assert recent.exists() and all(p.exists() for p in foreign) and link.is_symlink()

    # runs starting side by side, each pruning: every one starts (a run whose archive was
    # removed under it exits STALE, and the controller uploads it again)
    runs = [archive(10 + i) for i in range(6)]
    for path, _ in runs:
        aged(path, None)
    procs = [subprocess.Popen(bootstrap_argv("python3", str(path), s), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              env={**os.environ, "MARK": str(tmp_path / f"m{i}")}, cwd="/")
             for i, (path, s) in enumerate(runs)]
    errors = [p.communicate(timeout=60)[1] for p in procs]
    codes = [p.returncode for p in procs]
    assert set(codes) <= {0, STALE}, errors
    assert all(path.exists() for (path, _), code in zip(runs, codes, strict=True) if code == 0)


def test_bootstrap_runs_from_a_cloexec_memfd_or_a_safe_dir_never_tmpdir(
        tmp_path: Path) -> None:
    import hashlib
    import io
    import zipfile

    from vlaninfra.transport._bootstrap import BOOTSTRAP

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:  # reports where it runs from and its fd's flags
        zf.writestr("__main__.py", (
            "import fcntl, os, sys\nrun = sys.argv[0]\nflags = ''\n"
            "if run.startswith('/proc/self/fd/'):\n"
            "    flags = fcntl.fcntl(int(run.rsplit('/', 1)[1]), fcntl.F_GETFD)\n"
            "open(os.environ['MARK'], 'w').write(f'{run} {flags}')\n"))
    archive = tmp_path / "agent.pyz"
    archive.write_bytes(buf.getvalue())
    tmp_path.chmod(0o700)
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    mark = tmp_path / "mark"
    evil = tmp_path / "evil-tmp"
    evil.mkdir()
    env = {**os.environ, "MARK": str(mark), "TMPDIR": str(evil)}
    for prelude in ("", "import os\ndel os.memfd_create\n"):  # memfd, then the fallback
        proc = subprocess.run(["python3", "-I", "-c", prelude + BOOTSTRAP, str(archive), sha],
                              input=b"", capture_output=True, timeout=60, env=env, cwd="/")
        assert proc.returncode == 0, proc.stderr
        run, _, flags = mark.read_text().partition(" ")
        if prelude:
            assert run.startswith(("/run/vlaninfra-agent-", "/tmp/vlaninfra-agent-")), run
        else:
            assert run.startswith("/proc/self/fd/") and int(flags) & 1  # FD_CLOEXEC
        mark.unlink()
    assert not any(evil.iterdir())


def test_callers_waiting_on_a_failed_start_share_its_verdict() -> None:
    class Unreachable(FakeConnector):
        def start(self, bundle: Bundle) -> FakeChannel:
            self.started += 1
            time.sleep(1.0)  # every caller's thread is started and waiting by then
            raise TransportError("cannot connect to h: timed out after 15s", host="h")

    conn = Unreachable()
    agent = Agent(LocalTarget(), conn)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            agent.call("ping")
        except TransportError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert len(errors) == 5 and conn.started == 1  # one attempt, not one per caller
    assert all("timed out after 15s" in str(e) for e in errors)
    with pytest.raises(TransportError):
        agent.call("ping")  # a later call tries again
    assert conn.started == 2
