"""Pulumi components that lay a planned layout onto hosts: `Site`, the root of one site, and
below it per network the Docker network on each host, the host shims and the containers."""

from __future__ import annotations

from . import _root, _site
from ._root import *  # noqa: F403  (`Site` and its outputs: `_root.__all__`)
from ._site import *  # noqa: F403  (the per-network components: `_site.__all__`)

__all__: list[str] = []
__all__ += _root.__all__
__all__ += _site.__all__
