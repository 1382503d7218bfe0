"""The one place that reads stack files (YAML). Secrets stay as written, never decrypted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from vlaninfra.errors import LayoutError, Problem
from vlaninfra.layout import Layout, load_config

__all__ = ["NAMESPACE", "load_stack_file", "read_stack_config"]

NAMESPACE = "vlaninfra:"


def read_stack_config(path: str | Path) -> dict[str, object]:
    """The ``config:`` mapping of a Pulumi stack file, ``vlaninfra:`` prefixes removed.

    Other namespaces and ``{secure: ...}`` values are returned untouched.
    Example: ``read_stack_config("stacks/Pulumi.lab.yaml")["sites"]``
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise LayoutError((Problem(str(path), None, f"not UTF-8 text ({err.reason} at byte "
                                                    f"{err.start}): save it as UTF-8"),)) from None
    try:
        document: Any = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise LayoutError((Problem(str(path), None, f"not valid YAML: {err}"),)) from None
    config = document.get("config") if isinstance(document, dict) else None
    if not isinstance(config, dict):
        raise LayoutError((Problem(f"{path}: config", None,
                                   "expected a mapping under config: (Pulumi stack file)"),))
    return {str(k).removeprefix(NAMESPACE): v for k, v in config.items()}


def load_stack_file(path: str | Path) -> Layout:
    """Reads a stack file into a Layout, e.g. ``load_stack_file("stacks/Pulumi.lab.yaml")``."""
    return load_config(read_stack_config(path), source=str(path))
