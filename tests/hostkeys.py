"""Host key lines for tests that never connect."""

from __future__ import annotations

import base64
import hashlib

__all__ = ["fake_host_key"]


def fake_host_key(name: str) -> str:
    """A well-formed ``ssh-ed25519`` public key line whose 32 key bytes come from ``name`` (no
    private key exists for it). Example: ``fake_host_key("h1")`` → ``"ssh-ed25519 AAAAC3Nz…"``"""
    fields = (b"ssh-ed25519", hashlib.sha256(name.encode()).digest())
    blob = b"".join(len(f).to_bytes(4, "big") + f for f in fields)
    return "ssh-ed25519 " + base64.b64encode(blob).decode()
