"""The project and its stack files as the engine needs them: where they are, which backend
the project names, whether a stack is a lab stack, and which config keys hold an SSH private key
in plain text (refused before pulumi runs).

Example: ``is_lab_stack(stack_file(project_root(), "lab"))`` → True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vlaninfra.errors import VlanInfraError

__all__ = [
    "config_key",
    "holds_private_key",
    "is_lab_stack",
    "plaintext_keys",
    "project_backend",
    "project_name",
    "project_root",
    "project_virtualenv",
    "refuse_missing_virtualenv",
    "refuse_plaintext_keys",
    "stack_file",
]


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


def _yaml_doc(path: Path) -> Any:
    """The YAML document at `path`; ``{}`` when it is empty, unreadable, not UTF-8 or not
    YAML (what reads it next, the layout or pulumi, says what is wrong with it)."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}


def _meta(project: Path) -> dict[str, Any]:
    """The project's Pulumi.yaml (empty when unreadable)."""
    meta = _yaml_doc(project / "Pulumi.yaml")
    return meta if isinstance(meta, dict) else {}


def _virtualenv_option(project: Path) -> str | None:
    runtime = _meta(project).get("runtime")
    options = runtime.get("options") if isinstance(runtime, dict) else None
    name = options.get("virtualenv") if isinstance(options, dict) else None
    return str(name) if name else None


def project_virtualenv(project: Path) -> Path | None:
    """The virtualenv the project's Pulumi.yaml names (`runtime: options: virtualenv:`,
    relative to the project), when it holds a Python; None otherwise.

    Example: ``project_virtualenv(project_root())`` → ``.../.venv``
    """
    name = _virtualenv_option(project)
    venv = project / name if name else None
    return venv if venv and (venv / "bin" / "python").exists() else None


def refuse_missing_virtualenv(project: Path) -> None:
    """Raises when the project's Pulumi.yaml names a virtualenv that holds no Python: its
    program and providers would otherwise run in another one (the checkout's, or whatever
    Python is first on PATH) with another vlaninfra than the project's."""
    name = _virtualenv_option(project)
    venv = project / name if name else None
    if venv and not (venv / "bin" / "python").exists():
        raise VlanInfraError(
            f"{project / 'Pulumi.yaml'}: runtime.options.virtualenv names {name!r}, but "
            f"{venv / 'bin' / 'python'} does not exist; nothing was run: create it (`python3 "
            f"-m venv {venv}` and install vlaninfra into it) or correct the option"
        )


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
        sites = _yaml_doc(path)["config"]["vlaninfra:sites"]
    except (KeyError, TypeError):
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
        for key in ("hosts", "routers")
        if isinstance(site.get(key), list)  # anything else is the layout's to refuse
        for m in site[key]
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
    doc = _yaml_doc(path)
    config = doc.get("config") if isinstance(doc, dict) else None
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
    doc = _yaml_doc(path)
    return str(doc.get("secretsprovider") or "passphrase") if isinstance(doc, dict) else ""


def project_backend(project: Path) -> str | None:
    """The `backend: url:` of the project's Pulumi.yaml, if it names one.

    Example: ``project_backend(Path("stacks/.."))`` → ``None``
    """
    try:
        url = _meta(project)["backend"]["url"]
    except (KeyError, TypeError):
        return None
    return str(url) if url else None
