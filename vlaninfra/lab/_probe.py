"""Reachability probes from inside lab namespaces (the demo's table, the end-to-end tests)."""

from __future__ import annotations

import subprocess

__all__ = ["http_ok"]


def http_ok(netns: str, address: str, timeout: float = 3.0) -> bool:
    """Whether `http://address/` answers 200 from inside network namespace `netns`.

    Example: ``http_ok("vl-a-peer", "198.51.100.130")`` (or an IPv6 address)
    """
    proc = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            netns,
            "curl",
            "-s",
            "-m",
            str(timeout),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            f"http://[{address}]/" if ":" in address else f"http://{address}/",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return proc.stdout.strip() == "200"
