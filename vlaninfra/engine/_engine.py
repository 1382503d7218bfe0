"""The pulumi CLI of this checkout in its environment (backend, passphrase, private state),
with the clean-up a killed run needs (stale locks, torn sidecars) and its failures as errors.

Example: ``Engine(project_root()).run("lab", "up", "--yes")``
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError

from ._output import diagnostics, summary_of
from ._project import (
    _secrets_provider,
    is_lab_stack,
    project_backend,
    project_name,
    project_virtualenv,
    refuse_missing_virtualenv,
    refuse_plaintext_keys,
    stack_file,
)

__all__ = [
    "LAB_PASSPHRASE",
    "RUNS_PROGRAM",
    "Engine",
    "EngineError",
    "Interrupted",
    "StackLockedError",
    "make_private",
    "run_attached",
    "skip_preview_checkpoints",
]

log = logging.getLogger(__name__)

LAB_PASSPHRASE = "vlaninfra-lab"
"""The passphrase of lab stacks' secrets when none is set: lab stacks only (`is_lab_stack`)."""
NO_CLI = ("the `pulumi` CLI is not installed here: run tools/setup.sh (it builds the engine "
          "into .engine/bin)")
"""What a command that found no `pulumi` to run says."""
_PASSPHRASE_ENV = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")
RUNS_PROGRAM = frozenset({"up", "update", "preview", "refresh", "destroy", "import", "watch"})
"""Commands that run an update: the engine records the stack's config in its history."""


def skip_preview_checkpoints(env: dict[str, str], command: str) -> None:
    """Sets PULUMI_SKIP_CHECKPOINTS in `env` for `pulumi preview` (`command`), unless `env`
    has a value for it already.

    A preview writes no state (the file backend hands each checkpoint to a persister that
    discards it), yet the engine serializes the whole state after every step, so a preview's
    cost grew with the square of the stack: at 221 resources that was half of the engine's
    CPU. With the variable the state is serialized once, at the end, and still discarded.
    Never for a command that may change anything: its checkpoints are what a killed run
    leaves. (`destroy`/`refresh`/`import --preview-only` are dry runs too, but a flag's value
    may read `--preview-only`, so they are left as they are.)

    Example: ``skip_preview_checkpoints(env, "preview")`` sets
    ``env["PULUMI_SKIP_CHECKPOINTS"] = "true"``
    """
    if command == "preview" and not env.get("PULUMI_SKIP_CHECKPOINTS"):
        env["PULUMI_SKIP_CHECKPOINTS"] = "true"


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while pulumi ran; `saved` says whether pulumi finished the steps under way and
    saved the state (one Ctrl-C) or stopped at once or was killed (two or three); `output`
    is what pulumi printed, when it was captured (`Engine.run`)."""

    def __init__(self, saved: bool, output: str = "") -> None:
        super().__init__()
        self.saved = saved
        self.output = output


_TERMINATED = " received; terminating"
"""What pulumi prints when a second Ctrl-C (or SIGTERM) stops it at once, unsaved."""


def _interrupted(proc: subprocess.Popen[Any]) -> Interrupted:
    """Ctrl-C while pulumi runs: the terminal sent pulumi the same SIGINT, on which it finishes
    the steps under way and saves the state; wait for that (subprocess.run killed it 0.25 s
    later, leaving a lock and pending creates). A second Ctrl-C reaches pulumi too, which then
    stops at once; a third kills it. Nothing is sent to pulumi before: a group kill (a CI
    runner's) still reaches it, and a SIGINT sent to this process alone lets it finish. Two
    Ctrl-C close together can reach this process as one, so what pulumi printed decides too:
    it says "^C received; terminating" when it stops at once (when its output is captured:
    `run_attached` leaves it on the terminal and counts the Ctrl-C alone)."""
    for saved in (True, False):
        try:
            output = "".join(x or "" for x in proc.communicate())
        except KeyboardInterrupt:
            continue
        return Interrupted(saved and _TERMINATED not in output, output)
    proc.kill()
    return Interrupted(False, "".join(x or "" for x in proc.communicate()))


def run_attached(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> int:
    """Runs ``argv`` (pulumi) with this terminal's output, e.g. the demo's `up`; its exit
    status. A Ctrl-C waits for pulumi as `Engine.run` does (`_interrupted`)."""
    with subprocess.Popen(list(argv), cwd=cwd, env=env, umask=0o077) as proc:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            raise _interrupted(proc) from None


class EngineError(VlanInfraError, RuntimeError):
    """A pulumi command failed; `.output` holds what it printed."""

    def __init__(self, args: Sequence[str], code: int, output: str) -> None:
        shown = "\n".join(diagnostics(output)) or output[-4000:]
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
        # The program and the dynamic providers run in the project's virtualenv (Pulumi.yaml's
        # `virtualenv`), else in the checkout's. This language host gets no runtime options
        # from this CLI, so it finds Python on PATH; the provider's launcher reads
        # PULUMI_RUNTIME_VIRTUALENV (as Pulumi's own does).
        venv = project_virtualenv(cwd or self.root)
        bins = [self.root / ".engine" / "bin", *([venv / "bin"] if venv else []),
                self.root / ".venv" / "bin"]
        env["PATH"] = os.pathsep.join([*(str(b) for b in bins), env["PATH"]])
        if venv:
            env["PULUMI_RUNTIME_VIRTUALENV"] = str(venv)
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
        a live run's too); vlaninfra's creates adopt what that run made on the hosts. The
        engine keeps that run's pending creates, and warns of them, until they are dropped:
        `vlaninfra up` and `rollback` drop them once their apply has recorded every one
        (`vlaninfra.rollout`). A run refused by another run's lock raises `StackLockedError`.

        Before any command on a stack, sidecars a killed pulumi left torn
        (:meth:`torn_sidecars`) are removed, so the next command can read the stack. Before all
        that, a command running the program of a project whose Pulumi.yaml names a virtualenv
        that is not there is refused (`refuse_missing_virtualenv`).
        """
        if args and args[0] in RUNS_PROGRAM:
            refuse_missing_virtualenv(cwd or self.root)
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
        env = self.env(stack, cwd)
        skip_preview_checkpoints(env, args[0] if args else "")
        try:
            proc = subprocess.Popen(
                ["pulumi", *full], cwd=cwd or self.root, env=env, stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, umask=0o077)
        except FileNotFoundError as err:
            if err.filename != "pulumi":  # the directory to run in
                raise EngineError(full, 127, f"cannot run pulumi in {err.filename}: "
                                  f"{err.strerror}") from None
            raise EngineError(full, 127, NO_CLI) from None
        with proc:
            try:
                stdout, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                out = "".join(proc.communicate())
                raise EngineError(full, -9, f"{out}\nkilled after {timeout:g}s (timeout)"
                                  ) from None
            except KeyboardInterrupt:  # Ctrl-C: pulumi saves what it did (`_interrupted`)
                raise _interrupted(proc) from None
        if check and proc.returncode != 0:
            if stack is not None and _LOCKED in stdout + stderr:
                raise StackLockedError(full, proc.returncode, stdout + stderr, stack)
            raise EngineError(full, proc.returncode, stdout + stderr)
        return stdout

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


