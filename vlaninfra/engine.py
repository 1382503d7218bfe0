"""Run the Pulumi CLI the way `tools/pulumi` does: for the demo, the tests and benchmarks.

Example::

    result = Engine(project_root()).run("lab", "up", "--yes")
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vlaninfra.errors import VlanInfraError

__all__ = ["Engine", "EngineError", "project_root"]


class EngineError(VlanInfraError, RuntimeError):
    """A pulumi command failed; `.output` holds what it printed."""

    def __init__(self, args: Sequence[str], code: int, output: str) -> None:
        shown = "\n".join(_diagnostics(output)) or output[-4000:]
        super().__init__(f"pulumi {' '.join(args)} exited {code}:\n{shown}")
        self.args_ = tuple(args)
        self.code = code
        self.output = output


def project_root(start: Path | None = None) -> Path:
    """The directory holding Pulumi.yaml, from `start` (default: this package's checkout) upwards.

    Example: ``project_root() / "stacks"``
    """
    here = (start or Path(__file__)).resolve()
    for d in (here, *here.parents):
        if (d / "Pulumi.yaml").is_file():
            return d
    raise VlanInfraError(f"no Pulumi.yaml above {here}")


@dataclass(frozen=True)
class Engine:
    """The pulumi CLI of this checkout (`.engine/bin`), on the local file backend by default.

    Example: ``Engine(root, backend=tmp_path).run("lab", "preview")``
    """

    root: Path
    backend: Path | None = None
    passphrase: str = "vlaninfra-lab"
    extra_env: Mapping[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PATH"] = os.pathsep.join(
            [str(self.root / ".engine" / "bin"), str(self.root / ".venv" / "bin"), env["PATH"]]
        )
        backend = self.backend or self.root / ".pulumi-state" / "backend"
        backend.mkdir(parents=True, exist_ok=True)
        env.setdefault("PULUMI_BACKEND_URL", f"file://{backend}")
        env.setdefault("PULUMI_HOME", str(backend.parent / "home"))
        env.setdefault("PULUMI_CONFIG_PASSPHRASE", self.passphrase)
        env["PULUMI_SKIP_UPDATE_CHECK"] = "1"
        env["PULUMI_DIY_BACKEND_NO_LEGACY_WARNING"] = "1"
        env.update(self.extra_env)
        return env

    def stale_locks(self, stack: str) -> list[Path]:
        """The file backend's locks on `stack` left by a pulumi process of this machine that
        no longer runs (killed mid-update); a lock of a live process or of another machine is
        never stale."""
        backend = self.backend or self.root / ".pulumi-state" / "backend"
        stale = []
        for path in (backend / ".pulumi" / "locks").rglob("*.json"):
            try:
                lock = json.loads(path.read_text())
                if path.parent.name != stack or lock["hostname"] != socket.gethostname():
                    continue
                os.kill(int(lock["pid"]), 0)
            except ProcessLookupError:
                stale.append(path)
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return stale

    def run(
        self, stack: str | None, *args: str, check: bool = True, cwd: Path | None = None
    ) -> str:
        """Runs `pulumi ARGS --stack STACK --non-interactive`; returns stdout+stderr.

        Before `up`, `refresh` and `destroy`, a lock a killed pulumi left is removed with
        `pulumi cancel` (the engine then drops the killed run's pending creates with a warning,
        and vlaninfra's creates adopt what that run made on the hosts).
        """
        if stack is not None and args and args[0] in ("up", "refresh", "destroy") \
                and self.stale_locks(stack):
            self.run(stack, "cancel", "--yes", check=False, cwd=cwd)
        full = [*args, "--non-interactive"]
        if stack is not None:
            full += ["--stack", stack]
        proc = subprocess.run(
            ["pulumi", *full],
            cwd=cwd or self.root,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
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
