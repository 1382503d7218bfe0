"""Acceptance case 9 (issue 8), real engine on the lab: where the SSH private key goes.

The stack's host names its own `ssh:` target (no lab inventory, no key file), so the key reaches
the provider either through a real ssh-agent started here (`SSH_AUTH_SOCK`) or through a secret
stack config value. After `up` (at `-v=9 --logtostderr --logflow`, logs captured), a failing
preview (its error text) and `destroy`, every file of the state backend (stacks, history,
backups), the engine logs, the error texts and `ps` output taken during the run are searched for
the key: its whole body and each of its base64 lines.

- ssh-agent: no trace anywhere (nor in the processes' environments).
- secret config: only the encrypted value is in state (the engine keeps the whole stack config
  as the dynamic providers' default provider inputs, in every checkpoint, history entry and
  backup); the plaintext is nowhere in state, logs, errors or command lines. It is in the
  environment (`PULUMI_CONFIG`) the engine gives the program's process, readable by that user
  and root only: measured and asserted below, and said in the README.
- a config key that is not a secret: refused before any resource is registered and before any
  host is contacted (sshd logs no login), nothing of it in state.
"""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.observe import destroy_at_teardown, docker
from vlaninfra.cli_demo import lab_rebuilt
from vlaninfra.engine import Engine, plaintext_keys, project_root, stack_file
from vlaninfra.errors import VlanInfraError
from vlaninfra.lab import Inventory

pytestmark = [pytest.mark.lab, pytest.mark.engine]

UP_BOUND = 60.0
"""`up` of one network on one host, at -v=9, through either key source (measured ~4 s)."""
REFUSE_BOUND = 30.0
"""The refusal of a non-secret key: program start and a config check, no host (measured ~3 s)."""
NET = "sec_net"
STACK = "secrets"
PASSPHRASE = "e2e-secrets"  # a stack with its own ssh targets is no lab stack: its own passphrase


@dataclass
class Run:
    """What one engine run left for inspection: its output and the `ps` lines seen meanwhile."""

    code: int
    output: str
    ps: str
    ps_env: str
    seconds: float


def _ps_while(proc: subprocess.Popen[str], into: list[str], env_into: list[str]) -> None:
    while proc.poll() is None:
        into.append(subprocess.run(["ps", "-eo", "pid,args", "ww"], capture_output=True,
                                   text=True, check=False).stdout)
        env_into.append(subprocess.run(["ps", "eww", "-eo", "pid,args"], capture_output=True,
                                       text=True, check=False).stdout)
        time.sleep(0.3)


@dataclass
class SecretsStack:
    engine: Engine
    project: Path
    host: Any
    key_path: Path
    lan: str
    inventory: Any = None
    ssh_extra: dict[str, Any] | None = None
    checkpoint_after_up: str = ""

    def write(self, ssh_extra: dict[str, Any], parent: str = "eth0") -> None:
        """The stack file: one macvlan network on the host, reached through `ssh:` plus
        `ssh_extra` (its key source); keeps any config already set (the key)."""
        self.ssh_extra = ssh_extra
        h = self.host
        ssh = {"address": h.mgmt_address, "port": h.ssh_port, "user": h.user,
               "host_key": h.host_key, "docker_socket": h.docker_socket, **ssh_extra}
        site = {
            "lan": {"subnet": self.lan},
            "hosts": [{"name": h.name, "ssh": ssh, "lan_address": h.lan_address.split("/")[0],
                       "parents": sorted({h.parent, parent}),
                       "docker_version": h.docker_version}],
            "networks": [{"name": NET, "driver": "macvlan", "parent": parent,
                          "hosts": [h.name], "subnets": [{"subnet": self.lan}]}],
        }
        path = self.project / f"Pulumi.{STACK}.yaml"
        doc = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
        doc.setdefault("config", {})["vlaninfra:sites"] = {"a": site}
        path.write_text(yaml.safe_dump(doc))

    def write_parent(self, parent: str) -> None:
        self.write(self.ssh_extra or {}, parent)

    def run(self, *args: str, stdin: str | None = None) -> Run:
        """`pulumi ARGS` with the engine's logs on stderr, watching `ps` until it ends."""
        env = self.engine.env(STACK, self.project)
        argv = ["pulumi", *args, "--stack", STACK, "--non-interactive"]
        start = time.monotonic()
        proc = subprocess.Popen(argv, cwd=self.project, env=env, text=True, umask=0o077,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        ps: list[str] = []
        ps_env: list[str] = []
        watch = threading.Thread(target=_ps_while, args=(proc, ps, ps_env))
        watch.start()
        output, _ = proc.communicate(stdin)
        watch.join()
        return Run(proc.returncode, output, "".join(ps), "".join(ps_env),
                   time.monotonic() - start)

    def up(self) -> Run:
        return self.run("up", "--yes", "--skip-preview", "-v=9", "--logtostderr", "--logflow")

    def state_text(self) -> str:
        """Every file of the backend: stacks, history, backups (and anything else there)."""
        return "\n".join(p.read_text(errors="replace") for p in sorted(_backend(self).rglob("*"))
                         if p.is_file())

    def state_dirs(self) -> list[str]:
        return sorted(p.name for p in (_backend(self) / ".pulumi").iterdir())


def _backend(stack: SecretsStack) -> Path:
    assert stack.engine.backend is not None
    return stack.engine.backend


def _key_material(key_path: Path) -> list[str]:
    """The key's whole text and each base64 line of its body (the distinctive parts)."""
    text = key_path.read_text()
    lines = [ln for ln in text.splitlines() if ln and not ln.startswith("-----")]
    assert lines and all(len(ln) >= 20 for ln in lines[:-1])
    return [text.strip(), *lines]


def _found(material: list[str], text: str) -> list[str]:
    return [m[:12] + "..." for m in material if m in text]


@pytest.fixture
def ssh_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ssh-agent (foreground, killed at the end) holding no key yet: its socket path."""
    sock = tmp_path_factory.mktemp("agent") / "agent.sock"
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not sock.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "ssh-agent did not start"
            time.sleep(0.05)
        yield str(sock)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def stack(
    lab_inventory: Inventory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SecretsStack]:
    """A scratch project whose one host (the lab's h1) is named by its own ssh target."""
    work = tmp_path_factory.mktemp("secrets")
    project = work / "project"
    project.mkdir()
    (project / "Pulumi.yaml").write_text("name: vlaninfra\nruntime: python\n")
    (project / "__main__.py").write_text("from vlaninfra.program import run\n\nrun()\n")
    host = lab_inventory.sites[0].hosts[0]
    s = SecretsStack(Engine(project_root(), backend=work / "backend", passphrase=PASSPHRASE),
                     project, host, Path(lab_inventory.key_path), lab_inventory.sites[0].lan,
                     lab_inventory)
    s.engine.ensure_stack(STACK, cwd=project)
    try:
        yield s
    finally:
        # a plaintext key left by a test is removed first: the helper refuses to run with it
        for key in plaintext_keys(stack_file(project, STACK)):
            s.engine.run(STACK, "config", "rm", key, check=False, cwd=project)
        destroy_at_teardown(s.engine, STACK, project)
        assert NET not in docker(host, "network", "ls", "--format", "{{.Name}}").split()


def _sshd_logins(host: Any) -> int:
    return Path(host.sshd_log).read_text(errors="replace").count("Accepted publickey")


def _exercise(stack: SecretsStack) -> tuple[list[Run], str]:
    """up (bounded), a second up that changes nothing, a preview that fails on the host (its
    error text), destroy: all runs and the error text."""
    first = stack.up()
    assert first.code == 0, first.output[-3000:]
    assert first.seconds < UP_BOUND, f"up took {first.seconds:.1f}s (bound {UP_BOUND}s)"
    assert NET in docker(stack.host, "network", "ls", "--format", "{{.Name}}").split()
    stack.checkpoint_after_up = "".join(
        p.read_text() for p in (_backend(stack) / ".pulumi" / "stacks").rglob("*.json"))
    # the state `vlaninfra demo` reads: the lab was not rebuilt under it; with new keys it was
    export = stack.engine.run(STACK, "stack", "export", cwd=stack.project)
    assert not lab_rebuilt(export, stack.inventory)
    inv = stack.inventory
    site = inv.sites[0]
    renewed = dataclasses.replace(stack.host, host_key="ssh-ed25519 AAAAnew")
    hosts = tuple(renewed if h.name == renewed.name else h for h in site.hosts)
    rebuilt = dataclasses.replace(inv, sites=(dataclasses.replace(site, hosts=hosts),))
    assert lab_rebuilt(export, rebuilt)
    again = stack.run("up", "--yes", "--skip-preview", "--json")
    assert again.code == 0 and '"update"' not in again.output and '"create"' not in again.output
    stack.write_parent("nosuch0")
    failed = stack.run("preview", "--diff")
    assert failed.code != 0
    assert "interface 'nosuch0' does not exist on host h1" in failed.output
    stack.write_parent("eth0")
    gone = stack.run("destroy", "--yes", "--skip-preview")
    assert gone.code == 0, gone.output[-3000:]
    return [first, again, failed, gone], failed.output


def test_ssh_agent_leaves_no_trace(stack: SecretsStack, ssh_agent: str) -> None:
    material = _key_material(stack.key_path)
    added = subprocess.run(["ssh-add", str(stack.key_path)], env={**os.environ,
                           "SSH_AUTH_SOCK": ssh_agent}, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    stack.engine = Engine(stack.engine.root, stack.engine.backend, PASSPHRASE,
                          extra_env={"SSH_AUTH_SOCK": ssh_agent})
    stack.write({})  # no private_key_file, no private_key_config: ssh-agent
    runs, error_text = _exercise(stack)
    assert {"backups", "history", "stacks"} <= set(stack.state_dirs())
    where = {
        "state, history and backups": stack.state_text() + stack.checkpoint_after_up,
        "engine logs (-v=9) and outputs": "".join(r.output for r in runs),
        "error texts": error_text,
        "ps command lines": "".join(r.ps for r in runs),
        "process environments (ps e)": "".join(r.ps_env for r in runs),
    }
    assert {k: _found(material, v) for k, v in where.items()} == {k: [] for k in where}
    print(f"ssh-agent: up {runs[0].seconds:.1f}s (bound {UP_BOUND}s); no trace")


def test_secret_config_key_is_only_in_state_encrypted(stack: SecretsStack) -> None:
    material = _key_material(stack.key_path)
    stack.write({"private_key_config": "sshPrivateKey"})
    setting = stack.run("config", "set", "--secret", "vlaninfra:sshPrivateKey",
                        stdin=stack.key_path.read_text())
    assert setting.code == 0, setting.output
    stack_file = (stack.project / f"Pulumi.{STACK}.yaml").read_text()
    assert "secure: v1:" in stack_file and not _found(material, stack_file)
    runs, error_text = _exercise(stack)
    state = stack.state_text()
    where = {
        "state, history and backups": state + stack.checkpoint_after_up,
        "engine logs (-v=9) and outputs": "".join(r.output for r in runs),
        "error texts": error_text,
        "ps command lines": "".join(r.ps for r in runs),
    }
    assert {k: _found(material, v) for k, v in where.items()} == {k: [] for k in where}
    # what is there: the encrypted value, as the default provider's input, in state
    # what is there: the encrypted value (the default provider's inputs) in the checkpoint, its
    # backups and the history (which records each update's config)
    pulumi_dir = _backend(stack) / ".pulumi"
    for part in ("stacks", "backups", "history"):
        texts = [p.read_text() for p in (pulumi_dir / part).rglob("*.json")]
        texts += [stack.checkpoint_after_up] if part == "stacks" else []
        encrypted = [t for t in texts if re.search(
            r'"vlaninfra:sshPrivateKey":\s*\{[^{}]*"(ciphertext|secure)":\s*"v1:', t)]
        assert encrypted, f"no encrypted key in .pulumi/{part}"
    # the engine hands the processes it starts their config decrypted, in the environment
    # (readable by this user and root only, not in any command line)
    holders = sorted({line.split()[1].rsplit("/", 1)[-1] for r in runs
                      for line in r.ps_env.splitlines() if material[1] in line})
    assert set(holders) <= {"python", "python3"}, holders  # the program's process only
    print(f"secret config: up {runs[0].seconds:.1f}s (bound {UP_BOUND}s); decrypted key in the "
          f"environment of: {holders}")


def test_a_key_in_config_that_is_not_secret_is_refused_before_any_host(
    stack: SecretsStack,
) -> None:
    material = _key_material(stack.key_path)
    stack.write({"private_key_config": "sshPrivateKey"})
    plain = stack.run("config", "set", "vlaninfra:sshPrivateKey", stdin=stack.key_path.read_text())
    assert plain.code == 0, plain.output
    logins = _sshd_logins(stack.host)
    history = _backend(stack) / ".pulumi" / "history"
    # through the project's engine helper (and tools/pulumi): refused before pulumi runs
    start = time.monotonic()
    with pytest.raises(VlanInfraError) as err:
        stack.engine.run(STACK, "up", "--yes", "--skip-preview", cwd=stack.project)
    assert time.monotonic() - start < REFUSE_BOUND
    assert str(err.value).startswith(f"stack {STACK}: config vlaninfra:sshPrivateKey holds an "
                                     "SSH private key in plain text")
    assert not _found(material, str(err.value)) and not history.exists()
    # plain `pulumi up`: the program refuses before any resource is registered
    refused = stack.run("up", "--yes", "--skip-preview")
    assert refused.code != 0
    assert refused.seconds < REFUSE_BOUND, f"{refused.seconds:.1f}s (bound {REFUSE_BOUND}s)"
    assert ("sites.a.hosts[0].ssh.private_key_config: the config key vlaninfra:sshPrivateKey "
            "is not a secret") in refused.output
    assert f"pulumi config set --secret vlaninfra:sshPrivateKey --stack {STACK} < KEYFILE" in \
        refused.output
    assert "Traceback" not in refused.output and not _found(material, refused.output)
    assert _sshd_logins(stack.host) == logins  # no host was contacted
    assert NET not in docker(stack.host, "network", "ls", "--format", "{{.Name}}").split()
    # no checkpoint or backup holds it (nothing was registered), but the engine recorded the
    # update's stack config, this plaintext value included, in its history entry: why the
    # helper refuses before pulumi runs
    stored = {p.relative_to(_backend(stack) / ".pulumi").parts[0]
              for p in _backend(stack).rglob("*")
              if p.is_file() and _found(material, p.read_text(errors="replace"))}
    assert stored == {"history"}
    print(f"non-secret key: refused in {refused.seconds:.1f}s (bound {REFUSE_BOUND}s)")
