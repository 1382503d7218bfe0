"""Settings read from environment variables (shared by the transport and the lab)."""

from __future__ import annotations

import os

from vlaninfra.errors import VlanInfraError

__all__ = ["SettingError", "env_seconds"]


class SettingError(VlanInfraError, ValueError):
    """An environment setting has a value that cannot be used; the message names it."""


def env_seconds(name: str, default: float, *, most: float = 3600.0, zero: bool = False) -> float:
    """Seconds from ``$name``: ``default`` when unset or empty, else a number greater than 0
    (or 0 too, with ``zero``) and at most ``most``; anything else raises :class:`SettingError`.

    Example: ``env_seconds("VLANINFRA_OP_DEADLINE", 30.0)`` → ``30.0`` when unset
    """
    text = os.environ.get(name, "")
    if not text:
        return default
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not (seconds >= 0 if zero else seconds > 0) or not seconds <= most:
        low = "0" if zero else "more than 0"
        raise SettingError(f"{name}={text!r} must be a number of seconds, {low} up to {most:g}")
    return seconds
