"""The engine helper's and `tools/pulumi`'s rules: private local state, the lab passphrase only for
lab stacks, committed salts (running a documented stack leaves the tree clean), and `demo`
dropping a stack's state only when the lab was rebuilt under it."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from vlaninfra.cli_demo import lab_rebuilt
from vlaninfra.engine import (
    LAB_PASSPHRASE,
    Engine,
    is_lab_stack,
    make_private,
    plaintext_keys,
    project_root,
)
from vlaninfra.errors import VlanInfraError

ROOT = project_root()
STACKS = sorted((ROOT / "stacks").glob("Pulumi.*.yaml"))
LAB_STACKS = {"lab", "lab-dualstack", "lab-ipvlan", "lab-vlan"}


def _name(path: Path) -> str:
    return path.name.removeprefix("Pulumi.").removesuffix(".yaml")


@pytest.mark.parametrize("path", STACKS, ids=_name)
def test_lab_stacks_commit_their_salt_and_plan_only_stacks_are_not_lab_stacks(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    assert is_lab_stack(path) == (_name(path) in LAB_STACKS)
    # a lab stack's first use writes no salt (it is committed); other stacks need a passphrase
    # of their own, so nothing documented initializes them
    assert ("encryptionsalt" in doc) == (_name(path) in LAB_STACKS)


@pytest.fixture
def no_passphrase(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE", "PULUMI_BACKEND_URL",
                "PULUMI_HOME"):
        monkeypatch.delenv(key, raising=False)


def _project(tmp_path: Path, stack: str, sites: dict[str, Any]) -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    doc = {"config": {"vlaninfra:sites": sites}}
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(doc))
    return tmp_path


LAB_SITE = {"a": {"inventory": "lab", "lan": {"subnet": "192.0.2.0/24"}}}
REAL_SITE = {"a": {"lan": {"subnet": "192.0.2.0/24"},
                   "hosts": [{"name": "h1", "ssh": {"address": "203.0.113.9"}}]}}


@pytest.mark.usefixtures("no_passphrase")
def test_the_lab_passphrase_is_only_for_lab_stacks(tmp_path: Path) -> None:
    engine = Engine(ROOT, backend=tmp_path / "state" / "backend")
    assert engine.env("lab")["PULUMI_CONFIG_PASSPHRASE"] == LAB_PASSPHRASE
    (tmp_path / "p").mkdir()
    project = _project(tmp_path / "p", "prod", REAL_SITE)
    with pytest.raises(VlanInfraError, match=r"stack prod is not a lab stack .*set "
                       r"PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE"):
        engine.env("prod", project)
    with pytest.raises(VlanInfraError, match="stack static-pool is not a lab stack"):
        engine.env("static-pool")
    mixed = {**LAB_SITE, "b": REAL_SITE["a"]}
    with pytest.raises(VlanInfraError, match="stack mixed is not a lab stack"):
        engine.env("mixed", _project(project, "mixed", mixed))
    assert "PULUMI_CONFIG_PASSPHRASE" not in engine.env(None)  # e.g. `stack ls`


@pytest.mark.usefixtures("no_passphrase")
def test_a_passphrase_the_user_set_or_the_caller_chose_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path, "prod", REAL_SITE)
    assert Engine(ROOT, tmp_path / "b", passphrase="p1").env("prod", project)[
        "PULUMI_CONFIG_PASSPHRASE"] == "p1"
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE_FILE", str(tmp_path / "pass"))
    env = Engine(ROOT, tmp_path / "b").env("prod", project)
    assert "PULUMI_CONFIG_PASSPHRASE" not in env
    assert Engine(ROOT, tmp_path / "b").env("lab").get("PULUMI_CONFIG_PASSPHRASE") is None


PEM = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE\n-----END OPENSSH PRIVATE KEY-----"


def test_an_update_of_a_stack_with_a_plaintext_key_is_refused_before_pulumi_runs(
    tmp_path: Path,
) -> None:
    sites = {"a": {"hosts": [{"name": "h1", "ssh": {"address": "203.0.113.9",
                                                     "private_key_config": "k1"}}]}}
    doc = {"config": {"vlaninfra:sites": sites, "vlaninfra:k1": "not a key yet",
                      "vlaninfra:old": PEM, "vlaninfra:k2": {"secure": "v1:abc"}}}
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump(doc))
    assert plaintext_keys(tmp_path / "Pulumi.prod.yaml") == ["vlaninfra:k1", "vlaninfra:old"]
    engine = Engine(ROOT, backend=tmp_path / "b", passphrase="p")
    with pytest.raises(VlanInfraError) as err:
        engine.run("prod", "up", "--yes", cwd=tmp_path)
    text = str(err.value)
    assert text.startswith("stack prod: config vlaninfra:k1, vlaninfra:old holds an SSH private "
                           "key in plain text, which the engine would copy into the update's "
                           "history; nothing was run")
    assert "`pulumi config set --secret vlaninfra:old --stack prod < KEYFILE`" in text
    assert "b3Blbn" not in text and "not a key yet" not in text
    assert not (tmp_path / "b" / ".pulumi").exists()  # pulumi never ran
    secret = {**doc["config"], "vlaninfra:k1": {"secure": "v1:x"}, "vlaninfra:old": {"secure": "x"}}
    (tmp_path / "Pulumi.prod.yaml").write_text(yaml.safe_dump({"config": secret}))
    assert plaintext_keys(tmp_path / "Pulumi.prod.yaml") == []


@pytest.mark.usefixtures("no_passphrase")
def test_local_state_is_made_private(tmp_path: Path) -> None:
    backend = tmp_path / "state" / "backend"
    (backend / ".pulumi" / "stacks").mkdir(parents=True, mode=0o755)
    old = backend / ".pulumi" / "stacks" / "lab.json"
    old.write_text("{}")
    old.chmod(0o644)
    tool = backend / "tool"
    tool.write_text("")
    tool.chmod(0o755)
    Engine(ROOT, backend=backend).env("lab")
    mode = {p.relative_to(tmp_path).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in [backend, backend / ".pulumi", old, tool, tmp_path / "state" / "home"]}
    assert mode == {"state/backend": 0o700, "state/backend/.pulumi": 0o700,
                    "state/backend/.pulumi/stacks/lab.json": 0o600, "state/backend/tool": 0o700,
                    "state/home": 0o700}


def test_make_private_leaves_symlinks_alone(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_text("")
    outside.chmod(0o644)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "link").symlink_to(outside)
    make_private(tmp_path / "state")
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


FAKE_PULUMI = """#!/bin/sh
if [ "$1 $2" = "stack --show-name" ]; then echo "$SELECTED"; exit 0; fi
echo "umask=$(umask) pass=${PULUMI_CONFIG_PASSPHRASE:-unset} backend=$PULUMI_BACKEND_URL \
skip=${PULUMI_SKIP_CHECKPOINTS:-unset}"
"""


def _launcher_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the project with `tools/pulumi`, its engine replaced by a script that
    reports; and the environment to run it in."""
    root = tmp_path / "root"
    (root / "tools").mkdir(parents=True)
    shutil.copy(ROOT / "tools" / "pulumi", root / "tools" / "pulumi")
    shutil.copy(ROOT / "Pulumi.yaml", root / "Pulumi.yaml")
    shutil.copytree(ROOT / "stacks", root / "stacks")
    _project(root / "stacks", "prod", REAL_SITE)
    (root / "stacks" / "Pulumi.leaky.yaml").write_text(yaml.safe_dump({"config": {"k:k": PEM}}))
    (root / ".venv" / "bin").mkdir(parents=True)
    (root / ".venv" / "bin" / "python").symlink_to(sys.executable)
    (root / ".engine" / "bin").mkdir(parents=True)
    (root / ".engine" / "bin" / "pulumi").write_text(FAKE_PULUMI)
    (root / ".engine" / "bin" / "pulumi").chmod(0o755)
    (root / ".pulumi-state" / "backend").mkdir(parents=True)
    (root / ".pulumi-state").chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PULUMI_")}
    env["PYTHONPATH"] = str(ROOT)
    env["SELECTED"] = "lab"
    return root, env


@pytest.mark.usefixtures("no_passphrase")
@pytest.mark.parametrize(("args", "passphrase", "skip"), [
    (["up", "--stack", "lab"], LAB_PASSPHRASE, "unset"),
    (["preview", "--stack=lab"], LAB_PASSPHRASE, "true"),  # a preview's are discarded anyway
    (["destroy", "--preview-only", "--stack", "lab"], LAB_PASSPHRASE, "unset"),
    (["destroy", "--yes", "-m", "--preview-only", "--stack", "lab"], LAB_PASSPHRASE, "unset"),
    (["stack", "init", "lab"], LAB_PASSPHRASE, "unset"),
    (["up", "-s", "prod"], "unset", "unset"),
    (["version"], "unset", "unset"),  # no stack needed, none asked for
    (["up", "--stack", "leaky"], None, None),
    (["--stack", "lab", "up"], LAB_PASSPHRASE, "unset"),  # flags first
    (["-v", "9", "--stack", "leaky", "up"], None, None),
    (["--otel-traces", "file:///tmp/t", "preview", "-s", "lab"], LAB_PASSPHRASE, "true"),
    (["up"], LAB_PASSPHRASE, "unset"),  # the selected stack (SELECTED=lab)
    (["config", "get", "x"], LAB_PASSPHRASE, "unset"),
])
def test_the_launcher(
    tmp_path: Path, args: list[str], passphrase: str | None, skip: str | None
) -> None:
    root, env = _launcher_copy(tmp_path)
    stale = root / ".pulumi-state" / "backend" / "old.json"
    stale.write_text("{}")
    stale.chmod(0o644)
    done = subprocess.run([str(root / "tools" / "pulumi"), *args], env=env, capture_output=True,
                          text=True, check=False)
    if passphrase is None:  # refused before pulumi runs
        assert (done.returncode, done.stdout) == (1, "")
        assert done.stderr.startswith("tools/pulumi: stack leaky: config k:k holds an SSH private")
        return
    assert done.stdout.split() == ["umask=0077", f"pass={passphrase}",
                                   f"backend=file://{root}/.pulumi-state/backend?metadata=skip",
                                   f"skip={skip}"]
    assert stat.S_IMODE((root / ".pulumi-state").stat().st_mode) == 0o700
    assert stat.S_IMODE(stale.stat().st_mode) == 0o600


@pytest.mark.usefixtures("no_passphrase")
def test_the_launcher_checks_the_project_cwd_names(tmp_path: Path) -> None:
    """`--cwd DIR` (from the checkout, as pulumi takes it there): DIR's Pulumi.yaml is the one
    checked; one naming a missing virtualenv is refused before pulumi runs."""
    root, env = _launcher_copy(tmp_path)
    other = root / "other"
    other.mkdir()
    (other / "Pulumi.yaml").write_text(
        "name: o\nruntime:\n  name: python\n  options:\n    virtualenv: venv\n")
    run = [str(root / "tools" / "pulumi"), "preview", "--stack", "lab", "--cwd", "other"]
    done = subprocess.run(run, env=env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(f"tools/pulumi: {other}/Pulumi.yaml: runtime.options."
                                  f"virtualenv names 'venv', but {other}/venv/bin/python does")
    (other / "venv" / "bin").mkdir(parents=True)
    (other / "venv" / "bin" / "python").symlink_to(sys.executable)
    done = subprocess.run(run, env=env, capture_output=True, text=True, check=True)
    assert done.stdout.split()[2:] == [
        f"backend=file://{root}/.pulumi-state/backend?metadata=skip", "skip=true"]


@pytest.mark.parametrize(("args", "skips"), [
    (["preview"], True),
    (["preview", "--diff", "--refresh"], True),
    (["destroy", "--preview-only"], False),  # a flag's value may read so: left as it is
    (["up", "--yes"], False),
    (["destroy", "--yes"], False),
    (["refresh", "--skip-preview"], False),
    (["stack", "export"], False),
])
def test_only_a_preview_skips_checkpoints(tmp_path: Path, args: list[str], skips: bool) -> None:
    """A preview's checkpoints are serialized and discarded: it gets PULUMI_SKIP_CHECKPOINTS;
    a run that may change state keeps them (what a killed run leaves), as does a value the
    user set. Through `Engine.run`, the engine replaced by a script that reports."""
    (tmp_path / ".engine" / "bin").mkdir(parents=True)
    fake = tmp_path / ".engine" / "bin" / "pulumi"
    fake.write_text('#!/bin/sh\necho "skip=${PULUMI_SKIP_CHECKPOINTS:-unset}"\n')
    fake.chmod(0o755)
    (tmp_path / "Pulumi.yaml").write_text("name: p\nruntime: python\n")
    # "" stands for unset (as for pulumi), whatever this test's own environment holds
    engine = Engine(tmp_path, backend=tmp_path / "state", passphrase="p",
                    extra_env={"PULUMI_SKIP_CHECKPOINTS": ""})
    assert engine.run(None, *args).split() == [f"skip={'true' if skips else 'unset'}"]
    mine = dataclasses.replace(engine, extra_env={"PULUMI_SKIP_CHECKPOINTS": "false"})
    assert mine.run(None, *args).split() == ["skip=false"]


def _inventory(key: str) -> Any:
    host = SimpleNamespace(mgmt_address="203.0.113.2", ssh_port=22, host_key=key)
    router = SimpleNamespace(mgmt_address="203.0.113.1", ssh_port=22, host_key="ssh-ed25519 R")
    return SimpleNamespace(sites=[SimpleNamespace(hosts=[host], router=router)])


def _export(*conns: dict[str, Any]) -> str:
    resources = [{"type": "pulumi:pulumi:Stack"},
                 *({"outputs": {"connection": {"kind": "ssh", "port": 22, **c}}} for c in conns)]
    return json.dumps({"deployment": {"resources": resources}})


def test_demo_drops_state_only_when_every_recorded_lab_host_is_new() -> None:
    old = {"address": "203.0.113.2", "host_key": "ssh-ed25519 OLD"}
    assert lab_rebuilt(_export(old), _inventory("ssh-ed25519 NEW"))
    # the same key: the host survived (refresh reconciles); a host outside the lab; no hosts
    assert not lab_rebuilt(_export(old), _inventory("ssh-ed25519 OLD"))
    elsewhere = {"address": "198.51.100.7", "host_key": "ssh-ed25519 OLD"}
    assert not lab_rebuilt(_export(old, elsewhere), _inventory("ssh-ed25519 NEW"))
    # one host rebuilt, the router not: a changed key on a surviving host, state kept
    router = {"address": "203.0.113.1", "host_key": "ssh-ed25519 R"}
    assert not lab_rebuilt(_export(old, router), _inventory("ssh-ed25519 NEW"))
    assert not lab_rebuilt(_export(), _inventory("ssh-ed25519 NEW"))


def test_demo_refuses_a_stack_that_is_not_a_lab_stack(capsys: pytest.CaptureFixture[str]) -> None:
    from vlaninfra import cli_demo

    assert cli_demo._run(argparse.Namespace(stack="static-pool")) == 2  # before any lab or engine
    assert "is not a lab stack" in capsys.readouterr().err


def test_demo_keeps_the_stack_on_a_refresh_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A changed host key on a surviving host: the demo reports it and removes nothing."""
    from vlaninfra import cli_demo
    from vlaninfra.engine import EngineError

    ran: list[tuple[str, ...]] = []
    old = {"address": "203.0.113.2", "host_key": "ssh-ed25519 OLD"}

    class FakeEngine:
        def __init__(self, _root: Path) -> None:
            pass

        def ensure_stack(self, _stack: str) -> None:
            pass

        def run(self, _stack: str, *args: str) -> str:
            ran.append(args)
            if args[0] == "refresh":
                raise EngineError(args, 255, "host key of h1 (203.0.113.2) changed")
            return _export(old, {"address": "203.0.113.1", "host_key": "ssh-ed25519 R"})

    monkeypatch.setattr(cli_demo, "lab_up", lambda hosts: _inventory("ssh-ed25519 NEW"))
    monkeypatch.setattr(cli_demo, "Engine", FakeEngine)
    assert cli_demo._run(argparse.Namespace(stack="lab")) == 1
    assert [a[:2] for a in ran] == [("stack", "export"), ("refresh", "--yes")]
    err = capsys.readouterr().err
    assert "host key of h1 (203.0.113.2) changed" in err
    assert "The stack lab and its state are left as they are" in err


def test_a_lock_is_stale_only_when_its_pid_is_no_running_pulumi(tmp_path: Path) -> None:
    import socket
    import time

    from vlaninfra.engine import Engine

    fake = tmp_path / "bin" / "pulumi"
    fake.parent.mkdir()
    fake.symlink_to(os.path.realpath(sys.executable))  # a binary: argv[0] stays this path
    live = subprocess.Popen([str(fake), "-c", "import time; time.sleep(30)"])
    dead = subprocess.Popen([str(fake), "-c", "pass"])  # exits; not reaped yet: a zombie
    dead_stat = Path(f"/proc/{dead.pid}/stat")
    while dead_stat.read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        time.sleep(0.01)
    try:
        locks = tmp_path / "backend" / ".pulumi" / "locks" / "org" / "proj" / "s"
        locks.mkdir(parents=True)
        for name, pid, host in (("live", live.pid, socket.gethostname()),
                                ("other-program", os.getpid(), socket.gethostname()),
                                ("gone", 2**22 + 7, socket.gethostname()),
                                ("zombie", dead.pid, socket.gethostname()),
                                ("elsewhere", 2**22 + 7, "another-machine")):
            (locks / f"{name}.json").write_text(json.dumps({"pid": pid, "hostname": host}))
        other = locks.parent.parent / "other-project" / "s"  # the same stack name elsewhere
        other.mkdir(parents=True)
        (other / "gone.json").write_text(json.dumps({"pid": 2**22 + 7,
                                                     "hostname": socket.gethostname()}))
        (tmp_path / "Pulumi.yaml").write_text("name: proj\nruntime: python\n")
        stale = Engine(tmp_path, backend=tmp_path / "backend").stale_locks("s")
        assert sorted(p.stem for p in stale) == ["gone", "other-program", "zombie"]
        assert all(p.parent == locks for p in stale)
    finally:
        live.kill()
        live.wait()
        dead.wait()


def test_a_missing_pulumi_cli_is_one_message_saying_to_run_setup(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkout whose set-up did not finish (no engine on PATH): the command says so, no
    FileNotFoundError traceback."""
    engine = Engine(tmp_path / "checkout", backend=tmp_path / "state" / "backend")
    monkeypatch.setattr(Engine, "env", lambda *a: {"PATH": str(tmp_path / "empty")})
    with pytest.raises(VlanInfraError, match=r"the `pulumi` CLI is not installed here: run "
                       r"tools/setup.sh"):
        engine.run(None, "version", cwd=tmp_path)


@pytest.mark.parametrize("call", [
    "e.run(None, 'version', cwd=here)",  # output captured
    "run_attached(['pulumi', 'version'], cwd=here, env=e.env())",  # the demo's, on the terminal
])
def test_ctrl_c_lets_pulumi_save_before_the_command_stops(tmp_path: Path, call: str) -> None:
    """Ctrl-C in a command running pulumi: pulumi (here a stand-in that logs its signals)
    gets the terminal's one SIGINT and no kill after it; the command waits while pulumi
    finishes the steps under way, then stops (before: killed 0.25 s later, unsaved)."""
    import signal
    import time

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "log"
    fake = bin_dir / "pulumi"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import signal, sys, time\n"
        f"log = open({str(log)!r}, 'a', buffering=1)\n"
        "got = []\n"
        "signal.signal(signal.SIGINT, lambda *a: (got.append(1), log.write('SIGINT\\n')))\n"
        "log.write('started\\n')\n"
        "while not got: time.sleep(0.02)\n"
        "time.sleep(1.0)  # the steps under way\n"
        "log.write(f'saved after {len(got)} SIGINT\\n')\n"
        "sys.exit(255)\n")
    fake.chmod(0o755)
    driver = (
        "import sys\n"
        "from pathlib import Path\n"
        "from vlaninfra.engine import Engine, run_attached\n"
        f"here = Path({str(tmp_path)!r})\n"
        f"Engine.env = lambda *a: {{'PATH': {str(bin_dir)!r}}}\n"
        f"e = Engine(Path({str(tmp_path)!r}), backend=Path({str(tmp_path / 'b')!r}))\n"
        "try:\n"
        f"    {call}\n"
        "except KeyboardInterrupt as err:\n"
        "    print(type(err).__name__, err.saved, flush=True)\n"
        "    sys.exit(130)\n")
    proc = subprocess.Popen([sys.executable, "-c", driver], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)  # a terminal's foreground group
    try:
        deadline = time.monotonic() + 30
        while not (log.exists() and "started" in log.read_text()):
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert (proc.returncode, out) == (130, "Interrupted True\n")
    assert log.read_text() == "started\nSIGINT\nsaved after 1 SIGINT\n"


def test_a_stack_file_of_the_wrong_shape_is_left_to_the_layout_to_refuse(tmp_path: Path) -> None:
    """`hosts: 3` or a file that is not UTF-8 is the layout's (or pulumi's) to refuse, naming
    what is wrong; the engine helper reading the stack file before pulumi runs must not fail
    on it with a TypeError or UnicodeDecodeError."""
    path = tmp_path / "Pulumi.prod.yaml"
    path.write_text("config:\n  vlaninfra:sites:\n    a:\n      inventory: lab\n      hosts: 3\n"
                    "      routers: gw\n")
    is_lab_stack(path)
    assert plaintext_keys(path) == []
    path.write_text("config:\n  vlaninfra:sites: {}\n", encoding="utf-16")  # not UTF-8
    assert (is_lab_stack(path), plaintext_keys(path)) == (False, [])


def test_a_missing_working_directory_is_named_not_taken_for_a_missing_cli(
        tmp_path: Path) -> None:
    engine = Engine(tmp_path / "checkout", backend=tmp_path / "state" / "backend")
    with pytest.raises(VlanInfraError, match=r"cannot run pulumi in .*/gone: No such file"):
        engine.run(None, "version", cwd=tmp_path / "gone")


def test_tools_pulumi_without_the_cli_says_to_run_setup(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "vlaninfra.engine", "exec", "version"],
                          cwd=tmp_path, env={**os.environ, "PATH": str(tmp_path / "none")},
                          capture_output=True, text=True, check=False)
    assert done.returncode == 127, done.stderr
    assert done.stderr.startswith("tools/pulumi: the `pulumi` CLI is not installed here")
    assert "Traceback" not in done.stderr


class _Pulumi:
    """A pulumi process that printed ``output`` once Ctrl-C reached it."""

    def __init__(self, output: str) -> None:
        self.output = output

    def communicate(self) -> tuple[str, str]:
        return self.output, ""


@pytest.mark.parametrize(("output", "saved"), [
    ('{"stdoutEvent": {"message": "^C received; cancelling. If you would like to terminate '
     'immediately, press ^C again.\\n"}}', True),
    # two Ctrl-C close together reach this process as one, pulumi as two: it stopped at once
    ('{"stdoutEvent": {"message": "^C received; cancelling. ..."}}\n'
     '{"stdoutEvent": {"message": "<{%fg 9%}>^C received; terminating<{%reset%}>"}}', False),
])
def test_an_interrupted_run_is_saved_unless_pulumi_says_it_terminated(
        output: str, saved: bool) -> None:
    from vlaninfra.engine._engine import _interrupted

    got = _interrupted(_Pulumi(output))  # type: ignore[arg-type]
    assert (got.saved, got.output) == (saved, output)
