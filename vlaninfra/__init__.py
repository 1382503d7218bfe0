"""vlaninfra: multi-tenant macvlan/ipvlan container networks on Docker hosts, through Pulumi."""

from __future__ import annotations

__all__: list[str] = []
