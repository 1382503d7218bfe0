"""``tools/pulumi``: the pulumi CLI in the engine's environment, for a person at a terminal.

Example: ``python -m vlaninfra.engine exec --stack lab preview``
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from vlaninfra.errors import VlanInfraError

from ._engine import (
    _PASSPHRASE_ENV,
    LAB_PASSPHRASE,
    NO_CLI,
    RUNS_PROGRAM,
    Engine,
    skip_preview_checkpoints,
)
from ._project import (
    is_lab_stack,
    refuse_missing_virtualenv,
    refuse_plaintext_keys,
    stack_file,
)

__all__ = ["command_and_stack", "main"]


_VALUED_FLAGS = frozenset({
    "--stack", "-s", "--cwd", "-C", "--color", "--verbose", "-v", "--tracing", "--profiling",
    "--memprofilerate", "--tracing-header", "--otel-traces", "--secrets-provider",
    "--copy-config-from",
})
"""Pulumi flags whose value is the next word (so that word is not the command)."""
_NO_STACK = frozenset({"", "version", "help", "login", "logout", "whoami", "plugin", "new",
                       "about", "gen-completion", "install", "convert", "schema"})
"""Commands that need no stack: the launcher does not ask which one is selected."""


def _flag(args: Sequence[str], name: str, short: str) -> str | None:
    """The value of the last ``NAME VALUE``, ``NAME=VALUE`` or ``SHORT VALUE`` in `args`.

    Example: ``_flag(["up", "-s", "prod"], "--stack", "-s")`` → ``"prod"``
    """
    value = None
    rest = iter(args)
    for arg in rest:
        if arg in (name, short):
            value = next(rest, None)
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


def command_and_stack(args: Sequence[str]) -> tuple[str, str | None]:
    """The pulumi command (first word that is not a flag or a flag's value) and the stack
    named by ``--stack``/``-s`` or by ``stack init|select|rm NAME``, else None.

    Example: ``command_and_stack(["--stack", "prod", "up"])`` → ``("up", "prod")``
    """
    words: list[str] = []
    rest = iter(args)
    for arg in rest:
        if arg in _VALUED_FLAGS:
            next(rest, None)
        elif not arg.startswith("-"):
            words.append(arg)
    stack = _flag(args, "--stack", "-s")
    if stack is None and words[:1] == ["stack"] and len(words) > 2 \
            and words[1] in ("init", "select", "rm"):
        stack = words[2]
    return (words[0] if words else ""), stack


def _project_dir(args: Sequence[str]) -> Path:
    """The project pulumi runs: the one `--cwd`/`-C DIR` names (from the checkout, where
    `tools/pulumi` starts pulumi), else the checkout's.

    Example: ``_project_dir(["up", "--cwd", "examples/typed"])`` → ``<checkout>/examples/typed``
    """
    where = _flag(args, "--cwd", "-C")
    return Path.cwd() / where if where else Path.cwd()


def _exec_pulumi(args: Sequence[str]) -> int:
    """`tools/pulumi ARGS`: run pulumi in `Engine.env` of the project (`_project_dir`), umask
    077. Refuses (exit 1) an update of a project whose Pulumi.yaml names a virtualenv that is
    not there, or of a stack keeping an SSH private key in plain text; a lab stack gets the
    lab passphrase when none is set, any other stack is left to pulumi (which asks for one, or
    refuses without a terminal). The stack is the one named on the command line, else the
    selected one (`pulumi stack --show-name`)."""
    project = _project_dir(args)
    command, stack = command_and_stack(args)
    try:
        if command in RUNS_PROGRAM:
            refuse_missing_virtualenv(project)
        env = Engine(Path.cwd()).env(None, project)
        skip_preview_checkpoints(env, command)
        os.umask(0o077)
        if stack is None and command not in _NO_STACK:
            try:
                shown = subprocess.run(["pulumi", "stack", "--show-name", "--non-interactive"],
                                       env=env, cwd=project, stdin=subprocess.DEVNULL,
                                       capture_output=True, text=True, check=False)
            except FileNotFoundError:
                return _no_cli()
            if shown.returncode == 0 and shown.stdout.strip():
                stack = shown.stdout.strip()
        if stack is not None and command in RUNS_PROGRAM:
            refuse_plaintext_keys(project, stack)
    except VlanInfraError as err:
        print(f"tools/pulumi: {err}", file=sys.stderr)
        return 1
    if stack is not None and not any(env.get(k) for k in _PASSPHRASE_ENV) and is_lab_stack(
            stack_file(project, stack)):
        env["PULUMI_CONFIG_PASSPHRASE"] = LAB_PASSPHRASE
    try:
        os.execvpe("pulumi", ["pulumi", *args], env)
    except FileNotFoundError:
        return _no_cli()


def _no_cli() -> int:
    print(f"tools/pulumi: {NO_CLI}", file=sys.stderr)
    return 127


def main(argv: Sequence[str]) -> int:
    """`python -m vlaninfra.engine exec [ARGS...]`: what `tools/pulumi ARGS` runs."""
    if not argv or argv[0] != "exec":
        print("usage: python -m vlaninfra.engine exec [PULUMI ARGS...]", file=sys.stderr)
        return 2
    return _exec_pulumi(argv[1:])

