"""Run the Pulumi CLI the way `tools/pulumi` does: for the demo, the tests and benchmarks.

Example::

    result = Engine(project_root()).run("lab", "up", "--yes")
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vlaninfra.errors import VlanInfraError

__all__ = [
    "LAB_PASSPHRASE",
    "Engine",
    "EngineError",
    "StackLockedError",
    "config_key",
    "holds_private_key",
    "is_lab_stack",
    "make_private",
    "plaintext_keys",
    "project_backend",
    "project_root",
    "stack_file",
]

log = logging.getLogger(__name__)

LAB_PASSPHRASE = "vlaninfra-lab"
"""The passphrase of lab stacks' secrets when none is set: lab stacks only (`is_lab_stack`)."""
_PASSPHRASE_ENV = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
RUNS_PROGRAM = frozenset({"up", "update", "preview", "refresh", "destroy", "import", "watch"})
"""Commands that run an update: the engine records the stack's config in its history."""


class EngineError(VlanInfraError, RuntimeError):
    """A pulumi command failed; `.output` holds what it printed."""

    def __init__(self, args: Sequence[str], code: int, output: str) -> None:
        shown = "\n".join(_diagnostics(output)) or output[-4000:]
        super().__init__(f"pulumi {' '.join(args)} exited {code}:\n{shown}")
        self.args_ = tuple(args)
        self.code = code
        self.output = output


class StackLockedError(EngineError):
    """Pulumi refused to run because another run holds the stack's lock: nothing was changed.
    `.holders` are pulumi's lines naming each lock (URL, user@host, pid, time)."""

    def __init__(self, args: Sequence[str], code: int, output: str, stack: str) -> None:
        super().__init__(args, code, output)
        self.stack = stack
        self.holders = tuple(dict.fromkeys(m.group(0) for m in _HOLDER.finditer(output)))
        self.args = (
            f"stack {stack} is locked by another update, so nothing was changed: wait for "
            "that run to end and run this again. If it will never end (its process or machine "
            "is gone), make sure nobody else is changing the stack, then clear the lock with "
            f"`pulumi cancel --yes --stack {stack}` on the same backend (README, \"State "
            "backend\")." + "".join(f"\n  lock {h}" for h in self.holders),)


_LOCKED = "the stack is currently locked"
"""How pulumi's file/S3/GCS/Azure backends start the error of a run refused by a lock."""
_HOLDER = re.compile(r"[^\s\\\"]+: created by \S+ \(pid \d+\) at [\dT:.-]+(?:Z|[+-][\d:]+)")
"""One lock in that error, plain or in a JSON string: `URL: created by USER@HOST (pid N) at T`."""


def project_root(start: Path | None = None) -> Path:
    """The directory holding Pulumi.yaml, from `start` (default: this package's checkout, else
    the current directory: an installed package serves the project it runs in) upwards.

    Example: ``project_root() / "stacks"``
    """
    starts = [start] if start else [Path(__file__), Path.cwd()]  # installed: the cwd's project
    for here in (s.resolve() for s in starts):
        for d in (here, *here.parents):
            if (d / "Pulumi.yaml").is_file():
                return d
    raise VlanInfraError(f"no Pulumi.yaml above {' or '.join(str(s) for s in starts)}")


def stack_file(project: Path, stack: str) -> Path:
    """Where the stack's config lives: `Pulumi.<stack>.yaml` in the project's stackConfigDir.

    Example: ``stack_file(project_root(), "lab")`` → ``.../stacks/Pulumi.lab.yaml``
    """
    folder = _meta(project).get("stackConfigDir")
    return project / str(folder or ".") / f"Pulumi.{stack}.yaml"


def _meta(project: Path) -> dict[str, Any]:
    """The project's Pulumi.yaml (empty when unreadable)."""
    try:
        meta = yaml.safe_load((project / "Pulumi.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return meta if isinstance(meta, dict) else {}


def project_name(project: Path) -> str | None:
    """The project's name in its Pulumi.yaml. Example: ``project_name(root)`` → ``"vlaninfra"``
    """
    name = _meta(project).get("name")
    return str(name) if name else None


def is_lab_stack(path: Path) -> bool:
    """Whether the stack file at `path` manages only the local lab: it has sites and every one
    says `inventory: lab`, none names its own `ssh` target. Only such stacks get the default
    passphrase and may be removed by `vlaninfra demo`.

    Example: ``is_lab_stack(stack_file(root, "lab"))`` → True
    """
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        sites = doc["config"]["vlaninfra:sites"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return False
    if not isinstance(sites, dict) or not sites:
        return False
    if any(not isinstance(s, dict) or s.get("inventory") != "lab" for s in sites.values()):
        return False
    return all(isinstance(m, dict) and "ssh" not in m for m in _members(sites))


def config_key(name: str) -> str:
    """The full stack config key: `sshPrivateKey` → `vlaninfra:sshPrivateKey`."""
    return name if ":" in name else f"vlaninfra:{name}"


def _members(sites: Any) -> list[Any]:
    """The hosts and routers of every site of a raw `vlaninfra:sites` config value."""
    if not isinstance(sites, dict):
        return []
    return [
        m
        for site in sites.values()
        if isinstance(site, dict)
        for m in [*(site.get("hosts") or []), *(site.get("routers") or [])]
    ]


def _ssh_settings(sites: Any) -> list[dict[str, Any]]:
    return [
        m["ssh"] for m in _members(sites) if isinstance(m, dict) and isinstance(m.get("ssh"), dict)
    ]


def holds_private_key(value: object) -> bool:
    """Whether a config value looks like a PEM/OpenSSH private key (the one test of it)."""
    return isinstance(value, str) and "PRIVATE KEY" in value


def plaintext_keys(path: Path) -> list[str]:
    """Config keys of the stack file at `path` holding an SSH private key in plain text: those an
    `ssh.private_key_config` names and any value that looks like a private key, unless secret.
    The engine records the stack config in every update's history, so such a stack is refused
    before pulumi runs. Example: ``plaintext_keys(stack_file(root, "prod"))`` → ``[]``"""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
        config = doc.get("config") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return []
    if not isinstance(config, dict):
        return []
    named = {
        config_key(str(ssh["private_key_config"]))
        for ssh in _ssh_settings(config.get("vlaninfra:sites"))
        if ssh.get("private_key_config")
    }
    return sorted(
        k
        for k, v in config.items()
        if not isinstance(v, dict) and (k in named or holds_private_key(v))
    )


def refuse_plaintext_keys(project: Path, stack: str) -> None:
    """Raises when the stack's config holds an SSH private key in plain text (`plaintext_keys`),
    naming the keys and the commands that fix it (never a value)."""
    keys = plaintext_keys(stack_file(project, stack))
    if keys:
        fixes = "; ".join(
            f"`pulumi config set --secret {k} --stack {stack} < KEYFILE` (or `pulumi config rm "
            f"{k} --stack {stack}` and use ssh-agent or ssh.private_key_file)"
            for k in keys
        )
        raise VlanInfraError(
            f"stack {stack}: config {', '.join(keys)} holds an SSH private key in plain text, "
            f"which the engine would copy into the update's history; nothing was run: {fixes}"
        )


def _secrets_provider(path: Path) -> str:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return "passphrase"
    return str(doc.get("secretsprovider") or "passphrase") if isinstance(doc, dict) else ""


def make_private(*dirs: Path) -> None:
    """Makes each directory 0700 and takes group and other bits off everything under it (files
    0600, or 0700 if executable); symlinks and entries of other users are left alone."""
    for top in dirs:
        top.mkdir(mode=0o700, parents=True, exist_ok=True)
        for here, subdirs, files in os.walk(top):
            for name in [*subdirs, *files, None]:
                path = os.path.join(here, name) if name else here
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                if st.st_uid == os.getuid() and st.st_mode & 0o077 and not os.path.islink(path):
                    os.chmod(path, st.st_mode & 0o7700)


@dataclass(frozen=True)
class Engine:
    """The pulumi CLI of this checkout (`.engine/bin`), on the local file backend unless
    PULUMI_BACKEND_URL or the project's Pulumi.yaml names another (`backend_url`).

    Example: ``Engine(root, backend=tmp_path).run("lab", "preview")``
    """

    root: Path
    backend: Path | None = None
    passphrase: str | None = None
    """The stacks' passphrase; None: PULUMI_CONFIG_PASSPHRASE(_FILE), else `LAB_PASSPHRASE` for
    lab stacks, else refused."""
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self, stack: str | None = None, cwd: Path | None = None) -> dict[str, str]:
        """The environment pulumi runs in for `stack` of the project at `cwd` (default: root).
        Makes the local state private (0700 directories, 0600 files)."""
        env = {**os.environ, **self.extra_env}
        env["PATH"] = os.pathsep.join(
            [str(self.root / ".engine" / "bin"), str(self.root / ".venv" / "bin"), env["PATH"]]
        )
        if "PULUMI_BACKEND_URL" not in env and (
                self.backend is not None or project_backend(cwd or self.root) is None):
            backend = self.backend or self.root / ".pulumi-state" / "backend"
            # No `.attrs` sidecars: the file bucket rewrites them in place (truncate, then
            # write), so a pulumi killed at that moment leaves an empty one and every later
            # command on the stack fails with "failed to load checkpoint: EOF".
            env["PULUMI_BACKEND_URL"] = f"file://{backend}?metadata=skip"
            env.setdefault("PULUMI_HOME", str(backend.parent / "home"))
            if self.backend is None:
                make_private(backend.parent, backend)
            else:
                make_private(backend, Path(env["PULUMI_HOME"]))
        env["PULUMI_SKIP_UPDATE_CHECK"] = "1"
        env["PULUMI_DIY_BACKEND_NO_LEGACY_WARNING"] = "1"
        if not any(env.get(k) for k in _PASSPHRASE_ENV):
            if self.passphrase is not None:
                env["PULUMI_CONFIG_PASSPHRASE"] = self.passphrase
            elif stack is not None:
                env["PULUMI_CONFIG_PASSPHRASE"] = self._lab_passphrase(stack, cwd or self.root)
        return env

    def _lab_passphrase(self, stack: str, project: Path) -> str:
        path = stack_file(project, stack)
        if is_lab_stack(path) or not _secrets_provider(path).startswith("passphrase"):
            return LAB_PASSPHRASE
        raise VlanInfraError(
            f"stack {stack} is not a lab stack ({path} has a site without `inventory: lab`, or "
            "no such file): set PULUMI_CONFIG_PASSPHRASE or PULUMI_CONFIG_PASSPHRASE_FILE to the "
            f"passphrase of its secrets; the default {LAB_PASSPHRASE!r} is for lab stacks only"
        )

    def backend_url(self, cwd: Path | None = None) -> str:
        """The state backend pulumi uses for the project at `cwd` (default: root), in pulumi's
        order: PULUMI_BACKEND_URL (environment or `extra_env`), else `backend` (tests), else
        the project's `backend: url:` in Pulumi.yaml, else the checkout's private file
        backend. Example: ``Engine(root).backend_url()`` → ``file:///…/.pulumi-state/backend``
        """
        project = cwd or self.root
        return self.env(None, project).get("PULUMI_BACKEND_URL") or str(project_backend(project))

    def stale_locks(self, stack: str, cwd: Path | None = None) -> list[Path]:
        """The file backend's locks on `stack` left by a pulumi process of this machine that
        no longer runs (killed mid-update): the lock names this hostname and its pid is gone,
        or is now some other program (`/proc/PID/cmdline` is not a pulumi). A lock of a live
        pulumi or of another hostname is never stale.

        Only a `file://` backend is looked at: on a shared backend (S3, GCS, Azure, Pulumi
        Cloud) a lock's hostname and pid cannot prove its run is dead (CI runners and
        containers on other machines often share a hostname, and their pids are not ours), so
        no lock there is ever stale: `StackLockedError` says how to clear one by hand.

        Limit: pids are those of this pid namespace. A pulumi in another pid namespace with
        the same hostname (a container sharing this host's UTS namespace and this state
        directory) looks dead here, and its lock would be cancelled: do not share a file
        backend between pid namespaces that share a hostname.
        """
        backend = self._file_backend(cwd)
        if backend is None:
            return []
        # .pulumi/locks/organization/PROJECT/STACK/ID.json (or a legacy locks/STACK/ID.json)
        project = (project_name(cwd or self.root), "locks")
        stale = []
        for path in (backend / ".pulumi" / "locks").rglob("*.json"):
            try:
                lock = json.loads(path.read_text())
                if path.parent.name != stack or path.parent.parent.name not in project \
                        or lock["hostname"] != socket.gethostname():
                    continue
                pid = int(lock["pid"])
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if not _is_pulumi(pid):
                stale.append(path)
        return stale

    def _file_backend(self, cwd: Path | None) -> Path | None:
        url = self.backend_url(cwd)
        if not url.startswith("file://"):
            return None
        return Path(os.path.expanduser(url.removeprefix("file://").split("?", 1)[0]))

    def torn_sidecars(self, cwd: Path | None = None) -> list[Path]:
        """A file backend's `.attrs` sidecars (of stacks, locks and its meta file) that a
        pulumi killed while rewriting one left empty or cut: pulumi cannot read the stack
        while one is there ("failed to load checkpoint: EOF"), and one that is missing is
        just a default. Backends this project makes write none; a backend given by URL or
        `Pulumi.yaml` without `?metadata=skip` does."""
        backend = self._file_backend(cwd)
        if backend is None:
            return []
        state = backend / ".pulumi"
        torn = []
        for path in [state / "meta.yaml.attrs", *(state / "stacks").rglob("*.attrs"),
                     *(state / "locks").rglob("*.attrs")]:
            try:
                json.loads(path.read_bytes())
            except FileNotFoundError:
                continue
            except (OSError, ValueError):
                torn.append(path)
        return torn

    def run(
        self, stack: str | None, *args: str, check: bool = True, cwd: Path | None = None,
        timeout: float | None = None,
    ) -> str:
        """Runs `pulumi ARGS --stack STACK --non-interactive`; returns stdout+stderr.

        `timeout` (seconds, default none: an `up` takes as long as its ops' deadlines allow)
        kills pulumi when it passes and raises `EngineError`; the lock it leaves is stale and
        cancelled by the next `up`, `refresh` or `destroy`.

        Before `up`, `refresh` and `destroy`, a lock a killed pulumi left on a file backend is
        removed: exactly that lock file (`pulumi cancel` would remove every lock of the stack,
        a live run's too); the engine then drops the killed run's pending creates with a
        warning, and vlaninfra's creates adopt what that run made on the hosts. A run refused
        by another run's lock raises `StackLockedError`.

        Before any command on a stack, sidecars a killed pulumi left torn
        (:meth:`torn_sidecars`) are removed, so the next command can read the stack.
        """
        if stack is not None:
            for path in self.torn_sidecars(cwd):
                log.warning("removing %s: a pulumi killed while writing it left it torn, and "
                            "pulumi cannot read the stack while it is there", path)
                path.unlink(missing_ok=True)
        if stack is not None and args and args[0] in ("up", "refresh", "destroy"):
            for lock in self.stale_locks(stack, cwd):
                lock.unlink(missing_ok=True)
        full = [*args, "--non-interactive"]
        if stack is not None:
            full += ["--stack", stack]
            if args and args[0] in RUNS_PROGRAM:
                refuse_plaintext_keys(cwd or self.root, stack)
        try:
            proc = subprocess.run(
                ["pulumi", *full],
                cwd=cwd or self.root,
                env=self.env(stack, cwd),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                check=False,
                umask=0o077,
                timeout=timeout,
            )
        except subprocess.TimeoutExpired as exc:
            out = "".join(x if isinstance(x, str) else (x or b"").decode(errors="replace")
                          for x in (exc.stdout, exc.stderr))
            raise EngineError(full, -9, f"{out}\nkilled after {timeout:g}s (timeout)") from None
        if check and proc.returncode != 0:
            if stack is not None and _LOCKED in proc.stdout + proc.stderr:
                raise StackLockedError(full, proc.returncode, proc.stdout + proc.stderr, stack)
            raise EngineError(full, proc.returncode, proc.stdout + proc.stderr)
        return proc.stdout

    def succeeds(self, stack: str | None, *args: str, cwd: Path | None = None) -> bool:
        """Whether `pulumi ARGS` exits 0."""
        try:
            self.run(stack, *args, cwd=cwd)
        except EngineError:
            return False
        return True

    def ensure_stack(self, stack: str, cwd: Path | None = None) -> None:
        """Selects `stack`, creating it on the backend the first time."""
        self.run(stack, "stack", "select", "--create", cwd=cwd)

    def changes(self, stack: str, *args: str, cwd: Path | None = None) -> dict[str, int]:
        """Runs `pulumi ARGS --json` (up, preview, destroy, refresh) and returns its change summary.

        Example: ``engine.changes("lab", "up", "--yes")`` → ``{"same": 12}``
        """
        out = self.run(stack, *args, "--json", cwd=cwd)
        return summary_of(out)


def project_backend(project: Path) -> str | None:
    """The `backend: url:` of the project's Pulumi.yaml, if it names one.

    Example: ``project_backend(Path("stacks/.."))`` → ``None``
    """
    try:
        url = _meta(project)["backend"]["url"]
    except (KeyError, TypeError):
        return None
    return str(url) if url else None


def _is_pulumi(pid: int) -> bool:
    """Whether `pid` may be a running pulumi CLI in this pid namespace: False only when no
    such process exists, it is a zombie, or its command line names another program (an empty
    one, as while a process execs, counts as maybe)."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0", 1)[0]
        # A zombie (state Z after the command's name) has exited: its parent was killed and
        # nothing reaped it (a container whose PID 1 does not reap keeps it forever).
        if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[:1] == ["Z"]:
            return False
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return not argv0 or os.path.basename(argv0) == b"pulumi"


def _documents(output: str) -> list[Any]:
    """Every JSON document in a `--json` run's output: the run's own document (without
    --skip-preview) and the engine's event lines."""
    docs = []
    decoder = json.JSONDecoder()
    pos = output.find("{")
    while 0 <= pos < len(output):
        try:
            doc, end = decoder.raw_decode(output, pos)
        except ValueError:
            break
        docs.append(doc)
        pos = output.find("{", end)
    return docs


def _diagnostics(output: str) -> list[str]:
    """The error messages of a `--json` run: its document's diagnostics and error events."""
    found = [
        str(e.get("message", "")).strip()
        for doc in _documents(output)
        for e in [doc.get("diagnosticEvent") or {}, *(doc.get("diagnostics") or [])]
        if e.get("severity") == "error" and e.get("message")
    ]
    return list(dict.fromkeys(found))


def summary_of(output: str) -> dict[str, int]:
    """The change summary of a `--json` run, e.g. ``{"create": 3, "same": 1}``."""
    for doc in _documents(output):
        summary = doc.get("changeSummary") or (doc.get("summaryEvent") or {}).get(
            "resourceChanges"
        )
        if summary is not None:
            return {str(k): int(v) for k, v in summary.items()}
    return {}


_VALUED_FLAGS = frozenset({
    "--stack", "-s", "--cwd", "-C", "--color", "--verbose", "-v", "--tracing", "--profiling",
    "--memprofilerate", "--tracing-header", "--secrets-provider", "--copy-config-from",
})
"""Pulumi flags whose value is the next word (so that word is not the command)."""
_NO_STACK = frozenset({"", "version", "help", "login", "logout", "whoami", "plugin", "new",
                       "about", "gen-completion", "install", "convert", "schema"})
"""Commands that need no stack: the launcher does not ask which one is selected."""


def command_and_stack(args: Sequence[str]) -> tuple[str, str | None]:
    """The pulumi command (first word that is not a flag or a flag's value) and the stack
    named by ``--stack``/``-s`` or by ``stack init|select|rm NAME``, else None.

    Example: ``command_and_stack(["--stack", "prod", "up"])`` → ``("up", "prod")``
    """
    words: list[str] = []
    stack = None
    rest = iter(args)
    for arg in rest:
        if arg in ("--stack", "-s"):
            stack = next(rest, None)
        elif arg.startswith("--stack="):
            stack = arg.split("=", 1)[1]
        elif arg in _VALUED_FLAGS:
            next(rest, None)
        elif not arg.startswith("-"):
            words.append(arg)
    if stack is None and words[:1] == ["stack"] and len(words) > 2 \
            and words[1] in ("init", "select", "rm"):
        stack = words[2]
    return (words[0] if words else ""), stack


def _exec_pulumi(args: Sequence[str]) -> int:
    """`tools/pulumi ARGS`: run pulumi in `Engine.env` of the project in the current
    directory, umask 077. Refuses (exit 1) an update of a stack keeping an SSH private key in
    plain text; a lab stack gets the lab passphrase when none is set, any other stack is left
    to pulumi (which asks for one, or refuses without a terminal). The stack is the one
    named on the command line, else the selected one (`pulumi stack --show-name`)."""
    project = Path.cwd()
    engine = Engine(project)
    env = engine.env()
    command, stack = command_and_stack(args)
    os.umask(0o077)
    if stack is None and command not in _NO_STACK:
        shown = subprocess.run(["pulumi", "stack", "--show-name", "--non-interactive"],
                               env=env, cwd=project, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, check=False)
        if shown.returncode == 0 and shown.stdout.strip():
            stack = shown.stdout.strip()
    if stack is not None:
        if command in RUNS_PROGRAM:
            try:
                refuse_plaintext_keys(project, stack)
            except VlanInfraError as err:
                print(f"tools/pulumi: {err}", file=sys.stderr)
                return 1
        if not any(env.get(k) for k in _PASSPHRASE_ENV) and is_lab_stack(
                stack_file(project, stack)):
            env["PULUMI_CONFIG_PASSPHRASE"] = LAB_PASSPHRASE
    os.execvpe("pulumi", ["pulumi", *args], env)


def _main(argv: Sequence[str]) -> int:
    """`python -m vlaninfra.engine exec [ARGS...]`: what `tools/pulumi ARGS` runs."""
    if not argv or argv[0] != "exec":
        print("usage: python -m vlaninfra.engine exec [PULUMI ARGS...]", file=sys.stderr)
        return 2
    return _exec_pulumi(argv[1:])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
